"""Full MNIST with the default recipes: chainrule's `chainrule train`, and the same in PyTorch.

    python benchmarks/mnist_accuracy.py                    # MLP and LeNet-5, both frameworks
    python benchmarks/mnist_accuracy.py --models mlp --frameworks chainrule
    python benchmarks/mnist_accuracy.py --threads 1 --json runs.json

Each (model, framework) trains in a process of its own, one after another (never two at
once). chainrule runs exactly what ``chainrule train --model mlp|cnn --dataset mnist`` runs
(``tune_allocator()``, then ``run_training`` with the default ``TrainConfig``); PyTorch gets
the same recipe, read from that ``TrainConfig``: the architecture with PyTorch's default
initialisation, SGD with the same learning rate, momentum and weight decay, the same cosine
schedule stepped once per epoch, the same batch size, and the same mini-batches: each epoch's
order and random shifts of the training images are drawn as chainrule's
``DataLoader(shift=...)`` draws them (NumPy). The PyTorch process never imports chainrule; the
chainrule process never imports PyTorch.

After every epoch both evaluate the 10,000 test images (not counted as training time). The
table gives the final test accuracy, and the training time (wall clock, summed over epochs)
until the test accuracy first reached the mark: 98% for the MLP, 99% for LeNet-5. Times
depend on the machine and on what else it runs; the header prints the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _torch_nets as torch_nets  # benchmarks/ is on sys.path: these run as scripts

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
MARKS = {"mlp": 0.98, "cnn": 0.99}
NAMES = {"mlp": "MLP 784-800-10", "cnn": "LeNet-5"}


def default_data_dir() -> Path:
    env = os.environ.get("CHAINRULE_MNIST_DIR")
    return Path(env) if env else HERE.parents[1] / "shared" / "data" / "mnist"


# ------------------------------------------------------------------------------ chainrule


def train_chainrule(model: str, data_dir: Path, epochs: int | None) -> dict:
    """`chainrule train --model MODEL --dataset mnist` (default recipe), in this process."""
    sys.path.insert(0, str(SRC))
    from chainrule.backend import tune_allocator
    from chainrule.train import TrainConfig, run_training

    tune_allocator()  # as `chainrule train` does before it trains
    config = TrainConfig(model=model, dataset="mnist", epochs=epochs)
    with tempfile.TemporaryDirectory() as out:
        result = run_training(
            config, out, data_dir=data_dir, download=False, progress=False, plots=False, log=None
        )
    history = [
        {"epoch": h["epoch"], "test_accuracy": h["test_accuracy"], "seconds": h["seconds"]}
        for h in result.fit.history
    ]
    assert "torch" not in sys.modules
    return {"recipe": result.config.hyperparameters(), "history": history}


# ------------------------------------------------------------------------------ PyTorch


def mnist_arrays(data_dir: Path, split: str):
    """(images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64) read from the IDX files."""
    import gzip

    import numpy as np

    prefix = "train" if split == "train" else "t10k"
    out = []
    for kind, offset in (("images-idx3", 16), ("labels-idx1", 8)):
        name = f"{prefix}-{kind}-ubyte"
        path = data_dir / name if (data_dir / name).is_file() else data_dir / (name + ".gz")
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        out.append(np.frombuffer(raw, np.uint8, offset=offset))
    images = (out[0].reshape(-1, 1, 28, 28) / np.float32(255)).astype(np.float32)
    return images, out[1].astype(np.int64)


def shift_images(images, offsets, s: int):
    """Each image moved by its (dy, dx) offset, zero-filled (as chainrule's DataLoader)."""
    import numpy as np

    n, c, h, w = images.shape
    padded = np.zeros((n, c, h + 2 * s, w + 2 * s), dtype=images.dtype)
    padded[:, :, s : s + h, s : s + w] = images
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
    return windows[np.arange(n), :, s - offsets[:, 0], s - offsets[:, 1]]


def train_torch(model: str, data_dir: Path, recipe: dict, threads: int) -> dict:
    """The same recipe in PyTorch, in this process."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(recipe["seed"])
    tnn = torch.nn
    net = torch_nets.mlp(tnn, recipe["hidden"]) if model == "mlp" else torch_nets.lenet(tnn)
    if recipe["optimizer"] != "sgd" or recipe["schedule"] != "cosine":
        raise SystemExit("this script mirrors the default recipes: SGD with a cosine schedule")
    opt = torch.optim.SGD(
        net.parameters(),
        lr=recipe["lr"],
        momentum=recipe["momentum"],
        weight_decay=recipe["weight_decay"],
        nesterov=recipe["nesterov"],
    )
    x_train, y_train = mnist_arrays(data_dir, "train")
    x_test, y_test = (torch.from_numpy(a) for a in mnist_arrays(data_dir, "test"))
    epochs, batch, shift = recipe["epochs"], recipe["batch_size"], recipe["shift"]
    lr0, lr_min = recipe["lr"], recipe["min_lr"]
    history = []
    for epoch in range(epochs):
        for group in opt.param_groups:  # CosineAnnealingLR(T_max=epochs), stepped per epoch
            group["lr"] = lr_min + (lr0 - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2
        # chainrule's epoch_seed(seed, epoch) and DataLoader draws: the same batches and shifts
        rng = np.random.default_rng(
            int(np.random.SeedSequence([recipe["seed"], epoch]).generate_state(1)[0])
        )
        order = rng.permutation(len(y_train))
        offsets = rng.integers(-shift, shift + 1, (len(y_train), 2)) if shift else None
        net.train()
        start = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for b in range(0, len(order), batch):
            idx = order[b : b + batch]
            x = (
                x_train[idx]
                if offsets is None
                else shift_images(x_train[idx], offsets[b : b + batch], shift)
            )
            xb, yb = torch.from_numpy(x), torch.from_numpy(y_train[idx])
            scores = net(xb)
            loss = torch.nn.functional.cross_entropy(scores, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)  # the same bookkeeping as chainrule's loop
            correct += int((scores.argmax(1) == yb).sum())
        seconds = time.perf_counter() - start
        net.eval()
        with torch.no_grad():
            hits = sum(
                int((net(x_test[i : i + 1000]).argmax(1) == y_test[i : i + 1000]).sum())
                for i in range(0, len(y_test), 1000)
            )
        history.append(
            {"epoch": epoch + 1, "test_accuracy": hits / len(y_test), "seconds": seconds}
        )
    assert "chainrule" not in sys.modules
    return {"recipe": recipe, "history": history, "torch": torch.__version__}


# ------------------------------------------------------------------------------ the parent


def run_worker(framework: str, model: str, args, recipe: dict | None) -> dict:
    env = dict(os.environ)
    env.update({v: str(args.threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")})
    env["MKL_NUM_THREADS"] = str(args.threads)
    cmd = [sys.executable, __file__, "--worker", framework, model, "--data-dir", str(args.data_dir)]
    cmd += ["--threads", str(args.threads)]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    if recipe is not None:
        cmd += ["--recipe", json.dumps(recipe)]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {framework} {model} run failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def reached(history: list[dict], mark: float) -> tuple[int, float] | None:
    """(epoch, training seconds up to its end) when the test accuracy first reached ``mark``."""
    seconds = 0.0
    for h in history:
        seconds += h["seconds"]
        if h["test_accuracy"] >= mark:
            return h["epoch"], seconds
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=["mlp", "cnn"])
    p.add_argument(
        "--frameworks", nargs="+", choices=("chainrule", "torch"), default=["chainrule", "torch"]
    )
    p.add_argument("--threads", type=int, default=2, help="BLAS / PyTorch threads (default 2)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--data-dir", type=Path, default=default_data_dir(), help="MNIST IDX files")
    p.add_argument("--json", metavar="PATH", help="also write the per-epoch histories here")
    p.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    p.add_argument("--recipe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        framework, model = args.worker
        if framework == "chainrule":
            out = train_chainrule(model, args.data_dir, args.epochs)
        else:
            out = train_torch(model, args.data_dir, json.loads(args.recipe), args.threads)
        print(json.dumps(out))
        return 0
    if (
        not (args.data_dir / "train-images-idx3-ubyte").is_file()
        and not (args.data_dir / "train-images-idx3-ubyte.gz").is_file()
    ):
        p.error(f"no MNIST training images in {args.data_dir}: pass --data-dir")

    print(
        f"full MNIST (60,000 / 10,000), default recipes, {args.threads} thread(s); "
        f"load average {os.getloadavg()[0]:.2f} at the start",
        flush=True,
    )
    results = {}
    for model in args.models:
        recipe = None
        for framework in ("chainrule", "torch"):
            if framework not in args.frameworks:
                continue
            if framework == "torch" and recipe is None:  # the recipe comes from chainrule
                recipe = recipe_of(model, args.epochs)
            r = run_worker(framework, model, args, recipe)
            recipe = r["recipe"]
            results[f"{framework} {model}"] = r
            mark = MARKS[model]
            hit = reached(r["history"], mark)
            total = sum(h["seconds"] for h in r["history"])
            when = f"{hit[1]:6.1f} s (epoch {hit[0]})" if hit else "not reached"
            print(
                f"{NAMES[model]:<15} {framework:<9} test accuracy "
                f"{100 * r['history'][-1]['test_accuracy']:.2f}% after {len(r['history'])} "
                f"epochs, {total:.1f} s of training; {100 * mark:.0f}% after {when}",
                flush=True,
            )
    shown = {k: v for k, v in recipe.items() if k not in ("dataset",)} if recipe else {}
    print(f"recipe (last model): {shown}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def recipe_of(model: str, epochs: int | None) -> dict:
    """The default recipe of `chainrule train --model MODEL --dataset mnist`, resolved."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        "from chainrule.train import TrainConfig; "
        "c = TrainConfig(model=sys.argv[2], dataset='mnist', "
        "epochs=int(sys.argv[3]) if sys.argv[3] != 'None' else None).resolved(); "
        "print(json.dumps(c.hyperparameters()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(SRC), model, str(epochs)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
