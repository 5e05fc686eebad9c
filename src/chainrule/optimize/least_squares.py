"""Least squares: minimise e(x) = (Ax - y)^T (Ax - y) in closed form and by gradient descent.

The gradient is grad e(x) = 2 A^T (Ax - y); setting it to zero gives the normal equations

    A^T A x = A^T y,      x = (A^T A)^{-1} A^T y      (A: m x n, m >= n, full column rank)

and for a square invertible A simply x = A^{-1} y. Neither inverse is formed: A^T A is
symmetric positive definite, so it is factored by Cholesky, A^T A = L L^T, and two triangular
solves give x; a square A is solved by LU (``numpy.linalg.solve``).

The normal equations square the condition number: cond(A^T A) = cond(A)^2, so about
log10(cond(A)^2) of the 16 digits of float64 are lost. For a badly conditioned A the QR route
(A = QR, R x = Q^T y, error ~ cond(A)) and the SVD route (A = U S V^T, x = V S^+ U^T y, the
minimum-norm solution, also for rank-deficient or wide A) are offered as ``method="qr"`` and
``method="svd"``. Both start from Householder QR of [A | y], which gives R and Q^T y without
forming Q; the SVD route then needs only the SVD of the n x n matrix R.

Gradient descent on the same e: x_{t+1} = x_t - alpha 2 A^T (A x_t - y). The gradient of e is
Lipschitz with L = 2 lambda_max(A^T A), so the default step is alpha = 1 / L, and the error
shrinks by at least (1 - lambda_min / lambda_max) per step.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .descent import gradient_descent
from .objective import as_point
from .result import OptimizeResult

__all__ = ["lstsq", "least_squares_gd", "ConditionWarning", "EPS"]

EPS = float(np.finfo(np.float64).eps)
# warn when the normal equations keep fewer than ~6 correct digits: cond(A^T A) > 1e10
WARN_COND_GRAM = 1e10


class ConditionWarning(RuntimeWarning):
    """A's condition number is so large that the chosen route loses many digits."""


