"""Constrained minimisation: minimise f_0(x) subject to f_c(x) <= b_c, c = 1..m, lo <= x <= hi.

Inequality constraints: the log-barrier (interior-point) method. For t > 0 the barrier problem

    minimise  phi_t(x) = t f_0(x) - sum_c log(b_c - f_c(x))

keeps x strictly feasible (the log goes to -infinity at the boundary). Its minimiser x*(t)
moves along the central path to the solution as t grows: with
lambda_c = 1 / (t (b_c - f_c(x*(t)))) (the estimate of the Lagrange multiplier) the point is
m/t-suboptimal for a convex problem (the duality gap). So: start at a strictly feasible x0,
t = t0; minimise phi_t by Newton's method (exact gradient and Hessian from the engine,
backtracking that never leaves the feasible set), multiply t by mu, until m/t <= tol.

Box bounds alone: projected gradient, x_{t+1} = P(x_t - alpha_t grad f_0(x_t)) with P the
projection onto the box (clipping each coordinate), Armijo backtracking along the projection.
When there are both inequality constraints and bounds, the finite bounds join the barrier as
the linear constraints x_i <= hi_i and -x_i <= -lo_i. Without either, plain gradient descent.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..rules import log
from .descent import _check_iterations, _progress_bar, descend, step_rule
from .objective import Objective, as_bounds, as_point
from .result import History, OptimizeResult

__all__ = ["minimize"]

Constraint = tuple[Callable[[Any], Any], float]
EPS = float(np.finfo(np.float64).eps)


def _constraints(constraints: Any) -> list[Constraint]:
    if constraints is None:
        return []
    try:
        items = list(constraints)
    except TypeError:
        raise TypeError(
            f"constraints must be a list of pairs (f_c, b_c) meaning f_c(x) <= b_c, got "
            f"{constraints!r}"
        ) from None
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(
                f"constraints[{i}] must be a pair (f_c, b_c) meaning f_c(x) <= b_c, got {item!r}"
            )
        fc, bc = item
        if not callable(fc):
            raise TypeError(f"constraints[{i}]: f_c must be callable, got {fc!r}")
        if isinstance(bc, bool) or not isinstance(bc, numbers.Real) or not math.isfinite(bc):
            raise ValueError(f"constraints[{i}]: b_c must be a finite number, got {bc!r}")
        out.append((fc, float(bc)))
    return out


def _box_constraints(box: np.ndarray, shape: tuple[int, ...]) -> list[Constraint]:
    """The finite bounds as linear constraints x_i <= hi, -x_i <= -lo (on x flattened)."""
    out: list[Constraint] = []
    for i, (lo, hi) in enumerate(box):
        index = np.unravel_index(i, shape)
        if math.isfinite(hi):
            out.append((_coordinate(index, 1.0), hi))
        if math.isfinite(lo):
            out.append((_coordinate(index, -1.0), -lo))
    return out


def _coordinate(index: tuple[Any, ...], sign: float) -> Callable[[Any], Any]:
    def f(x: Any) -> Any:
        return x[index] if sign > 0 else -x[index]

    return f


def minimize(
    f0: Callable[[Any], Any],
    x0: Any,
    constraints: Sequence[Constraint] | None = None,
    bounds: Sequence[tuple[float | None, float | None]] | None = None,
    tol: float = 1e-8,
    max_iter: int = 10_000,
    step: Any = "backtracking",
    t0: float = 1.0,
    mu: float = 10.0,
    keep_history: bool = True,
    progress: bool = False,
) -> OptimizeResult:
    """Minimise f0(x) subject to f_c(x) <= b_c for each (f_c, b_c) and lo <= x <= hi.

    ``constraints``: pairs (f_c, b_c), each f_c a function of the Tensor x returning a scalar;
    x0 must be strictly feasible (f_c(x0) < b_c), else ValueError. ``bounds``: n pairs
    (lo, hi) (None for no bound). ``tol``: the duality gap m/t at which the barrier method
    stops, or the projected-gradient tolerance. ``info``: ``multipliers`` lambda_c,
    ``duality_gap``, ``t``, ``slacks`` b_c - f_c(x). ``history`` holds every Newton iterate.
    """
    x = as_point(x0)
    max_iter, tol = _check_iterations(max_iter, tol)
    cons = _constraints(constraints)
    obj = Objective(f0, x, "f0")
    box = None if bounds is None else as_bounds(bounds, x.size, finite=False)
    if not cons:
        rule = step_rule(step)
        if box is None:
            return descend(obj, x, rule, max_iter, tol, None, keep_history, progress)
        lo, hi = box[:, 0].reshape(x.shape), box[:, 1].reshape(x.shape)
        return descend(
            obj,
            x,
            rule,
            max_iter,
            tol,
            None,
            keep_history,
            progress,
            project=lambda z: np.clip(z, lo, hi),
            method="projected gradient",
        )
    if step != "backtracking":
        raise ValueError(
            "step= applies to (projected) gradient descent; with constraints the barrier "
            "method takes Newton steps"
        )
    if box is not None:
        cons = cons + _box_constraints(box, x.shape)
    for name, value in (("t0", t0), ("mu", mu)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not mu > 1:
        raise ValueError(f"mu must be > 1 (the factor by which t grows), got {mu!r}")
    if not tol > 0:
        raise ValueError("tol must be > 0 for the barrier method (it stops when m/t <= tol)")
    return _barrier(obj, x, cons, tol, max_iter, float(t0), float(mu), keep_history, progress)


def _barrier(
    obj: Objective,
    x: np.ndarray,
    cons: list[Constraint],
    tol: float,
    max_iter: int,
    t0: float,
    mu: float,
    keep_history: bool,
    progress: bool,
) -> OptimizeResult:
    m = len(cons)
    fcs = [Objective(fc, x, f"f_{i + 1}") for i, (fc, _) in enumerate(cons)]
    bs = np.array([bc for _, bc in cons])

    def slacks(z: np.ndarray) -> np.ndarray:
        return bs - np.array([fc.value(z) for fc in fcs])

    s0 = slacks(x)
    bad = np.flatnonzero(~(s0 > 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"x0 = {x.tolist()} is not strictly feasible: constraint {i + 1} has "
            f"f_c(x0) = {bs[i] - s0[i]:.6g} >= b_c = {bs[i]:.6g}. The log-barrier method "
            "must start strictly inside the feasible set (f_c(x0) < b_c for every c)"
        )
    obj.start(x)

    t = t0

    def phi(z: Any) -> Any:
        value = t * obj.f(z)
        for fc, bc in cons:
            value = value - log(bc - fc(z))
        return value

    barrier = Objective(phi, x, "the barrier function")
    history = History(keep_history)
    history.add(x, obj.value(x), math.nan)
    outer, newton_steps, converged, message = 0, 0, False, ""
    bar = _progress_bar(progress, max_iter, "barrier method")
    with np.errstate(all="ignore"):
        while True:
            steps, centred = _centre(barrier, x, slacks, max_iter - newton_steps, history, obj)
            x = steps[-1] if steps else x
            newton_steps += len(steps)
            if bar is not None:
                bar.update(len(steps))
            outer += 1
            if not centred:
                message = (
                    f"stopped: Newton's method did not centre within max_iter = {max_iter} "
                    f"steps (duality gap m/t = {m / t:.3g})"
                )
                break
            if m / t <= tol:
                converged = True
                message = f"converged: duality gap m/t = {m / t:.3g} <= tol = {tol:g}"
                break
            t *= mu
    if bar is not None:
        bar.close()
    s = slacks(x)
    multipliers = 1.0 / (t * s)
    kkt = _lagrangian_gradient_norm(obj, fcs, multipliers, x)
    return OptimizeResult(
        x=x,
        fun=obj.value(x),
        grad_norm=kkt,
        iterations=newton_steps,
        converged=converged,
        message=message,
        method="log-barrier interior-point method (Newton centring)",
        nfev=obj.nfev + barrier.nfev + sum(fc.nfev for fc in fcs),
        ngev=obj.ngev + barrier.ngev + sum(fc.ngev for fc in fcs),
        nhev=barrier.nhev,
        history=history.arrays(),
        info={
            "multipliers": multipliers,
            "duality_gap": m / t,
            "t": t,
            "slacks": s,
            "outer_iterations": outer,
        },
    )


def _centre(
    barrier: Objective,
    x: np.ndarray,
    slacks: Callable[[np.ndarray], np.ndarray],
    budget: int,
    history: History,
    obj: Objective,
) -> tuple[list[np.ndarray], bool]:
    """Newton's method on phi_t from x (strictly feasible); the iterates and whether it centred.

    Stops when the Newton decrement lambda^2 = g^T H^{-1} g satisfies lambda^2 / 2 <= 1e-10
    (or is below the rounding error of phi_t).
    Where H is not positive definite (a non-convex problem) a multiple of I is added.
    """
    steps: list[np.ndarray] = []
    value, g = barrier.value_and_grad(x)
    for _ in range(max(budget, 0) + 1):
        H = barrier.hessian(x)
        d = -_solve_positive(H, g.reshape(-1)).reshape(x.shape)
        decrement = -float(np.vdot(g, d))
        if decrement / 2 <= 1e-10 or not np.isfinite(decrement):  # phi_t - min phi_t ~ lambda^2/2
            return steps, bool(np.isfinite(decrement))
        if len(steps) >= budget:
            return steps, False
        alpha = 1.0
        while alpha > 1e-16:  # backtracking: stay strictly feasible, then sufficient decrease
            z = x + alpha * d
            if (slacks(z) > 0).all():
                fz = barrier.value(z)
                if fz <= value - 0.25 * alpha * decrement:
                    break
                # for large t the decrease asked for can be below the rounding error of
                # phi_t's values; then the slope along the step decides (approximate Armijo,
                # grad phi(z)^T d <= (2c - 1) g^T d with c = 1/4)
                noise = 10 * EPS * abs(value)
                if abs(fz - value) <= noise and 0.25 * alpha * decrement <= noise:
                    if float(np.vdot(barrier.value_and_grad(z)[1], d)) <= 0.5 * decrement:
                        break
            alpha *= 0.5
        else:
            return steps, False
        x = z
        value, g = barrier.value_and_grad(x)
        steps.append(x)
        history.add(x, obj.value(x), math.nan, alpha)
    return steps, False


def _solve_positive(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """H^{-1} g by Cholesky, shifting H by delta I until it is positive definite."""
    H = 0.5 * (H + H.T)
    scale = max(1.0, float(np.abs(H).max()))
    shift = 0.0
    while True:
        try:
            L = np.linalg.cholesky(H + shift * np.eye(len(H)))
            return np.linalg.solve(L.T, np.linalg.solve(L, g))
        except np.linalg.LinAlgError:
            shift = max(2 * shift, 1e-10 * scale)
            if shift > 1e10 * scale:
                raise ValueError("the barrier Hessian is not finite or not usable") from None


def _lagrangian_gradient_norm(
    obj: Objective, fcs: list[Objective], multipliers: np.ndarray, x: np.ndarray
) -> float:
    """||grad f_0(x) + sum_c lambda_c grad f_c(x)||: the KKT stationarity residual."""
    g = obj.value_and_grad(x)[1]
    for lam, fc in zip(multipliers, fcs, strict=True):
        g = g + lam * fc.value_and_grad(x)[1]
    return float(np.linalg.norm(g))
