"""Training throughput of chainrule against PyTorch: same network, weights, batches, optimiser.

    python benchmarks/bench_train.py                 # MLP 784-800-10 and LeNet-5, batch 128
    python benchmarks/bench_train.py --batch 64 --reps 9 --steps 40

For each model both frameworks start from the same float32 weights and take SGD steps (lr
0.01, momentum 0.9) on the same mini-batches (real MNIST test images when
../shared/data/mnist or $CHAINRULE_MNIST_DIR holds them, random images otherwise). Timing
alternates between the two frameworks, repetition by repetition, in this one process (the
machines are noisy: ratios hold, absolute times drift); the median over repetitions is
reported. A step is: forward, softmax cross-entropy, backward, optimiser update.

Peak memory is measured in two fresh child processes per model (one per framework), each
taking the same steps:
  * "peak RSS growth": the peak resident set size during the steps minus the resident size
    just before the first step (Linux: the peak mark is reset through /proc/self/clear_refs and
    read as VmHWM) - gradients, optimiser state, activations and allocator caches, measured
    the same way for both frameworks;
  * "NumPy peak (tracemalloc)": chainrule only - the peak of memory NumPy allocated during the
    steps, as traced by tracemalloc (PyTorch's CPU allocations are invisible to tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import chainrule as cr  # noqa: E402
from chainrule import models, optim  # noqa: E402

LR, MOMENTUM = 0.01, 0.9


def batches(batch: int, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` mini-batches (images (B, 1, 28, 28) float32, labels (B,) int64)."""
    rng = np.random.default_rng(seed)
    folder = os.environ.get("CHAINRULE_MNIST_DIR") or str(REPO.parent / "shared" / "data" / "mnist")
    try:
        from chainrule.data import load_mnist

        data = load_mnist(folder, split="test", download=False)
        images, labels = data.images, data.labels
    except (OSError, ValueError):
        images = rng.random((10_000, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, 10_000)
    out = []
    for _ in range(count):
        idx = rng.choice(len(labels), batch, replace=False)
        out.append((np.ascontiguousarray(images[idx]), labels[idx].astype(np.int64)))
    return out


def make_chainrule(name: str):
    model = models.mlp(hidden=800, rng=0) if name == "mlp" else models.cnn(rng=0)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step(x: np.ndarray, y: np.ndarray) -> float:
        loss = cr.softmax_cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.data)

    return model, step


def make_torch(name: str, weights: dict[str, np.ndarray]):
    import torch

    tnn = torch.nn
    if name == "mlp":
        net = tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 800), tnn.ReLU(), tnn.Linear(800, 10))
    else:
        net = tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2),
            tnn.ReLU(),
            tnn.MaxPool2d(2),
            tnn.Conv2d(6, 16, 5),
            tnn.ReLU(),
            tnn.MaxPool2d(2),
            tnn.Flatten(),
            tnn.Linear(400, 120),
            tnn.ReLU(),
            tnn.Linear(120, 84),
            tnn.ReLU(),
            tnn.Linear(84, 10),
        )
    # chainrule's Sequential names parameters like torch's: "1.weight", "3.bias", ...
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = tnn.functional.cross_entropy

    def step(x: np.ndarray, y: np.ndarray) -> float:
        loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return net, step


