"""Training throughput of chainrule against PyTorch: same network, weights, batches, optimiser.

    python benchmarks/bench_train.py                 # MLP 784-800-10 and LeNet-5, batch 128
    python benchmarks/bench_train.py --batch 64 --reps 9 --steps 40

For each model both frameworks start from the same float32 weights and take SGD steps (lr
0.01, momentum 0.9) on the same mini-batches (real MNIST test images when
../shared/data/mnist or $CHAINRULE_MNIST_DIR holds them, random images otherwise). Timing
alternates between the two frameworks, repetition by repetition, in this one process (the
machines are noisy: ratios hold, absolute times drift); the median over repetitions is
reported. A step is: forward, softmax cross-entropy, backward, optimiser update.

Threads and settling as in bench_engine.py (benchmarks/_harness.py): both frameworks get
``--threads`` threads (default 2), and each timed block starts after a ``--settle`` pause in
which the other framework's idle thread pool goes to sleep. ``chainrule.backend.
tune_allocator()`` is called first, as ``chainrule train`` does (``--no-tune-allocator``).

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
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402

THREADS = harness.configure_threads(sys.argv)  # before NumPy loads its BLAS

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import chainrule as cr  # noqa: E402
from chainrule import models, optim  # noqa: E402
from chainrule.backend import tune_allocator  # noqa: E402

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


def time_pair(name: str, batch: int, steps: int, reps: int, settle_s: float) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    data = batches(batch, steps)
    cr_model, cr_step = make_chainrule(name)
    _, t_step = make_torch(name, cr_model.state_dict())
    # the same steps from the same weights must give the same losses (float32 tolerance)
    losses = [(cr_step(x, y), t_step(x, y)) for x, y in data[:5]]
    diff = max(abs(a - b) for a, b in losses)
    for f in (cr_step, t_step):  # warm-up
        for x, y in data[:5]:
            f(x, y)

    def block(f):
        def run() -> None:
            for x, y in data:
                f(x, y)

        return run

    def wake(f):
        return lambda: f(*data[0])

    med = harness.interleaved(
        {"chainrule": block(cr_step), "torch": block(t_step)},
        reps,
        settle_s,
        wake={"chainrule": wake(cr_step), "torch": wake(t_step)},
    )
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

    torch.set_num_threads(THREADS)
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
        "--threads",
        str(THREADS),
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
        "--threads", type=int, default=2, help="threads of PyTorch and of NumPy's BLAS (default 2)"
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=harness.DEFAULT_SETTLE_S,
        help="pause in seconds before each timed block, for idle thread pools to sleep",
    )
    ap.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="leave glibc's allocator as it is (see chainrule.backend.tune_allocator)",
    )
    ap.add_argument(
        "--memory-child", nargs=2, metavar=("MODEL", "FRAMEWORK"), help=argparse.SUPPRESS
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    args = ap.parse_args()
    tuned = False if args.no_tune_allocator else tune_allocator()  # as `chainrule train` does
    if args.memory_child:
        name, framework = args.memory_child
        print(json.dumps(memory_child(name, framework, args.batch, args.steps)))
        return

    import torch

    print(
        f"chainrule vs PyTorch {torch.__version__}: SGD lr {LR} momentum {MOMENTUM}, float32, "
        f"batch {args.batch}, {args.steps} steps x {args.reps} interleaved repetitions, "
        f"{THREADS} thread(s) each, {args.settle:g} s settle, allocator tuned: {tuned}, "
        f"NumPy {np.__version__}; load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'model':<6} {'chainrule ms/step':>17} {'torch ms/step':>13} "
        f"{'chainrule samples/s':>19} {'torch samples/s':>15} {'ratio':>6}  "
        f"{'peak RSS growth cr / torch (MiB)':>32}  {'NumPy peak (MiB)':>16}"
    )
    print(header)
    print("-" * len(header))
    for name in args.models:
        r = time_pair(name, args.batch, args.steps, args.reps, args.settle)
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
