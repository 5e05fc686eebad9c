"""Data-parallel training throughput: 1 process x 2 threads against 2 MPI ranks x 1 thread.

    python benchmarks/bench_distributed.py                      # MLP and LeNet-5, batch 128, 256
    python benchmarks/bench_distributed.py --rounds 5 --seconds 3 --models cnn --batches 128

A training step on a global batch of B samples (forward, softmax cross-entropy, backward,
SGD lr 0.01 momentum 0.9 update), in four set-ups, each in processes of its own:

  1x2    one chainrule process, BLAS with 2 threads (the whole batch, every product on both)
  1x2s   one chainrule process, the batch split over 2 threads with 1 BLAS thread each
         (chainrule.train.threads.BatchThreads: ``chainrule train --parallel batch``)
  2x1    ``mpiexec -n 2``: two chainrule ranks with 1 BLAS thread each, B/2 samples per rank,
         gradients summed by chainrule.train.distributed (one Allreduce per step), exactly as
         ``mpiexec -n 2 chainrule train`` does
  torch  PyTorch with 2 threads (and chainrule's allocator setting), a process that never
         imports chainrule (as in bench_speed.py)

All start from the same weights (drawn here with NumPy, PyTorch's default initialisation) and
take the same mini-batches of MNIST's test images; their first losses are compared.

Each round runs one timed block of every set-up, the set-ups in rotating order; a block is a
fresh process (group) that warms up, then steps for about ``--seconds``. The machine is
shared, so every block checks that it had the CPUs to itself: it reads /proc/stat (all CPU
time spent on the machine) and its own processes' CPU time before and after, and the block
counts as *clean* when other processes used less than ``--quiet`` (default 5%) of the CPUs'
capacity meanwhile. Ratios are taken between the blocks of the same round (pairs) that are
both clean; the table gives their median and how many pairs were clean.

The 2x1 rank 0 also reports the Allreduce time per step inside the step (which includes
waiting for the slower rank) and, after the block, the Allreduce of the same buffer alone
(both ranks ready after a barrier, best of 30): the latter gives the bandwidth that the
scaling table on paper (``--scaling``) uses for more ranks and for networks between machines.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
SETUPS = ("1x2", "1x2s", "2x1", "torch")
# chainrule.backend.tune_allocator()'s setting, given to PyTorch's process (as bench_speed.py does)
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(512 << 20)}
LR, MOMENTUM = 0.01, 0.9
TICKS = os.sysconf("SC_CLK_TCK")


# -- the quiet check -------------------------------------------------------------------------
def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine since boot (all CPUs, /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def own_cpu_seconds() -> float:
    """CPU seconds of this process, all its threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- one block, in a worker process -------------------------------------------------------------
def batches(batch: int, count: int, seed: int = 0) -> list:
    """``count`` mini-batches (images (B, 1, 28, 28) float32, labels (B,) int64), NumPy only."""
    import numpy as np
    from bench_speed import mnist_test_images  # benchmarks/ is on sys.path: these are scripts

    rng = np.random.default_rng(seed)
    mnist = mnist_test_images()
    if mnist is None:
        images = rng.random((10_000, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, 10_000)
    else:
        images, labels = mnist
    out = []
    for _ in range(count):
        idx = rng.choice(len(labels), batch, replace=False)
        out.append((np.ascontiguousarray(images[idx]), labels[idx].astype(np.int64)))
    return out


def initial_weights(model: str, seed: int = 0) -> dict:
    """The same start for every set-up: PyTorch's default U(+-1/sqrt(fan_in)), drawn by NumPy."""
    import numpy as np
    from bench_speed import WORKLOADS
    from bench_speed import initial_weights as draw

    return draw(WORKLOADS["mlp" if model == "mlp" else "lenet"][2], np.random.default_rng(seed))


def report(
    batch: int, steps: int, wall: float, first: float, busy: float, own: float, **extra: float
) -> None:
    """A worker's JSON line: throughput, the first loss, the CPU shares (``busy``: the whole
    machine's CPU seconds during the block, ``own``: the set-up's own), the modules it loaded."""
    cpus = os.cpu_count() or 1
    line = {
        "samples_per_s": batch * steps / wall,
        "ms_per_step": 1e3 * wall / steps,
        "steps": steps,
        "first_loss": first,
        "other_cpu_share": max(0.0, busy - own) / (cpus * wall),
        "own_cpu_share": own / (cpus * wall),
        "modules": sorted(m for m in ("chainrule", "torch") if m in sys.modules),
    }
    print(json.dumps({**line, **extra}), flush=True)


def torch_worker(args: argparse.Namespace) -> None:
    """The PyTorch set-up: the same block of steps in a process without chainrule."""
    import _torch_nets
    import torch

    torch.set_num_threads(args.threads)
    tnn = torch.nn
    net = _torch_nets.mlp(tnn) if args.model == "mlp" else _torch_nets.lenet(tnn)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in initial_weights(args.model).items()})
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches(args.batch, 16)]

    def step(x, y) -> float:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    first = step(*data[0])
    for i in range(1, 8):
        step(*data[i % len(data)])
    t0 = time.perf_counter()
    for i in range(8):
        step(*data[i % len(data)])
    steps = max(10, int(args.seconds / ((time.perf_counter() - t0) / 8)))
    busy0, own0, t0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
    for i in range(steps):
        step(*data[i % len(data)])
    wall, busy, own = (
        time.perf_counter() - t0,
        machine_busy_seconds() - busy0,
        own_cpu_seconds() - own0,
    )
    report(args.batch, steps, wall, first, busy, own)


