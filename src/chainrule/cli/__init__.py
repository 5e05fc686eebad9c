"""The ``chainrule`` command: argparse wiring only; each subcommand calls library code.

Subcommand modules import only argparse at the top (fast start-up, fast ``--help``); the
library is imported inside their ``run``. A choice read from a registry of the library (such as
:data:`chainrule.optim.OPTIMIZERS` for ``--optimizer``) is a :class:`~.common.RegistryChoice`,
read when a value is checked, so ``--help`` imports neither NumPy nor the library.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from chainrule.extras import missing_extra

from .._launch import abort_if_distributed, launched_rank, launched_ranks
from .common import SUMMARIES

# one module per subcommand (NAME_cmd.py), in the order of the lecture; each has
# add_parser(subparsers), and its one-line help is in common.SUMMARIES
SUBCOMMANDS = tuple(SUMMARIES)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that reads words such as -x**2, -inf and -1e-3 as values, not options.

    argparse takes every word that starts with '-' for an option unless it looks like a
    negative number ('-3', '-.5'), so ``chainrule critical "-x**2-y**2"`` and ``--bounds -inf 0``
    were refused. Here a word with one leading '-' is an option only when it is one of the
    parser's option strings (or OPTION=VALUE of one); words starting with '--' are options
    as before, abbreviations included.
    """

    def _get_formatter(self):  # type: ignore[no-untyped-def]
        # the terminal's width, read once: argparse asks shutil for it (importing shutil, bz2
        # and lzma, ~5 ms) at every add_argument
        return self.formatter_class(prog=self.prog, width=_help_width())

    def _parse_optional(self, arg_string):  # type: ignore[no-untyped-def]
        if _is_value(arg_string, self._option_string_actions):
            return None  # a positional word
        return super()._parse_optional(arg_string)


_WIDTH: list[int] = []


def _help_width() -> int:
    """What argparse's help uses: $COLUMNS, else the terminal's columns, else 80; minus 2."""
    if not _WIDTH:
        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 80
        _WIDTH.append(columns - 2)
    return _WIDTH[0]


def _is_value(word: str, options: dict[str, argparse.Action]) -> bool:
    if len(word) < 2 or word[0] != "-" or word[1] == "-":
        return False
    short = options.get(word[:2])
    if short is not None and short.nargs != 0:
        return False  # -oVALUE: a short option with its value attached
    return word not in options and word.split("=", 1)[0] not in options


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line. Given ``argv`` that names a subcommand, only that one is built
    (which keeps start-up and ``--help`` fast); naming none, the subcommands are listed with
    their one-line help."""
    parser = Parser(
        prog="chainrule",
        description="Derivatives, back propagation, optimization and network training from "
        "the lecture 'Calculus', with every derivative checked.",
    )
    parser.add_argument("--version", action="version", version="chainrule 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    wanted = SUBCOMMANDS
    if argv is not None:
        first = next((w for w in argv if not w.startswith("-")), None)
        wanted = (first,) if first in SUBCOMMANDS else ()
    for name in SUBCOMMANDS:
        if name not in wanted:
            if not wanted:  # for the list of subcommands (--help, or a name that is none)
                sub.add_parser(name, help=SUMMARIES[name])
            continue
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


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop: unwinds like Ctrl-C (temporary files are removed)."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    import signal  # after parsing: --help and argument errors do without (fast start-up)
    import threading

    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if on_main_thread else None
    # every failure below ends with abort_if_distributed: under mpiexec a rank that leaves on its
    # own would leave the others waiting in a collective; MPI_Abort ends them all at once
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except _Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        abort_if_distributed(143)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        abort_if_distributed(130)
        return 130
    except BrokenPipeError:
        # the reader of stdout is gone (`| head`, or `| dot` without Graphviz installed)
        _silence_stdout()
        reader = "Graphviz's 'dot'" if args.command == "graph" else "that program"
        print(
            f"chainrule {args.command}: stopped: the program reading the output closed the "
            f"pipe before all was written (is {reader} installed?)",
            file=sys.stderr,
        )
        abort_if_distributed(141)
        return 141  # 128 + SIGPIPE, as a tool killed by the closed pipe
    except ImportError as e:
        line = missing_extra(e)
        if line is None or getattr(args, "debug", False):
            raise
        print(f"chainrule {args.command}: error: {line}", file=sys.stderr)
        abort_if_distributed(1)
        return 1
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        # expected failures (bad input, missing files) get one clear line, not a traceback
        if getattr(args, "debug", False):
            raise  # (under mpiexec the excepthook of chainrule.train.distributed aborts)
        where = f" (rank {launched_rank()} of {launched_ranks()})" if launched_ranks() > 1 else ""
        print(f"chainrule {args.command}{where}: error: {in_cli_words(e)}", file=sys.stderr)
        abort_if_distributed(1)
        return 1
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush finds no broken pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured in tests)
        pass


#: The command line's words for the options that a library error's fix names (``e.options``
#: of :class:`chainrule.data.MissingDataError`, whose ``str()`` names the keyword arguments).
CLI_WORDS = {"data_dir": "--data-dir DIR", "download": "drop --no-download"}


def in_cli_words(e: Exception) -> str:
    """The message of ``e``, naming the options of its fix as the command line's flags."""
    worded = getattr(e, "worded", None)
    return worded(CLI_WORDS) if callable(worded) else str(e)
