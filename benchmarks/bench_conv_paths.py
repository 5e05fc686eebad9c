"""conv2d's two ways to multiply, timed against each other per layer shape.

    python benchmarks/bench_conv_paths.py            # LeNet's and a few other layers
    python benchmarks/bench_conv_paths.py --reps 15

``chainrule.conv2d`` multiplies W im2col(x) either row by row (one product per output row,
straight from unfold's buffer of column windows) or in one product over the whole batch's
im2col matrix (copied out first); it picks row by row when the kernel has at most
``backend.numpy_kernels.SMALL_KERNEL`` numbers. This script forces each path in turn (as
tests/test_backend.py does) and times one forward + backward of each (to W, b, and x where a
hidden layer needs it), the two paths interleaved in this one process, so that the threshold
can be checked on a new machine: ``picked`` is the path the threshold chooses, ``best`` the
faster. (No PyTorch here: a peer framework is timed only in its own process, by
bench_speed.py.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def configure_threads(argv: list[str], default: int = 2) -> int:
    """Read ``--threads`` from ``argv`` and put NumPy's BLAS thread count in the environment."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=default)
    threads = max(1, pre.parse_known_args(argv[1:])[0].threads)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    return threads


THREADS = configure_threads(sys.argv)  # before NumPy loads its BLAS

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import chainrule as cr  # noqa: E402
from chainrule.backend import numpy_kernels, tune_allocator  # noqa: E402

# (N, C, H, O, F, padding, de/dx wanted, what it is)
SHAPES = [
    (128, 1, 28, 6, 5, 2, False, "LeNet conv1"),
    (64, 1, 28, 6, 5, 2, False, "LeNet conv1"),
    (128, 6, 14, 16, 5, 0, True, "LeNet conv2"),
    (64, 6, 14, 16, 5, 0, True, "LeNet conv2"),
    (128, 3, 32, 16, 3, 1, False, "CIFAR-sized first layer"),
    (128, 16, 16, 32, 3, 1, True, "3x3 hidden layer"),
    (64, 32, 8, 64, 3, 1, True, "3x3 hidden layer, small image"),
]


def step(x, w, b, padding, dx, per_row):
    numpy_kernels.SMALL_KERNEL = 10**12 if per_row else 0
    xt = cr.tensor(x, requires_grad=dx)
    wt, bt = cr.tensor(w, requires_grad=True), cr.tensor(b, requires_grad=True)
    y = cr.conv2d(xt, wt, bt, padding=padding)
    y.backward(np.ones(y.shape, dtype=np.float32))


def interleaved(x, w, b, padding, dx, steps, reps):
    """Median seconds of a block of ``steps`` steps per path, the paths taking turns."""
    times: dict[str, list[float]] = {"per row": [], "one": []}
    for rep in range(reps):
        for name in ("per row", "one") if rep % 2 == 0 else ("one", "per row"):
            t0 = time.perf_counter()
            for _ in range(steps):
                step(x, w, b, padding, dx, per_row=name == "per row")
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=9, help="timed repetitions per path")
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads")
    args = p.parse_args()
    tune_allocator()
    small = numpy_kernels.SMALL_KERNEL
    rng = np.random.default_rng(0)
    print(f"conv2d forward + backward, ms per step; {THREADS} thread(s); median of {args.reps}")
    head = f"{'layer':31s} {'N x C x H, O x F':18s} {'per row':>8s} {'one':>8s}"
    print(head + "  picked    best")
    for n, c, h, o, f, pad, dx, what in SHAPES:
        x = rng.random((n, c, h, h), dtype=np.float32)
        w = (rng.standard_normal((o, c, f, f)) / f).astype(np.float32)
        b = np.zeros(o, dtype=np.float32)
        med = interleaved(x, w, b, pad, dx, args.steps, args.reps)
        numpy_kernels.SMALL_KERNEL = small
        picked = "per row" if o * c * f * f <= small else "one"
        best = min(("per row", "one"), key=lambda k: med[k])
        ms = {k: v / args.steps * 1e3 for k, v in med.items()}
        shape = f"{n}x{c}x{h}, {o}x{f}x{f}"
        print(f"{what:31s} {shape:18s} {ms['per row']:8.2f} {ms['one']:8.2f}  {picked:8s}  {best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
