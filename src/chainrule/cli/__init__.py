"""The ``chainrule`` command: argparse wiring only; each subcommand calls library code.

Subcommand modules import only argparse at the top (fast start-up, fast ``--help``); the
library is imported inside their ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# one module per subcommand, in the order of the lecture; each has add_parser(subparsers)
SUBCOMMANDS = (
    "gradcheck",
    "graph",
    "optimize",
    "critical",
    "train",
    "evaluate",
    "predict",
    "export",
    "import",
    "approx",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Derivatives, back propagation, optimization and network training from "
        "the lecture 'Calculus', with every derivative checked.",
    )
    parser.add_argument("--version", action="version", version="chainrule 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"chainrule.cli.{name}_cmd")
        except ModuleNotFoundError as e:
            if e.name != f"chainrule.cli.{name}_cmd":
                raise
            continue
        module.add_parser(sub)
    for command in sub.choices.values():  # every subcommand, so none can miss it
        command.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        # expected failures (bad input, missing files) get one clear line, not a traceback
        if getattr(args, "debug", False):
            raise
        print(f"chainrule {args.command}: error: {e}", file=sys.stderr)
        return 1