def worker(args: argparse.Namespace) -> None:
    """Time one block of steps of one set-up; rank 0 (or the process) prints one JSON line."""
    sys.path.insert(0, str(REPO / "src"))
    import numpy as np

    from chainrule import models, optim
    from chainrule.backend import tune_allocator
    from chainrule.train import distributed
    from chainrule.train.threads import BatchThreads

    tune_allocator()
    world = distributed.world()
    data = batches(args.batch, 16)
    model = models.mlp(hidden=800) if args.model == "mlp" else models.cnn()
    model.load_state_dict(initial_weights(args.model))

    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    lo, hi = world.rank * args.batch // world.size, (world.rank + 1) * args.batch // world.size
    one = opt if world.size == 1 else None  # as Trainer: one process updates inside the step
    split = BatchThreads(model, opt.params, args.threads if args.setup == "1x2s" else 1, one)

    def step(x: np.ndarray, y: np.ndarray) -> float:  # Trainer's update on this rank's shard
        xs, ys = x[lo:hi], y[lo:hi]
        opt.zero_grad()
        loss_sum, _ = split(xs, ys)  # forward and backward (over threads for 1x2s)
        loss_sum, _ = world.reduce_batch(opt.params, len(ys), len(y), loss_sum, 0)
        if one is None:
            opt.step()
        return loss_sum / len(y)

    first = step(*data[0])
    for i in range(1, 8):  # warm-up (allocator, thread pools), then the step time
        step(*data[i % len(data)])
    world.barrier()
    t0 = time.perf_counter()
    for i in range(8):
        step(*data[i % len(data)])
    per_step = (time.perf_counter() - t0) / 8
    steps = world.broadcast_json(max(10, int(args.seconds / per_step)) if world.is_root else None)

    calls0, comm0 = world.allreduce_calls, world.allreduce_seconds
    world.barrier()
    busy0, own0, t0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
    for i in range(steps):
        step(*data[i % len(data)])
    world.barrier()
    wall, busy, own = (
        time.perf_counter() - t0,
        machine_busy_seconds() - busy0,
        own_cpu_seconds() - own0,
    )
    own_all = own
    if world.size > 1:
        mine = np.array([own])
        total = np.empty(1)
        world.comm.Allreduce(mine, total)
        own_all = float(total[0])
    calls = world.allreduce_calls - calls0
    comm = (world.allreduce_seconds - comm0) / calls if calls else 0.0
    alone = 0.0
    if world.size > 1 and world._buffer is not None:  # the same buffer's Allreduce by itself
        from mpi4py import MPI

        buf, times = world._buffer, []
        for _ in range(30):
            world.comm.Barrier()
            t1 = time.perf_counter()
            world.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - t1)
        alone = min(times)  # the best of 30: the link's speed, not the machine's other load
    if world.is_root:
        report(
            args.batch,
            steps,
            wall,
            first,
            busy,
            own_all,
            allreduce_ms_per_step=1e3 * comm,
            allreduce_alone_ms=1e3 * alone,
            buffer_bytes=int(world._buffer.nbytes) if world._buffer is not None else 0,
        )


