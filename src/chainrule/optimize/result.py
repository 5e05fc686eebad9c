"""What an optimizer returns: the point it found, how good it is, and how it got there.

Like SciPy's ``OptimizeResult``: ``x`` (the minimiser found), ``fun`` = f(x), ``grad_norm``
(||grad f(x)||, or the norm of the projected gradient / of the Lagrangian's gradient where
constraints are involved), ``iterations``, ``converged``, ``message``, the evaluation counts,
and ``history``: the iterates x_0, x_1, ..., x_T with f(x_t), ||grad f(x_t)|| and the step
sizes alpha_t, so that a descent path can be plotted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["OptimizeResult", "fmt"]


def fmt(value: float, digits: int = 6, zero: float = 0.0) -> str:
    """A number for people: ``digits`` significant digits, |value| <= zero printed as 0."""
    value = float(value)
    if abs(value) <= zero:
        return "0"
    return f"{value:.{digits}g}"


@dataclass
class OptimizeResult:
    """The outcome of a minimisation.

    ``x``: the point found (shape of x0). ``fun``: f(x). ``grad_norm``: the first-order
    optimality measure at x. ``history``: dict of arrays ``x`` (T+1, *x.shape), ``fun``
    (T+1,), ``grad_norm`` (T+1,), ``step`` (T,); empty when not recorded. ``info``:
    method-specific extras (condition number, multipliers, duality gap, ...).
    """

    x: np.ndarray
    fun: float
    grad_norm: float
    iterations: int
    converged: bool
    message: str
    method: str = ""
    nfev: int = 0
    ngev: int = 0
    nhev: int = 0
    history: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    # SciPy's names, so that code written for scipy.optimize reads the same
    @property
    def success(self) -> bool:
        return self.converged

    @property
    def nit(self) -> int:
        return self.iterations

    @property
    def path(self) -> np.ndarray:
        """The iterates x_0 ... x_T, shape (T+1, *x.shape) (just x when no history was kept)."""
        return self.history.get("x", self.x[None])

    def __bool__(self) -> bool:
        return self.converged

    def __str__(self) -> str:
        x = np.array2string(np.asarray(self.x), precision=8, separator=", ")
        lines = [
            f"{self.method or 'optimization'}: {self.message}",
            f"  x = {x}",
            f"  f(x) = {self.fun:.10g}   optimality = {self.grad_norm:.3g}",
            f"  {self.iterations} iterations, {self.nfev} function evaluations, "
            f"{self.ngev} gradients, {self.nhev} Hessians",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"OptimizeResult(x={np.asarray(self.x)!r}, fun={self.fun!r}, "
            f"grad_norm={self.grad_norm!r}, iterations={self.iterations}, "
            f"converged={self.converged}, message={self.message!r})"
        )


class History:
    """Collects the iterates while an optimizer runs; ``arrays()`` gives the ``history`` dict."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.x: list[np.ndarray] = []
        self.fun: list[float] = []
        self.grad_norm: list[float] = []
        self.step: list[float] = []

    def add(self, x: np.ndarray, fun: float, grad_norm: float, step: float | None = None) -> None:
        if not self.keep:
            return
        self.x.append(x)
        self.fun.append(fun)
        self.grad_norm.append(grad_norm)
        if step is not None:
            self.step.append(step)

    def arrays(self) -> dict[str, np.ndarray]:
        if not self.keep or not self.x:
            return {}
        return {
            "x": np.stack(self.x),
            "fun": np.asarray(self.fun, dtype=float),
            "grad_norm": np.asarray(self.grad_norm, dtype=float),
            "step": np.asarray(self.step, dtype=float),
        }
