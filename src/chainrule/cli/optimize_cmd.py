"""``chainrule optimize``: minimise a typed function by gradient descent (or the log barrier)."""

from __future__ import annotations

import argparse

from .common import SUMMARIES, add_vars, pairs

EXAMPLES = """\
examples:
  chainrule optimize "(1-x)**2 + 100*(y-x**2)**2" --x0 -1.2 1
  chainrule optimize "x**2 + 10*y**2" --x0 3 1 --step exact
  chainrule optimize "x**2 + 10*y**2" --x0 3 1 --step 0.05 --plot descent.png
  chainrule optimize "(x-2)**2 + (y-1)**2" --constraint "x**2 + y**2 <= 1"
  chainrule optimize "(1-x)**2 + 100*(y-x**2)**2" --bounds -2 0.5 -1 2

The expression is parsed by a whitelist grammar (numbers, variables, + - * / ** ^, pi, e and
abs cos exp log ln relu sigmoid sin sqrt tan tanh); it is never evaluated as Python. The
gradient is exact: it comes from chainrule's backward walk.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "optimize",
        help=SUMMARIES["optimize"],
        description="Minimise f(x, y, ...) given as text. Without constraints: gradient "
        "descent with exact gradients, x <- x - alpha grad f(x), until ||grad f|| <= tol. With "
        "--constraint: the log-barrier interior-point method (Newton steps); with only --bounds: "
        "projected gradient. Prints the point found, f there, the number of iterations, and "
        "what kind of critical point the end point is.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("expression", help='the function to minimise, e.g. "(1-x)**2 + 100*(y-x**2)**2"')
    p.add_argument(
        "--x0",
        nargs="+",
        type=float,
        metavar="V",
        help="the start, one value per variable in the order x, y, z, then the others "
        "(see --vars); default: all zeros",
    )
    add_vars(p)
    p.add_argument(
        "--step",
        default=None,
        metavar="RULE",
        help="step-size rule: a number (constant step), 'diminishing' (alpha0/sqrt(t+1)), "
        "'backtracking' (Armijo, the default) or 'exact' (exact line search, quadratics only)",
    )
    p.add_argument(
        "--alpha0",
        type=float,
        default=None,
        help="the first step of 'diminishing' (default 0.1) or 'backtracking' (default 1)",
    )
    p.add_argument("--max-iter", type=int, default=100_000, help="iteration limit (default 100000)")
    p.add_argument(
        "--tol",
        type=float,
        default=1e-6,
        help="stop when ||grad f|| <= tol (barrier method: duality gap <= tol); default 1e-6",
    )
    p.add_argument(
        "--constraint",
        action="append",
        default=[],
        metavar="'G <= B'",
        help="an inequality constraint such as 'x**2 + y**2 <= 1' (or >=); repeatable",
    )
    p.add_argument(
        "--bounds",
        nargs="+",
        type=float,
        metavar="LO HI",
        help="box bounds: one pair LO HI for every variable, or one pair per variable",
    )
    p.add_argument("--plot", metavar="FILE", help="write a PNG contour plot (2 variables)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    import numpy as np

    from chainrule import optimize as opt
    from chainrule.optimize.result import fmt

    parsed = [opt.constraint_from_text(c) for c in args.constraint]  # refuses bad text early
    texts = [args.expression] + [fc.expression.to_string() for fc, _ in parsed]
    names = tuple(args.vars) if args.vars else opt.shared_variables(texts)
    f = opt.from_expression(args.expression, names)
    constraints = [opt.constraint_from_text(c, names) for c in args.constraint]
    n = len(names)
    if args.plot and n != 2:
        raise ValueError(f"--plot draws functions of 2 variables; f has {n} ({', '.join(names)})")
    if args.x0 is None:
        x0 = np.zeros(n)
    elif len(args.x0) != n:
        raise ValueError(
            f"--x0 has {len(args.x0)} value(s) but f has {n} variable(s) ({', '.join(names)})"
        )
    else:
        x0 = np.array(args.x0)
    bounds = None if args.bounds is None else pairs(args.bounds, names, "--bounds")
    step = _step(opt, args)
    progress = sys.stderr.isatty()
    print(str(f))
    for text in args.constraint:
        print(f"  subject to {text}")
    for name, (lo, hi) in zip(names, bounds or [], strict=False):
        print(f"  subject to {fmt(lo)} <= {name} <= {fmt(hi)}")
    start = "(" + ", ".join(fmt(v) for v in x0) + ")"
    if constraints or bounds is not None:
        result = opt.minimize(
            f,
            x0,
            constraints=constraints,
            bounds=bounds,
            tol=args.tol,
            max_iter=args.max_iter,
            progress=progress,
            **({"step": step} if step is not None else {}),
        )
    else:
        result = opt.gradient_descent(
            f,
            x0,
            step=step if step is not None else "backtracking",
            max_iter=args.max_iter,
            tol=args.tol,
            progress=progress,
        )
    print(f"{result.method}, from ({', '.join(names)}) = {start}")
    unit = "Newton steps" if constraints else "iterations"
    if result.converged:
        detail = result.message.partition(": ")[2]
        print(f"converged after {result.iterations} {unit}: {detail}")
    else:
        print(f"did not converge ({result.iterations} {unit}): {result.message}")
    for name, value in zip(names, result.x, strict=True):
        print(f"  {name} = {fmt(value)}")
    print(f"  f = {fmt(result.fun, 6)}")
    print(
        f"{result.ngev} exact gradients, {result.nfev} function evaluations"
        + (f", {result.nhev} Hessians" if result.nhev else "")
    )
    if constraints:
        labels = list(args.constraint)
        for name, (lo, hi) in zip(names, bounds or [], strict=False):
            # the bounds join the barrier after the constraints: x <= hi, then -x <= -lo
            labels += [f"{name} <= {fmt(hi)}"] if np.isfinite(hi) else []
            labels += [f"{name} >= {fmt(lo)}"] if np.isfinite(lo) else []
        multipliers, slacks = result.info["multipliers"], result.info["slacks"]
        for text, lam, slack in zip(labels, multipliers, slacks, strict=True):
            active = "active" if lam > slack else "inactive"  # complementary slackness
            print(f"  {text}: slack {fmt(slack, 3)}, multiplier {fmt(lam, 4)} ({active})")
    elif bounds is None and result.converged:
        try:
            point = opt.classify(f, result.x, tol=max(args.tol, 1e-12))
            print(f"the end point is a {point.message}")
        except ValueError as e:
            print(f"the end point could not be classified: {e}")
    if args.plot:
        _plot(opt, f, names, result, constraints, bounds, args.plot)
        print(f"wrote {args.plot}")
    return 0 if result.converged else 1


def _step(opt, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if args.step is None and args.alpha0 is None:
        return None
    rule = (args.step or "backtracking").lower()
    if args.alpha0 is not None:
        if rule == "diminishing":
            return opt.Diminishing(args.alpha0)
        if rule in ("backtracking", "armijo"):
            return opt.Backtracking(alpha0=args.alpha0)
        raise ValueError("--alpha0 applies to --step diminishing or backtracking")
    return opt.step_rule(rule)


def _plot(opt, f, names, result, constraints, bounds, file):  # type: ignore[no-untyped-def]
    from chainrule.optimize.plot import default_bounds

    box = default_bounds(result.path)
    if bounds is not None:
        box = [(max(lo, a), min(hi, b)) for (a, b), (lo, hi) in zip(box, bounds, strict=True)]
    points = []
    if not constraints:
        try:
            points = opt.critical_points(f, box, n_starts=16)
        except ValueError:
            points = []  # f is not finite everywhere in the window: draw without them
    opt.contour_plot(
        f,
        bounds=box,
        path=result,
        points=points,
        constraints=constraints,
        file=file,
        title=str(f),
        names=names,
    )
