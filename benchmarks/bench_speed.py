"""Training speed of chainrule against PyTorch (CPU), measured fairly: one process per framework.

    python benchmarks/bench_speed.py                       # all workloads, 1 and 2 threads
    python benchmarks/bench_speed.py --workloads mlp --threads 2 --series 5
    python benchmarks/bench_speed.py --quick               # a smoke run (numbers meaningless)

Workloads (one step = forward, loss, backward, SGD update, float32):

    mlp     MLP 784-800-10 (ReLU, softmax cross-entropy), batch 128, lr 0.01, momentum 0.9
    lenet   LeNet-5 (conv-ReLU-pool x2, 120-84-10), batch 128, lr 0.01, momentum 0.9
    tiny    MLP 2-16-16-1 (ReLU, mean squared error), batch 1, lr 0.01: per-operation overhead

How it measures (this process imports neither chainrule nor PyTorch):

* Same work. This process draws the initial weights (PyTorch's default U(+-1/sqrt(fan_in)))
  with NumPy and takes the mini-batches from MNIST's test images (random images when the
  files are missing), and writes both as .npy/.npz files that every worker loads. Each worker
  reports the losses of its first steps from those weights; they must agree within
  ``--loss-tol`` (default 1e-6), or the script stops (exit status 1) without timing.
* One process per framework. Workers (``_speed_worker.py``) import NumPy and one framework
  only, and live through a whole series. They take turns: each runs a block of steps (about
  ``--block`` seconds, the same number of steps for all) after a ``--settle`` pause, in which
  the previous worker's idle thread pool goes to sleep, and one untimed step; each round
  runs the workers in another order (a shuffle seeded by workload, threads, series and
  round), so that no worker always follows the same one (a fixed rotation of N workers made
  each always follow the same predecessor: the products-only worker before chainrule's, a
  PyTorch worker before the plain-NumPy one).
* Quiet check. During each block the worker reads the machine's busy CPU time (/proc/stat)
  and its own (/proc/self/stat); the rest is other processes'. A block is noisy when they used
  more than ``--quiet`` cores on average (default 0.05); a pair (chainrule's block and a
  peer's in the same round) counts only when both blocks are quiet. Noisy pairs are discarded
  and counted.
* Peers: PyTorch as installed (``torch``), and PyTorch with the glibc allocator setting that
  ``chainrule.backend.tune_allocator()`` applies inside chainrule's worker, given here through
  MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ (``torch+alloc``).
* Threads: each thread count gets its own workers (OPENBLAS/MKL/OMP_NUM_THREADS and
  ``torch.set_num_threads``). ``--series`` repeats everything with fresh processes.

Printed per workload, thread count and peer: the median over clean pairs of the speed ratio
(peer's time per step / chainrule's: above 1 chainrule is faster), its interquartile range, the
range of the per-series medians, and the clean pairs out of all. On a machine that other jobs
use most blocks are noisy: the figures mean something only with enough clean pairs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_speed_worker.py"
REPO = HERE.parent
N_BATCHES = 16  # distinct mini-batches, taken in turn

# chainrule.backend.tune_allocator(): mmap threshold 32 MiB, trim threshold keep_mb = 512 MiB
ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(512 * 1024 * 1024),
}
PEERS = {"torch": {}, "torch+alloc": ALLOCATOR_ENV}
#: --floor: workers that bound the MLP's ratio (_speed_worker.py), with their table labels
FLOORS = {"numpy": "  in plain NumPy", "products": "  products alone"}
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")

# name -> (what one step is, batch, [(parameter prefix, weight shape)])
WORKLOADS = {
    "mlp": (
        "MLP 784-800-10, batch 128",
        128,
        [("1", (800, 784)), ("3", (10, 800))],
    ),
    "lenet": (
        "LeNet-5, batch 128",
        128,
        [
            ("0", (6, 1, 5, 5)),
            ("3", (16, 6, 5, 5)),
            ("7", (120, 400)),
            ("9", (84, 120)),
            ("11", (10, 84)),
        ],
    ),
    "tiny": ("MLP 2-16-16-1, batch 1", 1, [("0", (16, 2)), ("2", (16, 16)), ("4", (1, 16))]),
}


# ------------------------------------------------------------------------------ the same work


def mnist_test_images() -> tuple[np.ndarray, np.ndarray] | None:
    """MNIST's 10,000 test images (N, 1, 28, 28) float32 in [0, 1] and labels, or None."""
    folder = Path(os.environ.get("CHAINRULE_MNIST_DIR") or REPO.parent / "shared/data/mnist")
    arrays = []
    for name, offset in (("t10k-images-idx3-ubyte", 16), ("t10k-labels-idx1-ubyte", 8)):
        for path in (folder / name, folder / (name + ".gz")):
            if path.is_file():
                raw = path.read_bytes()
                raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
                arrays.append(np.frombuffer(raw, np.uint8, offset=offset))
                break
        else:
            return None
    images, labels = arrays
    return (images.reshape(-1, 1, 28, 28) / np.float32(255)), labels.astype(np.int64)


