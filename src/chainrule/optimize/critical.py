"""Critical points and what they are, from the exact gradient and Hessian.

A critical point of f: R^n -> R is a point with grad f(x) = 0. Its kind follows from the
eigenvalues lambda_1 <= ... <= lambda_n of the (symmetric) Hessian H = d^2 f / dx_i dx_j there:

    all lambda_i > 0                 local minimum   (H positive definite)
    all lambda_i < 0                 local maximum   (H negative definite)
    some lambda_i > 0, some < 0      saddle point    (H indefinite)
    otherwise (some lambda_i = 0)    degenerate: the second-order test is inconclusive
                                     (x^4, -x^4 and x^3 all have H = 0 at 0)

Critical points are found by Newton's method on the gradient, x <- x - H^{-1} grad f(x),
which converges to saddles and maxima as readily as to minima, from many random starts in a
box; points closer than a small tolerance are the same point.

At working precision: a point counts only where Newton's steps have become negligible (a
tiny gradient alone is not enough: exp(1000 x) has gradients of 1e-40 whose Newton step is
still 1e-3), and a degenerate point whose f, gradient or Hessian underflow (exp(1000 x) at
x = -4 is 0 in float64, with gradient and Hessian 0) is not a critical point of f but of its
rounding: it is skipped, and said so, rather than reported as degenerate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .objective import Objective, as_bounds, as_point
from .result import fmt

__all__ = [
    "CriticalPoint",
    "CriticalPoints",
    "classify",
    "critical_points",
    "KINDS",
    "MAX_STARTS",
    "table",
]

KINDS = ("minimum", "maximum", "saddle", "degenerate")
# each start runs up to max_newton Newton steps (a gradient and a Hessian each): 10,000
# starts of 100 steps take a few minutes
MAX_STARTS = 10_000


@dataclass
class CriticalPoint:
    """A classified critical point.

    ``x`` (shape of the input), ``fun`` = f(x), ``grad_norm`` = ||grad f(x)||, ``kind`` (one of
    KINDS), ``eigenvalues`` of the Hessian (n,) ascending, ``eigenvectors`` (n, n) in columns,
    ``zero_eigenvalues``: the eigenvalues judged zero (those make a point degenerate).
    """

    x: np.ndarray
    fun: float
    grad_norm: float
    kind: str
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray = field(repr=False)
    zero_eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def message(self) -> str:
        """One sentence: the kind and the reason, in the lecture's words."""
        ev = ", ".join(f"{v:.4g}" for v in self.eigenvalues)
        if self.kind == "minimum":
            return f"local minimum: the Hessian is positive definite (eigenvalues {ev})"
        if self.kind == "maximum":
            return f"local maximum: the Hessian is negative definite (eigenvalues {ev})"
        if self.kind == "saddle":
            return f"saddle point: the Hessian is indefinite (eigenvalues {ev})"
        zeros = ", ".join(f"{v:.3g}" for v in self.zero_eigenvalues)
        return (
            f"degenerate: the second-order test is inconclusive, the Hessian has "
            f"{len(self.zero_eigenvalues)} zero eigenvalue(s) ({zeros}; all eigenvalues {ev})"
        )

    def __str__(self) -> str:
        x = np.array2string(np.asarray(self.x), precision=6, separator=", ")
        return f"{self.kind} at x = {x}, f = {self.fun:.6g}: {self.message}"


def _kind(eigenvalues: np.ndarray, eig_tol: float) -> tuple[str, np.ndarray]:
    scale = max(1.0, float(np.abs(eigenvalues).max(initial=0.0)))
    zero = np.abs(eigenvalues) <= eig_tol * scale
    positive = eigenvalues > eig_tol * scale
    negative = eigenvalues < -eig_tol * scale
    if positive.any() and negative.any():
        kind = "saddle"  # indefinite, whatever the zero eigenvalues are
    elif zero.any():
        kind = "degenerate"
    elif positive.all():
        kind = "minimum"
    else:
        kind = "maximum"
    return kind, eigenvalues[zero]


