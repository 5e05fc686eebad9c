"""chainrule.optimize against NumPy and SciPy on the same problems, in one process.

Each repetition runs every implementation once, in an order that rotates from repetition to
repetition, so that drifts of a shared, noisy machine hit all of them alike; the tables show
medians and ratios (ratios hold, absolute times drift).

    python benchmarks/bench_optimize.py            # the full run (about a minute)
    python benchmarks/bench_optimize.py --quick    # a smoke run (a few seconds)

1. least squares, A 10,000 x 200: chainrule.optimize.lstsq (normal equations by Cholesky, QR,
   SVD) and least_squares_gd against numpy.linalg.lstsq (LAPACK gelsd, SVD-based).
2. Rosenbrock from (-1.2, 1) to ||grad f|| <= 1e-6: chainrule's gradient descent with Armijo
   backtracking against scipy.optimize.minimize(method="CG") (with SciPy's hand-written
   rosen_der, with chainrule's gradient, and with finite differences): iterations, function
   and gradient evaluations, time.
3. The cost of one (f, grad f) evaluation of Rosenbrock: chainrule (typed expression and a
   Python function) against scipy.optimize.rosen + rosen_der (hand-written NumPy). (No
   PyTorch here: a peer framework is timed only in a process of its own, by bench_speed.py.)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import chainrule as cr  # noqa: E402
from chainrule import optimize as opt  # noqa: E402

ROSENBROCK = "(1-x)**2 + 100*(y-x**2)**2"
X0 = np.array([-1.2, 1.0])


def interleaved(runs: dict[str, Callable[[], Any]], reps: int) -> dict[str, tuple[float, Any]]:
    """Median seconds of each run over ``reps`` rotating rounds, and its last return value."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    last: dict[str, Any] = {}
    names = list(runs)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            start = time.perf_counter()
            last[name] = runs[name]()
            times[name].append(time.perf_counter() - start)
    return {name: (float(np.median(times[name])), last[name]) for name in runs}


def least_squares(m: int, n: int, reps: int) -> None:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, n))
    y = A @ rng.standard_normal(n) + 0.1 * rng.standard_normal(m)
    runs = {
        "numpy.linalg.lstsq (SVD, gelsd)": lambda: np.linalg.lstsq(A, y, rcond=None)[0],
        "chainrule lstsq normal (Cholesky)": lambda: opt.lstsq(A, y).x,
        "chainrule lstsq qr": lambda: opt.lstsq(A, y, method="qr").x,
        "chainrule lstsq svd": lambda: opt.lstsq(A, y, method="svd").x,
        "chainrule least_squares_gd": lambda: opt.least_squares_gd(
            A, y, tol=1e-8 * np.linalg.norm(A.T @ y), keep_history=False
        ),
    }
    results = interleaved(runs, reps)
    reference = results["numpy.linalg.lstsq (SVD, gelsd)"]
    print(f"\n1. least squares, A {m:,} x {n}, median of {reps} (x vs numpy: max |difference|)")
    print(f"{'method':<36} {'time':>10} {'vs numpy':>9} {'iterations':>10} {'max |dx|':>10}")
    for name, (seconds, value) in results.items():
        x = value.x if isinstance(value, opt.OptimizeResult) else value
        iterations = value.iterations if isinstance(value, opt.OptimizeResult) else "-"
        diff = float(np.abs(x - reference[1]).max())
        print(
            f"{name:<36} {seconds * 1e3:8.1f}ms {seconds / reference[0]:8.2f}x "
            f"{iterations!s:>10} {diff:10.1e}"
        )


def rosenbrock(reps: int) -> None:
    f = opt.from_expression(ROSENBROCK)
    vg = cr.value_and_grad(f)

    def chainrule_fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        return vg(x)

    runs = {
        "chainrule GD + backtracking": lambda: opt.gradient_descent(
            f, X0, step="backtracking", max_iter=100_000, tol=1e-6, keep_history=False
        ),
        "scipy CG, jac=rosen_der": lambda: scipy.optimize.minimize(
            scipy.optimize.rosen,
            X0,
            jac=scipy.optimize.rosen_der,
            method="CG",
            options={"gtol": 1e-6},
        ),
        "scipy CG, jac=chainrule grad": lambda: scipy.optimize.minimize(
            chainrule_fg, X0, jac=True, method="CG", options={"gtol": 1e-6}
        ),
        "scipy CG, finite differences": lambda: scipy.optimize.minimize(
            scipy.optimize.rosen, X0, method="CG", options={"gtol": 1e-6}
        ),
    }
    results = interleaved(runs, reps)
    base = results["scipy CG, jac=rosen_der"][0]
    print(f"\n2. Rosenbrock from (-1.2, 1), ||grad f|| <= 1e-6, median of {reps}")
    print(
        f"{'method':<30} {'iterations':>10} {'f evals':>8} {'grad evals':>10} {'time':>10} "
        f"{'vs CG':>8} {'|x - (1,1)|':>11}"
    )
    for name, (seconds, r) in results.items():
        if isinstance(r, opt.OptimizeResult):
            nit, nfev, ngev = r.iterations, r.nfev, r.ngev
        else:
            nit, nfev, ngev = r.nit, r.nfev, getattr(r, "njev", 0)
        error = float(np.linalg.norm(r.x - 1.0))
        print(
            f"{name:<30} {nit:>10,} {nfev:>8,} {ngev:>10,} {seconds * 1e3:8.1f}ms "
            f"{seconds / base:7.1f}x {error:11.1e}"
        )
    print(
        "   (nfev of chainrule counts the line-search trials (no graph) and the evaluations "
        "with a gradient; SciPy's CG with jac=True counts one per (f, grad) call)"
    )


def evaluation_cost(number: int, reps: int) -> None:
    f = opt.from_expression(ROSENBROCK)
    vg_expression = cr.value_and_grad(f)
    vg_python = cr.value_and_grad(lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2)
    objective = opt.objective.Objective(f, X0.copy())
    runs: dict[str, Callable[[], Any]] = {
        "scipy rosen + rosen_der (NumPy)": lambda: (
            scipy.optimize.rosen(X0),
            scipy.optimize.rosen_der(X0),
        ),
        "chainrule value_and_grad, expression": lambda: vg_expression(X0),
        "chainrule value_and_grad, Python f": lambda: vg_python(X0),
        "chainrule f only (no graph), expression": lambda: objective.value(X0),
    }

    def repeat(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(number):
                fn()

        return run

    results = interleaved({name: repeat(fn) for name, fn in runs.items()}, reps)
    base = results["scipy rosen + rosen_der (NumPy)"][0]
    print(f"\n3. one (f, grad f) evaluation of Rosenbrock, median of {reps} x {number:,} calls")
    print(f"{'implementation':<42} {'per call':>10} {'vs NumPy':>9}")
    for name, (seconds, _) in results.items():
        print(f"{name:<42} {seconds / number * 1e6:8.1f}us {seconds / base:8.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    args = parser.parse_args(argv)
    print(f"chainrule {cr.__version__}, numpy {np.__version__}, scipy {scipy.__version__}")
    if args.quick:
        least_squares(2_000, 50, reps=1)
        rosenbrock(reps=1)
        evaluation_cost(number=200, reps=1)
    else:
        least_squares(10_000, 200, reps=7)
        rosenbrock(reps=3)
        evaluation_cost(number=2_000, reps=5)


if __name__ == "__main__":
    main()
