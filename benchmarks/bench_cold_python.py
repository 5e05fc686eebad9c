"""What a small operation costs right after a training step has streamed its weights through
the cache ("cold"), against the same call repeated at once ("warm"), for chainrule and NumPy.

    python benchmarks/bench_cold_python.py            # --flush-mb 16

Before each cold call the script streams ``--flush-mb`` MiB through the cache (a copy between
two arrays: what the MLP's update and weight products do to the caches every step); the warm
call follows immediately. Printed are the medians over ``--rounds`` rounds. The calls take
microseconds when warm; cold, the Python objects and code they touch (the engine's: rules,
nodes, the reversed walk) come from memory again, so an operation that is several Python calls
deep costs several times its warm time. That, not any one function, is where the difference
between chainrule's step and the same step in plain NumPy goes (bench_engine_cost.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flush-mb", type=float, default=16.0, help="MiB streamed before (16)")
    p.add_argument("--rounds", type=int, default=300, help="cold/warm pairs per call (300)")
    args = p.parse_args(argv)
    if args.flush_mb <= 0 or args.rounds < 1:
        p.error("--flush-mb must be > 0 and --rounds >= 1")
    import chainrule as cr
    from chainrule import models

    rng = np.random.default_rng(0)
    layers = models.mlp(hidden=800).layers
    x = rng.random((128, 1, 28, 28), dtype=np.float32)
    logits = rng.standard_normal((128, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 128)
    n = max(1, int(args.flush_mb * 2**20 / 4))
    source, target = np.ones(n, np.float32), np.empty(n, np.float32)
    calls = {
        "chainrule Flatten(x)": lambda: layers[0](x),
        "NumPy x.reshape(128, -1)": lambda: x.reshape(128, -1),
        "chainrule softmax_cross_entropy": lambda: cr.softmax_cross_entropy(logits, labels),
        "NumPy max, exp, sum, log, mean": lambda: _plain_cross_entropy(logits, labels),
    }
    print(
        f"each call after streaming {args.flush_mb:g} MiB (cold) and once more (warm), "
        f"medians of {args.rounds}:"
    )
    for name, call in calls.items():
        cold, warm = [], []
        for _ in range(args.rounds):
            np.copyto(target, source)
            t0 = time.perf_counter()
            call()
            t1 = time.perf_counter()
            call()
            t2 = time.perf_counter()
            cold.append(t1 - t0)
            warm.append(t2 - t1)
        c, w = statistics.median(cold) * 1e6, statistics.median(warm) * 1e6
        print(f"  {name:34s} cold {c:7.1f} us   warm {w:6.1f} us   {c / w:4.1f}x")
    return 0


def _plain_cross_entropy(z: np.ndarray, y: np.ndarray) -> float:
    z = z - z.max(axis=1, keepdims=True)
    total = np.exp(z).sum(axis=1)
    return float(-np.mean(z[np.arange(len(y)), y] - np.log(total)))


if __name__ == "__main__":
    raise SystemExit(main())