def _classify(
    obj: Objective,
    x: np.ndarray,
    tol: float,
    eig_tol: float,
    fx: float,
    g: np.ndarray,
    step_tol: float | None = None,
) -> CriticalPoint:
    gn = float(np.linalg.norm(g))
    if not gn <= tol * (1.0 + abs(fx)):
        raise ValueError(
            f"x = {x.tolist()} is not a critical point: ||grad f(x)|| = {gn:.3g} > "
            f"tol * (1 + |f(x)|) = {tol * (1.0 + abs(fx)):.3g}"
        )
    H = obj.hessian(x)
    if not np.isfinite(H).all():
        raise ValueError(f"the Hessian at x = {x.tolist()} is not finite")
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (H + H.T))
    kind, zeros = _kind(eigenvalues, eig_tol)
    if kind == "degenerate" and step_tol is not None:
        step = _newton_step(eigenvalues, eigenvectors, g.reshape(-1))
        if not step <= step_tol:
            raise ValueError(
                f"x = {x.tolist()} is not a critical point at working precision: "
                f"||grad f|| = {gn:.3g} is small, but the Newton step to grad f = 0 is still "
                f"{step:.3g} long"
            )
    if kind == "degenerate" and _underflows(obj, x):
        raise ValueError(
            f"x = {x.tolist()} is not a critical point at working precision: f, its gradient "
            f"or its Hessian underflow there (f = {fx:.3g}), so their zeros are float64's, "
            "not f's"
        )
    return CriticalPoint(x, fx, gn, kind, eigenvalues, eigenvectors, zeros)


UNDERFLOW = "not critical points at working precision: f, its gradient or Hessian underflow"
FAR = (
    "not critical points at working precision: grad f is tiny only because f is, the Newton "
    "step to grad f = 0 is still long"
)


def _newton_step(eigenvalues: np.ndarray, eigenvectors: np.ndarray, g: np.ndarray) -> float:
    """||H^-1 g|| with every eigenvalue that is not exactly 0, however small (no cut-off:
    exp(1000 x) + y^2 at x = -0.5 has curvature 1e-210 and gradient 1e-213 along x, a step
    of 1e-3); infinite when g has a component along an exactly zero eigenvalue."""
    along = eigenvectors.T @ g
    zero = eigenvalues == 0
    if np.any(along[zero] != 0):
        return math.inf
    with np.errstate(all="ignore"):
        step = np.where(zero, 0.0, along / np.where(zero, 1.0, eigenvalues))
    return float(np.linalg.norm(step))


def _underflows(obj: Objective, x: np.ndarray) -> bool:
    """Whether computing f, grad f or the Hessian at x underflows (a result rounded to 0)."""
    try:
        with np.errstate(all="ignore", under="raise"):
            obj.value_and_grad(x)
            obj.hessian(x)
    except FloatingPointError:
        return True
    return False


class CriticalPoints(list):  # type: ignore[type-arg]
    """The classified critical points (a list), and ``skipped``: (x, why) for the points
    Newton's method reached that are no critical points at working precision."""

    def __init__(self, points: Any = (), skipped: Sequence[tuple[np.ndarray, str]] = ()) -> None:
        super().__init__(points)
        self.skipped = list(skipped)


def classify(
    f: Callable[[Any], Any], x: Any, tol: float = 1e-6, eig_tol: float = 1e-8
) -> CriticalPoint:
    """Classify the critical point x of f as minimum, maximum, saddle or degenerate.

    Raises ValueError unless ||grad f(x)|| <= tol * (1 + |f(x)|), when the Hessian is not
    finite, and for a degenerate point where f, its gradient or Hessian underflow. An
    eigenvalue is zero when |lambda| <= eig_tol * max(1, max |lambda|).
    """
    x = as_point(x, "x")
    obj = Objective(f, x)
    fx, g = obj.start(x)
    return _classify(obj, x, tol, eig_tol, fx, g)


