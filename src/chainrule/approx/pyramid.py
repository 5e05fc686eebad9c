"""Vector input, the lecture's literal recipe: K-dimensional pyramids from 1-D triangles.

Replicate layer 1 per input component (the building blocks ReLU(s_i - k), s = (x - lo)/d the
input in grid units) and combine, in layer 2, the K one-dimensional triangles of node v into
a pyramid

    pyr_v(x) = ReLU(tri_{v_1}(x_1) + ... + tri_{v_K}(x_K) - (K - 1))

which is 1 at v and 0 at every other node (there one triangle is 0 and the others at most 1).
Layer 3 sums f(v) pyr_v as in 1-D.

Why it does not converge for K >= 2: the pyramids are no partition of unity. Inside a cell the
triangles of its corners are 1 - |t_i|, and at the centre of a cell every corner's pyramid is
ReLU(K/2 - (K - 1)) = ReLU(1 - K/2) = 0 for K >= 2: the network there returns f_min (the last
bias) whatever f is, at every d. Its max error stays about max(f) - f_min as d -> 0, while the
simplex hats (:mod:`chainrule.approx.simplex`) sum to 1 and converge like d^2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..nn import ReLU
from .grid import ConstructedNetwork, Domain, dense_linear, grid_construction, sample_grid
from .layers import Affine, Plan, Ridges, along

__all__ = ["construct_pyramid"]


def _triangles(ridges: Ridges, n: int, axis: int, k: int) -> Affine:
    """tri_j = r_{j-1} - 2 r_j + r_{j+1} (r_j = ReLU(s - j)); halves that saturate at the ends."""
    r = ridges.add(np.eye(k)[axis], np.arange(n))
    j = np.arange(n)
    end = (j == 0) | (j == n - 1)
    terms = [
        (np.where(j >= 1, 1.0, 0.0), r[np.maximum(j - 1, 0)]),
        (np.where(end, -1.0, -2.0), r[j]),
        (np.where(j <= n - 2, 1.0, 0.0), r[np.minimum(j + 1, n - 1)]),
    ]
    const = np.where(j == 0, 1.0, 0.0)  # tri_0 = 1 - r_0 + r_1
    return Affine([(along(c, axis, k), along(i, axis, k)) for c, i in terms], along(const, axis, k))


def construct_pyramid(
    f: Callable[[np.ndarray], Any],
    box: Domain,
    spacing: tuple[float, ...],
    max_neurons: int,
    max_parameters: int,
) -> ConstructedNetwork:
    """The lecture's 3-layer network of K-dimensional pyramids (not an interpolant for K >= 2)."""
    k = len(box)
    what = f"the pyramid network with d = {max(spacing):g} on a {k}-dimensional box"
    nodes, values = sample_grid(f, box, spacing, what, max_neurons, max_parameters)
    lo = np.array([a for a, _ in box])
    ridges = Ridges(lo, np.array([g[1] - g[0] for g in nodes]))
    pyramid: Affine = Affine()
    for i, g in enumerate(nodes):
        pyramid = pyramid + _triangles(ridges, g.size, i, k)
    plan = Plan(ridges.count)
    plan.add_layer([pyramid - (k - 1)])
    plan.check(k, values.shape[1], max_neurons, max_parameters, what)
    construction = grid_construction("pyramid", box, nodes, values)
    f_min = construction.f_min
    (layer2,) = plan.build()
    return ConstructedNetwork(
        ridges.layer(),
        ReLU(),
        layer2,
        ReLU(),
        dense_linear((values - f_min).T, f_min),
        construction=construction,
    )