def _system(A: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    A = as_point(A, "A")
    y = as_point(y, "y")
    if A.ndim != 2:
        raise ValueError(f"A must be a matrix (m x n), got shape {A.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != A.shape[0]:
        raise ValueError(
            f"y must have shape (m,) or (m, k) with m = {A.shape[0]} rows like A "
            f"(shape {A.shape}), got shape {y.shape}"
        )
    return A, y


def _result(
    A: np.ndarray, y: np.ndarray, x: np.ndarray, method: str, **info: Any
) -> OptimizeResult:
    r = A @ x - y
    g = 2.0 * A.T @ r
    return OptimizeResult(
        x=x,
        fun=float(np.vdot(r, r)),
        grad_norm=float(np.linalg.norm(g)),
        iterations=0,
        converged=True,
        message=f"solved in closed form: {method}",
        method=f"least squares ({info['route']})",
        info=info,
    )


def _singular(what: str, cond: float, suggestion: str) -> np.linalg.LinAlgError:
    return np.linalg.LinAlgError(
        f"{what} is singular to working precision (condition number {cond:.3g} >= "
        f"1/eps = {1 / EPS:.3g}): {suggestion}"
    )


def lstsq(A: Any, y: Any, method: str = "normal", rcond: float | None = None) -> OptimizeResult:
    """The x minimising ||Ax - y||^2; ``.x`` has shape (n,) or (n, k) for y (m,) or (m, k).

    ``method="normal"`` (default): the normal equations A^T A x = A^T y by Cholesky (m > n),
    or A x = y by LU (m = n). ``"qr"``: R x = Q^T y. ``"svd"``: the minimum-norm solution,
    singular values below ``rcond * s_max`` (default eps * max(m, n)) treated as zero.
    ``info`` holds ``cond`` (of A), ``rank`` and the route taken. A rank-deficient A raises
    ``numpy.linalg.LinAlgError`` (a ValueError) for "normal" and "qr" naming the condition
    number; a badly conditioned one gives a ConditionWarning.
    """
    A, y = _system(A, y)
    m, n = A.shape
    if method == "normal":
        return _normal(A, y)
    if method == "qr":
        return _qr(A, y)
    if method == "svd":
        return _svd(A, y, rcond)
    raise ValueError(f"unknown method {method!r}: use 'normal', 'qr' or 'svd'")


def _normal(A: np.ndarray, y: np.ndarray) -> OptimizeResult:
    m, n = A.shape
    if m < n:
        raise np.linalg.LinAlgError(
            f"A has fewer rows than columns ({m} x {n}): A^T A (n x n) has rank <= {m} < {n} "
            "and the least-squares solution is not unique; use method='svd' for the "
            "minimum-norm solution"
        )
    if m == n:
        cond = float(np.linalg.cond(A))
        if not cond < 1 / EPS:
            raise _singular("the square matrix A", cond, "use method='svd' (minimum norm)")
        if cond**2 > WARN_COND_GRAM:
            warnings.warn(
                f"A is badly conditioned (cond(A) = {cond:.3g}): expect a relative error of "
                f"about {cond * EPS:.1g} in x",
                ConditionWarning,
                stacklevel=3,
            )
        x = np.linalg.solve(A, y)
        return _result(A, y, x, "x = A^{-1} y by LU", route="solve", cond=cond, rank=n)
    gram = A.T @ A
    eigenvalues = np.linalg.eigvalsh(gram)  # cheap (n x n) next to forming A^T A (m n^2)
    lam_min, lam_max = float(eigenvalues[0]), float(eigenvalues[-1])
    cond_gram = lam_max / lam_min if lam_min > 0 else np.inf
    cond = float(np.sqrt(cond_gram))
    if lam_max == 0 or not cond_gram < 1 / EPS:
        raise _singular(
            f"A^T A (cond(A^T A) = cond(A)^2 = {cond_gram:.3g}, cond(A) = {cond:.3g})",
            cond_gram,
            "A is rank-deficient or too badly conditioned for the normal equations; use "
            "method='qr' (full column rank) or method='svd' (rank-deficient, minimum norm)",
        )
    if cond_gram > WARN_COND_GRAM:
        warnings.warn(
            f"A is badly conditioned (cond(A) = {cond:.3g}, so cond(A^T A) = {cond_gram:.3g}): "
            f"the normal equations lose about {np.log10(cond_gram):.0f} of 16 digits; "
            "method='qr' or method='svd' is more accurate",
            ConditionWarning,
            stacklevel=3,
        )
    try:
        L = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        raise _singular("A^T A", cond_gram, "use method='qr' or method='svd'") from None
    z = np.linalg.solve(L, A.T @ y)  # L z = A^T y
    x = np.linalg.solve(L.T, z)  # L^T x = z
    return _result(
        A, y, x, "normal equations A^T A x = A^T y by Cholesky", route="normal", cond=cond, rank=n
    )


def _triangular(A: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R (n x n) and c = Q^T y of A = QR (m >= n), without forming Q.

    Householder QR of the augmented matrix [A | y] applies the same reflections to y that
    turn A into R, so its last column(s) hold Q^T y.
    """
    n = A.shape[1]
    R = np.asarray(np.linalg.qr(np.column_stack([A, y]), mode="r"))
    return R[:n, :n], R[:n, n:] if y.ndim == 2 else R[:n, n]


def _qr(A: np.ndarray, y: np.ndarray) -> OptimizeResult:
    m, n = A.shape
    if m < n:
        raise np.linalg.LinAlgError(
            f"A has fewer rows than columns ({m} x {n}): R would be singular; use "
            "method='svd' for the minimum-norm solution"
        )
    R, c = _triangular(A, y)
    cond = float(np.linalg.cond(R))  # cond(R) = cond(A)
    if not cond < 1 / EPS:
        raise _singular(
            f"R of A = QR (cond(A) = {cond:.3g})",
            cond,
            "A is rank-deficient; use method='svd' (minimum-norm solution)",
        )
    if cond > WARN_COND_GRAM:
        warnings.warn(
            f"A is badly conditioned (cond(A) = {cond:.3g}): expect a relative error of "
            f"about {cond * EPS:.1g} in x",
            ConditionWarning,
            stacklevel=3,
        )
    x = np.linalg.solve(R, c)  # R x = Q^T y
    return _result(A, y, x, "R x = Q^T y (A = QR)", route="qr", cond=cond, rank=n)


def _svd(A: np.ndarray, y: np.ndarray, rcond: float | None) -> OptimizeResult:
    m, n = A.shape
    if m > n:  # A = QR and (QR)^+ = R^+ Q^T: the SVD of the small R is enough
        B, c = _triangular(A, y)
    else:
        B, c = A, y
    U, s, Vt = np.linalg.svd(B, full_matrices=False)  # s: the singular values of A
    if rcond is None:
        rcond = EPS * max(m, n)
    keep = s > rcond * (s[0] if s.size else 0.0)
    rank = int(keep.sum())
    cond = float(s[0] / s[-1]) if s.size and s[-1] > 0 else float("inf")
    coefficients = (U[:, keep].T @ c) / (s[keep][:, None] if y.ndim == 2 else s[keep])
    x = Vt[keep].T @ coefficients
    return _result(
        A,
        y,
        x,
        f"x = V S^+ U^T y (rank {rank} of {min(m, n)}, minimum norm)",
        route="svd",
        cond=cond,
        rank=rank,
        singular_values=s,
    )


def least_squares_gd(
    A: Any,
    y: Any,
    x0: Any = None,
    step: Any = None,
    max_iter: int = 10_000,
    tol: float = 1e-6,
    **kwargs: Any,
) -> OptimizeResult:
    """Minimise ||Ax - y||^2 by gradient descent x_{t+1} = x_t - alpha 2 A^T (A x_t - y).

    The gradient comes from the engine (it equals 2 A^T (Ax - y)). Default ``step``: the
    constant 1 / L with L = 2 lambda_max(A^T A); any other ``step=`` of
    :func:`gradient_descent` works too. ``x0`` defaults to zeros of shape (n,) or (n, k).
    ``info`` holds lambda_min, lambda_max of A^T A and the step used.
    """
    A, y = _system(A, y)
    eigenvalues = np.linalg.eigvalsh(A.T @ A)
    lam_min, lam_max = float(eigenvalues[0]), float(eigenvalues[-1])
    if lam_max == 0:
        raise ValueError("A is the zero matrix: every x is a least-squares solution")
    if step is None:
        step = 1.0 / (2.0 * lam_max)
    x_start = np.zeros((A.shape[1],) + y.shape[1:]) if x0 is None else as_point(x0)
    if x_start.shape != (A.shape[1],) + y.shape[1:]:
        raise ValueError(
            f"x0 must have shape {(A.shape[1],) + y.shape[1:]} for A {A.shape} and "
            f"y {y.shape}, got {x_start.shape}"
        )

    def error(x: Any) -> Any:
        r = A @ x - y
        return (r * r).sum()

    result = gradient_descent(error, x_start, step=step, max_iter=max_iter, tol=tol, **kwargs)
    result.method = "least squares by " + result.method
    result.info.update(lambda_min=lam_min, lambda_max=lam_max, step=step)
    return result
