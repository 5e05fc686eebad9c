"""conv2d's two ways to multiply, timed against each other (and against PyTorch) per shape.

    python benchmarks/bench_conv_paths.py            # LeNet's and a few other layers
    python benchmarks/bench_conv_paths.py --reps 15

``chainrule.conv2d`` multiplies W im2col(x) either row by row (one product per output row,
straight from unfold's buffer of column windows) or in one product over the whole batch's
im2col matrix (copied out first); it picks row by row when the kernel has at most
``backend.numpy_kernels.SMALL_KERNEL`` numbers. This script forces each path in turn (as tests/test_backend.py
does) and times one forward + backward of each (to W, b, and x where a hidden layer needs
it), interleaved with PyTorch's ``conv2d`` on the same numbers, so that the threshold can be
checked on a new machine: ``picked`` is the path the threshold chooses, ``best`` the faster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402

THREADS = harness.configure_threads(sys.argv)  # before NumPy loads its BLAS

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import chainrule as cr  # noqa: E402
from chainrule.backend import numpy_kernels  # noqa: E402
from chainrule.backend import tune_allocator  # noqa: E402

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


def blocks_for(x, w, b, padding, dx, steps, torch):
    """Timed blocks of ``steps`` steps: each chainrule path, and PyTorch when present."""

    def ours(per_row):
        return lambda: [step(x, w, b, padding, dx, per_row) for _ in range(steps)]

    blocks = {"per row": ours(True), "one": ours(False)}
    if torch is not None:
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))

        def theirs():
            for _ in range(steps):
                xx = xt.clone().requires_grad_(dx)
                ww, bb = wt.clone().requires_grad_(), bt.clone().requires_grad_()
                y = torch.nn.functional.conv2d(xx, ww, bb, padding=padding)
                y.backward(torch.ones_like(y))

        blocks["torch"] = theirs
    return blocks


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=9, help="timed repetitions per path")
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--threads", type=int, default=2, help="BLAS and PyTorch threads")
    p.add_argument("--settle", type=float, default=harness.DEFAULT_SETTLE_S)
    args = p.parse_args()
    tune_allocator()
    try:
        import torch
    except ImportError:
        torch = None
    else:
        torch.set_num_threads(THREADS)
    small = numpy_kernels.SMALL_KERNEL
    rng = np.random.default_rng(0)
    print(f"conv2d forward + backward, ms per step; {THREADS} thread(s); median of {args.reps}")
    head = f"{'layer':31s} {'N x C x H, O x F':18s} {'per row':>8s} {'one':>8s} {'torch':>8s}"
    print(head + "  picked    best")
    for n, c, h, o, f, pad, dx, what in SHAPES:
        x = rng.random((n, c, h, h), dtype=np.float32)
        w = (rng.standard_normal((o, c, f, f)) / f).astype(np.float32)
        b = np.zeros(o, dtype=np.float32)
        blocks = blocks_for(x, w, b, pad, dx, args.steps, torch)
        med = harness.interleaved(blocks, args.reps, args.settle)
        numpy_kernels.SMALL_KERNEL = small
        picked = "per row" if o * c * f * f <= small else "one"
        best = min(("per row", "one"), key=lambda k: med[k])
        ms = {k: v / args.steps * 1e3 for k, v in med.items()}
        tms = f"{ms['torch']:8.2f}" if "torch" in ms else f"{'-':>8s}"
        shape = f"{n}x{c}x{h}, {o}x{f}x{f}"
        print(
            f"{what:31s} {shape:18s} {ms['per row']:8.2f} {ms['one']:8.2f} {tms}  "
            f"{picked:8s}  {best}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
