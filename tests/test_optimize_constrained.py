"""Constrained minimisation: log barrier against a closed form and SciPy's SLSQP; bounds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

import chainrule as cr
from chainrule.optimize import constraint_from_text, from_expression, minimize


def norm2(x):
    return (x * x).sum()


@pytest.mark.parametrize("a", [[1.0, 2.0, -0.5], [3.0, 0.0], [0.2, -0.1, 0.4, 1.0, 0.3]])
def test_min_norm_with_halfspace_closed_form(a):
    # min ||x||^2 s.t. a^T x >= 1  (written -a^T x <= -1):  x* = a / ||a||^2,  lambda = 2/||a||^2
    a = np.array(a)
    x0 = 2 * a / (a @ a)  # strictly feasible: a^T x0 = 2 > 1
    result = minimize(norm2, x0, constraints=[(lambda x: -(x * a).sum(), -1.0)])
    assert result.converged, result.message
    np.testing.assert_allclose(result.x, a / (a @ a), rtol=1e-6, atol=1e-8)
    assert result.fun == pytest.approx(1 / (a @ a), rel=1e-7)
    assert result.info["multipliers"][0] == pytest.approx(2 / (a @ a), rel=1e-6)
    assert result.info["duality_gap"] <= 1e-8
    assert result.grad_norm < 1e-6  # KKT: grad f0 + lambda grad f1 = 0
    assert result.history["x"].shape[1:] == a.shape


def _slsqp(f, x0, constraints):
    cons = [
        {"type": "ineq", "fun": (lambda x, fc=fc, bc=bc: bc - float(fc(cr.tensor(x)).data))}
        for fc, bc in constraints
    ]
    return scipy.optimize.minimize(
        lambda x: float(f(cr.tensor(x)).data),
        x0,
        method="SLSQP",
        constraints=cons,
        options={"ftol": 1e-12, "maxiter": 500},
    )


@pytest.mark.parametrize(
    ("objective", "constraints", "x0"),
    [
        ("(x-2)**2 + (y-1)**2", ["x**2 + y**2 <= 1"], [0.0, 0.0]),
        ("(x-2)**2 + (y-1)**2", ["x**2 + y**2 <= 1", "x >= 0.8"], [0.9, 0.0]),
        ("exp(x) + exp(-y) + x*y", ["x + y >= 1", "x**2 + 2*y**2 <= 4"], [0.5, 1.0]),
        ("x + y + z", ["x**2 + y**2 + z**2 <= 1"], [0.1, 0.2, 0.0]),  # a linear objective
        ("(x-1)**2 + (y-3)**2", ["x + y <= 2", "y - x <= 1", "-x <= 0"], [0.5, 0.5]),
    ],
)
def test_barrier_matches_slsqp(objective, constraints, x0):
    texts = [objective] + constraints
    names = tuple(sorted({v for t in texts for v in "xyz" if v in t}))
    f = from_expression(objective, names)
    cons = [constraint_from_text(c, names) for c in constraints]
    result = minimize(f, x0, constraints=cons)
    oracle = _slsqp(f, np.array(x0), cons)
    assert result.converged and oracle.success
    np.testing.assert_allclose(result.x, oracle.x, atol=2e-6)
    assert result.fun == pytest.approx(oracle.fun, abs=1e-7)
    slack = result.info["slacks"]
    assert np.all(slack > 0)  # the iterates never leave the interior


def test_every_iterate_is_strictly_feasible():
    f = from_expression("(x-2)**2 + (y-1)**2")
    ((fc, bc),) = [constraint_from_text("x**2 + y**2 <= 1")]
    result = minimize(f, [0.0, 0.0], constraints=[(fc, bc)])
    path = result.history["x"]
    assert len(path) == result.iterations + 1
    assert np.all((path**2).sum(axis=1) < 1)


def test_infeasible_start_is_refused_naming_the_constraint():
    a = np.array([1.0, 1.0])
    with pytest.raises(
        ValueError, match=r"not strictly feasible: constraint 1 has f_c\(x0\) = 0 >= b_c = -1"
    ):
        minimize(norm2, [0.0, 0.0], constraints=[(lambda x: -(x * a).sum(), -1.0)])
    with pytest.raises(ValueError, match="constraint 2"):  # on the boundary is not strictly inside
        minimize(norm2, [1.0, 0.0], constraints=[(lambda x: x[0], 5.0), (lambda x: norm2(x), 1.0)])


@pytest.mark.parametrize(
    ("constraints", "error", "match"),
    [
        ([(lambda x: x[0], "1")], ValueError, "b_c must be a finite number"),
        ([(lambda x: x[0], np.inf)], ValueError, "b_c must be a finite number"),
        ([("x <= 1", 1.0)], TypeError, "f_c must be callable"),
        ([lambda x: x[0]], TypeError, "must be a pair"),
        (3, TypeError, "list of pairs"),
        ([(lambda x: x, 1.0)], RuntimeError, "scalar"),
    ],
)
def test_bad_constraints_are_refused(constraints, error, match):
    with pytest.raises((error, ValueError), match=match):
        minimize(norm2, [0.0, 0.0], constraints=constraints)


def test_bounds_by_projected_gradient_match_scipy():
    f = from_expression("(1-x)**2 + 100*(y-x**2)**2")
    bounds = [(-2.0, 0.5), (-1.0, 2.0)]
    result = minimize(f, [0.0, 0.0], bounds=bounds, tol=1e-8)
    assert result.converged and result.method.startswith("projected gradient")
    oracle = scipy.optimize.minimize(
        scipy.optimize.rosen,
        [0.0, 0.0],
        jac=scipy.optimize.rosen_der,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    np.testing.assert_allclose(result.x, oracle.x, atol=1e-7)
    np.testing.assert_allclose(result.x, [0.5, 0.25], atol=1e-7)  # on the face x = 0.5
    path = result.history["x"]
    assert np.all((path >= [-2.0, -1.0]) & (path <= [0.5, 2.0]))


def test_bounds_project_an_outside_start_and_allow_none():
    result = minimize(
        lambda x: ((x - 3.0) ** 2).sum(), [10.0, -10.0], bounds=[(None, 1.0), (0, None)]
    )
    np.testing.assert_allclose(result.x, [1.0, 3.0], atol=1e-7)
    np.testing.assert_allclose(result.history["x"][0], [1.0, 0.0])  # P(x0)


def test_constraints_and_bounds_together():
    # min (x-2)^2 + (y-2)^2 s.t. x + 2y <= 4, 0 <= x <= 1: x* = (1, 1.5); KKT:
    # -grad f = (2, 1) = 0.5 (1, 2) + 1.5 (1, 0), so the multipliers are 0.5, 1.5 and 0
    f = from_expression("(x-2)**2 + (y-2)**2")
    cons = [constraint_from_text("x + 2*y <= 4")]
    result = minimize(f, [0.5, 0.5], constraints=cons, bounds=[(0, 1), (None, None)])
    np.testing.assert_allclose(result.x, [1.0, 1.5], atol=1e-7)
    # the constraints are x + 2y <= 4, then the bounds x <= 1, -x <= 0
    np.testing.assert_allclose(result.info["multipliers"], [0.5, 1.5, 0.0], atol=1e-6)


def test_no_constraints_is_gradient_descent():
    result = minimize(lambda x: ((x - 1.5) ** 2).sum(), [0.0, 0.0])
    np.testing.assert_allclose(result.x, [1.5, 1.5], atol=1e-7)


def test_barrier_options_are_checked():
    cons = [(lambda x: norm2(x), 1.0)]
    with pytest.raises(ValueError, match="mu must be > 1"):
        minimize(norm2, [0.1, 0.1], constraints=cons, mu=1.0)
    with pytest.raises(ValueError, match="Newton steps"):
        minimize(norm2, [0.1, 0.1], constraints=cons, step=0.1)
    with pytest.raises(ValueError, match="2 \\(lo, hi\\) pair"):
        minimize(norm2, [0.1, 0.1, 0.1], bounds=[(0, 1), (0, 1)])


def test_constraint_from_text():
    f, b = constraint_from_text("x**2 + y**2 <= 1")
    assert b == 1.0 and f.variables == ("x", "y")
    f, b = constraint_from_text("x + 2*y >= 1")  # -> 1 - (x + 2y) <= 0
    assert b == 0.0 and float(f(cr.tensor([1.0, 1.0])).data) == pytest.approx(-2.0)
    f, b = constraint_from_text("x <= y", ("x", "y", "z"))
    assert f.variables == ("x", "y", "z")
    for bad in ("x + y", "x < 1", "x <= 1 <= 2", "x <= ", "x <= __import__('os')"):
        with pytest.raises(ValueError):
            constraint_from_text(bad)