def _newton(
    obj: Objective, x: np.ndarray, box: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Newton's method on grad f = 0 from x; the point, f and grad, or None if it failed.

    It runs until the steps are negligible rather than stopping at a small gradient: near a
    degenerate critical point (x^4) Newton converges only linearly, and stopping early would
    leave a point whose small Hessian eigenvalue is not yet small enough to be called zero.
    """
    width = box[:, 1] - box[:, 0]
    for _ in range(max_iter):
        fx, g = obj.value_and_grad(x)
        if not (math.isfinite(fx) and np.isfinite(g).all()):
            return None
        if not g.any():  # exactly critical in float64 (or underflowed: see _classify)
            return x, fx, g
        H = obj.hessian(x)
        if not np.isfinite(H).all():
            return None
        # the least-squares solution of H d = g is the Newton step, and stays defined
        # (minimum norm) where H is singular
        d = np.linalg.lstsq(H, g.reshape(-1), rcond=None)[0].reshape(x.shape)
        x = x - d
        flat = x.reshape(-1)
        if (
            not np.isfinite(flat).all()
            or ((flat < box[:, 0] - width) | (flat > box[:, 1] + width)).any()
        ):
            return None  # wandered far outside the box
        if np.linalg.norm(d) <= 1e-10 * (1.0 + np.linalg.norm(x)):
            break
    fx, g = obj.value_and_grad(x)
    ok = math.isfinite(fx) and np.linalg.norm(g) <= tol * (1.0 + abs(fx))
    return (x, fx, g) if ok else None


def critical_points(
    f: Callable[[Any], Any],
    bounds: Sequence[tuple[float, float]],
    n_starts: int = 32,
    seed: int = 0,
    tol: float = 1e-8,
    eig_tol: float = 1e-8,
    max_newton: int = 100,
    progress: bool = False,
    max_starts: int = MAX_STARTS,
) -> CriticalPoints:
    """The classified critical points of f found in the box ``bounds`` (n pairs (lo, hi)).

    Newton's method on the gradient runs from the box's centre and ``n_starts - 1`` uniform
    random starts (``seed``); points it reaches inside the box are deduplicated (closer than
    1e-6 of the box's width), classified, and returned sorted by their coordinates. A search,
    not a proof: critical points whose basin no start falls into are missed. More than
    ``max_starts`` starts are refused before any work. Points that are no critical points at
    working precision (f underflows there, or the Hessian is not finite) are left out and
    listed in the result's ``skipped`` with the reason.
    """
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"n_starts must be an integer >= 1, got {n_starts!r}")
    if isinstance(max_starts, bool) or not isinstance(max_starts, int) or max_starts < 1:
        raise ValueError(f"max_starts must be an integer >= 1, got {max_starts!r}")
    if n_starts > max_starts:
        raise ValueError(
            f"n_starts = {n_starts:,} is more than max_starts = {max_starts:,} (each start runs "
            f"up to {max_newton} Newton steps; {max_starts:,} starts can take minutes): use "
            "fewer starts, or raise max_starts"
        )
    box = as_bounds(bounds)
    n = len(box)
    centre = box.mean(axis=1)
    obj = Objective(f, as_point(centre))
    obj.start(centre)  # refuses f that is not finite at the centre, or not scalar
    rng = np.random.default_rng(seed)

    def starts() -> Iterator[np.ndarray]:
        yield centre
        for first in range(1, n_starts, 1024):  # in blocks: the same numbers, little memory
            yield from rng.uniform(box[:, 0], box[:, 1], size=(min(1024, n_starts - first), n))

    width = float((box[:, 1] - box[:, 0]).max())
    slack = 1e-9 * width
    found: list[CriticalPoint] = []
    skipped: list[tuple[np.ndarray, str]] = []
    bar = None
    if progress:
        from .descent import _progress_bar

        bar = _progress_bar(True, n_starts, "critical points")
    with np.errstate(all="ignore"):
        for start in starts():
            if bar is not None:
                bar.update(1)
            reached = _newton(obj, np.array(start, dtype=np.float64), box, tol, max_newton)
            if reached is None:
                continue
            x, fx, g = reached
            if ((x < box[:, 0] - slack) | (x > box[:, 1] + slack)).any():
                continue
            if any(np.linalg.norm(x - p.x) <= 1e-6 * width for p in found):
                continue
            try:
                found.append(_classify(obj, x, tol, eig_tol, fx, g, 1e-6 * width))
            except ValueError as e:
                message = str(e)
                reason = (
                    UNDERFLOW
                    if "underflow" in message
                    else FAR
                    if "Newton step" in message
                    else "the Hessian is not finite there"
                )
                skipped.append((x, reason))
    if bar is not None:
        bar.close()
    return CriticalPoints(sorted(found, key=lambda p: tuple(np.round(p.x, 9))), skipped)


def table(points: Sequence[CriticalPoint], names: Sequence[str]) -> str:
    """The points as a text table: kind, coordinates, f, Hessian eigenvalues (and zero ones)."""
    header = ["kind", *names, "f", "Hessian eigenvalues"]
    rows = []
    for p in points:
        scale = 1e-10 * (1.0 + float(np.abs(p.x).max(initial=0.0)))
        coordinates = [fmt(v, zero=scale) for v in p.x.reshape(-1)]
        eig_scale = 1e-10 * max(1.0, float(np.abs(p.eigenvalues).max(initial=0.0)))
        eigenvalues = ", ".join(fmt(v, 4, zero=eig_scale) for v in p.eigenvalues)
        rows.append([p.kind, *coordinates, fmt(p.fun, zero=1e-12 * (1 + abs(p.fun))), eigenvalues])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for k, row in enumerate([header, *rows]):
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
        if k and points[k - 1].kind == "degenerate":
            p = points[k - 1]
            zero = np.abs(p.eigenvalues) <= np.abs(p.zero_eigenvalues).max(initial=0.0)
            directions = "; ".join(
                "(" + ", ".join(fmt(v, 3, zero=1e-12) for v in p.eigenvectors[:, j]) + ")"
                for j in np.flatnonzero(zero)
            )
            zeros = ", ".join(fmt(v, 3) for v in p.zero_eigenvalues)
            lines.append(f"    inconclusive: zero eigenvalue(s) {zeros} along {directions}")
    return "\n".join(lines)
