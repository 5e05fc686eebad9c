"""The lecture's constructive proof, built: a ReLU network that IS the piecewise-linear interpolant.

In one dimension (the lecture's picture), on the grid x_0 < x_1 < ... < x_N with steps
h_n = x_{n+1} - x_n:

    layer 1   r_n(x) = ReLU(x - x_n)                       identity weights, shifting biases:
                                                            the N + 1 building-block segments
    layer 2   tri_n  = ReLU(r_{n-1}/h_{n-1} - r_n (1/h_{n-1} + 1/h_n) + r_{n+1}/h_n)
                                                            a triangle of height 1 at x_n, zero
                                                            at every other node
    layer 3   y      = sum_n (f(x_n) - f_min) tri_n + f_min
                                                            each triangle scaled by f at its node

The boundary triangles are halves that saturate: tri_0 = ReLU(1 - (r_0 - r_1)/h_0) is 1 left
of x_0 and tri_N = ReLU((r_{N-1} - r_N)/h_{N-1}) is 1 right of x_N. So the triangles sum to 1
everywhere (a partition of unity) and the network equals the interpolant of f on the whole
closed domain - exact at every node - and f(clip(x)) outside it.

Negative values: the lecture approximates f - f_min (non-negative, so a final ReLU would
change nothing), then puts f_min back in the last bias and drops the last ReLU.

Discontinuities at x0: two extra nodes x0 - eps and x0 + eps (two extra branches in each
hidden layer) so the network is the interpolant of each smooth piece, exact outside
(x0 - eps, x0 + eps), and makes its jump inside that interval.

Vector output: the last layer is replicated per output component; the hidden layers
(the triangles) are shared. Vector input: :mod:`chainrule.approx.simplex` (rigorous,
default) and :mod:`chainrule.approx.pyramid` (the lecture's literal recipe).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..nn import ReLU
from .grid import (
    MAX_NEURONS,
    MAX_PARAMETERS,
    ConstructedNetwork,
    Construction,
    Domain,
    budget,
    check_budget,
    dense_linear,
    intervals,
    parse_domain,
    parse_spacing,
    sample,
)
from .pyramid import construct_pyramid
from .simplex import construct_simplex

__all__ = ["METHODS", "construct"]

METHODS = ("simplex", "pyramid")


def construct(
    f: Callable[[np.ndarray], Any],
    domain: Any,
    d: Any,
    discontinuities: Sequence[float] = (),
    *,
    method: str = "simplex",
    eps: float | None = None,
    max_neurons: int = MAX_NEURONS,
    max_parameters: int = MAX_PARAMETERS,
) -> ConstructedNetwork:
    """The lecture's network for f on ``domain`` with grid spacing <= d: Linear/ReLU layers.

    ``f`` maps x of shape (N, K) to (N,) or (N, M); ``domain`` is ``(lo, hi)`` (K = 1) or a
    list of K pairs; ``d`` one spacing or K of them. The returned network maps (N, K) to
    (N, M) and equals the piecewise-linear interpolant of f on the grid (``method="simplex"``,
    the default; for K = 1 both methods are the lecture's three layers). ``discontinuities``
    (K = 1 only): points x0 where f jumps; the network is exact outside (x0 - eps, x0 + eps),
    ``eps`` defaulting to d / 1000. Raises ValueError when the network would need more than
    ``max_neurons`` hidden neurons or ``max_parameters`` parameters.
    """
    if not callable(f):
        raise TypeError(f"f must be callable (an array (N, K) -> (N,) or (N, M)), got {f!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    max_neurons = budget(max_neurons, "max_neurons")
    max_parameters = budget(max_parameters, "max_parameters")
    box = parse_domain(domain)
    spacing = parse_spacing(d, len(box))
    disc = tuple(float(x) for x in np.atleast_1d(np.asarray(discontinuities, dtype=float)))
    if len(box) == 1:
        return _construct_1d(f, box, spacing[0], disc, eps, max_neurons, max_parameters)
    if disc:
        raise ValueError(
            "discontinuities are points, so they are supported for one input (K = 1) only; "
            f"this domain has K = {len(box)}"
        )
    if method == "pyramid":
        return construct_pyramid(f, box, spacing, max_neurons, max_parameters)
    return construct_simplex(f, box, spacing, max_neurons, max_parameters)


def _nodes_1d(
    lo: float, hi: float, d: float, disc: tuple[float, ...], eps: float | None
) -> tuple[np.ndarray, float]:
    n = intervals(lo, hi, d)
    grid = np.linspace(lo, hi, n + 1)
    if not disc:
        return grid, 0.0
    step = (hi - lo) / n
    eps = step / 1000 if eps is None else float(eps)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be positive and finite, got {eps!r}")
    points = np.sort(np.asarray(disc))
    for x0 in points:
        if not (lo < x0 - eps and x0 + eps < hi):
            raise ValueError(
                f"discontinuity at {x0:g} with eps = {eps:g} must lie inside the domain "
                f"[{lo:g}, {hi:g}] (x0 - eps > lo and x0 + eps < hi)"
            )
    if np.any(np.diff(points) <= 2 * eps):
        raise ValueError(f"discontinuities {points.tolist()} are closer than 2 eps = {2 * eps:g}")
    # drop grid nodes within 2 eps of a bridge (so no step is shorter than eps), add x0 -+ eps
    near = np.any(np.abs(grid[:, None] - points[None, :]) < 3 * eps, axis=1)
    near[[0, -1]] = False
    nodes = np.concatenate([grid[~near], points - eps, points + eps])
    return np.sort(nodes), eps


def _construct_1d(
    f: Callable[[np.ndarray], Any],
    box: Domain,
    d: float,
    disc: tuple[float, ...],
    eps: float | None,
    max_neurons: int,
    max_parameters: int,
) -> ConstructedNetwork:
    lo, hi = box[0]
    n = intervals(lo, hi, d) + 1 + 2 * len(disc)  # nodes
    check_budget(
        2 * n, n * n + 3 * n, max_neurons, max_parameters, f"d = {d:g} on [{lo:g}, {hi:g}]"
    )
    x, eps_used = _nodes_1d(lo, hi, d, disc, eps)
    values = sample(f, x[:, None])  # (n, M)
    f_min = values.min(axis=0)
    n = x.size
    h = np.diff(x)  # (n - 1,)

    # layer 1: r_n = ReLU(x - x_n)
    layer1 = dense_linear(np.ones((n, 1)), -x)
    # layer 2: triangles from second differences of the segments (the lecture's layer 2)
    w2 = np.zeros((n, n))
    b2 = np.zeros(n)
    inner = np.arange(1, n - 1)
    w2[inner, inner - 1] = 1 / h[:-1]
    w2[inner, inner] = -(1 / h[:-1] + 1 / h[1:])
    w2[inner, inner + 1] = 1 / h[1:]
    w2[0, 0], w2[0, 1], b2[0] = -1 / h[0], 1 / h[0], 1.0  # saturating half-triangles
    w2[n - 1, n - 2], w2[n - 1, n - 1] = 1 / h[-1], -1 / h[-1]
    layer2 = dense_linear(w2, b2)
    # layer 3: scale each triangle by f - f_min at its node, f_min back in the bias, no ReLU
    layer3 = dense_linear((values - f_min).T, f_min)
    construction = Construction(
        method="lecture",
        domain=box,
        spacing=(float(h.max()),),
        nodes=(x,),
        values=values,
        f_min=f_min,
        discontinuities=tuple(sorted(disc)),
        eps=eps_used,
    )
    return ConstructedNetwork(layer1, ReLU(), layer2, ReLU(), layer3, construction=construction)
