"""``chainrule approx``: build the lecture's ReLU network for f, measure its error, draw it."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .common import SUMMARIES, RegistryChoice, add_vars, count, flag_names, pairs

EXAMPLES = """\
examples:
  chainrule approx "sin(3*x)" --domain -3 3 --d 0.05 --plot a.png
  chainrule approx "x^2 + sin(x)" --domain 0 1 --d 0.1 --sweep
  chainrule approx "sin(x) + relu(x)/x" --domain -2 2 --d 0.05 --discontinuity 0 --plot jump.png
  chainrule approx "sin(2*x)*cos(y)" --domain -1 1 --d 0.05 --plot k2.png
  chainrule approx "sin(2*x)*cos(y)" --domain -1 1 --d 0.2 --method pyramid --sweep 3
  chainrule approx "sin(3*x)" --domain -3 3 --d 0.05 --compare-trained
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "approx",
        help=SUMMARIES["approx"],
        description="Build the lecture's constructive ReLU network for f (layer 1: building "
        "blocks ReLU(x - n d); layer 2: triangles; layer 3: scaled by f at the nodes) - the "
        "piecewise-linear interpolant of f on a grid of step d - and print its width, depth, "
        "parameters, max and RMS error and the theoretical bound. With several variables the "
        "hats of a Freudenthal triangulation (simplex, default) or the lecture's pyramids "
        "are used.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "expr",
        metavar="EXPR",
        help="f as a formula in x (or x, y, z), e.g. 'sin(3*x)' or 'x*y - y^2'; "
        "parsed by a whitelist, never eval'd",
    )
    p.add_argument(
        "--domain",
        nargs="+",
        type=float,
        required=True,
        metavar="LO HI",
        help="the interval: LO HI once (used for every variable) or once per variable",
    )
    p.add_argument(
        "--d", type=float, required=True, help="grid step (the width of half a triangle)"
    )
    add_vars(p)
    p.add_argument(
        "--method",
        choices=("simplex", "pyramid"),
        default="simplex",
        help="vector input: Freudenthal hats (exact interpolant, default) or the "
        "lecture's pyramids (do not converge for K >= 2)",
    )
    p.add_argument(
        "--discontinuity",
        type=float,
        action="append",
        default=[],
        metavar="X",
        help="a point where f jumps (repeatable; one variable only)",
    )
    p.add_argument(
        "--eps",
        type=float,
        default=None,
        help="half-width of the bridge over a jump (default d/1000)",
    )
    p.add_argument(
        "--sweep",
        type=int,
        nargs="?",
        const=4,
        default=None,
        metavar="N",
        help="also measure d, d/2, ..., d/2^(N-1) (default N = 4) and print the "
        "observed order of convergence",
    )
    p.add_argument(
        "--compare-trained",
        action="store_true",
        help="also train a network of the same widths from samples and compare",
    )
    p.add_argument("--steps", type=int, default=2000, help="training steps for --compare-trained")
    p.add_argument(
        "--optimizer",
        action=RegistryChoice,
        registry=("chainrule.optim", "OPTIMIZERS"),
        default="adam",
        metavar="NAME",
        help="optimizer for --compare-trained: sgd or adam, a name of chainrule.optim.OPTIMIZERS "
        "(default adam)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the picture (.png, .pdf, .svg); with --sweep also FILE-sweep.png",
    )
    p.add_argument(
        "--points",
        type=count,
        default=None,
        help="evaluation points per direction (default: several per grid cell)",
    )
    p.add_argument(
        "--max-neurons",
        type=count,
        default=None,
        help="refuse networks with more hidden neurons (default 100,000)",
    )
    p.add_argument(
        "--max-parameters",
        type=count,
        default=None,
        help="refuse networks with more parameters (default 25,000,000)",
    )
    p.add_argument(
        "--max-points",
        type=count,
        default=None,
        help="refuse to measure the error on more points (default 2,000,000)",
    )
    p.set_defaults(run=run)


