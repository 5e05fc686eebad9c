"""Gradient descent with each step-size rule, against closed forms and scipy.optimize."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize

import chainrule as cr
from chainrule.optimize import (
    Backtracking,
    Constant,
    Diminishing,
    ExactLineSearch,
    OptimizeResult,
    from_expression,
    gradient_descent,
    step_rule,
)

Q = np.array([[3.0, 1.0], [1.0, 2.0]])
B = np.array([1.0, -2.0])
X_STAR = np.linalg.solve(Q, -B)  # minimiser of x^T Q x / 2 + b^T x


def quadratic(x):
    return 0.5 * (x * (Q @ x)).sum() + (B * x).sum()


@pytest.mark.parametrize(
    "step", [0.2, "backtracking", "exact", Diminishing(0.3), Backtracking(alpha0=2.0, c=0.3)]
)
def test_quadratic_minimiser_closed_form(step):
    result = gradient_descent(quadratic, [4.0, -3.0], step=step, tol=1e-10, max_iter=100_000)
    assert isinstance(result, OptimizeResult)
    assert result.converged, result.message
    np.testing.assert_allclose(result.x, X_STAR, atol=1e-9)
    assert result.fun == pytest.approx(0.5 * B @ X_STAR, abs=1e-12)  # -b^T Q^-1 b / 2
    assert result.grad_norm <= 1e-10
    h = result.history
    assert h["x"].shape == (result.iterations + 1, 2)
    assert h["fun"].shape == h["grad_norm"].shape == (result.iterations + 1,)
    assert h["step"].shape == (result.iterations,)
    np.testing.assert_allclose(h["x"][-1], result.x)


def test_descent_methods_decrease_f_monotonically():
    for step in ("backtracking", "exact", 0.2):
        fun = gradient_descent(quadratic, [4.0, -3.0], step=step, tol=1e-8).history["fun"]
        assert np.all(np.diff(fun) <= 1e-15)


def test_constant_step_is_the_update_formula():
    x0 = np.array([4.0, -3.0])
    r = gradient_descent(quadratic, x0, step=0.1, max_iter=1, tol=0)
    np.testing.assert_allclose(r.x, x0 - 0.1 * (Q @ x0 + B), rtol=1e-14)
    assert not r.converged and "max_iter = 1" in r.message
    assert r.iterations == 1 and r.ngev == 2


def test_diminishing_steps_follow_alpha0_over_sqrt_t():
    r = gradient_descent(quadratic, [4.0, -3.0], step="diminishing", max_iter=50, tol=0)
    t = np.arange(50)
    np.testing.assert_allclose(r.history["step"], 0.1 / np.sqrt(t + 1))


def test_exact_line_search_minimises_along_the_gradient():
    r = gradient_descent(quadratic, [4.0, -3.0], step="exact", max_iter=1, tol=0)
    x0 = np.array([4.0, -3.0])
    g = Q @ x0 + B
    alpha = g @ g / (g @ Q @ g)  # closed form for a quadratic
    assert r.history["step"][0] == pytest.approx(alpha, rel=1e-12)
    # successive gradients are orthogonal under exact line search
    g1 = Q @ r.x + B
    assert abs(g1 @ g) < 1e-10 * (g @ g)


def test_exact_line_search_on_isotropic_quadratic_takes_one_step():
    r = gradient_descent(
        lambda x: ((x - 3.0) ** 2).sum(), [0.0, 1.0, -2.0], step="exact", tol=1e-12
    )
    assert r.converged and r.iterations == 1
    np.testing.assert_allclose(r.x, 3.0)


def test_exact_refuses_non_quadratic_and_negative_curvature():
    with pytest.raises(ValueError, match="not quadratic along the gradient"):
        gradient_descent(lambda x: (x**4).sum(), [1.0, 2.0], step="exact")
    with pytest.raises(ValueError, match="positive curvature"):
        gradient_descent(lambda x: -(x * x).sum(), [1.0, 2.0], step="exact")


def test_armijo_condition_holds_at_every_accepted_step():
    f = from_expression("(1-x)**2 + 100*(y-x**2)**2")
    r = gradient_descent(f, [-1.2, 1.0], step=Backtracking(c=1e-4), max_iter=300, tol=0)
    xs, fs, steps = r.history["x"], r.history["fun"], r.history["step"]
    grads = np.array([cr.grad(f)(x) for x in xs[:-1]])
    decrease = 1e-4 * steps * (grads**2).sum(axis=1)
    assert np.all(fs[1:] <= fs[:-1] - decrease + 1e-12)
    # and the trials are counted: at least one function value per iteration
    assert r.nfev >= 2 * r.iterations


def test_rosenbrock_backtracking_reaches_one_one_like_scipy():
    f = from_expression("(1-x)**2 + 100*(y-x**2)**2")
    r = gradient_descent(f, [-1.2, 1.0], step="backtracking", max_iter=50_000, tol=1e-6)
    assert r.converged, r.message
    np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-5)
    oracle = scipy.optimize.minimize(
        scipy.optimize.rosen, [-1.2, 1.0], jac=scipy.optimize.rosen_der, method="CG"
    )
    np.testing.assert_allclose(r.x, oracle.x, atol=1e-5)
    assert r.fun == pytest.approx(scipy.optimize.rosen(r.x), abs=1e-15)


def test_gradients_agree_with_scipy_rosen_der(rng):
    f = from_expression("(1-x)**2 + 100*(y-x**2)**2")
    for x in rng.uniform(-2, 2, size=(5, 2)):
        np.testing.assert_allclose(cr.grad(f)(x), scipy.optimize.rosen_der(x), rtol=1e-13)


def test_any_shape_of_x():
    target = np.arange(6.0).reshape(2, 3)
    r = gradient_descent(lambda X: ((X - target) ** 2).sum(), np.zeros((2, 3)), tol=1e-10)
    assert r.x.shape == (2, 3)
    np.testing.assert_allclose(r.x, target, atol=1e-10)
    r = gradient_descent(lambda x: (x - 2.0) ** 2 + 1.0, 0.0, tol=1e-10)
    assert r.x.shape == () and float(r.x) == pytest.approx(2.0)


def test_constant_step_too_large_diverges_with_a_message():
    r = gradient_descent(lambda x: (x * x).sum(), [1.0, 1.0], step=1.5, max_iter=10_000)
    assert not r.converged and not r
    assert "diverged" in r.message and "smaller step" in r.message
    assert math.isfinite(r.fun)  # the last finite iterate is returned


def test_divergence_advice_is_true_for_a_line_search():
    # log is -inf at 0, where Armijo's first trial step lands (x - 1 * 1/x = 0)
    r = gradient_descent(lambda x: cr.log(x).sum(), [1.0], step="backtracking")
    assert not r.converged and "diverged" in r.message and "f = -inf" in r.message
    assert "unbounded below" in r.message and "backtracking" not in r.message.split(":", 1)[1]


def test_divergence_advice_of_the_diminishing_rule_names_alpha0():
    r = gradient_descent(lambda x: (x**4).sum(), [3.0], step=Diminishing(5.0), max_iter=100)
    assert "diverged" in r.message and "smaller alpha0 or step='backtracking'" in r.message


@pytest.mark.parametrize("step", [0, -1, "0", "-1", "1e-400", "-inf", "nan"])
def test_a_step_that_is_not_positive_says_it_must_be_positive(step):
    with pytest.raises(ValueError, match=r"the step size must be positive \(a finite number > 0\)"):
        step_rule(step)


def test_max_iter_and_callback():
    seen = []

    def callback(t, x, fx, gn):
        seen.append((t, fx))
        return t == 3

    r = gradient_descent(quadratic, [4.0, -3.0], step=0.01, callback=callback)
    assert "callback" in r.message and r.iterations == 3 and not r.converged
    assert [t for t, _ in seen] == [1, 2, 3]
    r = gradient_descent(quadratic, [4.0, -3.0], step=0.01, max_iter=7)
    assert r.iterations == 7 and "max_iter = 7" in r.message
    r = gradient_descent(quadratic, [4.0, -3.0], keep_history=False)
    assert r.history == {} and r.path.shape == (1, 2)


def test_step_rule_parsing():
    assert isinstance(step_rule(0.5), Constant)
    assert isinstance(step_rule("0.5"), Constant)
    assert isinstance(step_rule("diminishing"), Diminishing)
    assert isinstance(step_rule("Backtracking"), Backtracking)
    assert isinstance(step_rule("exact"), ExactLineSearch)
    with pytest.raises(ValueError, match="unknown step rule 'newton'"):
        step_rule("newton")
    with pytest.raises(ValueError, match="> 0"):
        step_rule(-1.0)
    with pytest.raises(TypeError, match="step must be"):
        step_rule([0.1])
    with pytest.raises(ValueError, match="shrink < 1"):
        Backtracking(shrink=2.0)


@pytest.mark.parametrize(
    ("f", "x0", "error", "match"),
    [
        (lambda x: (x * x).sum(), [1.0, np.nan], ValueError, "x0 has a non-finite entry"),
        (lambda x: (x * x).sum(), [], ValueError, "x0 is empty"),
        (lambda x: (x * x).sum(), ["a", 1], ValueError, "could not convert|x0 must be"),
        (lambda x: x * x, [1.0, 2.0], RuntimeError, "scalar"),
        (lambda x: cr.log(x).sum(), [-1.0, 1.0], ValueError, "not finite at x0"),
        ("x**2", [1.0], TypeError, "must be callable"),
    ],
)
def test_bad_input_is_refused_clearly(f, x0, error, match):
    with pytest.raises((error, TypeError), match=match):
        gradient_descent(f, x0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_iter"):
        gradient_descent(quadratic, [1.0, 1.0], max_iter=-1)
    with pytest.raises(ValueError, match="tol"):
        gradient_descent(quadratic, [1.0, 1.0], tol=float("nan"))


def test_result_reads_like_scipy():
    r = gradient_descent(quadratic, [4.0, -3.0], step="exact", tol=1e-10)
    assert r.success is r.converged and r.nit == r.iterations
    text = str(r)
    assert "converged" in text and "iterations" in text and "gradients" in text
    assert "OptimizeResult(x=" in repr(r)
