"""Gradient descent and its step-size rules.

The method of the lecture: walk against the gradient,

    x_{t+1} = x_t - alpha_t grad f(x_t),

until ||grad f(x_t)|| <= tol (a critical point). The gradient comes from the engine, exactly.
The step size alpha_t is chosen by a rule:

    constant       alpha_t = alpha                       (converges for alpha < 2/L when grad f
                                                          is L-Lipschitz)
    diminishing    alpha_t = alpha_0 / sqrt(t + 1)
    backtracking   Armijo line search: the first alpha in alpha_try, alpha_try/2, ... with
                   f(x_t - alpha g) <= f(x_t) - c alpha ||g||^2          (sufficient decrease)
                   where alpha_try = min(alpha_0, alpha_{t-1} ||g_{t-1}||^2 / ||g_t||^2);
                   where that decrease is below the rounding error of f's values, the
                   slopes decide instead: grad f(x+)^T d <= (2c - 1) g^T d (Hager-Zhang)
    exact          exact line search for a quadratic f(x) = x^T Q x / 2 + b^T x + c:
                   alpha_t = g^T g / g^T H g  minimises f(x_t - alpha g) over alpha
                   (H g is a Hessian-vector product from the engine)

With a projection P onto a box (projected gradient, used by :func:`minimize` for bounds) the
step is x_{t+1} = P(x_t - alpha_t g), the sufficient-decrease test becomes
f(x+) <= f(x) + c g^T (x+ - x), and optimality is measured by ||x - P(x - g)||.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from .objective import Objective, as_point
from .result import History, OptimizeResult

__all__ = [
    "gradient_descent",
    "StepRule",
    "Constant",
    "Diminishing",
    "Backtracking",
    "ExactLineSearch",
    "step_rule",
]

Projection = Callable[[np.ndarray], np.ndarray]
EPS = float(np.finfo(np.float64).eps)


class StepRule:
    """Chooses alpha_t; ``step`` returns (alpha_t, x_{t+1}), or the reason when it fails."""

    name = "step rule"

    def step(
        self,
        obj: Objective,
        t: int,
        x: np.ndarray,
        fx: float,
        g: np.ndarray,
        project: Projection | None,
    ) -> tuple[float, np.ndarray] | str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name


def _move(x: np.ndarray, alpha: float, g: np.ndarray, project: Projection | None) -> np.ndarray:
    x_new = x - alpha * g
    return project(x_new) if project is not None else x_new


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and float(value) > 0):
        raise ValueError(f"{name} must be positive (a finite number > 0), got {value!r}")
    return float(value)


class Constant(StepRule):
    """alpha_t = alpha."""

    def __init__(self, alpha: float) -> None:
        self.alpha = _positive(alpha, "the step size")
        self.name = f"constant (alpha = {self.alpha:g})"

    def step(self, obj, t, x, fx, g, project):  # type: ignore[no-untyped-def]
        return self.alpha, _move(x, self.alpha, g, project)


class Diminishing(StepRule):
    """alpha_t = alpha_0 / sqrt(t + 1)."""

    def __init__(self, alpha0: float = 0.1) -> None:
        self.alpha0 = _positive(alpha0, "alpha0")
        self.name = f"diminishing (alpha_t = {self.alpha0:g} / sqrt(t + 1))"

    def step(self, obj, t, x, fx, g, project):  # type: ignore[no-untyped-def]
        alpha = self.alpha0 / math.sqrt(t + 1)
        return alpha, _move(x, alpha, g, project)


class Backtracking(StepRule):
    """Armijo: the first alpha in alpha_try * shrink^k with f(x+) <= f(x) + c g^T (x+ - x).

    alpha_try = min(alpha0, alpha_{t-1} ||g_{t-1}||^2 / ||g_t||^2): the first trial expects
    the same first-order decrease as the last step achieved (Nocedal & Wright, eq. 3.60),
    which saves most of the trial evaluations of restarting at alpha0 every time.
    """

    def __init__(self, alpha0: float = 1.0, shrink: float = 0.5, c: float = 1e-4) -> None:
        self.alpha0 = _positive(alpha0, "alpha0")
        self.shrink = _positive(shrink, "shrink")
        self.c = _positive(c, "c")
        if not (self.shrink < 1 and self.c < 1):
            raise ValueError("backtracking needs 0 < shrink < 1 and 0 < c < 1")
        self.name = f"backtracking (Armijo, c = {self.c:g}, shrink = {self.shrink:g})"
        self._last = (self.alpha0, 0.0)  # (alpha_{t-1}, ||g_{t-1}||^2)

    def step(self, obj, t, x, fx, g, project):  # type: ignore[no-untyped-def]
        gg = float(np.vdot(g, g))
        alpha = self.alpha0
        if t > 0 and gg > 0:
            alpha = min(self.alpha0, self._last[0] * self._last[1] / gg)
        while alpha > 1e-20:
            x_new = _move(x, alpha, g, project)
            decrease = float(np.vdot(g, x_new - x))  # -alpha ||g||^2 without a projection
            if not decrease < 0:
                return (
                    "the step no longer changes x (x - alpha g rounds to x): f cannot be "
                    "decreased further in float64"
                )
            f_new = obj.value(x_new)
            if f_new <= fx + self.c * decrease:  # False for NaN: shrink past it
                self._last = (alpha, gg)
                return alpha, x_new
            if self._flat(fx, f_new, decrease) and self._slope_ok(obj, x, x_new, decrease):
                self._last = (alpha, gg)
                return alpha, x_new
            alpha *= self.shrink
        return (
            "the line search found no step with sufficient decrease (alpha < 1e-20): the "
            "gradient is probably inaccurate or f is not differentiable here"
        )

    def _flat(self, fx: float, f_new: float, decrease: float) -> bool:
        """Whether the decrease asked for is below the rounding error of f's values."""
        noise = 10 * EPS * abs(fx)
        return abs(f_new - fx) <= noise and self.c * -decrease <= noise

    def _slope_ok(self, obj: Objective, x: np.ndarray, x_new: np.ndarray, decrease: float) -> bool:
        """Approximate Armijo (Hager & Zhang): phi'(1) <= (2c - 1) phi'(0) along d = x_new - x.

        For a quadratic along the line it is the Armijo condition itself, but it compares
        slopes, which stay accurate where differences of f's values are rounding noise.
        """
        _, g_new = obj.value_and_grad(x_new)
        return float(np.vdot(g_new, x_new - x)) <= (2 * self.c - 1) * decrease


