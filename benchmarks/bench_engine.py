"""chainrule against PyTorch (and micrograd, and hand-written NumPy) on the same work.

Every workload runs in this one process, the implementations interleaved: each repetition
times one block of steps of every implementation, in an order that rotates from repetition to
repetition, so that drifts of a shared, noisy machine hit all of them alike. The table shows
median times per step and their ratio to PyTorch's (ratios hold, absolute times drift).

    python benchmarks/bench_engine.py            # the full run (about a minute)
    python benchmarks/bench_engine.py --quick    # a smoke run (a few seconds)

Workloads (one training step = forward, loss, backward, SGD update):

    mlp-tiny   2-16-16-1 MLP, ReLU, MSE, batch 1, float32     (per-operation overhead)
    mlp-mnist  784-800-10 MLP, ReLU, softmax cross-entropy, batch 128, float32
    conv1      1->6 5x5 conv (padding 2) + 2x2 max pool on N x 1 x 28 x 28 images: forward and
               backward to the weights and bias (the images need no gradient)
    conv2      6->16 5x5 conv + 2x2 max pool on N x 6 x 14 x 14 features: forward and backward
               to weights, bias and input (a hidden layer passes de/dx on)
    convs      both, as in LeNet: conv1-ReLU-pool-conv2-ReLU-pool on 64 images, + backward

Fairness: both libraries get ``--threads`` threads (default 2): PyTorch through
``torch.set_num_threads``, NumPy's BLAS through OPENBLAS_NUM_THREADS / MKL_NUM_THREADS (set
before NumPy is imported, unless the environment sets them). Idle thread pools (OpenBLAS's,
PyTorch's OpenMP) keep spinning for a while after a call and would steal the cores from the
next library's block, so every timed block starts after a ``--settle`` pause in which the
other library's threads go to sleep: each runs at the speed it has on its own.

Memory: ``chainrule.backend.tune_allocator()`` is called first (``--no-tune-allocator`` to
skip it): glibc then keeps freed blocks instead of returning them to the OS, which spares the
NumPy side page faults on every fresh temporary. It is process-wide, so PyTorch runs under it
too. ``chainrule train`` users get it by calling the same function.

On a machine shared with other work, timings swing widely: the header prints the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402
from _harness import configure_threads  # noqa: E402

configure_threads(sys.argv)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import chainrule as cr  # noqa: E402
from chainrule import nn  # noqa: E402
from chainrule.backend import tune_allocator  # noqa: E402
from chainrule.optim import SGD  # noqa: E402

# ----------------------------------------------------------------------------- workloads
# each builder returns {implementation name: step function}; a step is one training step


def mlp_tiny(torch, micrograd) -> dict[str, Callable[[], None]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2)).astype(np.float32)
    y = rng.standard_normal((1, 1)).astype(np.float32)
    lr = 0.01

    model = nn.Sequential(
        nn.Linear(2, 16, rng=0),
        nn.ReLU(),
        nn.Linear(16, 16, rng=1),
        nn.ReLU(),
        nn.Linear(16, 1, rng=2),
    )
    opt = SGD(model.parameters(), lr=lr)
    xc, yc = cr.tensor(x), cr.tensor(y)

    def chainrule_step() -> None:
        opt.zero_grad()
        cr.mse(model(xc), yc).backward()
        opt.step()

    steps = {"chainrule": chainrule_step}
    if torch is not None:
        tm = torch.nn.Sequential(
            torch.nn.Linear(2, 16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, 16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, 1),
        )
        topt = torch.optim.SGD(tm.parameters(), lr=lr)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step() -> None:
            topt.zero_grad()
            torch.nn.functional.mse_loss(tm(xt), yt).backward()
            topt.step()

        steps["pytorch"] = torch_step
    if micrograd is not None:
        import random

        random.seed(0)
        mm = micrograd.nn.MLP(2, [16, 16, 1])
        xm, ym = [float(v) for v in x[0]], float(y[0, 0])

        def micrograd_step() -> None:
            mm.zero_grad()
            d = mm(xm) - ym
            (d * d).backward()
            for p in mm.parameters():
                p.data -= lr * p.grad

        steps["micrograd"] = micrograd_step
    return steps


def mlp_mnist(torch, micrograd, batch: int = 128) -> dict[str, Callable[[], None]]:
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    lr = 0.01

    model = nn.Sequential(nn.Linear(784, 800, rng=0), nn.ReLU(), nn.Linear(800, 10, rng=1))
    opt = SGD(model.parameters(), lr=lr)
    xc = cr.tensor(x)

    def chainrule_step() -> None:
        opt.zero_grad()
        cr.softmax_cross_entropy(model(xc), labels).backward()
        opt.step()

    # the same step written out by hand: what autodiff has to match
    w1, b1 = model[0].weight.data.copy(), model[0].bias.data.copy()
    w2, b2 = model[2].weight.data.copy(), model[2].bias.data.copy()
    params = (w1, b1, w2, b2)
    rows = np.arange(batch)

    def numpy_step() -> None:
        h = x @ w1.T
        h += b1
        a = np.maximum(h, 0)
        z = a @ w2.T
        z += b2
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        p[rows, labels] -= 1  # de/dz = (p - onehot) / N
        p /= batch
        dw2, db2 = p.T @ a, p.sum(axis=0)
        da = p @ w2
        da *= h > 0
        dw1, db1 = da.T @ x, da.sum(axis=0)
        for param, g in zip(params, (dw1, db1, dw2, db2), strict=True):
            param -= lr * g

    steps = {"chainrule": chainrule_step, "numpy": numpy_step}
    if torch is not None:
        tm = torch.nn.Sequential(
            torch.nn.Linear(784, 800), torch.nn.ReLU(), torch.nn.Linear(800, 10)
        )
        topt = torch.optim.SGD(tm.parameters(), lr=lr)
        xt, lt = torch.from_numpy(x), torch.from_numpy(labels)

        def torch_step() -> None:
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tm(xt), lt).backward()
            topt.step()

        steps["pytorch"] = torch_step
    return steps


def conv_pool(
    torch, micrograd, batch: int, c: int, size: int, o: int, padding: int, input_grad: bool
) -> dict[str, Callable[[], None]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((o, c, 5, 5)) * 0.2).astype(np.float32)
    b = np.zeros(o, np.float32)
    xc = cr.tensor(x, requires_grad=input_grad)
    wc, bc = cr.tensor(w, requires_grad=True), cr.tensor(b, requires_grad=True)

    def chainrule_step() -> None:
        xc.grad = wc.grad = bc.grad = None
        y = cr.max_pool2d(cr.conv2d(xc, wc, bc, padding=padding), 2)
        y.sum().backward()

    steps = {"chainrule": chainrule_step}
    if torch is not None:
        F = torch.nn.functional
        xt = torch.from_numpy(x).requires_grad_(input_grad)
        wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()

        def torch_step() -> None:
            xt.grad = wt.grad = bt.grad = None
            F.max_pool2d(F.conv2d(xt, wt, bt, padding=padding), 2).sum().backward()

        steps["pytorch"] = torch_step
    return steps


def conv_stack(torch, micrograd, batch: int = 64) -> dict[str, Callable[[], None]]:
    """LeNet's feature extractor on an MNIST batch: conv-ReLU-pool twice, then a sum."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    shapes = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,)]
    arrays = [(rng.standard_normal(s) * 0.2).astype(np.float32) for s in shapes]
    ps = [cr.tensor(a, requires_grad=True) for a in arrays]
    xc = cr.tensor(x)

    def chainrule_step() -> None:
        for p in ps:
            p.grad = None
        h = cr.max_pool2d(cr.relu(cr.conv2d(xc, ps[0], ps[1], padding=2)), 2)
        h = cr.max_pool2d(cr.relu(cr.conv2d(h, ps[2], ps[3])), 2)
        h.sum().backward()

    steps = {"chainrule": chainrule_step}
    if torch is not None:
        F = torch.nn.functional
        xt = torch.from_numpy(x)
        pt = [torch.from_numpy(a).requires_grad_() for a in arrays]

        def torch_step() -> None:
            for p in pt:
                p.grad = None
            h = F.max_pool2d(F.relu(F.conv2d(xt, pt[0], pt[1], padding=2)), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, pt[2], pt[3])), 2)
            h.sum().backward()

        steps["pytorch"] = torch_step
    return steps