def initial_weights(layers: list, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """PyTorch's default initialisation, U(+-1/sqrt(fan_in)) for weights and biases, in float32,
    for [(parameter prefix, weight shape)] (a WORKLOADS entry's layers)."""
    weights = {}
    for prefix, shape in layers:
        bound = 1 / np.sqrt(np.prod(shape[1:]))  # fan_in
        weights[f"{prefix}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        weights[f"{prefix}.bias"] = rng.uniform(-bound, bound, shape[0]).astype(np.float32)
    return weights


def write_inputs(folder: Path, seed: int = 0) -> str:
    """Write every workload's weights and mini-batches into ``folder``; name the data used."""
    rng = np.random.default_rng(seed)
    mnist = mnist_test_images()
    for name, (_, batch, layers) in WORKLOADS.items():
        np.savez(folder / f"{name}-weights.npz", **initial_weights(layers, rng))
        if name == "tiny":
            x = rng.standard_normal((N_BATCHES, 1, 2)).astype(np.float32)
            y = rng.standard_normal((N_BATCHES, 1, 1)).astype(np.float32)
        elif mnist is not None:
            idx = rng.choice(len(mnist[1]), (N_BATCHES, batch), replace=False)
            x, y = mnist[0][idx], mnist[1][idx]
        else:
            x = rng.random((N_BATCHES, batch, 1, 28, 28), dtype=np.float32)
            y = rng.integers(0, 10, (N_BATCHES, batch))
        np.save(folder / f"{name}-x.npy", np.ascontiguousarray(x))
        np.save(folder / f"{name}-y.npy", np.ascontiguousarray(y))
    return "MNIST test images" if mnist is not None else "random images (MNIST not found)"


# ------------------------------------------------------------------------------ the workers


class Worker:
    """A worker process: started, warmed up and ready when the constructor returns."""

    def __init__(self, framework: str, workload: str, threads: int, folder: Path, env: dict):
        full_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
        full_env.update({var: str(threads) for var in THREAD_ENV}, **env)
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), framework, workload, str(threads), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self.ready = self._answer()
        own = self.ready["modules"]
        if own != ([] if framework in FLOORS else [framework]):
            raise RuntimeError(f"the {framework} worker imported {own}, not only {framework}")

    def _answer(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.proc.args[2:4]} died (exit {self.proc.wait()})")
        return json.loads(line)

    def block(self, steps: int, settle: float) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"steps": steps, "settle": settle}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"quit": true}\n')
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def run_series(
    workload: str, threads: int, peers: list[str], folder: Path, args, series: int = 0
) -> dict:
    """One series: fresh workers for chainrule and each peer, ``args.rounds`` rounds of blocks,
    each round in its own order (shuffled reproducibly from the series' number)."""
    names = ["chainrule", *peers, *(FLOORS if args.floor and workload == "mlp" else [])]
    workers: dict[str, Worker] = {}
    try:
        for name in names:  # one after another: start-up and warm-up compete with nothing
            framework = "torch" if name in PEERS else name
            workers[name] = Worker(framework, workload, threads, folder, PEERS.get(name, {}))
        losses = {n: w.ready["losses"] for n, w in workers.items() if n != "products"}
        for peer in losses.keys() - {"chainrule"}:  # the same work, or no comparison at all
            gap = max(abs(a - b) for a, b in zip(losses["chainrule"], losses[peer], strict=True))
            if not gap <= args.loss_tol:
                raise SystemExit(
                    f"{workload}, {threads} thread(s): the first losses of chainrule "
                    f"{losses['chainrule']} and {peer} {losses[peer]} differ by {gap:.1e} > "
                    f"--loss-tol {args.loss_tol:g}: they do not compute the same steps"
                )
        steps = max(1, round(args.block / max(w.ready["step_seconds"] for w in workers.values())))
        hz = os.sysconf("SC_CLK_TCK")
        rounds = []
        for r in range(args.rounds):
            order = list(names)
            random.Random(f"{workload}-{threads}-{series}-{r}").shuffle(order)
            blocks = {}
            for name in order:
                a = workers[name].block(steps, args.settle)
                other = max(0, a["busy_ticks"] - a["own_ticks"]) / hz / a["seconds"]
                blocks[name] = {"ms": 1e3 * a["seconds"] / steps, "other_cores": other}
            rounds.append(blocks)
            if args.verbose:
                print(
                    f"    {workload} {threads} thr round {r + 1}: "
                    + ", ".join(
                        f"{n} {b['ms']:.3f} ms ({b['other_cores']:.2f} other cores)"
                        for n, b in blocks.items()
                    ),
                    file=sys.stderr,
                    flush=True,
                )
        versions = {n: w.ready.get("torch", w.ready["numpy"]) for n, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    return {"steps": steps, "losses": losses, "rounds": rounds, "versions": versions}


# ------------------------------------------------------------------------------ the summary


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def summarize(series: list[dict], peer: str, quiet: float, base: str = "chainrule") -> dict:
    """Clean pairs of (base, peer) blocks across series: ratios and their spread."""
    ratios, per_series, ours, theirs, total = [], [], [], [], 0
    for s in series:
        clean = []
        for blocks in s["rounds"]:
            total += 1
            a, b = blocks[base], blocks[peer]
            if a["other_cores"] <= quiet and b["other_cores"] <= quiet:
                clean.append(b["ms"] / a["ms"])
                ours.append(a["ms"])
                theirs.append(b["ms"])
        ratios += clean
        if clean:
            per_series.append(statistics.median(clean))
    everything = [r[peer]["ms"] / r[base]["ms"] for s in series for r in s["rounds"]]
    out = {
        "peer": peer,
        "clean_pairs": len(ratios),
        "pairs": total,
        "all_pairs_ratio": statistics.median(everything),  # noisy ones too: not a result
    }
    if ratios:
        q1, med, q3 = quantiles(ratios)
        out.update(
            ratio=med,
            iqr=(q1, q3),
            series_medians=(min(per_series), max(per_series)),
            chainrule_ms=statistics.median(ours),
            peer_ms=statistics.median(theirs),
        )
    return out


def loss_gap(series: list[dict], peer: str) -> float:
    """The largest difference between chainrule's first losses and the peer's, over series."""
    return max(
        abs(a - b)
        for s in series
        for a, b in zip(s["losses"]["chainrule"], s["losses"][peer], strict=True)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="default: 1 2")
    p.add_argument("--peers", nargs="+", choices=list(PEERS), default=list(PEERS))
    p.add_argument("--series", type=int, default=3, help="fresh sets of workers (default 3)")
    p.add_argument("--rounds", type=int, default=12, help="blocks per worker per series (12)")
    p.add_argument("--block", type=float, default=0.4, help="seconds per block, about (0.4)")
    p.add_argument("--settle", type=float, default=0.15, help="pause before a block, s (0.15)")
    p.add_argument(
        "--quiet",
        type=float,
        default=0.05,
        metavar="CORES",
        help="a block is noisy when other processes used more than CORES cores on average "
        "during it (default 0.05)",
    )
    p.add_argument("--loss-tol", type=float, default=1e-6, help="first losses must agree (1e-6)")
    p.add_argument(
        "--floor",
        action="store_true",
        help="also time the MLP step written out in plain NumPy and its matrix products "
        "alone, each in a worker of its own: the ratios any framework on NumPy could reach",
    )
    p.add_argument("--json", metavar="PATH", help="also write every block's numbers here")
    p.add_argument("--quick", action="store_true", help="1 series, 3 rounds, 0.1 s blocks")
    p.add_argument("--verbose", action="store_true", help="print every block (to stderr)")
    args = p.parse_args(argv)
    if args.quick:
        args.series, args.rounds, args.block = 1, 3, 0.1
    for name in ("series", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if min(args.threads) < 1 or args.block <= 0 or args.settle < 0 or args.quiet < 0:
        p.error("--threads must be >= 1, --block > 0, --settle and --quiet >= 0")

    results: dict[tuple[str, int], list[dict]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chainrule-bench-") as tmp:
        data = write_inputs(Path(tmp))
        for s in range(args.series):
            for workload in args.workloads:
                for threads in args.threads:
                    one = run_series(workload, threads, args.peers, Path(tmp), args, series=s)
                    results.setdefault((workload, threads), []).append(one)
                    clean = sum(
                        all(b["other_cores"] <= args.quiet for b in blocks.values())
                        for blocks in one["rounds"]
                    )
                    print(
                        f"  series {s + 1}/{args.series} {workload} {threads} thread(s): "
                        f"{one['steps']} steps per block, {clean}/{args.rounds} quiet rounds",
                        file=sys.stderr,
                        flush=True,
                    )
    assert "torch" not in sys.modules and "chainrule" not in sys.modules
    versions = next(iter(results.values()))[0]["versions"]
    print(
        f"chainrule (NumPy {versions['chainrule']}) against PyTorch {versions[args.peers[0]]}, "
        f"CPU; {data}; {args.series} series x {args.rounds} rounds, blocks of ~{args.block:g} s "
        f"after {args.settle:g} s settle; quiet: other processes <= {args.quiet:g} cores; "
        f"{os.cpu_count()} cores, load average now {os.getloadavg()[0]:.2f}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    head = (
        f"{'workload':<27} {'thr':>3} {'peer':<11} {'chainrule':>10} {'peer':>9} "
        f"{'ratio':>6} {'IQR':>11} {'series':>11} {'clean pairs':>11}"
    )
    print(head)
    print("-" * len(head))
    report = []

    def show(label: str, threads: int, peer: str, row: dict) -> None:
        count = f"{row['clean_pairs']}/{row['pairs']}"
        if not row["clean_pairs"]:
            print(f"{label:<27} {threads:>3} {peer:<11} {'no clean pair':>54} {count:>11}")
            return
        (lo, hi), (slo, shi) = row["iqr"], row["series_medians"]
        print(
            f"{label:<27} {threads:>3} {peer:<11} {row['chainrule_ms']:>7.3f} ms "
            f"{row['peer_ms']:>6.3f} ms {row['ratio']:>5.2f}x {lo:>5.2f}-{hi:<5.2f} "
            f"{slo:>5.2f}-{shi:<5.2f} {count:>11}"
        )

    for (workload, threads), series in results.items():
        for peer in args.peers:
            row = summarize(series, peer, args.quiet)
            row.update(workload=workload, threads=threads, first_loss_gap=loss_gap(series, peer))
            report.append(row)
            show(WORKLOADS[workload][0], threads, peer, row)
            if args.verbose:
                print(f"{'':<42} (all pairs, noisy ones too: {row['all_pairs_ratio']:.2f}x)")
        for floor, label in FLOORS.items():
            if floor in series[0]["rounds"][0]:
                for peer in args.peers:
                    row = summarize(series, peer, args.quiet, base=floor)
                    row.update(workload=workload, threads=threads, base=floor)
                    if floor != "products":  # the plain NumPy step computes the same losses
                        row["first_loss_gap"] = loss_gap(series, floor)
                    report.append(row)
                    show(label, threads, peer, row)
    loads = [
        b["other_cores"]
        for runs in results.values()
        for one in runs
        for blocks in one["rounds"]
        for b in blocks.values()
    ]
    gaps = max(row["first_loss_gap"] for row in report if "first_loss_gap" in row)
    if args.floor:
        print(
            "floors (--floor, the MLP): 'in plain NumPy' is the same step written out in NumPy "
            "without the engine (its first losses are checked too), 'products alone' its five "
            "matrix products; their 'chainrule' column is theirs, and the ratio is the peer's "
            "time over theirs: what any framework on these kernels could reach."
        )
    print(
        "ratio: median over clean pairs of (peer's time per step / chainrule's); above 1 "
        "chainrule is faster. IQR: of those pairs; series: range of the per-series medians. "
        "ms: medians of the clean blocks. torch+alloc: PyTorch with chainrule's allocator "
        "setting.",
    )
    print(
        f"first losses agreed within {gaps:.1e} (--loss-tol {args.loss_tol:g}); other "
        f"processes used a median {statistics.median(loads):.2f} cores during the blocks",
        flush=True,
    )
    if args.json:
        raw = {f"{w} {t}": s for (w, t), s in results.items()}
        Path(args.json).write_text(json.dumps({"summary": report, "series": raw}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
