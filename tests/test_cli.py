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


@pytest.mark.parametrize("command", ["train", "approx"])
def test_optimizer_choices_come_from_the_registry(command, monkeypatch):
    from chainrule import optim

    def choices():
        sub = next(a for a in build_parser()._actions if a.dest == "command")
        flag = next(a for a in sub.choices[command]._actions if a.dest == "optimizer")
        return list(flag.choices)

    assert choices() == list(optim.OPTIMIZERS) == ["sgd", "adam"]
    monkeypatch.setitem(optim.OPTIMIZERS, "plain", optim.SGD)  # a new entry is a new choice
    assert choices() == ["sgd", "adam", "plain"]