WORKLOADS: dict[str, tuple[str, Callable[..., dict[str, Callable[[], None]]], dict]] = {
    "mlp-tiny": ("2-16-16-1 MLP step, batch 1", mlp_tiny, {}),
    "mlp-mnist": ("784-800-10 MLP step, batch 128, float32", mlp_mnist, {}),
    "conv1": (
        "conv 1->6 5x5 pad 2 + maxpool 2, 28x28, N=64 (no de/dx)",
        conv_pool,
        dict(batch=64, c=1, size=28, o=6, padding=2, input_grad=False),
    ),
    "conv2": (
        "conv 6->16 5x5 + maxpool 2, 14x14, N=64 (with de/dx)",
        conv_pool,
        dict(batch=64, c=6, size=14, o=16, padding=0, input_grad=True),
    ),
    "convs": ("LeNet's conv-ReLU-pool x2 on 64 MNIST images, forward + backward", conv_stack, {}),
}

# ----------------------------------------------------------------------------- timing


def _block_size(step: Callable[[], None], target_s: float) -> int:
    """How many steps make one timed block of about ``target_s`` seconds."""
    t0 = time.perf_counter()
    step()
    one = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(10_000, int(target_s / one)))


def interleaved(
    steps: dict[str, Callable[[], None]], reps: int, block_s: float, settle_s: float = 0.0
) -> dict[str, float]:
    """Median seconds per step of each implementation, the implementations timed in turns."""
    for f in steps.values():  # warm up: caches, allocator, thread pools
        for _ in range(3):
            f()
    inner = {n: _block_size(f, block_s) for n, f in steps.items()}

    def block(f: Callable[[], None], m: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(m):
                f()

        return run

    blocks = {n: block(f, inner[n]) for n, f in steps.items()}
    return harness.interleaved(blocks, reps, settle_s, wake=steps, per_block=inner)


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    return f"{seconds * 1e3:8.2f} ms"


TARGETS = {"mlp-tiny": 0.7, "mlp-mnist": 0.85, "conv1": 1.5, "conv2": 1.5, "convs": 1.5}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few, short repetitions: a smoke run")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per implementation")
    p.add_argument(
        "--threads", type=int, default=2, help="threads of PyTorch and of NumPy's BLAS (default 2)"
    )  # read before NumPy is imported, by _harness.configure_threads
    p.add_argument(
        "--settle",
        type=float,
        default=None,
        help="pause in seconds before each timed block (default 0.15; --quick: 0.05)",
    )
    p.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="leave glibc's allocator as it is (see chainrule.backend.tune_allocator)",
    )
    p.add_argument("--only", nargs="*", choices=list(WORKLOADS), help="run only these workloads")
    args = p.parse_args(argv)
    reps = args.reps or (3 if args.quick else 25)
    block_s = 0.01 if args.quick else 0.05
    settle_s = args.settle if args.settle is not None else (0.05 if args.quick else 0.15)
    tuned = False if args.no_tune_allocator else tune_allocator()

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch not installed: chainrule's times only")
    try:
        import micrograd
        import micrograd.nn  # noqa: F401
    except ImportError:
        micrograd = None

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"numpy {np.__version__}, torch {torch.__version__ if torch else '-'}, micrograd "
        f"{'yes' if micrograd else 'not installed'}; {args.threads} thread(s) each; {reps} "
        f"interleaved repetitions, {settle_s:g} s settle; allocator tuned: {tuned}; "
        f"{os.cpu_count()} cores, load average {load:.2f}"
    )
    header = f"{'workload':<10} {'implementation':<11} {'time/step':>11} {'vs PyTorch':>10}  target"
    print(header)
    print("-" * len(header))
    missed = []
    for key, (title, build, kw) in WORKLOADS.items():
        if args.only and key not in args.only:
            continue
        steps = build(torch, micrograd, **kw)
        med = interleaved(steps, reps, block_s, settle_s)
        base = med.get("pytorch")
        print(f"{key:<10} {title}")
        for name, t in med.items():
            ratio = f"{t / base:9.2f}x" if base else f"{'-':>10}"
            target = ""
            if name == "chainrule" and base:
                ok = t / base <= TARGETS[key]
                target = f"<= {TARGETS[key]}x {'met' if ok else 'MISSED'}"
                if not ok:
                    missed.append(key)
            if name == "chainrule" and "numpy" in med:
                target += f"; autodiff overhead vs hand-written NumPy {t / med['numpy'] - 1:+.0%}"
            print(f"{'':<10} {name:<11} {_fmt(t):>11} {ratio:>10}  {target}")
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
