"""Training-step throughput of two chainrule source trees, side by side (before/after a change).

    python benchmarks/bench_versions.py OLD_SRC NEW_SRC [--model mlp|cnn|tiny] [--threads 2]

The step is ``chainrule train``'s where the tree has it (BatchThreads with the optimizer; the
CNN's batch split over the threads as ``--parallel auto`` splits it).

Each tree runs in its own long-lived worker process (PYTHONPATH=TREE), the same seeded model,
data and SGD with momentum; the first losses are compared. The workers take turns running a
block of steps after a short settle pause; a block during which other processes used more
than ``--noise`` of the CPUs (from /proc/stat minus the worker's own CPU time) is discarded.
Prints the median NEW/OLD throughput ratio over clean pairs, its spread and the count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKER = r"""
import json, os, sys, time
import numpy as np
import chainrule as cr
from chainrule import models, optim
from chainrule.backend import tune_allocator
tune_allocator()
which, batch = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
if which == "tiny":  # bench_speed.py's per-operation workload: 2-16-16-1, batch 1, MSE
    from chainrule import nn
    m = nn.Sequential(nn.Linear(2, 16, rng=1), nn.ReLU(), nn.Linear(16, 16, rng=2), nn.ReLU(),
                      nn.Linear(16, 1, rng=3))
    x = cr.tensor(rng.standard_normal((1, 2)).astype(np.float32))
    t = cr.tensor(rng.standard_normal((1, 1)).astype(np.float32))
    error = lambda out: cr.mse(out, t)
    momentum = 0.0
else:
    m = getattr(models, which)(rng=1)
    x = cr.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = rng.integers(0, 10, batch)
    error = lambda out: cr.softmax_cross_entropy(out, y)
    momentum = 0.9
opt = optim.SGD(m.parameters(), lr=0.01, momentum=momentum)
fused = hasattr(opt, "backward_step")  # a tree that has it: chainrule train's step
try:  # a tree whose BatchThreads takes the optimizer: exactly chainrule train's step
    import inspect
    from chainrule.train.threads import BatchThreads
    whole = which != "tiny" and "optimizer" in inspect.signature(BatchThreads).parameters
except ImportError:
    whole = False
if whole:
    try:  # as `chainrule train --threads T` splits: the CNN's batch over the T threads
        from chainrule.train.threads import default_batch_threads
        shards = default_batch_threads(which, int(os.environ["OPENBLAS_NUM_THREADS"]))
    except ImportError:
        shards = 1
    split = BatchThreads(m, opt.params, shards, opt)
    def step():
        opt.zero_grad()
        return split(x.data, y)[0] / batch
else:
    def step():
        opt.zero_grad()
        loss = error(m(x))
        if fused:
            opt.backward_step(loss)
        else:
            loss.backward()
            opt.step()
        return float(loss)
first = step()
for _ in range(3): step()
print(json.dumps({"first_loss": first}), flush=True)
for line in sys.stdin:
    n = int(line)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n): step()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)
"""


def cpu_ticks() -> tuple[float, float]:
    """(busy, total) seconds of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [float(v) for v in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / hz, sum(parts) / hz


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--model", default="mlp", choices=["mlp", "cnn", "tiny"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20, help="steps per block (default 20)")
    ap.add_argument("--pairs", type=int, default=15, help="block pairs per series (default 15)")
    ap.add_argument("--series", type=int, default=3, help="fresh worker pairs (default 3)")
    ap.add_argument(
        "--noise",
        type=float,
        default=0.05,
        help="largest share of the CPUs others may use in a clean block (0.05)",
    )
    ap.add_argument("--settle", type=float, default=0.2, help="pause before a block, s (0.2)")
    a = ap.parse_args()
    ncpu = os.cpu_count() or 1
    ratios, noisy = [], 0
    for _ in range(a.series):
        workers = {}
        for tag, src in (("old", a.old), ("new", a.new)):
            env = dict(
                os.environ,
                PYTHONPATH=src,
                OMP_NUM_THREADS=str(a.threads),
                OPENBLAS_NUM_THREADS=str(a.threads),
            )
            p = subprocess.Popen(
                [sys.executable, "-c", WORKER, a.model, str(a.batch)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            workers[tag] = (p, json.loads(p.stdout.readline())["first_loss"])
        if abs(workers["old"][1] - workers["new"][1]) > 1e-6:
            print(f"first losses differ: {workers['old'][1]} vs {workers['new'][1]}")
            return 1
        for k in range(a.pairs):
            times, clean = {}, True
            for tag in ("old", "new") if k % 2 == 0 else ("new", "old"):
                p = workers[tag][0]
                time.sleep(a.settle)
                b0, t0 = cpu_ticks()
                p.stdin.write(f"{a.steps}\n")
                p.stdin.flush()
                r = json.loads(p.stdout.readline())
                b1, t1 = cpu_ticks()
                others = (b1 - b0) - r["cpu"]
                if others > a.noise * ncpu * r["wall"]:
                    clean = False
                times[tag] = r["wall"]
            if clean:
                ratios.append(times["old"] / times["new"])
            else:
                noisy += 1
        for p, _ in workers.values():
            p.stdin.close()
            p.wait()
    if not ratios:
        print(f"{a.model}: no clean pair ({noisy} noisy): the machine is busy")
        return 1
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(
        f"{a.model} batch {a.batch}, {a.threads} threads: new/old throughput "
        f"{statistics.median(ratios):.3f}x (quartiles {q[0]:.3f}-{q[2]:.3f}), "
        f"{len(ratios)} clean pairs, {noisy} noisy"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
