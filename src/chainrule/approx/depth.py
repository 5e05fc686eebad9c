"""Depth: the same neurons, stacked, make exponentially more linear pieces than side by side.

The lecture: "20 nodes in 1 layer: 20 paths; 2 layers of 10: 100 paths". With ReLUs the
pieces follow the paths:

* one hidden layer of n neurons: at most n + 1 linear pieces (each neuron adds one kink);
* the tent map T(y) = 2 ReLU(y) - 4 ReLU(y - 1/2) folds [0, 1] onto itself, so the
  L-fold composition (2 neurons per layer, 2L in all) is a sawtooth with 2^L pieces;
* x^2 on [0, 1] (Yarotsky 2017): with g_s = T o ... o T (s times),
      f_m(x) = x - sum_{s=1}^{m} g_s(x) / 4^s
  is the interpolant of x^2 on the grid of step 2^-m: 2^m pieces, max error 4^-(m+1), from
  m hidden layers of 3 neurons (g, g - 1/2 and the running sum, which is >= 0 and so passes
  each ReLU unchanged). A single hidden layer with the same 3m neurons interpolates on 3m
  intervals: max error 1 / (4 (3m)^2) - polynomial against exponential in the neurons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn import ReLU, Sequential
from .grid import dense_linear, parse_domain, sample
from .regions import count_linear_regions, evaluate

__all__ = ["sawtooth", "deep_square", "shallow", "DepthRow", "depth_demo", "format_depth_table"]

_TENT = np.array([[2.0, -4.0]])  # T(y) = 2 ReLU(y) - 4 ReLU(y - 1/2)


def _check_depth(depth: Any) -> int:
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    return int(depth)


def sawtooth(depth: int) -> Sequential:
    """T o T o ... o T (``depth`` times) on [0, 1]: 2 neurons per hidden layer, 2^depth pieces."""
    depth = _check_depth(depth)
    split = np.array([0.0, -0.5])
    layers: list[Any] = [dense_linear(np.ones((2, 1)), split), ReLU()]
    for _ in range(depth - 1):
        layers += [dense_linear(np.repeat(_TENT, 2, axis=0), split), ReLU()]
    layers.append(dense_linear(_TENT, np.zeros(1)))
    return Sequential(*layers)


def deep_square(depth: int) -> Sequential:
    """Yarotsky's x^2 on [0, 1]: ``depth`` hidden layers of 3 neurons, error 4^-(depth+1)."""
    m = _check_depth(depth)
    layers: list[Any] = [dense_linear(np.ones((3, 1)), np.array([0.0, -0.5, 0.0])), ReLU()]
    for s in range(1, m + 1):
        # from (ReLU(g), ReLU(g - 1/2), S): g_s = 2a - 4b, S_s = S - g_s / 4^s
        running = np.array([-2.0, 4.0, 4.0**s]) / 4.0**s
        if s < m:
            w = np.array([[2.0, -4.0, 0.0], [2.0, -4.0, 0.0], running])
            layers += [dense_linear(w, np.array([0.0, -0.5, 0.0])), ReLU()]
        else:
            layers.append(dense_linear(running[None], np.zeros(1)))
    return Sequential(*layers)


def shallow(f: Callable[[np.ndarray], Any], interval: Any, neurons: int) -> Sequential:
    """One hidden layer of ``neurons`` ReLUs: the interpolant of f on that many equal intervals.

    net(x) = f(a) + sum_k c_k ReLU(x - x_k), x_k = a + k h, c_k the change of slope at x_k.
    """
    ((a, b),) = parse_domain(interval)
    n = _check_depth(neurons)
    x = np.linspace(a, b, n + 1)
    y = sample(f, x[:, None])  # (n + 1, M)
    slopes = np.diff(y, axis=0) / np.diff(x)[:, None]
    change = np.diff(slopes, axis=0, prepend=0.0)  # (n, M)
    return Sequential(dense_linear(np.ones((n, 1)), -x[:-1]), ReLU(), dense_linear(change.T, y[0]))


@dataclass(frozen=True)
class DepthRow:
    """Deep (``depth`` layers of 3) against shallow (1 layer of 3 * depth) on x^2 over [0, 1]."""

    depth: int
    neurons: int
    deep_paths: int
    shallow_paths: int
    deep_pieces: int
    shallow_pieces: int
    deep_error: float
    shallow_error: float


def _square(x: np.ndarray) -> np.ndarray:
    return x[:, 0] ** 2


def depth_demo(depths: Iterable[int] = range(1, 9), points: int = 100_001) -> list[DepthRow]:
    """For each depth m: pieces and max error on x^2 of the deep and the shallow network."""
    x = np.linspace(0.0, 1.0, points)[:, None]
    rows = []
    for m in depths:
        m = _check_depth(m)
        deep, wide = deep_square(m), shallow(_square, (0.0, 1.0), 3 * m)
        rows.append(
            DepthRow(
                depth=m,
                neurons=3 * m,
                deep_paths=3**m,
                shallow_paths=3 * m,
                deep_pieces=count_linear_regions(deep, (0.0, 1.0)),
                shallow_pieces=count_linear_regions(wide, (0.0, 1.0)),
                deep_error=float(np.abs(evaluate(deep, x)[:, 0] - x[:, 0] ** 2).max()),
                shallow_error=float(np.abs(evaluate(wide, x)[:, 0] - x[:, 0] ** 2).max()),
            )
        )
    return rows


def format_depth_table(rows: Iterable[DepthRow]) -> str:
    """The demo as a Markdown table."""
    lines = [
        "| layers x neurons | paths deep / shallow | pieces deep / shallow "
        "| max error deep / shallow |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.depth} x 3 vs 1 x {r.neurons} | {r.deep_paths:,} / {r.shallow_paths} "
            f"| {r.deep_pieces:,} / {r.shallow_pieces} "
            f"| {r.deep_error:.2e} / {r.shallow_error:.2e} |"
        )
    return "\n".join(lines)
