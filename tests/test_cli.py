"""The command line as a whole: every subcommand shares the options main() relies on."""

from __future__ import annotations

import pytest

from chainrule.cli import SUBCOMMANDS, build_parser


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_debug(command, capsys):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices[command]
    assert any("--debug" in a.option_strings for a in parser._actions)
    assert "--debug" in parser.format_help() and "show tracebacks" in parser.format_help()