def time_pair(name: str, batch: int, steps: int, reps: int) -> dict:
    import torch

    torch.set_num_threads(2)
    data = batches(batch, steps)
    cr_model, cr_step = make_chainrule(name)
    _, t_step = make_torch(name, cr_model.state_dict())
    # the same steps from the same weights must give the same losses (float32 tolerance)
    losses = [(cr_step(x, y), t_step(x, y)) for x, y in data[:5]]
    diff = max(abs(a - b) for a, b in losses)
    for f in (cr_step, t_step):  # warm-up
        for x, y in data[:5]:
            f(x, y)
    times: dict[str, list[float]] = {"chainrule": [], "torch": []}
    for r in range(reps):
        order = [("chainrule", cr_step), ("torch", t_step)]
        if r % 2:
            order.reverse()
        for label, f in order:
            t0 = time.perf_counter()
            for x, y in data:
                f(x, y)
            times[label].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    tput = {k: batch * steps / v for k, v in med.items()}
    return {
        "model": name,
        "batch": batch,
        "chainrule_ms_per_step": 1e3 * med["chainrule"] / steps,
        "torch_ms_per_step": 1e3 * med["torch"] / steps,
        "chainrule_samples_per_s": tput["chainrule"],
        "torch_samples_per_s": tput["torch"],
        "throughput_ratio": tput["chainrule"] / tput["torch"],
        "first_losses_max_abs_diff": diff,
    }


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> int:
    """Reset the peak-RSS mark (Linux: clear_refs 5) and return the current RSS in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # then the peak may include the set-up's (an over-estimate, never an under-)
    now = _status_kib("VmRSS")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_kib() -> int:
    peak = _status_kib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(name: str, framework: str, batch: int, steps: int) -> dict:
    """Run in a fresh process: peak RSS growth (and NumPy's traced peak) over ``steps`` steps."""
    import torch

    torch.set_num_threads(2)
    data = batches(batch, steps)
    cr_model, cr_step = make_chainrule(name)
    step = cr_step if framework == "chainrule" else make_torch(name, cr_model.state_dict())[1]
    if framework == "chainrule":
        tracemalloc.start()
    rss0 = _reset_peak_rss()
    for x, y in data:
        step(x, y)
    out = {"rss_growth_mib": (_peak_rss_kib() - rss0) / 1024}
    if framework == "chainrule":
        out["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out


def memory(name: str, framework: str, batch: int, steps: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        name,
        framework,
        "--batch",
        str(batch),
        "--steps",
        str(steps),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30, help="steps per timed repetition")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per framework")
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    ap.add_argument(
        "--memory-child", nargs=2, metavar=("MODEL", "FRAMEWORK"), help=argparse.SUPPRESS
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    args = ap.parse_args()
    if args.memory_child:
        name, framework = args.memory_child
        print(json.dumps(memory_child(name, framework, args.batch, args.steps)))
        return

    import torch

    print(
        f"chainrule vs PyTorch {torch.__version__}: SGD lr {LR} momentum {MOMENTUM}, float32, "
        f"batch {args.batch}, {args.steps} steps x {args.reps} interleaved repetitions, "
        f"torch threads 2, NumPy {np.__version__}"
    )
    header = (
        f"{'model':<6} {'chainrule ms/step':>17} {'torch ms/step':>13} "
        f"{'chainrule samples/s':>19} {'torch samples/s':>15} {'ratio':>6}  "
        f"{'peak RSS growth cr / torch (MiB)':>32}  {'NumPy peak (MiB)':>16}"
    )
    print(header)
    print("-" * len(header))
    for name in args.models:
        r = time_pair(name, args.batch, args.steps, args.reps)
        mem = ""
        if not args.no_memory:
            mc = memory(name, "chainrule", args.batch, args.steps)
            mt = memory(name, "torch", args.batch, args.steps)
            mem = (
                f"{mc['rss_growth_mib']:>14.1f} / {mt['rss_growth_mib']:<15.1f}  "
                f"{mc['tracemalloc_peak_mib']:>16.1f}"
            )
        print(
            f"{name:<6} {r['chainrule_ms_per_step']:>17.2f} {r['torch_ms_per_step']:>13.2f} "
            f"{r['chainrule_samples_per_s']:>19,.0f} {r['torch_samples_per_s']:>15,.0f} "
            f"{r['throughput_ratio']:>6.2f}  {mem}"
        )
        if r["first_losses_max_abs_diff"] > 1e-4:
            print(f"  WARNING: first losses differ by {r['first_losses_max_abs_diff']:.2e}")
    print("ratio = chainrule throughput / PyTorch throughput (targets: mlp >= 1.2, cnn >= 0.67)")


if __name__ == "__main__":
    main()
