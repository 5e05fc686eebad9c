"""``chainrule critical``: the critical points of a typed function, classified."""

from __future__ import annotations

import argparse

from .common import SUMMARIES, add_vars, count, flag_names, pairs

EXAMPLES = """\
examples:
  chainrule critical "x**2 - y**2"                      one saddle at the origin
  chainrule critical "x**3 - 3*x + y**2" --bounds -3 3  a minimum and a saddle
  chainrule critical "x**4 + y**2"                      degenerate: zero eigenvalue along x
  chainrule critical "sin(x)*cos(y)" --bounds -3 3 -3 3 --plot critical.png

grad f = 0 is solved by Newton's method, x <- x - H^{-1} grad f, from the box's centre and
random starts; each point found is classified by the eigenvalues of the exact Hessian:
all > 0 minimum, all < 0 maximum, both signs saddle, a zero one (otherwise) degenerate.
The expression is parsed by a whitelist grammar and never evaluated as Python.
"""


WORDS = {  # kind: (singular, plural)
    "minimum": ("minimum", "minima"),
    "maximum": ("maximum", "maxima"),
    "saddle": ("saddle", "saddles"),
    "degenerate": ("degenerate point", "degenerate points"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "critical",
        help=SUMMARIES["critical"],
        description="Find the points where grad f = 0 inside a box (Newton's method from many "
        "starts) and classify each as minimum, maximum, saddle or degenerate from the "
        "eigenvalues of the exact Hessian.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("expression", help='the function, e.g. "x**2 - y**2"')
    p.add_argument(
        "--bounds",
        nargs="+",
        type=float,
        metavar="LO HI",
        default=[-5.0, 5.0],
        help="the box searched: one pair LO HI for every variable or one pair per variable "
        "(default -5 5)",
    )
    p.add_argument("--starts", type=count, default=32, help="number of Newton starts (default 32)")
    p.add_argument(
        "--max-starts",
        type=count,
        default=None,
        help="refuse more --starts than this (default 10,000; each start runs up to 100 "
        "Newton steps)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts (default 0)")
    add_vars(p)
    p.add_argument("--plot", metavar="FILE", help="write a PNG contour plot (2 variables)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from chainrule import optimize as opt
    from chainrule.optimize.critical import table
    from chainrule.optimize.result import fmt

    f = opt.from_expression(args.expression, args.vars)
    names = f.variables
    n = len(names)
    box = pairs(args.bounds, names, "--bounds")
    if args.plot and n != 2:
        raise ValueError(f"--plot draws functions of 2 variables; f has {n} ({', '.join(names)})")
    max_starts = opt.MAX_STARTS if args.max_starts is None else args.max_starts
    try:
        points = opt.critical_points(
            f,
            box,
            n_starts=args.starts,
            seed=args.seed,
            progress=sys.stderr.isatty(),
            max_starts=max_starts,
        )
    except ValueError as e:  # name the options, not the library's keywords
        message = flag_names(str(e).replace("n_starts", "--starts"), ["max_starts"])
        if message == str(e):
            raise
        raise ValueError(message) from e
    where = " x ".join(f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in box)
    print(str(f))
    print(f"critical points in {where} (Newton's method on grad f = 0 from {args.starts} starts):")
    counts = {k: sum(p.kind == k for p in points) for k in opt.KINDS}
    summary = ", ".join(f"{c} {WORDS[k][c != 1]}" for k, c in counts.items() if c)
    if points:
        print(table(points, names))
        print(f"{len(points)} critical point{'' if len(points) == 1 else 's'}: {summary}")
    elif points.skipped:
        print("no critical points found")
    else:
        print("no critical points found: try a larger box (--bounds) or more --starts")
    reasons: dict[str, list] = {}
    for x, reason in points.skipped:
        reasons.setdefault(reason, []).append(x)
    for reason, xs in reasons.items():
        example = ", ".join(fmt(v) for v in xs[0].reshape(-1))
        print(
            f"skipped {len(xs)} point{'' if len(xs) == 1 else 's'} where Newton's method stopped "
            f"(e.g. ({example})): {reason}"
        )
    if args.plot:
        opt.contour_plot(f, bounds=box, points=points, file=args.plot, title=str(f), names=names)
        print(f"wrote {args.plot}")
    return 0