def _function(args: argparse.Namespace) -> tuple[Callable, tuple[str, ...], list]:
    """(f on arrays (N, K) -> (N,), the variable names, the domain as K pairs)."""
    import numpy as np

    from chainrule.expr import parse

    expr = parse(args.expr, variables=args.vars)
    names = expr.variables
    values = args.domain
    if not names:  # a constant: as many variables as the domain has pairs
        count = max(1, len(values) // 2)
        names = ("x", "y", "z")[:count] if count <= 3 else tuple(f"x{i + 1}" for i in range(count))
    k = len(names)
    domain = pairs(values, names, "--domain")

    def f(x: np.ndarray) -> np.ndarray:
        columns = [x[:, i] for i in range(k)]
        y = expr(*columns) if expr.variables else expr()
        return np.broadcast_to(np.asarray(getattr(y, "data", y), dtype=float), (x.shape[0],))

    return f, names, domain


def run(args: argparse.Namespace) -> int:
    from chainrule.approx import BudgetError

    try:
        return _run(args)
    except ValueError as e:  # a budget: name the options, not the library's keywords
        message = flag_names(str(e).replace(", or raise max_work", ""), BUDGETS)
        if message == str(e):
            raise
        raise (BudgetError if isinstance(e, BudgetError) else ValueError)(message) from e


BUDGETS = ("max_neurons", "max_parameters", "max_points")


def _run(args: argparse.Namespace) -> int:
    import math
    import time
    from pathlib import Path

    from chainrule import approx
    from chainrule.approx import BudgetError

    f, names, domain = _function(args)
    budget = {  # None: the default; 0 or less is refused by the library, not replaced
        "max_neurons": approx.MAX_NEURONS if args.max_neurons is None else args.max_neurons,
        "max_parameters": (
            approx.MAX_PARAMETERS if args.max_parameters is None else args.max_parameters
        ),
    }
    measure = {
        "points": args.points,
        "max_points": approx.MAX_POINTS if args.max_points is None else args.max_points,
    }
    options = {"method": args.method, "eps": args.eps, **budget}
    where = " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in domain)
    start = time.perf_counter()
    net = approx.construct(f, domain, args.d, args.discontinuity, **options)
    built = time.perf_counter() - start
    c = net.construction
    cells = " x ".join(str(len(g) - 1) for g in c.nodes)
    method = {
        "lecture": "the lecture's 3 layers (1 input)",
        "simplex": "simplex (Freudenthal hats)",
        "pyramid": "pyramid (the lecture's recipe)",
    }[c.method]
    print(f"f({', '.join(names)}) = {args.expr} on {where}")
    print(
        f"grid:      d = {args.d:g} -> step {max(c.spacing):.4g}, {cells} cells; method: {method}"
    )
    if c.discontinuities:
        print(
            f"jumps:     bridged on {', '.join(f'({a:.6g}, {b:.6g})' for a, b in c.excluded)}"
            " (excluded from the error)"
        )
    start = time.perf_counter()
    report = approx.error_report(net, f, **measure)
    measured = time.perf_counter() - start
    print(report)
    low, high = approx.partition_of_unity(net)
    if not (abs(low - 1) < 1e-9 and abs(high - 1) < 1e-9):
        print(
            f"why:       the building blocks sum to between {low:.3g} and {high:.3g}, not to 1: "
            "no partition of unity, so no interpolation bound (at the cell centres the "
            "network returns f_min)"
        )
    print(f"time:      built in {built:.3f} s, measured in {measured:.3f} s")

    result = None
    if args.sweep is not None:
        if args.sweep < 2:
            raise ValueError(f"--sweep needs at least 2 values of d, got {args.sweep}")
        reports = [report]
        for i in range(1, args.sweep):
            d = args.d / 2**i
            try:
                finer = approx.construct(f, domain, d, args.discontinuity, **options)
            except BudgetError as e:
                print(f"\nsweep stops before d = {d:g}: {flag_names(str(e), BUDGETS)}")
                break
            reports.append(approx.error_report(finer, f, **measure))
        if len(reports) >= 2:
            result = approx.SweepResult(tuple(reports))
            print(f"\nsweep over d ({args.method if len(domain) > 1 else 'lecture'}):")
            print(result)
            if math.isnan(result.order):
                print("(the network is exact here: f is piecewise linear on the grid)")

    if args.compare_trained:
        print(f"\nconstructed vs trained ({args.optimizer}, {args.steps} steps):")
        comparison = approx.compare_trained(
            f,
            domain,
            args.d,
            method=args.method,
            optimizer=args.optimizer,
            steps=args.steps,
            progress=True,
        )
        print(comparison)

    if args.plot:
        path = Path(args.plot)
        label = f"f = {args.expr}"
        if len(domain) == 2:
            approx.plot_methods(f, domain, args.d, path, label=label)
        else:
            approx.plot_approximation(net, f, path, label=label)
        print(f"\nwrote {path}")
        if result is not None:
            sweep_path = path.with_name(f"{path.stem}-sweep{path.suffix or '.png'}")
            approx.plot_convergence(result, sweep_path, label=label)
            print(f"wrote {sweep_path}")
    # 0 only for a verdict that holds: no bound at all (f not smooth on the grid) is not one
    return 0 if report.within_bound or c.method == "pyramid" else 1
