"""chainrule.approx against NumPy and SciPy on the same networks and points.

Every workload runs in this one process, the implementations interleaved (the order rotates
from repetition to repetition), and the table shows median times and the ratio to the peer
(ratios hold on a noisy machine, absolute times drift). No PyTorch here: a peer framework is
timed only in a process of its own (bench_speed.py), never beside chainrule in this one.

    python benchmarks/bench_approx.py            # the full run (about a minute)
    python benchmarks/bench_approx.py --quick    # a smoke run

Workloads:

    1-D   the lecture's 3-layer network for sin(3x) on [0, 1] with d = 1e-3 (1001 + 1001
          hidden neurons, a dense 1001 x 1001 layer 2), evaluated on 10^5 points:
            chainrule build + evaluate   construct() and approx.evaluate (through the knots)
            chainrule forward            net(x) under no_grad: the dense layers, as written
            numpy interp                 np.interp of the interpolant: no network at all
    2-D   the simplex network for sin(2x) cos(y) on [0, 1]^2 with d = 0.02 (51^2 nodes):
            chainrule build              construct()
            scipy build                  Delaunay + LinearNDInterpolator on the same nodes
          and its evaluation on 10^4 points: chainrule against SciPy's interpolator.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path


def configure_threads(argv: list[str], default: int = 2) -> int:
    """Read ``--threads`` from ``argv`` and put NumPy's BLAS thread count in the environment."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=default)
    threads = max(1, pre.parse_known_args(argv[1:])[0].threads)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    return threads


configure_threads(sys.argv)  # before NumPy loads its BLAS

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import chainrule as cr  # noqa: E402
from chainrule import approx  # noqa: E402


def sin3(x: np.ndarray) -> np.ndarray:
    return np.sin(3 * x[:, 0])


def wave2(x: np.ndarray) -> np.ndarray:
    return np.sin(2 * x[:, 0]) * np.cos(x[:, 1])


def measure(contenders: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds per call of each contender, interleaved with a rotating order."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def table(title: str, medians: dict[str, float], peer: str) -> None:
    ratio = f"ratio to {peer}"
    print(f"\n{title}\n")
    print(f"| {'implementation':<32} | median      | {ratio} |")
    print(f"|{'-' * 34}|-------------|{'-' * (len(ratio) + 2)}|")
    for name, t in medians.items():
        print(f"| {name:<32} | {t * 1e3:8.1f} ms | {t / medians[peer]:>{len(ratio)}.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 repetitions")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    reps = 2 if args.quick else args.reps
    d1, points1, d2 = (1e-2, 10_000, 0.1) if args.quick else (1e-3, 100_000, 0.02)
    print(f"threads {args.threads}, load average {os.getloadavg()[0]:.2f}, repetitions {reps}")

    # ----------------------------------------------------------------- 1-D, the lecture's network
    x = np.random.default_rng(0).uniform(0, 1, size=(points1, 1))
    net = approx.construct(sin3, (0.0, 1.0), d1)
    nodes, values = net.construction.nodes[0], net.construction.values[:, 0]
    reference = np.interp(x[:, 0], nodes, values)

    def build_and_evaluate() -> np.ndarray:
        return approx.evaluate(approx.construct(sin3, (0.0, 1.0), d1), x)

    def forward() -> np.ndarray:
        with cr.no_grad():
            return net(x).data

    for name, out in (("evaluate", build_and_evaluate()), ("forward", forward())):
        assert np.abs(out[:, 0] - reference).max() < 1e-9, name
    medians = measure(
        {
            "chainrule build + evaluate": build_and_evaluate,
            "chainrule forward (dense)": forward,
            "numpy interp (no network)": lambda: np.interp(x[:, 0], nodes, values),
        },
        reps,
    )
    table(
        f"1-D: d = {d1:g} ({net.widths[1]} + {net.widths[2]} hidden neurons, "
        f"{net.num_parameters():,} parameters), {points1:,} points",
        medians,
        "numpy interp (no network)",
    )

    # ----------------------------------------------------------------- 2-D, the simplex network
    box = [(0.0, 1.0), (0.0, 1.0)]
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import Delaunay

    net2 = approx.construct(wave2, box, d2)
    nodes2 = net2.construction.node_points()
    shear = np.array([[1.0, -0.2], [-0.2, 1.0]])  # Delaunay then picks Freudenthal's diagonals
    medians = measure(
        {
            "chainrule build (construct)": lambda: approx.construct(wave2, box, d2),
            "scipy build (Delaunay)": lambda: LinearNDInterpolator(
                Delaunay(nodes2 @ shear.T), wave2(nodes2)
            ),
        },
        reps,
    )
    table(
        f"2-D: build, d = {d2:g} ({len(nodes2):,} nodes, {net2.num_parameters():,} parameters)",
        medians,
        "scipy build (Delaunay)",
    )

    x2 = np.random.default_rng(1).uniform(0, 1, size=(10_000, 2))
    scipy = LinearNDInterpolator(Delaunay(nodes2 @ shear.T), wave2(nodes2))
    assert np.abs(approx.evaluate(net2, x2)[:, 0] - scipy(x2 @ shear.T)).max() < 1e-9

    def forward2() -> np.ndarray:
        return approx.evaluate(net2, x2)

    medians = measure(
        {
            "chainrule evaluate (dense)": forward2,
            "scipy interpolate (no network)": lambda: scipy(x2 @ shear.T),
        },
        reps,
    )
    table("2-D: evaluate on 10,000 points", medians, "scipy interpolate (no network)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
