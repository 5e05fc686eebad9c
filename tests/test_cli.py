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


def _modules_after_help(argv):
    """The chainrule and NumPy modules a fresh interpreter holds after ``chainrule ARGV --help``."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from chainrule.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stdout.flush()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'chainrule', 'typing'))), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    assert "usage: chainrule" in done.stdout
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS])
def test_help_imports_neither_numpy_nor_the_library(command):
    # --help needs argparse alone (fast start-up): the library and NumPy load in a handler
    argv = ["--help"] if command is None else [command, "--help"]
    loaded = _modules_after_help(argv)
    assert "numpy" not in loaded
    assert not loaded & {"chainrule.engine", "chainrule.rules", "chainrule.backend"}
    assert "typing" not in loaded  # ~10 ms of import on its own
    assert "chainrule.cli" in loaded  # the check looked at the right interpreter
    # only the subcommand asked for is built (--help alone: none); the others are listed
    built = {m.removeprefix("chainrule.cli.").removesuffix("_cmd") for m in loaded}
    assert built & set(SUBCOMMANDS) == (set() if command is None else {command})


def test_the_top_level_help_lists_every_subcommand_with_its_summary(capsys):
    from chainrule.cli import main
    from chainrule.cli.common import SUMMARIES

    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name, summary in SUMMARIES.items():
        assert f"{name} {' '.join(summary.split())}" in out, name
    assert list(SUMMARIES) == list(SUBCOMMANDS)


def test_a_subcommand_is_parsed_with_its_own_options_when_built_alone():
    args = build_parser(["train", "--epochs", "3"]).parse_args(["train", "--epochs", "3"])
    assert args.command == "train" and args.epochs == 3
    with pytest.raises(SystemExit):  # an unknown command is still refused, naming the choices
        build_parser(["trian"]).parse_args(["trian"])


def test_the_package_loads_its_names_on_first_use():
    import subprocess
    import sys

    code = (
        "import sys, chainrule as cr\n"
        "assert 'numpy' not in sys.modules\n"
        "x = cr.tensor([1.0, 2.0], requires_grad=True)\n"
        "cr.relu(x * x).sum().backward()\n"
        "assert x.grad.tolist() == [2.0, 4.0]\n"
        "assert cr.abs is cr.absolute and 'conv2d' in cr.__all__ and 'nn' in dir(cr)\n"
        "from chainrule.engine import tensor\n"
        "assert (tensor([1.0]) + tensor([2.0])).data.tolist() == [3.0]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_gradcheck_in_a_fresh_interpreter_checks_the_whole_table():
    # the package loads lazily: the command must still find every rule of the table
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from chainrule.check import table\n"
        "from chainrule.cli import main\n"
        "assert 'relu' in table() and 'conv2d' in table(), sorted(table())\n"
        "sys.exit(main(['gradcheck', 'relu', 'tanh', '--order', '1']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 of 2 rules pass" in done.stdout


def test_help_is_wrapped_to_the_terminal_width_as_argparse_does(monkeypatch):
    import argparse

    from chainrule import cli

    for columns in ("64", "120"):
        monkeypatch.setenv("COLUMNS", columns)
        monkeypatch.setattr(cli, "_WIDTH", [])
        ours = cli.build_parser(["gradcheck"])._subparsers._group_actions[0].choices["gradcheck"]
        plain = argparse.ArgumentParser(prog=ours.prog, description=ours.description)
        for action in ours._actions[1:]:  # the same options, formatted by argparse's own width
            plain._add_action(action)
        assert ours.format_help() == plain.format_help()
        assert max(len(line) for line in ours.format_help().splitlines()) <= int(columns)
