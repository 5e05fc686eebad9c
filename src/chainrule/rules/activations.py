"""2. Activation functions: elementwise too, so each derivative is a diagonal matrix."""

from __future__ import annotations

from .. import backend as B
from ..engine import rule
from ._common import away_from_zero, data, mask, n


@rule(reads={"x": "out"})
def sigmoid(x):
    """d sigma(x)/dx = diag(f (1 - f)),  f = sigma(x) = 1/(1 + exp(-x))"""
    e = B.xp.exp(-B.xp.abs(x))  # split by sign so that exp never overflows
    return B.xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


sigmoid.defvjp(lambda g, out, x: g * out * (1 - out))
sigmoid.defsamples(lambda r: [((n(r, 3, 4) * 3,), {})])


@rule(reads={"x": "out"})
def tanh(x):
    """d tanh(x)/dx = diag(1 - f^2),  f = tanh(x)"""
    return B.xp.tanh(x)


tanh.defvjp(lambda g, out, x: g * (1 - out * out))
tanh.defsamples(lambda r: [((n(r, 3, 4),), {})])


@rule(reads={"x": "x"})
def relu(x, grad_at_zero=0.0):
    """d ReLU(x)/dx = diag(1[x > 0])   (at x = 0 any value in [0, 1]: grad_at_zero)"""
    if not 0.0 <= grad_at_zero <= 1.0:
        raise ValueError(
            f"relu: grad_at_zero must lie in [0, 1] (a subgradient), got {grad_at_zero}"
        )
    return B.kernels.relu(x)  # max(x, 0)


def _relu_vjp(g, out, x, grad_at_zero=0.0):
    d = mask(data(x) > 0, g)
    if grad_at_zero:
        d = d + mask(data(x) == 0, g) * grad_at_zero
    return g * d


relu.defvjp(_relu_vjp)
relu.defsamples(
    lambda r: [
        ((away_from_zero(r, (3, 4)),), {}),
        ((away_from_zero(r, (5,)),), {"grad_at_zero": 0.5}),
    ]
)

__all__ = [  # this section's entries (tests/test_layout.py checks them against the table)
    "sigmoid",
    "tanh",
    "relu",
]
