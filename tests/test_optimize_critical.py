"""Critical points (classify, critical_points) and problem classes (is_convex, is_linear)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.optimize

import chainrule as cr
from chainrule.optimize import (
    KINDS,
    ClassEvidence,
    classify,
    critical_points,
    from_expression,
    is_convex,
    is_linear,
)
from chainrule.optimize.critical import table

# ------------------------------------------------------------------------------ classify


@pytest.mark.parametrize(
    ("text", "x", "kind", "eigenvalues"),
    [
        ("x**2 - y**2", [0.0, 0.0], "saddle", [-2.0, 2.0]),
        ("x**2 + 3*y**2", [0.0, 0.0], "minimum", [2.0, 6.0]),
        ("-x**2 - y**2 + x*y", [0.0, 0.0], "maximum", [-3.0, -1.0]),
        ("(1-x)**2 + 100*(y-x**2)**2", [1.0, 1.0], "minimum", None),
        ("x**4 + y**2", [0.0, 0.0], "degenerate", [0.0, 2.0]),
        ("x**3", [0.0], "degenerate", [0.0]),
        ("x**2 - y**2 + z**4", [0.0, 0.0, 0.0], "saddle", [-2.0, 0.0, 2.0]),  # indefinite
        ("x*y", [0.0, 0.0], "saddle", [-1.0, 1.0]),
    ],
)
def test_classify_closed_forms(text, x, kind, eigenvalues):
    point = classify(from_expression(text), x)
    assert point.kind == kind
    if eigenvalues is not None:
        np.testing.assert_allclose(point.eigenvalues, eigenvalues, atol=1e-12)
    assert point.grad_norm == 0.0
    assert kind.split()[0] in point.message


def test_rosenbrock_hessian_at_minimum_matches_closed_form():
    point = classify(from_expression("(1-x)**2 + 100*(y-x**2)**2"), [1.0, 1.0])
    H = np.array([[802.0, -400.0], [-400.0, 200.0]])  # scipy.optimize.rosen_hess(1, 1)
    np.testing.assert_allclose(scipy.optimize.rosen_hess(np.ones(2)), H)
    np.testing.assert_allclose(point.eigenvalues, np.linalg.eigvalsh(H), rtol=1e-12)


def test_degenerate_names_its_zero_eigenvalues_and_directions():
    point = classify(from_expression("x**4 + y**2"), [0.0, 0.0])
    np.testing.assert_array_equal(point.zero_eigenvalues, [0.0])
    assert "inconclusive" in point.message and "1 zero eigenvalue" in point.message
    text = table([point], ("x", "y"))
    assert "degenerate" in text and "along (1, 0)" in text.replace("-1", "1")


def test_classify_refuses_a_point_that_is_not_critical():
    with pytest.raises(ValueError, match=r"not a critical point: \|\|grad f\(x\)\|\| = 2"):
        classify(from_expression("x**2 - y**2"), [1.0, 0.0])


def test_classify_works_on_any_callable_and_shape():
    A = np.diag([1.0, -2.0, 3.0, 4.0]).reshape(4, 4)
    point = classify(lambda X: (X.reshape(4) * (A @ X.reshape(4))).sum(), np.zeros((2, 2)))
    assert point.kind == "saddle" and point.x.shape == (2, 2)
    np.testing.assert_allclose(point.eigenvalues, [-4.0, 2.0, 6.0, 8.0])


# ------------------------------------------------------------------------------ critical_points


def test_saddle_of_x2_minus_y2_is_the_only_critical_point():
    points = critical_points(from_expression("x**2 - y**2"), [(-5, 5), (-5, 5)])
    assert len(points) == 1
    assert points[0].kind == "saddle"
    np.testing.assert_allclose(points[0].x, [0.0, 0.0], atol=1e-12)


def test_cubic_has_a_minimum_and_a_saddle():
    # f = x^3 - 3x + y^2: grad = (3x^2 - 3, 2y) = 0 at (+-1, 0); H = diag(6x, 2)
    points = critical_points(from_expression("x**3 - 3*x + y**2"), [(-3, 3), (-3, 3)])
    assert [(p.kind, *np.round(p.x, 10)) for p in points] == [
        ("saddle", -1.0, 0.0),
        ("minimum", 1.0, 0.0),
    ]
    assert [p.fun for p in points] == pytest.approx([2.0, -2.0])


def test_all_four_kinds_and_deduplication():
    # sin(x) cos(y) in [-3, 3]^2: min (-pi/2, 0), max (pi/2, 0), saddles (0, +-pi/2)
    points = critical_points(from_expression("sin(x)*cos(y)"), [(-3, 3)] * 2, n_starts=60)
    half = np.pi / 2
    expected = {
        "minimum": [(-half, 0.0)],
        "maximum": [(half, 0.0)],
        "saddle": [(0.0, -half), (0.0, half)],
    }
    for kind, xs in expected.items():
        found = sorted(tuple(np.round(p.x, 8)) for p in points if p.kind == kind)
        assert found == sorted(tuple(np.round(x, 8)) for x in xs)
    assert len(points) == 4  # 60 starts, no duplicates


def test_degenerate_point_found_by_newton_is_called_degenerate():
    points = critical_points(from_expression("x**4 + y**2"), [(-2, 2), (-2, 2)], n_starts=8)
    assert len(points) == 1 and points[0].kind == "degenerate"
    assert abs(points[0].x[0]) < 1e-6


def test_critical_points_agree_with_scipy_root_of_the_gradient(rng):
    f = from_expression("x*y*(x + y - 1)")
    points = critical_points(f, [(-2, 2), (-2, 2)])
    assert {p.kind for p in points} == {"minimum", "saddle"}
    jac = cr.grad(f)
    for p in points:
        root = scipy.optimize.root(jac, p.x + 1e-3).x  # independent root finder
        np.testing.assert_allclose(p.x, root, atol=1e-8)
    expected = {(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1 / 3, 1 / 3)}
    assert {tuple(np.round(p.x, 8)) for p in points} == {tuple(np.round(e, 8)) for e in expected}


def test_points_outside_the_box_are_left_out():
    points = critical_points(from_expression("x**3 - 3*x + y**2"), [(0, 3), (-1, 1)])
    assert [p.kind for p in points] == ["minimum"]


def test_too_many_starts_are_refused_before_any_work():
    calls = []

    def f(x):
        calls.append(1)
        return (x * x).sum()

    with pytest.raises(ValueError, match=r"n_starts = 100,000,000 is more than max_starts"):
        critical_points(f, [(-1, 1)] * 2, n_starts=10**8)
    assert not calls  # not even f at the centre
    with pytest.raises(ValueError, match="max_starts must be an integer >= 1"):
        critical_points(f, [(-1, 1)] * 2, max_starts=0)
    assert len(critical_points(f, [(-1, 1)] * 2, n_starts=3, max_starts=3)) == 1


def test_the_random_starts_are_the_seeded_uniform_draws(monkeypatch):
    module = importlib.import_module("chainrule.optimize.critical")

    starts = []
    monkeypatch.setattr(module, "_newton", lambda obj, x, *rest: starts.append(x.copy()))
    box = [(-2.0, 1.0), (0.0, 3.0)]
    critical_points(from_expression("x**2 + y**2"), box, n_starts=2050, seed=3)
    # drawn in blocks, but the very numbers of one draw of all 2049 random starts
    expected = np.random.default_rng(3).uniform([-2.0, 0.0], [1.0, 3.0], size=(2049, 2))
    np.testing.assert_array_equal(np.array(starts), np.vstack([[-0.5, 1.5], expected]))


@pytest.mark.parametrize("text", ["exp(1000*x)", "exp(1000*x) + y**2"])
def test_no_spurious_degenerate_points_from_underflow(text):
    f = from_expression(text)  # strictly increasing in x: no critical point at all
    points = critical_points(f, [(-5, 5)] * f.n)
    assert list(points) == [] and points.skipped
    reasons = {why for _, why in points.skipped}
    assert all("not critical points at working precision" in why for why in reasons)
    assert any("underflow" in why for why in reasons)  # exp(-4000) is 0: f, grad, H all 0
    assert any("Newton step" in why for why in reasons)  # exp(-100): grad 1e-40, step 1e-3


def test_classify_refuses_a_point_where_f_underflows():
    f = from_expression("exp(1000*x)")
    with pytest.raises(ValueError, match="not a critical point at working precision.*underflow"):
        classify(f, [-4.0])
    assert classify(from_expression("x**4"), [0.0]).kind == "degenerate"  # a true one stays


def test_true_degenerate_points_and_plateaus_are_still_found():
    points = critical_points(from_expression("(x+y)**4 + (x-y)**2"), [(-2, 2)] * 2)
    assert [p.kind for p in points] == ["degenerate"] and not points.skipped
    np.testing.assert_allclose(points[0].x, [0, 0], atol=1e-6)
    flat = critical_points(from_expression("relu(x) + y**2"), [(-2, 2)] * 2, n_starts=8)
    assert flat and all(p.kind == "degenerate" and p.x[0] <= 0 for p in flat)  # every x <= 0


def test_critical_points_bad_input():
    f = from_expression("x**2 - y**2")
    with pytest.raises(ValueError, match="lower bound 1.0 must be below upper bound 1.0"):
        critical_points(f, [(1, 1), (0, 2)])
    with pytest.raises(
        ValueError, match=r"takes a vector of 2 value\(s\) \(x, y\), got shape \(3,\)"
    ):
        critical_points(f, [(0, 1)] * 3)
    with pytest.raises(ValueError, match="n_starts"):
        critical_points(f, [(0, 1)] * 2, n_starts=0)
    with pytest.raises(ValueError, match="must be finite"):
        critical_points(f, [(0, np.inf), (0, 1)])
    with pytest.raises(ValueError, match="not finite"):
        critical_points(from_expression("log(x) + y"), [(-2, 0), (0, 1)])


def test_kinds_are_the_lecture_four():
    assert KINDS == ("minimum", "maximum", "saddle", "degenerate")


# ------------------------------------------------------------------------------ problem classes


@pytest.mark.parametrize(
    "text",
    ["x**2 + y**2", "exp(x + 2*y)", "abs(x) + relu(y)", "log(exp(x) + exp(y))", "2*x - y + 3"],
)
def test_convex_functions_have_no_counterexample(text):
    evidence = is_convex(from_expression(text), [(-2, 2), (-2, 2)], n_segments=300)
    assert evidence and evidence.holds and evidence.counterexample is None
    assert evidence.max_violation <= 1e-9
    assert "evidence, not a proof" in str(evidence)


@pytest.mark.parametrize("text", ["x**2 - y**2", "sin(x) + y**2", "-(x**2)", "x**3 + y"])
def test_non_convex_functions_get_a_true_counterexample(text):
    f = from_expression(text)
    evidence = is_convex(f, [(-2, 2), (-2, 2)] if "y" in text else [(-2, 2)], n_segments=300)
    assert not evidence
    c = evidence.counterexample
    # the counterexample is checked here, independently of is_convex
    value = lambda p: float(f(cr.tensor(p)).data)  # noqa: E731
    lhs = value(c["theta"] * c["x"] + (1 - c["theta"]) * c["y"])
    rhs = c["theta"] * value(c["x"]) + (1 - c["theta"]) * value(c["y"])
    assert 0 <= c["theta"] <= 1 and lhs > rhs
    assert "not convex" in str(evidence)


def test_linear_affine_and_nonlinear():
    linear = is_linear(from_expression("3*x - 2*y"), [(-1, 1), (-1, 1)], n_pairs=200)
    assert linear.holds and isinstance(linear, ClassEvidence)
    affine = is_linear(from_expression("3*x - 2*y + 1"), [(-1, 1), (-1, 1)], n_pairs=200)
    assert not affine  # f(0) = 1: affine, not linear
    c = affine.counterexample
    assert c["lhs"] != pytest.approx(c["rhs"])
    assert "not linear" in str(affine)
    assert not is_linear(from_expression("x*y"), [(-1, 1), (-1, 1)], n_pairs=200)
    vector = is_linear(lambda x: (np.array([1.0, -2.0, 0.5]) * x).sum(), [(-1, 1)] * 3, n_pairs=50)
    assert vector.holds


def test_class_tests_bad_input():
    f = from_expression("x**2")
    with pytest.raises(ValueError, match=">= 1"):
        is_convex(f, [(-1, 1)], n_segments=0)
    with pytest.raises(TypeError, match="sequence of \\(lo, hi\\)"):
        is_linear(f, 3)
    with pytest.raises(ValueError, match="not finite"):
        is_convex(from_expression("log(x)"), [(-1, 1)])
