"""``chainrule graph``: the forward and the backward graph of the lecture's small network."""

from __future__ import annotations

import argparse

from .common import SUMMARIES


def _sizes(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes needs three integers K,H,M, got {text!r}"
        ) from None
    if len(sizes) != 3 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"--sizes needs three positive integers K,H,M, got {text!r}"
        )
    return sizes  # type: ignore[return-value]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "graph",
        help=SUMMARIES["graph"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the lecture's network x5 = H3 ReLU(H0 x0 + h1) + h4 with a softmax\n"
        "cross-entropy error e and write its graphs as Graphviz DOT files:\n\n"
        "  forward.dot   tensors (shape, dtype, name) and the operations that made them\n"
        "  backward.dot  arrows reversed, each operation replaced by its derivative node\n"
        "                (the rule's formula); dashed arrows: forward values it reads\n"
        "  graph.dot     both, side by side\n\n"
        "When the Graphviz program 'dot' is installed, an .svg is written beside each.",
        epilog="examples:\n  chainrule graph --out graph\n"
        "  chainrule graph --print | dot -Tsvg > graph.svg",
    )
    p.add_argument(
        "--out",
        default="graph",
        metavar="DIR",
        help="folder for the .dot (and .svg) files (default: ./graph)",
    )
    p.add_argument(
        "--print",
        dest="print_",
        action="store_true",
        help="print the DOT text of both graphs to stdout instead of writing files",
    )
    svg = p.add_mutually_exclusive_group()
    svg.add_argument(
        "--svg",
        dest="svg",
        action="store_true",
        default=None,
        help="require SVG output (fails when Graphviz 'dot' is missing)",
    )
    svg.add_argument("--no-svg", dest="svg", action="store_false", help="write only the .dot files")
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=(3, 4, 2),
        metavar="K,H,M",
        help="input, hidden and output sizes of the network (default: 3,4,2)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the parameters (default: 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.graph import to_dot, write_graphs
    from chainrule.models import lecture_network

    e = lecture_network(seed=args.seed, sizes=args.sizes)
    if args.print_:
        print(to_dot(e), end="")
        return 0
    for path in write_graphs(e, args.out, svg=args.svg):
        print(f"wrote {path}")
    if args.svg is None:
        import shutil

        if shutil.which("dot") is None:
            print("(Graphviz 'dot' not found: no SVG written; install graphviz to get them)")
    return 0
