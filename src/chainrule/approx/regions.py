"""Linear regions of a ReLU network of one input: its breakpoints, counted exactly.

A network of Linear and ReLU layers is piecewise linear. With one input x, walk it layer by
layer keeping the points where something already switched (the knots, with the interval's
ends): between two consecutive knots every neuron so far is linear in x. A Linear layer
keeps that true. A ReLU adds a knot wherever a pre-activation z changes sign strictly inside
a segment - at x = p_k + (p_{k+1} - p_k) z_k / (z_k - z_{k+1}), exactly, since z is linear
there. After the last layer the network is linear between consecutive knots; merging
neighbouring segments with the same slope gives its linear pieces (``count_linear_regions``)
and its true breakpoints.

The same knots give an exact evaluation: between knots the network IS the straight line
through its values at the knots, so on many points it is computed at the knots (by its own
layers) and interpolated - for the lecture's 1-D network with d = 1e-3 that is a few
thousand points instead of a dense 1001 x 1001 layer on every input point.

Depth (the lecture's "20 nodes in 1 layer: 20 paths; 2 layers of 10: 100 paths"): a layer
can fold the knots of the layers below, so pieces can multiply with depth and only add with
width - see :mod:`chainrule.approx.depth`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..engine import no_grad
from ..nn import Linear, Module, ReLU, Sequential

__all__ = ["knots", "breakpoints", "count_linear_regions", "evaluate", "relu_layers"]


def relu_layers(net: Module) -> list[Module]:
    """The Linear and ReLU layers of ``net`` in order; TypeError for anything else."""

    def walk(m: Module) -> Iterator[Module]:
        if isinstance(m, Sequential):
            for layer in m.layers:
                yield from walk(layer)
        elif isinstance(m, (Linear, ReLU)):
            yield m
        else:
            raise TypeError(
                f"expected a network of Linear and ReLU layers, found a {type(m).__name__}: "
                "only ReLU networks are piecewise linear"
            )

    layers = list(walk(net))
    if not any(isinstance(m, Linear) for m in layers):
        raise TypeError("the network has no Linear layer")
    return layers


def _input_dim(layers: list[Module]) -> int:
    first = next(m for m in layers if isinstance(m, Linear))
    return int(first.in_features)  # type: ignore[attr-defined]


def _interval(interval: Any) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be a pair (a, b), got {interval!r}") from None
    if not (np.isfinite(a) and np.isfinite(b) and a < b):
        raise ValueError(f"interval must be finite with a < b, got ({a:g}, {b:g})")
    return a, b


def _forward(layers: list[Module], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h, size): the layers' output at x and, for the last Linear, sum_j |w_ij h_j| + |b_i|,
    the scale of its rounding error."""
    h, size = x, np.abs(x)
    for m in layers:
        if isinstance(m, Linear):
            w = m.weight.data
            size = np.abs(h) @ np.abs(w.T)
            h = h @ w.T
            if m.bias is not None:
                h = h + m.bias.data
                size = size + np.abs(m.bias.data)
        else:
            h = np.maximum(h, 0)
    return h, size


def knots(net: Module, interval: Any, max_knots: int = 10_000_000) -> tuple[np.ndarray, np.ndarray]:
    """(p, y): every point of [a, b] where a neuron switches, with a and b; y = net(p), (n, M).

    The network is linear between consecutive points of p. Raises ValueError when there are
    more than ``max_knots``.
    """
    layers = relu_layers(net)
    if _input_dim(layers) != 1:
        raise ValueError(
            f"linear regions are counted for networks of one input; this one has "
            f"{_input_dim(layers)}"
        )
    a, b = _interval(interval)
    dtype = next(m for m in layers if isinstance(m, Linear)).weight.dtype  # type: ignore[attr-defined]
    tol = 1e-12 * max(1.0, abs(a), abs(b))
    p = np.array([a, b])
    h, size = p[:, None].astype(dtype), np.zeros((2, 1))
    for i, m in enumerate(layers):
        if isinstance(m, Linear):
            h, size = _forward([m], h)
            continue
        # a pre-activation within rounding of 0 has not switched: an exactly-zero neuron
        # computed as +-1e-16 must not add knots
        z = np.where(np.abs(h) > 1000 * np.finfo(dtype).eps * size, h, 0)
        cross = (z[:-1] < 0) & (z[1:] > 0) | (z[:-1] > 0) & (z[1:] < 0)
        seg, unit = np.nonzero(cross)
        if seg.size:
            z0, z1 = z[seg, unit], z[seg + 1, unit]
            new = p[seg] + (p[seg + 1] - p[seg]) * (z0 / (z0 - z1))
            new = new[(new > a + tol) & (new < b - tol)]
            p = np.unique(np.concatenate([p, new]))
            p = p[np.concatenate([[True], np.diff(p) > tol])]  # one switch seen twice
            if p.size > max_knots:
                raise ValueError(f"the network has more than {max_knots:,} knots on [{a:g}, {b:g}]")
            h, _ = _forward(layers[: i + 1], p[:, None].astype(dtype))
        else:
            h = np.maximum(h, 0)
    return p, h


def _merge(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask over the interior knots: True where the slope really changes (in any output)."""
    dp = np.diff(p)[:, None]
    slope = np.diff(y, axis=0) / dp
    scale = np.abs(y).max() + 1e-300
    noise = 64 * np.finfo(y.dtype).eps * scale * (1 / dp[:-1] + 1 / dp[1:])
    jump = np.abs(np.diff(slope, axis=0))
    big = 1e-7 * np.maximum(np.abs(slope[:-1]), np.abs(slope[1:]))
    return np.any(jump > big + noise, axis=1)


def breakpoints(net: Module, interval: Any) -> np.ndarray:
    """The points strictly inside the interval where the 1-input network's slope changes."""
    p, y = knots(net, interval)
    return p[1:-1][_merge(p, y)]


def count_linear_regions(net: Module, interval: Any) -> int:
    """The number of linear pieces of a ReLU network of one input on [a, b] (exact)."""
    p, y = knots(net, interval)
    return 1 + int(_merge(p, y).sum())


def evaluate(net: Module, x: Any, batch_size: int = 16384) -> np.ndarray:
    """net(x) as an array (N, M) for x (N, K) or (N,) (K = 1), fast, without recording a graph.

    A ReLU network of one input is evaluated at its knots and interpolated linearly between
    them (exact: it is linear there) when that is cheaper; otherwise in batches under no_grad.
    """
    arr = np.asarray(getattr(x, "data", x))
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"x must have shape (N, K), got {arr.shape}")
    try:
        layers = relu_layers(net)
    except TypeError:
        layers = []
    if layers:
        k = _input_dim(layers)
        if arr.shape[1] != k:
            raise ValueError(f"x has {arr.shape[1]} columns but the network takes {k} inputs")
        dtype = next(m for m in layers if isinstance(m, Linear)).weight.dtype  # type: ignore[attr-defined]
        arr = arr.astype(dtype, copy=False)
        if k == 1 and arr.shape[0] > 64:
            lo, hi = float(arr.min()), float(arr.max())
            if lo < hi:
                try:
                    p, y = knots(net, (lo, hi), max_knots=arr.shape[0] // 4)
                except ValueError:
                    pass
                else:
                    t = arr[:, 0]
                    return np.stack([np.interp(t, p, y[:, j]) for j in range(y.shape[1])], axis=1)
    out = []
    with no_grad():
        for i in range(0, arr.shape[0], batch_size):
            part = net(arr[i : i + batch_size])
            out.append(np.asarray(getattr(part, "data", part)))
    return np.concatenate(out) if out else np.zeros((0, 0))
