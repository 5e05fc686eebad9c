"""``chainrule approx`` and the pictures."""

from __future__ import annotations

import re

import numpy as np
import pytest

from chainrule.approx import (
    construct,
    plot_approximation,
    plot_convergence,
    plot_depth,
    plot_methods,
    sweep,
)
from chainrule.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def approx(capsys, *argv):
    code = main(["approx", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def number(text, label):
    match = re.search(label + r"\s+([0-9.]+e[-+][0-9]+)", text)
    assert match, f"{label!r} not in output:\n{text}"
    return float(match.group(1))


def test_the_issue_example_prints_an_error_below_its_bound_and_draws(capsys, tmp_path):
    picture = tmp_path / "a.png"
    code, out, _ = approx(capsys, "sin(3*x)", "--domain", -3, 3, "--d", 0.05, "--plot", picture)
    assert code == 0
    for word in ("depth 3", "width 121", "15,126 parameters", "rms", "within bound: yes"):
        assert word in out
    assert number(out, "max") < number(out, "bound:")
    assert picture.read_bytes().startswith(PNG)
    assert f"wrote {picture}" in out


def test_sweep_prints_the_observed_order_and_draws_it(capsys, tmp_path):
    picture = tmp_path / "x2.png"
    code, out, _ = approx(
        capsys, "x^2 + sin(x)", "--domain", 0, 1, "--d", 0.1, "--sweep", 3, "--plot", picture
    )
    assert code == 0
    order = float(re.search(r"observed order of convergence: ([0-9.]+)", out).group(1))
    assert order == pytest.approx(2.0, abs=0.1)
    assert out.count("| 0.") == 3
    assert (tmp_path / "x2-sweep.png").read_bytes().startswith(PNG)


def test_sweep_stops_at_the_budget(capsys):
    code, out, _ = approx(
        capsys, "sin(x)", "--domain", 0, 1, "--d", 0.01, "--sweep", 4, "--max-neurons", 500
    )
    assert code == 0 and "sweep stops before d = 0.0025" in out and "max_neurons = 500" in out


def test_two_inputs_both_methods_and_the_pyramids_miss(capsys, tmp_path):
    picture = tmp_path / "k2.png"
    code, out, _ = approx(
        capsys, "sin(2*x)*cos(y)", "--domain", -1, 1, "--d", 0.2, "--plot", picture
    )
    assert code == 0 and "simplex" in out and "within bound: yes" in out and "why:" not in out
    assert picture.read_bytes().startswith(PNG)
    code, out, _ = approx(
        capsys,
        "sin(2*x)*cos(y)",
        "--domain",
        -1,
        1,
        0,
        2,
        "--d",
        0.2,
        "--method",
        "pyramid",
        "--sweep",
        2,
    )
    assert code == 0 and "within bound: NO" in out and "[0, 2]" in out
    assert "why:       the building blocks sum to between 0 and 1" in out


def test_discontinuity_and_compare_trained(capsys, tmp_path):
    # relu(x)/x is a step that is not even defined at 0: nodes and measurements avoid the bridge
    code, out, _ = approx(
        capsys,
        "sin(x) + relu(x)/x",
        "--domain",
        -2,
        2,
        "--d",
        0.1,
        "--discontinuity",
        0,
        "--eps",
        1e-3,
        "--plot",
        tmp_path / "jump.png",
    )
    assert code == 0 and "bridged on (-0.001, 0.001)" in out and "within bound: yes" in out
    assert (tmp_path / "jump.png").read_bytes().startswith(PNG)
    code, out, _ = approx(
        capsys,
        "sin(3*x)",
        "--domain",
        -1,
        1,
        "--d",
        0.25,
        "--compare-trained",
        "--steps",
        30,
        "--optimizer",
        "sgd",
    )
    assert code == 0 and "| constructed |" in out and "| trained (sgd, 30 steps" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sin(3*x", "--domain", 0, 1, "--d", 0.1], "missing ')'"),
        (["__import__('os')", "--domain", 0, 1, "--d", 0.1], "not allowed"),
        (["sin(x)", "--domain", 0, 1, "--d", 0], "d must be positive"),
        (["sin(x)", "--domain", 1, 0, "--d", 0.1], "inverted"),
        (["x*y", "--domain", 0, 1, 2, "--d", 0.1], "3 numbers for 2 variable"),
        (["log(x)", "--domain", 0, 1, "--d", 0.1], "not finite at x = (0)"),
        (["sin(x)", "--domain", 0, 1, "--d", 1e-7], "max_neurons"),
        (["x*y*z", "--domain", 0, 1, "--d", 0.5, "--plot", "k3.png"], "K = 1 or 2"),
        (["x", "--domain", 0, 1, "--d", 0.5, "--plot", "a.nosuchformat"], "cannot write"),
        (["x", "--domain", 0, 1, "--d", 0.5, "--sweep", 1], "at least 2"),
    ],
)
def test_bad_input_gives_one_clear_error_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = approx(capsys, *argv)
    assert code == 1
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("expr", ["9**9**9**9", "x + 9**9**9**9"])
def test_an_overflowing_constant_is_named_not_an_errno(capsys, expr):
    code, _, err = approx(capsys, expr, "--domain", 0, 1, "--d", 0.1)
    assert code == 1 and err.count("\n") == 1
    assert "the constant 9**9**9 (at column" in err and "overflows" in err
    assert "Numerical result out of range" not in err


def test_an_expression_starting_with_a_minus_is_the_expression(capsys):
    code, out, err = approx(capsys, "-x", "--domain", "-1e-3", 1, "--d", 0.5)
    assert code == 0 and err == "" and "f(x) = -x on [-0.001, 1]" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--d", 0.1, "--points", 1000000000], "more than max_points = 2,000,000"),
        (["--d", 0.1, "--points", 1000, "--max-points", 999], "max_points = 999"),
        (["--d", 1e-5, "--max-neurons", "1e8"], "more than max_parameters = 25,000,000"),
        (["--d", 1e-6, "--max-neurons", "1e8", "--max-parameters", "1e13"], "GiB of memory"),
        (["--d", 0.1, "--max-neurons", 0], "--max-neurons must be a positive integer"),
        (["--d", 0.1, "--max-parameters", -1], "--max-parameters must be a positive integer"),
        (["--d", 0.1, "--max-points", 0], "--max-points must be a positive integer"),
    ],
)
def test_budgets_are_one_line_errors_before_the_work(capsys, argv, message):
    code, _, err = approx(capsys, "sin(x)", "--domain", 0, 1, *argv)
    assert code == 1 and err.count("\n") == 1 and message in err
    assert "MemoryError" not in err and "Traceback" not in err
    if "more than" in message:  # how to raise it: the option, not the library's keyword
        assert "or raise --max-" in err or "use a larger d" in err


