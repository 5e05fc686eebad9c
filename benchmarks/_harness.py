"""What every benchmark here shares: thread counts, and interleaved timing with a settle pause.

Threads: both libraries get the same number of threads - PyTorch through
``torch.set_num_threads``, NumPy's BLAS through OPENBLAS_NUM_THREADS / MKL_NUM_THREADS, which
must be in the environment before NumPy is imported (:func:`configure_threads` does that,
unless the environment already sets them).

Settle: idle thread pools (OpenBLAS's, PyTorch's OpenMP) keep spinning for a while after a
call and steal the cores from whichever library runs next in the same process, so each timed
block starts after a pause in which the other library's threads go to sleep, then one untimed
call that wakes this library's own: each runs at the speed it has on its own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

DEFAULT_SETTLE_S = 0.15


def configure_threads(argv: list[str], default: int = 2) -> int:
    """Read ``--threads`` from ``argv`` and put the BLAS thread counts in the environment."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=default)
    known, _ = pre.parse_known_args(argv[1:])
    threads = max(1, known.threads)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    return threads


def settle(wake: Callable[[], object], settle_s: float) -> None:
    """Let the other library's idle threads go to sleep, then wake this one's (untimed)."""
    if settle_s:
        time.sleep(settle_s)
        wake()


def interleaved(
    blocks: dict[str, Callable[[], object]],
    reps: int,
    settle_s: float = DEFAULT_SETTLE_S,
    wake: dict[str, Callable[[], object]] | None = None,
    per_block: dict[str, int] | None = None,
) -> dict[str, float]:
    """Median seconds of each block (divided by ``per_block[name]``), the blocks in turns.

    Repetition ``rep`` starts with implementation ``rep % len(blocks)`` and goes round, so
    that drifts of a shared machine hit all of them alike. ``wake[name]`` (default: the block
    itself) is the untimed call after the settle pause.
    """
    names = list(blocks)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        k = rep % len(names)
        for n in names[k:] + names[:k]:
            settle((wake or {}).get(n, blocks[n]), settle_s)
            t0 = time.perf_counter()
            blocks[n]()
            times[n].append((time.perf_counter() - t0) / (per_block or {}).get(n, 1))
    return {n: statistics.median(v) for n, v in times.items()}
