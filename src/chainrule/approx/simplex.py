"""Vector input, rigorously: hat functions of the Kuhn/Freudenthal triangulation, built from ReLUs.

Cut every grid cell [0, 1]^K (in grid units s = (x - lo) / d) into the K! simplices
{1 >= s_p(1) >= s_p(2) >= ... >= s_p(K) >= 0}, one per ordering p of the coordinates (the
Kuhn, or Freudenthal, triangulation: the cube split by the hyperplanes s_i = s_j). The hat
function of node v, with t = s - v and t_0 = 0, is

    phi_v(x) = max(0, 1 - (max(t_0, t_1, ..., t_K) - min(t_0, t_1, ..., t_K)))

It is 1 at v, 0 at every other node, linear on every simplex (which fixes the order of
0, t_1, ..., t_K), so sum_v f(v) phi_v is the piecewise-linear interpolant of f on the
triangulation: exact at the nodes, with error <= (K/8) max |D f'' D| (D = diag(d)) -> 0
like d^2. (The hats sum to 1 on the domain: a partition of unity.)

With ReLUs - max(a, b) = b + ReLU(a - b), min(a, b) = a - ReLU(a - b):

* layer 1 holds shared ridge features: ReLU(+-(s_i - k)) per direction and grid index, and
  ReLU(t_a - t_b) along the diagonals (shared by all nodes with the same k_a - k_b);
* K = 1:  phi = ReLU(1 - |t|);  K = 2: max - min of three numbers is half the sum of their
  pairwise distances, so phi = ReLU(1 - (|t_1| + |t_2| + |t_1 - t_2|) / 2): ONE layer of
  per-node neurons, three Linear layers in all, like the lecture's 1-D network;
* K >= 3: a tree of pairwise max/min over 0, t_1, ..., t_K (the first level is linear in the
  ridge features), ceil(log2(K + 1)) levels, each a Linear + ReLU layer; then phi.

So the depth grows like log2(K + 1) and the width like the number of nodes, (1/d + 1)^K:
complexity multiplies with the input dimension (the lecture's remark on complexity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..nn import ReLU
from .grid import ConstructedNetwork, Domain, dense_linear, grid_construction, sample_grid
from .layers import Affine, Plan, Ridges, along

__all__ = ["freudenthal_hat", "construct_simplex"]


def freudenthal_hat(t: Any) -> np.ndarray:
    """phi(t) = max(0, 1 - max(0, t_1..t_K) + min(0, t_1..t_K)) for t of shape (N, K): (N,)."""
    t = np.asarray(t, dtype=float)
    if t.ndim != 2:
        raise ValueError(f"freudenthal_hat expects t of shape (N, K), got {t.shape}")
    top = np.maximum(t.max(axis=1), 0.0)
    bottom = np.minimum(t.min(axis=1), 0.0)
    return np.maximum(0.0, 1.0 - top + bottom)


def _plan(nodes: tuple[np.ndarray, ...], box: Domain, form: str) -> tuple[Ridges, Plan]:
    k = len(nodes)
    n = [g.size for g in nodes]
    lo = np.array([a for a, _ in box])
    spacing = np.array([(b - a) / (m - 1) for (a, b), m in zip(box, n, strict=True)])
    ridges = Ridges(lo, spacing)
    eye = np.eye(k)
    # ReLU(s_i - k) and ReLU(k - s_i): |t_i| = sum, t_i = difference
    plus = [Affine.of(along(ridges.add(eye[i], np.arange(n[i])), i, k)) for i in range(k)]
    minus = [Affine.of(along(ridges.add(-eye[i], -np.arange(n[i])), i, k)) for i in range(k)]
    t = [plus[i] - minus[i] for i in range(k)]

    def relu_difference(a: int, b: int) -> Affine:
        """ReLU(t_a - t_b) = ReLU(s_a - s_b - (k_a - k_b)): one feature per diagonal."""
        idx = ridges.add(eye[a] - eye[b], np.arange(-(n[b] - 1), n[a]))
        ka, kb = along(np.arange(n[a]), a, k), along(np.arange(n[b]), b, k)
        return Affine.of(idx[ka - kb + n[b] - 1])

    if k == 1:
        plan = Plan(ridges.count)
        plan.add_layer([1 - plus[0] - minus[0]])
        return ridges, plan
    if k == 2 and form == "ridge":
        # max - min of {0, t1, t2} = (|t1| + |t2| + |t1 - t2|) / 2
        diagonal = relu_difference(0, 1) + relu_difference(1, 0)
        plan = Plan(ridges.count)
        plan.add_layer([1 - 0.5 * (plus[0] + minus[0] + plus[1] + minus[1] + diagonal)])
        return ridges, plan

    # leaves: pairs (t_0 = 0, t_1), (t_2, t_3), ...: max and min linear in the ridge features
    groups: list[tuple[Affine, Affine]] = [(plus[0], -minus[0])]  # max(0, t1), min(0, t1)
    for a in range(1, k, 2):
        if a + 1 < k:
            r = relu_difference(a, a + 1)
            groups.append((t[a + 1] + r, t[a] - r))  # max = t_b + ReLU(t_a - t_b), min = t_a - ...
        else:
            groups.append((t[a], t[a]))
    plan = Plan(ridges.count)
    while len(groups) > 1:
        pairs = [(groups[j], groups[j + 1]) for j in range(0, len(groups) - 1, 2)]
        odd = [groups[-1]] if len(groups) % 2 else []
        kept = [b[0] for _, b in pairs] + [a[1] for a, _ in pairs] + [q for g in odd for q in g]
        carry, used = plan.carry(kept)
        ups = [a[0] - b[0] for a, b in pairs]  # ReLU(max A - max B)
        downs = [a[1] - b[1] for a, b in pairs]  # ReLU(min A - min B)
        idx = plan.add_layer([carry, *ups, *downs])
        copied, m = idx[0], len(pairs)
        groups = [
            (
                b[0].renumber(used, copied) + Affine.of(idx[1 + j]),  # max(A, B)
                a[1].renumber(used, copied) - Affine.of(idx[1 + m + j]),  # min(A, B)
            )
            for j, (a, b) in enumerate(pairs)
        ] + [(g[0].renumber(used, copied), g[1].renumber(used, copied)) for g in odd]
    top, bottom = groups[0]
    plan.add_layer([1 - top + bottom])
    return ridges, plan


def construct_simplex(
    f: Callable[[np.ndarray], Any],
    box: Domain,
    spacing: tuple[float, ...],
    max_neurons: int,
    max_parameters: int,
    form: str = "ridge",
) -> ConstructedNetwork:
    """The network sum_v (f(v) - f_min) phi_v + f_min on the grid of ``box`` (K >= 1 inputs).

    ``form``: "ridge" uses the one-layer identity for K = 2; "tree" the general max/min tree.
    """
    if form not in ("ridge", "tree"):
        raise ValueError(f"form must be 'ridge' or 'tree', got {form!r}")
    k = len(box)
    what = f"the simplex network with d = {max(spacing):g} on a {k}-dimensional box"
    nodes, values = sample_grid(f, box, spacing, what, max_neurons, max_parameters)
    ridges, plan = _plan(nodes, box, form)
    plan.check(k, values.shape[1], max_neurons, max_parameters, what)
    construction = grid_construction("simplex", box, nodes, values)
    f_min = construction.f_min
    layers: list[Any] = [ridges.layer(), ReLU()]
    for layer in plan.build():
        layers += [layer, ReLU()]
    layers.append(dense_linear((values - f_min).T, f_min))
    return ConstructedNetwork(*layers, construction=construction)