class ExactLineSearch(StepRule):
    """alpha_t = g^T g / g^T H g: exact for quadratic f; refuses f that is not quadratic."""

    name = "exact line search (quadratic f)"

    def step(self, obj, t, x, fx, g, project):  # type: ignore[no-untyped-def]
        if project is not None:
            raise ValueError("step='exact' cannot be combined with bounds; use 'backtracking'")
        gg = float(np.vdot(g, g))
        curvature = float(np.vdot(g, obj.hvp(x, g)))
        if not curvature > 0:
            raise ValueError(
                f"step='exact' needs positive curvature along the gradient, but g^T H g = "
                f"{curvature:.6g} at iteration {t}: f is not a convex quadratic there; "
                "use step='backtracking'"
            )
        alpha = gg / curvature
        x_new = x - alpha * g
        # along the line, a quadratic is its second-order Taylor polynomial exactly
        predicted = fx - alpha * gg + 0.5 * alpha**2 * curvature
        actual = obj.value(x_new)
        if abs(actual - predicted) > 1e-6 * (abs(fx) + alpha * gg + 1e-12):
            raise ValueError(
                f"step='exact' is the exact line search for quadratic functions, but f is not "
                f"quadratic along the gradient at iteration {t} (the quadratic model predicts "
                f"f = {predicted:.6g}, the function gives {actual:.6g}); use step='backtracking'"
            )
        return alpha, x_new


def step_rule(step: Any) -> StepRule:
    """The StepRule for ``step=``: a number (constant), 'diminishing', 'backtracking', 'exact'."""
    if isinstance(step, StepRule):
        return step
    if isinstance(step, str):
        rules: dict[str, Callable[[], StepRule]] = {
            "diminishing": Diminishing,
            "backtracking": Backtracking,
            "armijo": Backtracking,
            "exact": ExactLineSearch,
        }
        if step.lower() in rules:
            return rules[step.lower()]()
        try:
            alpha = float(step)
        except ValueError:
            raise ValueError(
                f"unknown step rule {step!r}: use a number (constant step), 'diminishing', "
                "'backtracking' or 'exact'"
            ) from None
        if not (math.isfinite(alpha) and alpha > 0):  # 1e-400 is 0.0: name the text given
            raise ValueError(f"the step size must be positive (a finite number > 0), got {step!r}")
        return Constant(alpha)
    if isinstance(step, numbers.Real) and not isinstance(step, bool):
        return Constant(float(step))
    raise TypeError(
        f"step must be a number, 'diminishing', 'backtracking', 'exact' or a StepRule, got {step!r}"
    )


def _check_iterations(max_iter: Any, tol: Any) -> tuple[int, float]:
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not float(tol) >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    return int(max_iter), float(tol)


