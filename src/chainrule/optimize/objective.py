"""The function being optimized, as the optimizers see it: f: R^n -> R with exact derivatives.

An objective is any function of one Tensor x (here a vector of n variables; any shape works
for the descent methods) that returns a scalar Tensor built from chainrule operations, so that

    grad f(x)      comes from one backward walk of the engine          (``chainrule.grad``)
    H f(x)         from the Jacobian of that gradient                  (``chainrule.hessian``)
    H f(x) v       from a vector-Jacobian product of the gradient      (``chainrule.jvp``)

are exact up to rounding: no finite differences anywhere. :class:`Objective` wraps such an f,
checks its input and output once, and counts evaluations (nfev, ngev, nhev) the way SciPy does.

Typed text becomes an objective through :func:`from_expression`: the whitelist parser of
:mod:`chainrule.expr` (never ``eval``) turns ``"(1-x)**2 + 100*(y-x**2)**2"`` into a function of
x = (x, y) whose entries x[0], x[1] are picked by differentiable indexing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..engine import Tensor, no_grad
from ..expr import Expression, ExpressionError, parse
from ..functional import grad, hessian, jvp, value_and_grad

__all__ = [
    "Objective",
    "ExpressionFunction",
    "from_expression",
    "constraint_from_text",
    "shared_variables",
    "as_point",
    "as_bounds",
]


def as_point(x0: Any, name: str = "x0") -> np.ndarray:
    """x0 as a finite float64 array (a copy), or a ValueError naming what is wrong."""
    if isinstance(x0, Tensor):
        x0 = x0.data
    try:
        x = np.array(x0, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {x0!r}") from None
    if x.size == 0:
        raise ValueError(f"{name} is empty: give one value per variable")
    bad = ~np.isfinite(x)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} has a non-finite entry {x[where]} at index {where}")
    return x


def as_bounds(
    bounds: Any, n: int | None = None, name: str = "bounds", finite: bool = True
) -> np.ndarray:
    """Box bounds as an (n, 2) array of [lo, hi] rows; ``None`` or +-inf allowed if not finite.

    ``n``: the number of variables (one pair is then used for all); None: as many as given.
    """
    try:
        rows = [tuple(b) for b in bounds]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of (lo, hi) pairs, got {bounds!r}") from None
    n = len(rows) if n is None else n
    if len(rows) == 1 and n > 1:
        rows = rows * n  # one pair for every variable
    if len(rows) != n:
        raise ValueError(f"{name} has {len(rows)} (lo, hi) pair(s) but there are {n} variables")
    out = np.empty((n, 2))
    for i, row in enumerate(rows):
        if len(row) != 2:
            raise ValueError(f"{name}[{i}] must be a pair (lo, hi), got {row!r}")
        lo = -math.inf if row[0] is None else float(row[0])
        hi = math.inf if row[1] is None else float(row[1])
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{name}[{i}] = {row!r} contains NaN")
        if finite and not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name}[{i}] = {row!r} must be finite here")
        if lo > hi or (finite and lo == hi):
            raise ValueError(f"{name}[{i}]: lower bound {lo} must be below upper bound {hi}")
        out[i] = lo, hi
    return out


def _scalar(out: Any, shape: tuple[int, ...]) -> float:
    data = out.data if isinstance(out, Tensor) else out
    arr = np.asarray(data)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"the objective must return a scalar Tensor, got {type(out).__name__}")
    if arr.size != 1:
        raise ValueError(
            f"the objective must return a scalar, but f(x) has shape {arr.shape} for x of "
            f"shape {shape}; sum or reduce it, e.g. (r**2).sum()"
        )
    return float(arr.reshape(()))


class Objective:
    """f with exact derivatives from the engine and evaluation counters.

    ``value(x)`` (no graph recorded), ``value_and_grad(x)`` (one forward + one backward walk),
    ``hessian(x)`` (n x n, x flattened) and ``hvp(x, v)`` (H v, shape of x). Arrays in, floats
    and float64 arrays out.
    """

    def __init__(self, f: Callable[[Any], Any], x0: np.ndarray, name: str = "f") -> None:
        if not callable(f):
            raise TypeError(f"{name} must be callable (a function of a Tensor x), got {f!r}")
        self.f = f
        self.name = name
        self.shape = x0.shape
        self.n = x0.size
        self._vg = value_and_grad(f)
        self._hess: Callable | None = None
        self._grad: Callable | None = None
        self.nfev = 0
        self.ngev = 0
        self.nhev = 0

    def value(self, x: np.ndarray) -> float:
        """f(x) as a float."""
        self.nfev += 1
        with no_grad():
            return _scalar(self.f(Tensor(x)), self.shape)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """(f(x), grad f(x)); the gradient has the shape of x."""
        self.nfev += 1
        self.ngev += 1
        value, g = self._vg(x)
        return _scalar(value, self.shape), np.asarray(g, dtype=np.float64).reshape(self.shape)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """The exact Hessian d^2 f / dx_i dx_j, (n, n) for x flattened to n entries."""
        if self._hess is None:
            self._hess = hessian(self.f)
        self.nhev += 1
        return np.asarray(self._hess(x), dtype=np.float64).reshape(self.n, self.n)

    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The Hessian-vector product H f(x) v (shape of x), without forming H."""
        if self._grad is None:
            self._grad = grad(self.f)
        self.nhev += 1
        return np.asarray(jvp(self._grad, x, v)[1], dtype=np.float64).reshape(self.shape)

    def start(self, x0: np.ndarray) -> tuple[float, np.ndarray]:
        """f(x0), grad f(x0), refusing a non-finite start with a clear message."""
        with np.errstate(all="ignore"):
            value, g = self.value_and_grad(x0)
        if not math.isfinite(value):
            raise ValueError(f"{self.name}(x0) = {value} is not finite at x0 = {x0.tolist()}")
        if not np.isfinite(g).all():
            raise ValueError(
                f"the gradient of {self.name} at x0 = {x0.tolist()} is not finite: {g.tolist()}"
            )
        return value, g