def test_a_pole_in_the_domain_is_not_within_a_bound(capsys):
    code, out, _ = approx(capsys, "tan(x)", "--domain", 0, 3, "--d", 0.05)
    assert code == 1 and "within bound: yes" not in out
    assert "bound:     none holds" in out and out.count("not claimed: ") == 2


def test_non_finite_f_on_the_grid_is_a_one_line_error(capsys):
    code, _, err = approx(capsys, "1/(x-0.05)", "--domain", 0, 1, "--d", 0.1)
    assert code == 1 and err.count("\n") == 1 and "f is not finite at x = (0.05)" in err


def test_debug_flag_shows_the_traceback_instead_of_one_line(capsys):
    good = ["approx", "x", "--domain", "0", "1", "--d", "0.5"]
    assert main([*good, "--debug"]) == 0  # accepted, changes nothing when all goes well
    capsys.readouterr()
    bad = ["approx", "sin(x)", "--domain", "1", "0", "--d", "0.1"]
    assert main(bad) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule approx: error: ") and err.count("\n") == 1
    with pytest.raises(ValueError, match="inverted"):
        main([*bad, "--debug"])


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["approx", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--domain",
        "--d",
        "--discontinuity",
        "--method",
        "--sweep",
        "--compare-trained",
        "--plot",
        "--max-neurons",
        "examples:",
    ):
        assert option in out


def test_pictures_from_the_library(tmp_path):
    def f(x):
        return np.sin(2 * x[:, 0]) * np.cos(x[:, 1])

    box = [(-1.0, 1.0), (-1.0, 1.0)]
    jump = lambda x: np.where(x[:, 0] > 0, 1.0, 0.0)  # noqa: E731
    paths = [tmp_path / n for n in ("k2.png", "methods.svg", "sweep.pdf", "depth.png", "jump.png")]
    figures = [
        plot_approximation(construct(f, box, 0.25), f, paths[0]),
        plot_methods(f, box, 0.25, paths[1]),
        plot_convergence(sweep(f, box, [0.5, 0.25]), paths[2]),
        plot_depth(range(1, 5), paths[3]),
        plot_approximation(construct(jump, (-1, 1), 0.1, [0.0]), jump, paths[4]),
    ]
    from matplotlib.figure import Figure

    for fig in figures:  # each returns its Figure, which a notebook shows as PNG
        assert isinstance(fig, Figure) and fig._repr_png_().startswith(PNG)
    assert len(figures[0].axes) >= 3  # K = 2: f, the network and the error
    heads = [p.read_bytes()[:8] for p in paths]
    assert heads[0].startswith(PNG) and heads[3].startswith(PNG) and heads[4].startswith(PNG)
    assert b"<?xml" in heads[1] or b"<svg" in paths[1].read_bytes()[:200]
    assert heads[2].startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in paths
    )  # no temp files
    with pytest.raises(ValueError, match="K = 2"):
        plot_methods(f, (0, 1), 0.25, tmp_path / "bad.png")
    with pytest.raises(OSError, match="does not exist"):
        plot_approximation(construct(f, box, 0.5), f, tmp_path / "no" / "dir.png")
    before = sorted(tmp_path.iterdir())
    fig = plot_approximation(construct(jump, (-1, 1), 0.1, [0.0]), jump)  # no path: no file
    assert isinstance(fig, Figure) and sorted(tmp_path.iterdir()) == before
    assert {ax.get_title().split(":")[0] for ax in fig.axes} >= {"error"}
