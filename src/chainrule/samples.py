"""Test inputs for every entry of the derivative table, mirroring :mod:`chainrule.rules`.

``SAMPLES[name](rng)`` returns a list of ``(args, params)`` at which the rule is checked
against central differences (``chainrule gradcheck`` and ``tests/test_rules.py``). Inputs
keep away from kinks (ReLU at 0, ties of a max, |x| at 0) where the derivative jumps.
A rule without an entry here fails the test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Sample = list[tuple[tuple[Any, ...], dict[str, Any]]]


def _away_from_zero(
    rng: np.random.Generator, shape: tuple[int, ...], margin: float = 0.1
) -> np.ndarray:
    x = rng.uniform(margin, 1.5, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with gaps of at least 0.05 between any two (no ties for max)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 + rng.uniform(0, 0.01, n)).reshape(shape)


def _n(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def _pos(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, size=shape)


SAMPLES: dict[str, Callable[[np.random.Generator], Sample]] = {
    # 1. elementwise
    "add": lambda r: [
        ((_n(r, 3, 4), _n(r, 3, 4)), {}),
        ((_n(r, 3, 4), _n(r, 4)), {}),
        ((_n(r, 2, 1, 3), _n(r, 4, 1)), {}),
    ],
    "subtract": lambda r: [((_n(r, 3, 4), _n(r, 3, 1)), {})],
    "negative": lambda r: [((_n(r, 5),), {})],
    "multiply": lambda r: [((_n(r, 3, 4), _n(r, 3, 4)), {}), ((_n(r, 2, 3), _n(r, 3)), {})],
    "scale": lambda r: [((_n(r, 3, 2),), {"alpha": 2.5})],
    "divide": lambda r: [((_n(r, 3, 4), _pos(r, 3, 4)), {}), ((_n(r, 3), _pos(r, 1)), {})],
    "power": lambda r: [
        ((_pos(r, 3, 2), _n(r, 3, 2)), {}),
        ((_n(r, 4), 3), {}),
        ((_pos(r, 4), 0.5), {}),
    ],
    "exp": lambda r: [((_n(r, 3, 2),), {})],
    "log": lambda r: [((_pos(r, 3, 2),), {})],
    "sqrt": lambda r: [((_pos(r, 4),), {})],
    "absolute": lambda r: [((_away_from_zero(r, (3, 3)),), {})],
    "sin": lambda r: [((_n(r, 5),), {})],
    "cos": lambda r: [((_n(r, 5),), {})],
    # 2. activations
    "sigmoid": lambda r: [((_n(r, 3, 4) * 3,), {})],
    "tanh": lambda r: [((_n(r, 3, 4),), {})],
    "relu": lambda r: [
        ((_away_from_zero(r, (3, 4)),), {}),
        ((_away_from_zero(r, (5,)),), {"grad_at_zero": 0.5}),
    ],
    # 3. matrix products: the lecture's forms x^T a, A x, x^T A, A^T x, X^T A, batched
    "matmul": lambda r: [
        ((_n(r, 4), _n(r, 4)), {}),
        ((_n(r, 3, 4), _n(r, 4)), {}),
        ((_n(r, 3), _n(r, 3, 4)), {}),
        ((_n(r, 3, 4), _n(r, 4, 2)), {}),
        ((_n(r, 2, 3, 4), _n(r, 4, 2)), {}),
        ((_n(r, 3), _n(r, 2, 3, 4)), {}),
    ],
    "transpose": lambda r: [((_n(r, 3, 4),), {}), ((_n(r, 2, 3, 4),), {"axes": (1, 2, 0)})],
    "linear": lambda r: [
        ((_n(r, 5, 3), _n(r, 4, 3), _n(r, 4)), {}),
        ((_n(r, 3), _n(r, 2, 3)), {}),
        ((_n(r, 2, 2, 3), _n(r, 4, 3), _n(r, 4)), {}),
    ],
    "affine": lambda r: [
        ((_n(r, 4, 3), _n(r, 3, 5), _n(r, 4)), {}),
        ((_n(r, 2, 3), _n(r, 3, 4)), {}),
        ((_n(r, 4, 3), _n(r, 2, 3, 2), _n(r, 4)), {}),  # a stack of two 3 x 2 matrices
    ],
    # 4. reductions and shapes
    "sum": lambda r: [
        ((_n(r, 3, 4),), {}),
        ((_n(r, 3, 4),), {"axis": 0}),
        ((_n(r, 2, 3, 4),), {"axis": (0, 2), "keepdims": True}),
    ],
    "mean": lambda r: [((_n(r, 3, 4),), {}), ((_n(r, 3, 4),), {"axis": 1})],
    "max": lambda r: [
        ((_distinct(r, (3, 4)),), {}),
        ((_distinct(r, (3, 4)),), {"axis": 1}),
        ((_distinct(r, (3, 4)),), {"axis": 0, "keepdims": True}),
    ],
    "broadcast_to": lambda r: [((_n(r, 3, 1),), {"shape": (2, 3, 4)})],
    "reshape": lambda r: [((_n(r, 3, 4),), {"shape": (2, 6)})],
    "cast": lambda r: [((_n(r, 3),), {"dtype": np.dtype(np.float64)})],
    "getitem": lambda r: [
        ((_n(r, 4, 5),), {"index": (slice(1, 3), slice(None, None, 2))}),
        ((_n(r, 4, 5),), {"index": (np.array([0, 2, 0]),)}),
        ((_n(r, 4, 5),), {"index": 2}),
    ],
    "scatter": lambda r: [
        ((_n(r, 2, 3),), {"shape": (4, 3), "index": (slice(1, 3),)}),
        ((_n(r, 3),), {"shape": (4,), "index": (np.array([0, 2, 0]),)}),
    ],
    "concat": lambda r: [
        ((_n(r, 2, 3), _n(r, 1, 3)), {}),
        ((_n(r, 2, 3), _n(r, 2, 2)), {"axis": 1}),
    ],
    "stack": lambda r: [
        ((_n(r, 2, 3), _n(r, 2, 3)), {}),
        ((_n(r, 3), _n(r, 3), _n(r, 3)), {"axis": 1}),
    ],
    "split": lambda r: [
        ((_n(r, 6, 2),), {"sections": 3}),
        ((_n(r, 2, 5),), {"sections": [2, 3], "axis": 1}),
    ],
    # 5. convolution and pooling
    "unfold": lambda r: [
        ((_n(r, 2, 2, 5, 4),), {"window": (3, 2)}),
        ((_n(r, 1, 2, 5, 5),), {"window": (3, 3), "stride": 2, "padding": 1}),
        ((_n(r, 1, 2, 4, 6),), {"window": (2, 2), "stride": 2}),  # windows tile the image
        ((_n(r, 1, 1, 5, 5),), {"window": (2, 2), "stride": 2, "padding": 1}),
        ((_n(r, 2, 1, 4, 4),), {"window": (3, 3), "padding": 1}),
        ((_n(r, 2, 2, 5, 5),), {"window": (3, 2), "stride": 2, "padding": 1, "contiguous": True}),
    ],
    "fold": lambda r: [  # windows C x Fr x Fc x Ho x Wo x N
        ((_n(r, 2, 3, 2, 3, 3, 2),), {"x_shape": (2, 2, 5, 4)}),
        ((_n(r, 2, 3, 3, 3, 3, 1),), {"x_shape": (1, 2, 5, 5), "stride": 2, "padding": 1}),
        ((_n(r, 2, 2, 2, 2, 3, 1),), {"x_shape": (1, 2, 4, 6), "stride": 2}),
        ((_n(r, 1, 2, 2, 2, 2, 1),), {"x_shape": (1, 1, 5, 5), "stride": 2}),  # last row unused
        ((_n(r, 1, 3, 3, 4, 4, 2),), {"x_shape": (2, 1, 4, 4), "padding": 1}),
    ],
    "conv2d": lambda r: [
        ((_n(r, 2, 2, 6, 5), _n(r, 3, 2, 3, 3), _n(r, 3)), {}),
        ((_n(r, 1, 2, 5, 5), _n(r, 2, 2, 3, 3)), {"stride": 2, "padding": 1}),
        ((_n(r, 2, 1, 4, 5), _n(r, 2, 1, 3, 2), _n(r, 2)), {"padding": 1}),
        # a kernel of more than 256 numbers: one matrix product for all rows (see conv2d)
        ((_n(r, 2, 3, 4, 4), _n(r, 10, 3, 3, 3) / 4, _n(r, 10)), {"padding": 1}),
    ],
    "max_pool2d": lambda r: [
        ((_distinct(r, (2, 2, 4, 4)),), {"kernel_size": 2}),
        ((_distinct(r, (1, 2, 5, 5)),), {"kernel_size": 3, "stride": 1}),
        ((_distinct(r, (1, 1, 5, 5)),), {"kernel_size": 2}),
        ((_distinct(r, (1, 2, 5, 6)),), {"kernel_size": (2, 3), "stride": 1}),
    ],
    "avg_pool2d": lambda r: [
        ((_n(r, 2, 2, 4, 4),), {"kernel_size": 2}),
        ((_n(r, 1, 1, 5, 5),), {"kernel_size": 3, "stride": 2}),
    ],
    # 6. softmax and errors
    "softmax": lambda r: [((_n(r, 3, 4),), {}), ((_n(r, 3, 4),), {"axis": 0})],
    "log_softmax": lambda r: [((_n(r, 3, 4),), {})],
    "cross_entropy": lambda r: [
        ((r.dirichlet(np.ones(4), size=3), np.array([0, 3, 1])), {}),
        ((r.dirichlet(np.ones(5)), np.array(2)), {}),
    ],
    "mse": lambda r: [((_n(r, 3, 2), _n(r, 3, 2)), {}), ((_n(r, 4), _n(r, 4)), {"half": True})],
    "softmax_cross_entropy": lambda r: [
        ((_n(r, 4, 5) * 2, np.array([0, 4, 2, 2])), {}),
        ((_n(r, 3), np.array(1)), {}),
    ],
}