# --------------------------------------------------------------------------- typed expressions


class ExpressionFunction:
    """A typed expression as an objective: x (n,) -> expr(x[0], ..., x[n-1]), a scalar Tensor."""

    def __init__(self, expression: Expression) -> None:
        self.expression = expression
        self.variables = expression.variables
        self.n = len(self.variables)

    def __call__(self, x: Any) -> Any:
        if tuple(np.shape(x))[:1] != (self.n,):
            raise ValueError(
                f"{self} takes a vector of {self.n} value(s) ({', '.join(self.variables)}), "
                f"got shape {tuple(np.shape(x))}"
            )
        # indexing a Tensor is differentiable (the gradient is scattered back to entry i)
        return self.expression(*[x[i] for i in range(self.n)])

    def __str__(self) -> str:
        return f"f({', '.join(self.variables)}) = {self.expression.to_string()}"

    def __repr__(self) -> str:
        return f"ExpressionFunction({self.expression.to_string()!r}, variables={self.variables})"


def shared_variables(texts: Sequence[str]) -> tuple[str, ...]:
    """The variables used by any of the texts, in the parser's order (x, y, z, then natural)."""
    names: set[str] = set()
    for text in texts:
        names.update(parse(text).variables)
    # the parser orders the names of one expression; a sum of all of them reuses that order
    return parse(" + ".join(sorted(names))).variables if names else ()


def from_expression(text: str, variables: Sequence[str] | None = None) -> ExpressionFunction:
    """The objective x -> f(x[0], ..., x[n-1]) for typed text such as ``"x**2 - y**2"``.

    ``variables`` fixes the names and their order (default: the names used, x, y, z first).
    Raises ExpressionError (a ValueError) for anything outside the whitelist grammar.
    """
    expression = parse(text, variables)
    if not expression.variables:
        raise ExpressionError(
            f"{text!r} has no variables: it is a constant, there is nothing to optimize"
        )
    return ExpressionFunction(expression)


def constraint_from_text(
    text: str, variables: Sequence[str] | None = None
) -> tuple[ExpressionFunction, float]:
    """``"lhs <= rhs"`` (or ``>=``) as the pair (f_c, b_c) meaning f_c(x) <= b_c.

    lhs <= rhs becomes f_c = lhs - rhs, b_c = 0 (and rhs - lhs for >=); when rhs is a
    constant it stays on the right: ``"x**2 + y**2 <= 1"`` is (x**2 + y**2, 1).
    """
    if not isinstance(text, str):
        raise TypeError(f"a constraint must be a str such as 'x + y <= 1', got {text!r}")
    for op in ("<=", ">="):
        if text.count(op) == 1 and text.count("<" if op == ">=" else ">") == 0:
            lhs, rhs = (part.strip() for part in text.split(op))
            break
    else:
        raise ExpressionError(
            f"a constraint needs exactly one '<=' or '>=' (e.g. 'x**2 + y**2 <= 1'), got {text!r}"
        )
    if not lhs or not rhs:
        raise ExpressionError(f"constraint {text!r} has an empty side")
    if op == ">=":
        lhs, rhs = rhs, lhs  # lhs >= rhs  is  rhs <= lhs
    right = parse(rhs)
    if right.variables:  # a function on both sides: (lhs - rhs) <= 0
        return from_expression(f"({lhs}) - ({rhs})", variables), 0.0
    bound = float(right.evaluate({}))
    if not math.isfinite(bound):
        raise ExpressionError(f"the bound {rhs!r} of constraint {text!r} is not finite")
    return from_expression(lhs, variables), bound
