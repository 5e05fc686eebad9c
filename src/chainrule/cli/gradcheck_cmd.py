"""``chainrule gradcheck``: the lecture's table of derivatives, each checked."""

from __future__ import annotations

import argparse

from .common import SUMMARIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradcheck",
        help=SUMMARIES["gradcheck"],
        description="Check every rule of the derivative table (and the composite layers) "
        "against the definition of the derivative: central differences in float64 at random "
        "inputs. Prints rule, formula, max error, PASS/FAIL; exits non-zero on any failure.",
    )
    p.add_argument("rules", nargs="*", help="only these rules (default: all)")
    p.add_argument(
        "--order",
        type=int,
        choices=(1, 2),
        default=None,
        help="1: gradients; 2: derivatives of the backward rules too (default: both)",
    )
    p.add_argument(
        "--verbose", "-v", action="store_true", help="print the worst element of each check"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.check import check_rule, table

    known = table()
    names = args.rules or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(known)}")
    orders = (args.order,) if args.order else (1, 2)
    width = max(len("rule"), *(len(n) for n in names))
    header = (
        f"{'rule':<{width}}  "
        + "  ".join(f"{'order ' + str(o):>9}" for o in orders)
        + "  result  formula"
    )
    print(header)
    print("-" * len(header))
    failed = 0
    for name in names:
        rows = [check_rule(name, o) for o in orders]
        ok = all(r.ok for r in rows)
        failed += not ok
        errs = "  ".join(f"{r.max_abs_error:9.1e}" for r in rows)
        print(f"{name:<{width}}  {errs}  {'PASS' if ok else 'FAIL':<6}  {rows[0].formula}")
        if args.verbose or not ok:
            for r in rows:
                if r.report is not None and (args.verbose or not r.ok):
                    print("    " + str(r.report).replace("\n", "\n    "))
    print(
        f"\n{len(names) - failed} of {len(names)} rules pass"
        + (" (orders " + ", ".join(map(str, orders)) + ")" if len(orders) > 1 else "")
    )
    return 1 if failed else 0
