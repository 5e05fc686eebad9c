"""Least squares in closed form (normal equations, QR, SVD) and by gradient descent.

Oracle: numpy.linalg.lstsq (LAPACK gelsd, an SVD route that shares no code with ours).
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.optimize import ConditionWarning, least_squares_gd, lstsq


def _problem(rng, m=40, n=5, k=None):
    A = rng.standard_normal((m, n))
    y = rng.standard_normal((m,) if k is None else (m, k))
    return A, y


@pytest.mark.parametrize("method", ["normal", "qr", "svd"])
@pytest.mark.parametrize("shape", [(40, 5), (200, 30), (6, 6)])
def test_lstsq_matches_numpy(rng, method, shape):
    A, y = _problem(rng, *shape)
    result = lstsq(A, y, method=method)
    expected = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(result.x, expected, rtol=1e-9, atol=1e-11)
    r = A @ result.x - y
    assert result.fun == pytest.approx(r @ r, rel=1e-12)
    # at the minimiser the gradient 2 A^T (Ax - y) vanishes (the normal equations)
    assert result.grad_norm < 1e-9 * (1 + np.linalg.norm(A.T @ y))
    assert result.converged and result.iterations == 0
    assert result.info["rank"] == shape[1]
    assert result.info["cond"] == pytest.approx(np.linalg.cond(A), rel=1e-6)


def test_lstsq_several_right_hand_sides(rng):
    A, Y = _problem(rng, 30, 4, k=3)
    for method in ("normal", "qr", "svd"):
        x = lstsq(A, Y, method=method).x
        assert x.shape == (4, 3)
        np.testing.assert_allclose(x, np.linalg.lstsq(A, Y, rcond=None)[0], rtol=1e-9, atol=1e-12)


def test_square_invertible_is_solved_exactly(rng):
    A = rng.standard_normal((5, 5)) + 5 * np.eye(5)
    x_true = rng.standard_normal(5)
    result = lstsq(A, A @ x_true)
    np.testing.assert_allclose(result.x, x_true, rtol=1e-12)
    assert result.info["route"] == "solve"
    assert result.fun < 1e-24


def test_exact_fit_recovers_coefficients(rng):
    # a polynomial fit y = 1 - 2 t + 0.5 t^2 without noise: the closed form is exact
    t = np.linspace(-1, 2, 25)
    A = np.stack([np.ones_like(t), t, t**2], axis=1)
    result = lstsq(A, 1 - 2 * t + 0.5 * t**2)
    np.testing.assert_allclose(result.x, [1.0, -2.0, 0.5], atol=1e-12)


@pytest.mark.parametrize("method", ["normal", "qr"])
def test_rank_deficient_is_refused_naming_condition_and_svd(rng, method):
    A = rng.standard_normal((20, 3))
    A = np.column_stack([A, A[:, 0] + A[:, 1]])  # column 3 = column 0 + column 1
    with pytest.raises(np.linalg.LinAlgError) as info:
        lstsq(A, rng.standard_normal(20), method=method)
    message = str(info.value)
    assert "condition number" in message and "svd" in message
    assert isinstance(info.value, ValueError)  # so the CLI prints it as one line


def test_singular_square_is_refused(rng):
    A = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match="singular.*condition number.*svd"):
        lstsq(A, [1.0, 2.0])


def test_svd_handles_rank_deficient_with_minimum_norm(rng):
    A = rng.standard_normal((20, 3))
    A = np.column_stack([A, A[:, 0] - A[:, 2]])
    y = rng.standard_normal(20)
    result = lstsq(A, y, method="svd")
    np.testing.assert_allclose(result.x, np.linalg.lstsq(A, y, rcond=None)[0], atol=1e-10)
    assert result.info["rank"] == 3
    np.testing.assert_allclose(result.x, np.linalg.pinv(A) @ y, atol=1e-10)


def test_underdetermined_needs_svd(rng):
    A, y = rng.standard_normal((3, 6)), rng.standard_normal(3)
    with pytest.raises(ValueError, match="fewer rows than columns.*svd"):
        lstsq(A, y)
    x = lstsq(A, y, method="svd").x
    np.testing.assert_allclose(A @ x, y, atol=1e-12)  # fits exactly, with the least norm
    np.testing.assert_allclose(x, np.linalg.lstsq(A, y, rcond=None)[0], atol=1e-12)


def test_badly_conditioned_warns_and_names_condition_number(rng):
    U, _ = np.linalg.qr(rng.standard_normal((50, 4)))
    V, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    A = U @ np.diag([1.0, 1e-2, 1e-4, 1e-6]) @ V.T  # cond(A) = 1e6, cond(A^T A) = 1e12
    y = rng.standard_normal(50)
    with pytest.warns(ConditionWarning, match=r"cond\(A\) = 1e\+06.*qr"):
        x_normal = lstsq(A, y).x
    x_qr = lstsq(A, y, method="qr").x  # cond 1e6 < the warning level of the QR route
    expected = np.linalg.lstsq(A, y, rcond=None)[0]
    # the QR route is far more accurate than the normal equations here
    err_qr = np.linalg.norm(x_qr - expected) / np.linalg.norm(expected)
    err_normal = np.linalg.norm(x_normal - expected) / np.linalg.norm(expected)
    assert err_qr < 1e-8
    assert err_qr < err_normal


@pytest.mark.parametrize(
    ("A", "y", "match"),
    [
        (np.ones(3), np.ones(3), "A must be a matrix"),
        (np.ones((3, 2)), np.ones(4), "y must have shape"),
        (np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]]), np.ones(3), "non-finite"),
        (np.eye(3), np.array([1.0, np.inf, 0.0]), "y has a non-finite"),
        (np.eye(2), np.ones(2), "unknown method"),
    ],
)
def test_bad_input_is_refused_clearly(A, y, match):
    with pytest.raises(ValueError, match=match):
        lstsq(A, y, method="cholesky" if match == "unknown method" else "normal")


def test_gradient_descent_reaches_the_closed_form(rng):
    A, y = _problem(rng, 60, 6)
    exact = lstsq(A, y).x
    result = least_squares_gd(A, y, tol=1e-10)
    assert result.converged
    np.testing.assert_allclose(result.x, exact, rtol=1e-8, atol=1e-10)
    lam = np.linalg.eigvalsh(A.T @ A)
    assert result.info["step"] == pytest.approx(1 / (2 * lam[-1]))
    # the error shrinks at least by (1 - lambda_min/lambda_max) per step
    errors = np.linalg.norm(result.history["x"] - exact, axis=1)
    rate = 1 - lam[0] / lam[-1]
    assert np.all(errors[1:] <= rate * errors[:-1] * (1 + 1e-6) + 1e-12)


def test_gradient_descent_step_is_the_lecture_formula(rng):
    # x_1 = x_0 - alpha 2 A^T (A x_0 - y): the engine's gradient is 2 A^T (Ax - y)
    A, y = _problem(rng, 10, 3)
    x0 = rng.standard_normal(3)
    result = least_squares_gd(A, y, x0=x0, step=0.01, max_iter=1)
    np.testing.assert_allclose(result.x, x0 - 0.01 * 2 * A.T @ (A @ x0 - y), rtol=1e-13)
    g = cr.grad(lambda x: ((A @ x - y) ** 2).sum())(x0)
    np.testing.assert_allclose(g, 2 * A.T @ (A @ x0 - y), rtol=1e-13)


def test_gradient_descent_several_right_hand_sides(rng):
    A, Y = _problem(rng, 30, 3, k=2)
    result = least_squares_gd(A, Y, tol=1e-10)
    np.testing.assert_allclose(result.x, lstsq(A, Y).x, rtol=1e-8, atol=1e-10)


def test_gradient_descent_too_large_step_diverges_with_a_message(rng):
    A, y = _problem(rng, 30, 3)
    lam_max = np.linalg.eigvalsh(A.T @ A)[-1]
    result = least_squares_gd(A, y, step=1.5 / lam_max, max_iter=5000)  # > 2/L = 1/lam_max
    assert not result.converged
    assert "diverged" in result.message and "smaller step" in result.message


def test_gradient_descent_bad_x0_shape(rng):
    A, y = _problem(rng, 10, 3)
    with pytest.raises(ValueError, match=r"x0 must have shape \(3,\)"):
        least_squares_gd(A, y, x0=np.zeros(4))
    with pytest.raises(ValueError, match="zero matrix"):
        least_squares_gd(np.zeros((4, 2)), np.ones(4))