# -- the orchestra -------------------------------------------------------------------------------
def mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.is_file() else "mpiexec"


def run_block(setup: str, model: str, batch: int, seconds: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    threads = 1 if setup == "2x1" else 2
    env.update({v: str(threads) for v in THREAD_VARIABLES})
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", setup, "--model", model, "--batch", str(batch)]
    cmd += ["--seconds", str(seconds), "--threads", str(threads)]
    if setup == "2x1":
        cmd = [mpiexec(), "-n", "2", *cmd]
    if setup == "torch":
        env.update(ALLOCATOR_ENV)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"{setup} {model} batch {batch} failed:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def scaling_table(
    model: str,
    batch: int,
    step_1x2_ms: float,
    step_2x1_ms: float,
    comm_ms: float,
    bw: float,
    size: int,
) -> None:
    """On paper: N ranks, global batch B, ring Allreduce 2 (N-1)/N S / bandwidth + latency.

    The computation is taken to shrink as B/N (one core's time per sample, measured in the
    2x1 blocks without their Allreduce); small shards lose more to per-operation overheads
    than that, so the speed-ups (over the measured 1x2 process) are upper bounds.
    """
    compute_per_sample = (step_2x1_ms - comm_ms) / 1e3 / (batch / 2)  # one core's work
    links = (
        ("shared memory (measured)", bw),
        ("10 GbE (1.1 GB/s)", 1.1e9),
        ("1 GbE (0.11 GB/s)", 0.11e9),
    )
    latency = 50e-6  # per message step between machines (0 for shared memory, taken as 50 us)
    print(
        f"  scaling on paper, {model} batch {batch}: gradients {size / 1e6:.2f} MB, one core "
        f"{1e6 * compute_per_sample:.0f} us per sample"
    )
    print(f"  {'link':<24}" + "".join(f"{f'N={n}':>22}" for n in (2, 4, 8, 16)))
    for name, b in links:
        cells = []
        for n in (2, 4, 8, 16):
            comm = 2 * (n - 1) / n * size / b + (2 * (n - 1) * latency if "GbE" in name else 0)
            compute = compute_per_sample * batch / n
            speedup = step_1x2_ms / 1e3 / (compute + comm)
            cells.append(
                f"{1e3 * comm:6.2f} ms {100 * comm / (compute + comm):3.0f}% {speedup:4.1f}x"
            )
        print(f"  {name:<24}" + "".join(f"{c:>22}" for c in cells))
    print("  (cell: Allreduce per step, its share of the step, throughput over the 1x2 process)")


def row(model: str, batch: int, rounds: list[dict], total: int, label: str) -> str:
    """One table row: medians of the blocks given, ratios over the rounds holding both."""

    def med(setup: str, key: str = "samples_per_s") -> float:
        v = [rd[setup][key] for rd in rounds if setup in rd]
        return statistics.median(v) if v else float("nan")

    def ratio(a: str, b: str) -> tuple[float, int]:
        v = [
            rd[a]["samples_per_s"] / rd[b]["samples_per_s"] for rd in rounds if a in rd and b in rd
        ]
        return (statistics.median(v) if v else float("nan")), len(v)

    comm, step = med("2x1", "allreduce_ms_per_step"), med("2x1", "ms_per_step")
    cells = [f"{model:<5} {batch:>5} {label:<11}"]
    cells += [f"{med(s):>8,.0f}" for s in SETUPS]
    for a, b in RATIOS:
        r, n = ratio(a, b)
        cells.append(f"{r:>5.2f} ({n}/{total})")
    cells.append(f"{f'{comm:.2f} ({100 * comm / step:.0f}%)':>14}")
    return " ".join(cells)