def gradient_descent(
    f: Callable[[Any], Any],
    x0: Any,
    step: Any = "backtracking",
    max_iter: int = 10_000,
    tol: float = 1e-6,
    callback: Callable[[int, np.ndarray, float, float], Any] | None = None,
    keep_history: bool = True,
    progress: bool = False,
) -> OptimizeResult:
    """Minimise f by x_{t+1} = x_t - alpha_t grad f(x_t) from x0 until ||grad f|| <= tol.

    ``f``: a function of a Tensor x (shape of x0) returning a scalar Tensor. ``step``: a number
    (constant), ``"diminishing"``, ``"backtracking"`` (Armijo) or ``"exact"`` (quadratics), or
    a StepRule such as ``Diminishing(0.01)``. ``callback(t, x, f(x), ||grad||)`` runs after
    each step; returning True stops. The result's ``x`` has the shape of x0.
    """
    x = as_point(x0)
    rule = step_rule(step)
    max_iter, tol = _check_iterations(max_iter, tol)
    obj = Objective(f, x)
    return descend(obj, x, rule, max_iter, tol, callback, keep_history, progress)


def descend(
    obj: Objective,
    x: np.ndarray,
    rule: StepRule,
    max_iter: int,
    tol: float,
    callback: Callable[..., Any] | None = None,
    keep_history: bool = True,
    progress: bool = False,
    project: Projection | None = None,
    method: str = "gradient descent",
) -> OptimizeResult:
    """The descent loop shared by gradient descent and projected gradient (``project``)."""
    if project is not None:
        x = project(x)
    fx, g = obj.start(x)

    def optimality(x: np.ndarray, g: np.ndarray) -> float:
        if project is None:
            return float(np.linalg.norm(g))
        return float(np.linalg.norm(x - project(x - g)))  # zero iff x is optimal on the box

    history = History(keep_history)
    measure = optimality(x, g)
    history.add(x, fx, measure)
    bar = _progress_bar(progress, max_iter, method)
    converged, message, t = False, "", 0
    with np.errstate(all="ignore"):  # overflow is detected below and reported, not warned
        while True:
            if measure <= tol:
                converged = True
                what = "||grad f||" if project is None else "||x - P(x - grad f)||"
                message = f"converged: {what} = {measure:.3g} <= tol = {tol:g}"
                break
            if t >= max_iter:
                message = f"stopped after max_iter = {max_iter} iterations: "
                message += f"optimality {measure:.3g} > tol = {tol:g}"
                break
            outcome = rule.step(obj, t, x, fx, g, project)
            if isinstance(outcome, str):
                message = f"stopped at iteration {t}: {outcome}"
                break
            alpha, x_new = outcome
            t += 1
            f_new, g_new = obj.value_and_grad(x_new)
            if not (math.isfinite(f_new) and np.isfinite(g_new).all()):
                message = f"diverged at iteration {t}: {_divergence(rule, alpha, f_new)}"
                break
            x, fx, g = x_new, f_new, g_new
            measure = optimality(x, g)
            history.add(x, fx, measure, alpha)
            if bar is not None:
                bar.update(1)
            if callback is not None and callback(t, x, fx, measure):
                message = f"stopped by the callback at iteration {t}"
                break
    if bar is not None:
        bar.close()
    return OptimizeResult(
        x=x,
        fun=fx,
        grad_norm=measure,
        iterations=t,
        converged=converged,
        message=message,
        method=f"{method}, step: {rule}",
        nfev=obj.nfev,
        ngev=obj.ngev,
        nhev=obj.nhev,
        history=history.arrays(),
    )


def _divergence(rule: StepRule, alpha: float, f_new: float) -> str:
    """Why the step to a point with non-finite f or gradient happened, and what helps (true
    advice only: a line search is not told to use a line search)."""
    if f_new == -math.inf:
        return (
            f"f = -inf after a step of size {alpha:.3g}: f is unbounded below (or -inf at a "
            "point) along the path, so it has no minimum there; add bounds or constraints "
            "that keep x where f is finite"
        )
    if math.isfinite(f_new):
        return (
            f"f = {f_new:.6g} but its gradient is not finite after a step of size {alpha:.3g}: "
            "f is not differentiable there; start elsewhere or add bounds that avoid the point"
        )
    what = f"f = {f_new} after a step of size {alpha:.3g}"
    if isinstance(rule, Constant):
        return f"{what}: the step is too large; use a smaller step or step='backtracking'"
    if isinstance(rule, Diminishing):
        return f"{what}: the steps are too large; use a smaller alpha0 or step='backtracking'"
    return f"{what}: x left the region where f is defined and finite; add bounds that keep it there"


def _progress_bar(progress: bool, total: int, what: str) -> Any:
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is an optional extra: no bar, same result
        return None
    return tqdm(total=total, desc=what, unit="it", mininterval=0.5, leave=False)
