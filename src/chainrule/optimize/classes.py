"""Problem classes: is f convex, is f linear? Tested on random segments, with the evidence.

The lecture's definitions, for all x, y and the given scalars:

    convex    f(theta x + (1 - theta) y) <= theta f(x) + (1 - theta) f(y),   0 <= theta <= 1
    linear    f(alpha x + beta y) = alpha f(x) + beta f(y),                  alpha, beta real

A minimisation problem is a convex optimization problem when the objective and all
inequality-constraint functions are convex, and a linear program when they are all linear
(affine). Random samples can refute a property (a counterexample is a proof that it fails)
but never prove it: "no counterexample in 1000 tests" is evidence, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .objective import Objective, as_bounds, as_point

__all__ = ["ClassEvidence", "is_convex", "is_linear"]


@dataclass
class ClassEvidence:
    """The outcome of testing a defining inequality/equality on random samples.

    ``holds``: no counterexample was found (truthiness). ``counterexample``: dict with the
    points, scalars, the two sides of the definition, or None. ``max_violation``: the largest
    amount by which the definition failed (<= 0 when it held everywhere tested).
    """

    property: str
    holds: bool
    n_tested: int
    max_violation: float
    counterexample: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.holds

    def __str__(self) -> str:
        if self.holds:
            return (
                f"{self.property}: no counterexample in {self.n_tested} random tests "
                "(evidence, not a proof)"
            )
        c = self.counterexample or {}
        x = np.array2string(np.asarray(c.get("x")), precision=4, separator=", ")
        y = np.array2string(np.asarray(c.get("y")), precision=4, separator=", ")
        if self.property == "convex":
            return (
                f"not convex: for x = {x}, y = {y}, theta = {c['theta']:.4g}: "
                f"f(theta x + (1-theta) y) = {c['lhs']:.6g} > "
                f"theta f(x) + (1-theta) f(y) = {c['rhs']:.6g}"
            )
        return (
            f"not linear: for x = {x}, y = {y}, alpha = {c['alpha']:.4g}, beta = {c['beta']:.4g}: "
            f"f(alpha x + beta y) = {c['lhs']:.6g} != alpha f(x) + beta f(y) = {c['rhs']:.6g}"
        )


def _sampler(
    f: Callable[[Any], Any], domain: Sequence[tuple[float, float]], seed: int, n_tests: int
) -> tuple[Objective, np.ndarray, np.random.Generator]:
    if isinstance(n_tests, bool) or not isinstance(n_tests, int) or n_tests < 1:
        raise ValueError(f"the number of tests must be an integer >= 1, got {n_tests!r}")
    box = as_bounds(domain, name="domain")
    obj = Objective(f, as_point(box.mean(axis=1)))
    return obj, box, np.random.default_rng(seed)


def _value(obj: Objective, x: np.ndarray) -> float:
    value = obj.value(x)
    if not np.isfinite(value):
        raise ValueError(
            f"f is not finite at x = {x.tolist()} (f = {value}): pick a domain where it is"
        )
    return value


def is_convex(
    f: Callable[[Any], Any],
    domain: Sequence[tuple[float, float]],
    n_segments: int = 1000,
    seed: int = 0,
    tol: float = 1e-9,
) -> ClassEvidence:
    """Test f(theta x + (1-theta) y) <= theta f(x) + (1-theta) f(y) on random segments.

    x, y uniform in the box ``domain`` (n pairs (lo, hi)), theta uniform in [0, 1]. The
    inequality counts as broken when it fails by more than tol * (1 + |both sides|).
    """
    obj, box, rng = _sampler(f, domain, seed, n_segments)
    worst, example = -np.inf, None
    with np.errstate(all="ignore"):
        for _ in range(n_segments):
            x, y = rng.uniform(box[:, 0], box[:, 1], size=(2, len(box)))
            theta = float(rng.uniform())
            lhs = _value(obj, theta * x + (1 - theta) * y)
            rhs = theta * _value(obj, x) + (1 - theta) * _value(obj, y)
            violation = (lhs - rhs) / (1.0 + abs(lhs) + abs(rhs))
            if violation > worst:
                worst = violation
                if violation > tol:
                    example = {"x": x, "y": y, "theta": theta, "lhs": lhs, "rhs": rhs}
    return ClassEvidence("convex", example is None, n_segments, float(worst), example)


def is_linear(
    f: Callable[[Any], Any],
    domain: Sequence[tuple[float, float]],
    n_pairs: int = 1000,
    seed: int = 0,
    tol: float = 1e-9,
) -> ClassEvidence:
    """Test f(alpha x + beta y) = alpha f(x) + beta f(y) on random x, y and alpha, beta.

    x, y uniform in the box ``domain``, alpha, beta standard normal. An affine f (f(0) != 0)
    is not linear in this sense, and the counterexample shows it.
    """
    obj, box, rng = _sampler(f, domain, seed, n_pairs)
    worst, example = -np.inf, None
    with np.errstate(all="ignore"):
        for _ in range(n_pairs):
            x, y = rng.uniform(box[:, 0], box[:, 1], size=(2, len(box)))
            alpha, beta = (float(v) for v in rng.standard_normal(2))
            lhs = _value(obj, alpha * x + beta * y)
            rhs = alpha * _value(obj, x) + beta * _value(obj, y)
            violation = abs(lhs - rhs) / (1.0 + abs(lhs) + abs(rhs))
            if violation > worst:
                worst = violation
                if violation > tol:
                    example = {"x": x, "y": y, "alpha": alpha, "beta": beta, "lhs": lhs, "rhs": rhs}
    return ClassEvidence("linear", example is None, n_pairs, float(worst), example)