RATIOS = (("2x1", "1x2"), ("2x1", "1x2s"), ("1x2s", "1x2"), ("1x2s", "torch"), ("2x1", "torch"))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    ap.add_argument("--batches", nargs="+", type=int, default=[128, 256], help="global batches")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of blocks per model and batch")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of a timed block")
    ap.add_argument(
        "--quiet", type=float, default=0.05, help="largest CPU share others may use in a block"
    )
    ap.add_argument("--scaling", action="store_true", help="print the scaling tables on paper")
    ap.add_argument("--verbose", action="store_true", help="print every block")
    ap.add_argument("--json", metavar="FILE", help="also write every block's numbers here")
    ap.add_argument("--worker", choices=SETUPS, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.setup = args.worker
        sys.path.insert(0, str(HERE))
        torch_worker(args) if args.worker == "torch" else worker(args)
        return

    print(
        f"data-parallel training: 1 process x 2 threads (1x2), mpiexec -n 2 x 1 thread (2x1); "
        f"{args.rounds} rounds of {args.seconds:g} s blocks; a block is clean "
        f"when others used < {100 * args.quiet:.0f}% of the {os.cpu_count()} CPUs; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'model':<5} {'batch':>5} {'blocks':<11}"
        + "".join(f" {s:>8}" for s in SETUPS)
        + "".join(f" {f'{a}/{b}':>12}" for a, b in RATIOS)
        + f" {'Allreduce ms':>14}"
    )
    print("samples/s of each set-up (median); ratios of throughput, median over the rounds")
    print("in which both blocks were clean (clean pairs / rounds); Allreduce per 2x1 step")
    print(header)
    print("-" * len(header))
    record = []
    worst_gap = 0.0
    for model in args.models:
        for batch in args.batches:
            rounds = []
            for r in range(args.rounds):
                k = r % len(SETUPS)
                order = SETUPS[k:] + SETUPS[:k]
                rounds.append({s: run_block(s, model, batch, args.seconds) for s in order})
            record.append({"model": model, "batch": batch, "rounds": rounds})
            for rd in rounds:  # one framework per process, the same first step everywhere
                for setup, b in rd.items():
                    want = ["torch"] if setup == "torch" else ["chainrule"]
                    if b["modules"] != want:
                        raise SystemExit(f"{setup} loaded {b['modules']}, expected {want} only")
                losses = [b["first_loss"] for b in rd.values()]
                gap = max(losses) - min(losses)
                worst_gap = max(worst_gap, gap)
                if gap > 1e-5:
                    raise SystemExit(f"{model} batch {batch}: first losses differ: {rd}")
            clean = [
                {s: b for s, b in rd.items() if b["other_cpu_share"] < args.quiet} for rd in rounds
            ]
            print(row(model, batch, clean, args.rounds, "clean"))
            print(row(model, batch, rounds, args.rounds, "all (noisy)"))
            if args.verbose:
                for i, rd in enumerate(rounds):
                    print(
                        f"  round {i + 1}: "
                        + ", ".join(
                            f"{s} {b['samples_per_s']:,.0f}/s "
                            f"(others {100 * b['other_cpu_share']:.0f}%)"
                            for s, b in rd.items()
                        )
                    )
            if args.scaling:
                two = [c["2x1"] for c in clean if "2x1" in c] or [rd["2x1"] for rd in rounds]
                size = two[0]["buffer_bytes"]
                alone = statistics.median(b["allreduce_alone_ms"] for b in two) / 1e3
                bw = 2 * (2 - 1) / 2 * size / alone if alone > 0 else float("nan")
                print(f"  Allreduce of {size / 1e6:.2f} MB by 2 ranks: {bw / 1e9:.2f} GB/s")
                step = statistics.median(b["ms_per_step"] for b in two)
                comm = statistics.median(b["allreduce_ms_per_step"] for b in two)
                one = [c["1x2"] for c in clean if "1x2" in c] or [rd["1x2"] for rd in rounds]
                step1 = statistics.median(b["ms_per_step"] for b in one)
                scaling_table(model, batch, step1, step, comm, bw, size)
    print(
        "row 'clean': the blocks during which other processes used < --quiet of the CPUs; "
        "row 'all': every block"
    )
    print(f"first losses of the four set-ups agreed within {worst_gap:.1e} (limit 1e-5)")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
