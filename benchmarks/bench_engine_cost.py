"""What chainrule's engine costs in a training step: its MLP steps against the same step in NumPy.

    python benchmarks/bench_engine_cost.py                  # 784-800-10, batch 128, 1 and 2 threads
    python benchmarks/bench_engine_cost.py --hidden 8 --batch 2    # almost only the overhead

Three steps of the same MLP from the same weights (forward, softmax cross-entropy, the accuracy
count, back propagation with SGD's momentum folded in, lr 0.01, momentum 0.9):

* the compiled step, `chainrule train`'s in one process (BatchThreads with the optimizer:
  ``chainrule.train.compiled.CompiledStep``, the engine's kernel calls without the graph);
* the engine's step (``BatchThreads(..., compiled=False)``: the graph, the rules, the walk);
* the plain step, ``_speed_worker.build_numpy``'s: the same operations on the same kernels
  written out in NumPy (``bench_speed.py --floor`` times it against PyTorch).

They run in one process per thread count (NumPy is all they share), taking turns in blocks of
``--block`` steps over the same MNIST test batches, after a warm-up; printed are the medians
per step and each chainrule step's time over the plain one's. Blocks, as training runs its
steps: each step follows one of its own kind, whose code and data are still in the caches.
Step by step (``--block 1``, this tool's way before the seventh session) every step starts
from another's caches, which hides part of the difference (seventh session, two runs each:
160 and 155 µs step by step against 204 and 207 µs in blocks of 20 at 1 thread; 277 and 341
µs against 453 and 564 µs at 2 threads). A block of steps during which other processes used
the CPU is not detected here: run it on a quiet machine, and more than once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
import numpy as np
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import _speed_worker as worker
import bench_speed
from chainrule import models, optim
from chainrule.backend import tune_allocator
from chainrule.train.threads import BatchThreads

hidden, batch, steps, block = (int(a) for a in sys.argv[3:7])
tune_allocator()  # as chainrule train does; the plain step shares the process
rng = np.random.default_rng(0)
layers = [("1", (hidden, 784)), ("3", (10, hidden))]
weights = bench_speed.initial_weights(layers, rng)
images = bench_speed.mnist_test_images()
if images is None:
    xs = rng.random((16, batch, 1, 28, 28), dtype=np.float32)
    ys = rng.integers(0, 10, (16, batch))
else:
    idx = rng.choice(len(images[1]), (16, batch), replace=False)
    xs, ys = images[0][idx], images[1][idx]
model = models.mlp(hidden=hidden)
model.load_state_dict({k: v.copy() for k, v in weights.items()})
opt = optim.SGD(model.parameters(), lr=worker.LR, momentum=0.9)
split = BatchThreads(model, opt.params, 1, opt)  # the compiled step (train/compiled.py)
assert split._compiled is not None
model_e = models.mlp(hidden=hidden)
model_e.load_state_dict({k: v.copy() for k, v in weights.items()})
opt_e = optim.SGD(model_e.parameters(), lr=worker.LR, momentum=0.9)
split_e = BatchThreads(model_e, opt_e.params, 1, opt_e, compiled=False)  # the graph's step
plain, _, _ = worker.build_numpy("mlp", {k: v.copy() for k, v in weights.items()}, 1)

def chainrule_step(k):
    opt.zero_grad()
    return split(xs[k % 16], ys[k % 16])[0] / batch

def engine_step(k):
    opt_e.zero_grad()
    return split_e(xs[k % 16], ys[k % 16])[0] / batch

def plain_step(k):
    return float(plain(xs[k % 16], ys[k % 16]))

kinds = [("chainrule", chainrule_step), ("engine", engine_step), ("numpy", plain_step)]
first = [[f(k) for _, f in kinds] for k in range(3)]
for k in range(3, 40):
    for _, f in kinds:
        f(k)
times = {name: [] for name, _ in kinds}
for b, start in enumerate(range(40, 40 + steps, block)):
    for name, f in kinds[b % 3:] + kinds[:b % 3]:  # each one first, in turn
        for k in range(start, min(start + block, 40 + steps)):
            t = time.perf_counter()
            f(k)
            times[name].append(time.perf_counter() - t)
print(json.dumps({"first": first, "times": times}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=800, help="hidden width (default 800)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="default: 1 2")
    p.add_argument("--steps", type=int, default=400, help="steps of each, alternating (400)")
    p.add_argument(
        "--block",
        type=int,
        default=20,
        help="steps of one in a row before the other's (20: as training runs them; 1: step by "
        "step, where each step starts from the other's cache contents)",
    )
    args = p.parse_args(argv)
    if min(args.hidden, args.batch, args.steps, args.block, *args.threads) < 1:
        p.error("--hidden, --batch, --steps, --block and --threads must be >= 1")
    print(
        f"MLP 784-{args.hidden}-10, batch {args.batch}: chainrule's step and the same step in "
        f"plain NumPy, alternating in blocks of {args.block}, {args.steps} each; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    for threads in args.threads:
        env = dict(os.environ)
        env.update({v: str(threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")})
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(HERE), str(HERE.parent / "src")]
            + [str(args.hidden), str(args.batch), str(args.steps), str(args.block)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        gap = max(max(losses) - min(losses) for losses in result["first"])
        med = {n: statistics.median(t) * 1e6 for n, t in result["times"].items()}
        plain = med["numpy"]
        print(
            f"  {threads} thread(s): plain NumPy {plain:9.1f} us per step; "
            f"first losses agree within {gap:.1e}"
        )
        for name, label in (("engine", "the engine's step"), ("chainrule", "compiled step")):
            extra = med[name] - plain
            print(
                f"    {label:18s} {med[name]:9.1f} us: {extra:8.1f} us more "
                f"({extra / med[name]:.0%})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
