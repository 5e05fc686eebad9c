"""1. Elementwise functions: the derivative of y_i = f(x_i) is the diagonal matrix diag(f'(x)).

Each entry: the forward on arrays, the formula (its docstring's first line, denominator
layout), one vector-Jacobian product per input, what those read from the forward pass, and
the inputs where the table checks it. A vjp multiplies g = de/dy by the diagonal: g * f'(x).
"""

from __future__ import annotations

import numbers

from .. import backend as B
from ..engine import rule
from ._common import away_from_zero, broadcast_shape, data, mask, n, pos, shape


@rule(reads={"a": "", "b": ""})
def add(a, b):
    """d(a+b)/da = I,  d(a+b)/db = I"""
    broadcast_shape("add", shape(a), shape(b))
    return a + b


add.defvjp(lambda g, out, a, b: g, lambda g, out, a, b: g)
add.defsamples(
    lambda r: [
        ((n(r, 3, 4), n(r, 3, 4)), {}),
        ((n(r, 3, 4), n(r, 4)), {}),
        ((n(r, 2, 1, 3), n(r, 4, 1)), {}),
    ]
)


@rule(reads={"a": "", "b": ""})
def subtract(a, b):
    """d(a-b)/da = I,  d(a-b)/db = -I"""
    broadcast_shape("subtract", shape(a), shape(b))
    return a - b


subtract.defvjp(lambda g, out, a, b: g, lambda g, out, a, b: negative(g))
subtract.defsamples(lambda r: [((n(r, 3, 4), n(r, 3, 1)), {})])


@rule(reads={"x": ""})
def negative(x):
    """d(-x)/dx = -I"""
    return -x


negative.defvjp(lambda g, out, x: negative(g))
negative.defsamples(lambda r: [((n(r, 5),), {})])


@rule(reads={"a": "b", "b": "a"})
def multiply(a, b):
    """d(a*b)/da = diag(b),  d(a*b)/db = diag(a)   (elementwise product)"""
    broadcast_shape("multiply", shape(a), shape(b))
    return a * b


multiply.defvjp(lambda g, out, a, b: g * b, lambda g, out, a, b: g * a)
multiply.defsamples(lambda r: [((n(r, 3, 4), n(r, 3, 4)), {}), ((n(r, 2, 3), n(r, 3)), {})])


@rule(reads={"x": ""})
def scale(x, alpha):
    """d(alpha x)/dx = alpha I   (alpha a fixed number)"""
    return x * alpha


scale.defvjp(lambda g, out, x, alpha: scale(g, alpha=alpha))
scale.defsamples(lambda r: [((n(r, 3, 2),), {"alpha": 2.5})])


@rule(reads={"a": "b", "b": "b out"})
def divide(a, b):
    """d(a/b)/da = diag(1/b),  d(a/b)/db = diag(-a/b^2)   (quotient rule)"""
    broadcast_shape("divide", shape(a), shape(b))
    return a / b


divide.defvjp(lambda g, out, a, b: g / b, lambda g, out, a, b: negative(g * out / b))
divide.defsamples(lambda r: [((n(r, 3, 4), pos(r, 3, 4)), {}), ((n(r, 3), pos(r, 1)), {})])


@rule(reads={"a": "a p", "p": "a out"})
def power(a, p):
    """d(a^p)/da = diag(p a^(p-1)),  d(a^p)/dp = diag(a^p log a)"""
    broadcast_shape("power", shape(a), shape(p))
    return a**p


def _power_vjp_a(g, out, a, p):
    # p a^(p-1), and 0 where p = 0 (a^0 = 1 is constant: no 0 * inf at a = 0); at a = 0 with
    # p < 1 the derivative is infinite, as it should be
    with B.kernels.quiet():
        if isinstance(p, numbers.Number):
            return scale(g, alpha=0.0) if p == 0 else g * scale(a ** (p - 1), alpha=float(p))
        return g * (p * a ** (p - 1 + mask(data(p) == 0, p)))


def _power_vjp_p(g, out, a, p):
    # a^p log a, and 0 where a = 0 and p >= 0 (the limit; PyTorch, autograd and JAX agree)
    a_is_0 = (data(a) == 0) & (data(p) >= 0)
    return g * out * log(a + mask(a_is_0, out))


power.defvjp(_power_vjp_a, _power_vjp_p)
power.defsamples(
    lambda r: [
        ((pos(r, 3, 2), n(r, 3, 2)), {}),
        ((n(r, 4), 3), {}),
        ((pos(r, 4), 0.5), {}),
    ]
)


@rule(reads={"x": "out"})
def exp(x):
    """d exp(x)/dx = diag(exp(x))"""
    return B.xp.exp(x)


exp.defvjp(lambda g, out, x: g * out)
exp.defsamples(lambda r: [((n(r, 3, 2),), {})])


@rule(reads={"x": "x"})
def log(x):
    """d log(x)/dx = diag(1/x)"""
    return B.xp.log(x)


log.defvjp(lambda g, out, x: g / x)
log.defsamples(lambda r: [((pos(r, 3, 2),), {})])


@rule(reads={"x": "out"})
def sqrt(x):
    """d sqrt(x)/dx = diag(1/(2 sqrt(x)))"""
    return B.xp.sqrt(x)


sqrt.defvjp(lambda g, out, x: g / scale(out, alpha=2))
sqrt.defsamples(lambda r: [((pos(r, 4),), {})])


@rule(reads={"x": "x"})
def absolute(x):
    """d|x|/dx = diag(sign(x))   (0 at x = 0, a subgradient)"""
    return B.xp.abs(x)


absolute.defvjp(lambda g, out, x: g * B.xp.sign(data(x)))
absolute.defsamples(lambda r: [((away_from_zero(r, (3, 3)),), {})])


@rule(reads={"x": "x"})
def sin(x):
    """d sin(x)/dx = diag(cos(x))"""
    return B.xp.sin(x)


sin.defvjp(lambda g, out, x: g * cos(x))
sin.defsamples(lambda r: [((n(r, 5),), {})])


@rule(reads={"x": "x"})
def cos(x):
    """d cos(x)/dx = diag(-sin(x))"""
    return B.xp.cos(x)


cos.defvjp(lambda g, out, x: negative(g * sin(x)))
cos.defsamples(lambda r: [((n(r, 5),), {})])

__all__ = [  # this section's entries (tests/test_layout.py checks them against the table)
    "add",
    "subtract",
    "negative",
    "multiply",
    "scale",
    "divide",
    "power",
    "exp",
    "log",
    "sqrt",
    "absolute",
    "sin",
    "cos",
]
