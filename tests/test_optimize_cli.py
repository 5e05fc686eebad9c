"""``chainrule optimize`` and ``chainrule critical`` end to end, and the contour plots."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.optimize import contour_plot, critical_points, from_expression, gradient_descent

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _numbers(line):
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", line)]


# ------------------------------------------------------------------------------ critical


def test_critical_prints_one_saddle_at_the_origin(capsys):
    code, out, err = run(capsys, "critical", "x**2 - y**2")
    assert code == 0 and err == ""
    rows = [
        ln.split()
        for ln in out.splitlines()
        if ln.strip().startswith(tuple(("minimum", "maximum", "saddle", "degenerate")))
    ]
    assert rows == [["saddle", "0", "0", "0", "-2,", "2"]]
    assert "1 critical point: 1 saddle" in out


def test_critical_lists_kinds_and_degenerate_directions(capsys):
    code, out, _ = run(capsys, "critical", "x**3 - 3*x + y**2", "--bounds", "-3", "3")
    assert code == 0
    assert "2 critical points: 1 minimum, 1 saddle" in out
    minimum = next(ln for ln in out.splitlines() if ln.strip().startswith("minimum"))
    assert _numbers(minimum)[:3] == [1.0, 0.0, -2.0]
    code, out, _ = run(capsys, "critical", "x**4 + y**2", "--bounds", "-2", "2", "-1", "1")
    assert "degenerate" in out and "inconclusive: zero eigenvalue(s) 0 along" in out
    code, out, _ = run(capsys, "critical", "exp(x) + y**2")
    assert code == 0 and "no critical points found" in out


def test_critical_plot_writes_a_png(capsys, tmp_path):
    target = tmp_path / "critical.png"
    code, out, _ = run(
        capsys, "critical", "sin(x)*cos(y)", "--bounds", "-3", "3", "--plot", str(target)
    )
    assert code == 0 and f"wrote {target}" in out
    data = target.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["critical.png"]  # no temporary file left


# ------------------------------------------------------------------------------ optimize


def test_optimize_rosenbrock_converges_to_one_one(capsys, tmp_path):
    target = tmp_path / "rosenbrock.png"
    code, out, err = run(
        capsys, "optimize", "(1-x)**2 + 100*(y-x**2)**2", "--x0", "-1.2", "1", "--plot", str(target)
    )
    assert code == 0, out + err
    match = re.search(r"converged after (\d+) iterations", out)
    assert match and 1000 < int(match.group(1)) < 100_000
    x = _numbers(next(ln for ln in out.splitlines() if ln.strip().startswith("x =")))
    y = _numbers(next(ln for ln in out.splitlines() if ln.strip().startswith("y =")))
    np.testing.assert_allclose([x[0], y[0]], [1.0, 1.0], atol=1e-5)
    assert "the end point is a local minimum" in out
    assert target.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["x**2 + 10*y**2", "--x0", "3", "1", "--step", "exact"], [0.0, 0.0]),
        (["x**2 + 10*y**2", "--x0", "3", "1", "--step", "0.05"], [0.0, 0.0]),
        (["(x-1)**2", "--step", "diminishing", "--alpha0", "0.4"], [1.0]),
        (
            ["(x-1)**2 + (y+2)**2 + (z-0.5)**2", "--step", "backtracking", "--alpha0", "0.3"],
            [1, -2, 0.5],
        ),
    ],
)
def test_optimize_step_rules(capsys, args, expected):
    code, out, _ = run(capsys, "optimize", *args)
    assert code == 0 and "converged after" in out
    values = [_numbers(ln)[0] for ln in out.splitlines() if re.match(r"\s+[xyz] = ", ln)]
    np.testing.assert_allclose(values, expected, atol=1e-5)


def test_optimize_with_constraints_and_bounds(capsys):
    code, out, _ = run(
        capsys,
        "optimize",
        "(x-2)**2 + (y-1)**2",
        "--constraint",
        "x**2 + y**2 <= 1",
        "--constraint",
        "x >= 0.8",
        "--x0",
        "0.9",
        "0",
    )
    assert code == 0 and "log-barrier" in out and "Newton steps" in out
    x = _numbers(next(ln for ln in out.splitlines() if ln.strip().startswith("x =")))[0]
    y = _numbers(next(ln for ln in out.splitlines() if ln.strip().startswith("y =")))[0]
    np.testing.assert_allclose([x, y], np.array([2.0, 1.0]) / np.sqrt(5), atol=1e-6)
    assert "x**2 + y**2 <= 1: slack" in out and "(active)" in out and "(inactive)" in out
    code, out, _ = run(
        capsys, "optimize", "(1-x)**2 + 100*(y-x**2)**2", "--bounds", "-2", "0.5", "-1", "2"
    )
    assert code == 0 and "projected gradient" in out
    assert _numbers(next(ln for ln in out.splitlines() if ln.strip().startswith("x =")))[0] == 0.5


def test_optimize_not_converging_exits_1_with_the_reason(capsys):
    code, out, _ = run(capsys, "optimize", "x**2", "--x0", "1", "--step", "1.5")
    assert code == 1 and "did not converge" in out and "diverged" in out
    code, out, _ = run(capsys, "optimize", "(1-x)**2 + 100*(y-x**2)**2", "--max-iter", "10")
    assert code == 1 and "max_iter = 10" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["optimize", "__import__('os').system('echo hacked')", "--x0", "0"], "not allowed"),
        (["optimize", "x.__class__", "--x0", "0"], "attribute access"),
        (["critical", "import os"], "imports are not allowed"),
        (["critical", "open('/etc/passwd')"], "unknown function 'open'"),
        (["optimize", "eval('1')"], "unknown function 'eval'"),
        (["optimize", "x[0]**2"], "subscripts"),
        (["optimize", "lambda: 1"], "not allowed"),
        (["optimize", "2 + 3"], "no variables"),
        (
            ["optimize", "x**2 + y**2", "--x0", "1"],
            "--x0 has 1 value(s) but f has 2 variable(s) (x, y)",
        ),
        (["optimize", "x**2", "--bounds", "0", "1", "2"], "--bounds needs one pair"),
        (["optimize", "x**2", "--constraint", "x = 1"], "exactly one '<=' or '>='"),
        (["optimize", "x**2", "--x0", "0.5", "--constraint", "x <= 0"], "not strictly feasible"),
        (["optimize", "x**2", "--step", "newton"], "unknown step rule"),
        (["optimize", "x**2", "--step", "exact", "--alpha0", "1"], "--alpha0 applies"),
        (["optimize", "x**4", "--x0", "1", "--step", "exact"], "not quadratic"),
        (["optimize", "log(x)", "--x0", "-1"], "not finite"),
        (["optimize", "x**2 + y**2 + z**2", "--plot", "out.png"], "2 variables"),
        (["critical", "x**2", "--plot", "out.png"], "2 variables"),
        (["critical", "x**2", "--bounds", "1", "1"], "must be below"),
    ],
)
def test_bad_input_gives_one_clear_error_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith(f"chainrule {argv[0]}: error: ")
    assert message in err
    assert "Traceback" not in err and "hacked" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["optimize", "9**9**9**9 + x"], "the constant 9**9**9 (at column 4) overflows"),
        (["optimize", "x + 10**400"], "the constant 10**400 (at column 5) overflows"),
        (["critical", "x**2 + 10**400"], "the constant 10**400 (at column 8) overflows"),
        (["optimize", "x**2", "--constraint", "x <= 10**400"], "the constant 10**400"),
    ],
)
def test_overflowing_constants_are_one_line_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 1 and err.startswith(f"chainrule {argv[0]}: error: {message}")
    assert err.count("\n") == 1 and "OverflowError" not in err and "Traceback" not in err


def test_expressions_starting_with_a_minus_are_expressions_not_options(capsys):
    code, out, err = run(capsys, "critical", "-x**2-y**2")
    assert code == 0 and err == "" and "1 critical point: 1 maximum" in out
    code, out, _ = run(capsys, "critical", "--starts", "4", "-x**2")  # after an option too
    assert code == 0 and "f(x) = -x**2" in out and "1 maximum" in out
    code, out, _ = run(capsys, "optimize", "-exp(-x**2)", "--x0", "0.5")
    assert code == 0 and abs(_numbers(next(ln for ln in out.splitlines() if "x =" in ln))[0]) < 1e-5
    code, out, _ = run(capsys, "optimize", "x**2", "--constraint", "-x <= -1", "--x0", "2")
    assert code == 0 and "subject to -x <= -1" in out


def test_values_starting_with_a_minus_parse_and_real_options_still_work(capsys):
    code, out, _ = run(capsys, "optimize", "(x+1)**2", "--bounds", "-inf", "0")
    assert code == 0 and "-inf <= x <= 0" in out
    assert _numbers(next(ln for ln in out.splitlines() if ln.strip().startswith("x =")))[0] == -1
    code, out, _ = run(capsys, "critical", "x**2", "--bounds", "-1e-3", "1", "--star", "3")
    assert code == 0 and "[-0.001, 1]" in out and "from 3 starts" in out
    with pytest.raises(SystemExit) as info:  # -h is still the help
        main(["critical", "-h"])
    assert info.value.code == 0 and "usage: chainrule critical" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # and a misspelt option is still refused by argparse
        main(["critical", "x**2", "-starts", "3"])
    assert "unrecognized arguments: -starts 3" in capsys.readouterr().err


@pytest.mark.parametrize("step", [["--step", "0"], ["--step", "-1"], ["--step=-1"]])
def test_a_step_that_is_not_positive_is_refused(capsys, step):
    code, _, err = run(capsys, "optimize", "x**2", "--x0", "1", *step)
    assert code == 1 and err.count("\n") == 1
    assert "the step size must be positive" in err and "unknown step rule" not in err


def test_divergence_advice_is_true(capsys):
    code, out, _ = run(capsys, "optimize", "log(x)", "--x0", "1")  # backtracking, the default
    line = next(ln for ln in out.splitlines() if "diverged" in ln)
    assert code == 1 and "f = -inf" in line and "unbounded below" in line
    assert "backtracking'" not in line  # it already is backtracking
    code, out, _ = run(capsys, "optimize", "x**2", "--x0", "1", "--step", "1.5")
    line = next(ln for ln in out.splitlines() if "diverged" in ln)
    assert code == 1 and "use a smaller step or step='backtracking'" in line


def test_too_many_starts_are_refused_before_the_work(capsys):
    code, _, err = run(capsys, "critical", "x**2 - y**2", "--starts", "100000000")
    assert code == 1 and err.count("\n") == 1
    assert "--starts = 100,000,000 is more than max_starts = 10,000" in err
    assert "raise --max-starts" in err
    code, out, _ = run(capsys, "critical", "x**2", "--starts", "20", "--max-starts", "20")
    assert code == 0 and "from 20 starts" in out
    code, _, err = run(capsys, "critical", "x**2", "--starts", "21", "--max-starts", "2e1")
    assert code == 1 and "max_starts = 20" in err


def test_critical_reports_no_points_from_underflow(capsys):
    code, out, _ = run(capsys, "critical", "exp(1000*x)")
    assert code == 0 and "degenerate" not in out and "no critical points found\n" in out
    assert "not critical points at working precision: f, its gradient or Hessian underflow" in out
    code, out, _ = run(capsys, "critical", "exp(1000*x) + y**2")
    assert code == 0 and "degenerate" not in out and "working precision" in out


def test_plot_into_missing_folder_is_a_clear_error(capsys, tmp_path):
    code, _, err = run(capsys, "critical", "x**2 - y**2", "--plot", str(tmp_path / "no" / "p.png"))
    assert code == 1 and "does not exist" in err


def test_help_describes_the_commands(capsys):
    for command in ("optimize", "critical"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and "Newton" in out and "never" in out  # never eval


# ------------------------------------------------------------------------------ plots (library)


def test_contour_plot_marks_path_and_points(tmp_path):
    f = from_expression("x**2 - y**2 + 0.1*x**4 + 0.1*y**4")
    result = gradient_descent(f, [1.5, 0.1], tol=1e-8)
    points = critical_points(f, [(-3, 3), (-3, 3)])
    assert {p.kind for p in points} == {"saddle", "minimum"}
    fig = contour_plot(f, bounds=[(-3, 3), (-3, 3)], path=result, points=points, title=str(f))
    ax = fig.axes[0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(lab.startswith("path (") for lab in labels)
    assert "saddle (1)" in labels and "minimum (2)" in labels
    np.testing.assert_allclose(ax.get_xlim(), (-3, 3))
    path_line = ax.lines[0]
    np.testing.assert_allclose(path_line.get_xdata(), result.history["x"][:, 0])
    assert fig._repr_png_().startswith(b"\x89PNG")  # a notebook shows the returned Figure
    target = tmp_path / "plot.png"
    contour_plot(f, path=result.history["x"], points=points, file=target)
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_contour_plot_evaluates_plain_callables_point_by_point():
    # this f sums over all of x, so it cannot take the (2, N) batch: the grid falls back
    calls = []

    def f(x):
        calls.append(x.shape)
        return ((x - 1.0) ** 2).sum()

    fig = contour_plot(f, bounds=[(-1, 2), (-1, 2)], resolution=12)
    assert (2,) in calls and len(calls) > 12 * 12
    assert fig.axes


def test_contour_plot_refuses_wrong_dimension(tmp_path):
    with pytest.raises(ValueError, match="2 variables"):
        contour_plot(lambda x: (x * x).sum(), path=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="resolution"):
        contour_plot(lambda x: (x * x).sum(), resolution=2)
    assert not os.listdir(tmp_path)
