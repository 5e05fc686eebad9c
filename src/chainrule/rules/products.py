"""3. Matrix products: the lecture's forms x^T a, A x, x^T A, and the layer H x + h.

For y = A x:  de/dx = A^T de/dy  and  de/dA = de/dy x^T  (the lecture's 1-layer summary).
Batches carry leading axes; the engine sums the batch axes of a shared matrix's gradient.
"""

from __future__ import annotations

from .. import backend as B
from ..engine import ShapeError, rule
from ._common import n, shape
from .shapes import reshape, sum, transpose


def _mT(x):
    """The transpose of the last two axes (of every matrix in a stack)."""
    k = len(shape(x))
    return transpose(x, axes=(*range(k - 2), k - 1, k - 2))


def _outer(u, v):
    return reshape(u, shape=(-1, 1)) * reshape(v, shape=(1, -1))


@rule(reads={"a": "b", "b": "a"})
def matmul(a, b):
    """d(Ab)/db = A^T,  d(a^T B)/da = B,  d(AB)/dA: G B^T,  d(AB)/dB: A^T G"""
    sa, sb = shape(a), shape(b)
    if len(sa) == 0 or len(sb) == 0:
        raise ShapeError(f"matmul: operands must have at least one axis, got shapes {sa} and {sb}")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ShapeError(f"matmul: shapes {sa} and {sb} do not fit: {ka} columns against {kb} rows")
    return B.xp.matmul(a, b)


def _matmul_vjp_a(g, out, a, b):
    sa, sb = shape(a), shape(b)
    if len(sa) == 1 and len(sb) == 1:
        return g * b
    # promote vectors to matrices (a: 1 x k, b: k x 1), then G B^T, then drop the added axes
    if len(sb) == 1:
        g, bt = reshape(g, shape=(*shape(g), 1)), reshape(b, shape=(1, -1))
    else:
        bt = _mT(b)
    if len(sa) == 1:
        g = reshape(g, shape=(*shape(g)[:-1], 1, shape(g)[-1]))
    ga = g @ bt
    if len(sa) == 1:
        ga = reshape(ga, shape=(*shape(ga)[:-2], shape(ga)[-1]))
    return ga  # batch axes are summed away by the engine


def _matmul_vjp_b(g, out, a, b):
    sa, sb = shape(a), shape(b)
    if len(sa) == 1 and len(sb) == 1:
        return g * a
    if len(sa) == 1:
        at, g = reshape(a, shape=(-1, 1)), reshape(g, shape=(*shape(g)[:-1], 1, shape(g)[-1]))
    else:
        at = _mT(a)
    if len(sb) == 1:
        g = reshape(g, shape=(*shape(g), 1))
    gb = at @ g
    if len(sb) == 1:
        gb = reshape(gb, shape=shape(gb)[:-1])
    return gb


matmul.defvjp(_matmul_vjp_a, _matmul_vjp_b)
matmul.defsamples(
    lambda r: [  # x^T a, A x, x^T A, A B, a batch of A's, x^T times a batch
        ((n(r, 4), n(r, 4)), {}),
        ((n(r, 3, 4), n(r, 4)), {}),
        ((n(r, 3), n(r, 3, 4)), {}),
        ((n(r, 3, 4), n(r, 4, 2)), {}),
        ((n(r, 2, 3, 4), n(r, 4, 2)), {}),
        ((n(r, 3), n(r, 2, 3, 4)), {}),
    ]
)


@rule(reads={"x": "w", "w": "x", "b": ""})
def linear(x, w, b=None):
    """y = x H^T + h:  de/dx = G H,  de/dH = G^T x,  de/dh = sum over the batch of G"""
    if shape(x)[-1:] != shape(w)[-1:]:
        raise ShapeError(
            f"linear: input has {shape(x)[-1:]} features (shape {shape(x)}) but the weight "
            f"expects {shape(w)[-1]} (weight shape {shape(w)}, out x in)"
        )
    if b is not None and shape(b) != shape(w)[:1]:
        raise ShapeError(f"linear: h must have shape {shape(w)[:1]}, got {shape(b)}")
    return B.kernels.linear(x, w, b)


def _linear_vjp_w(g, out, x, w, b=None):
    if len(shape(x)) == 1:
        return _outer(g, x)
    g2 = reshape(g, shape=(-1, shape(g)[-1]))  # the batch axes as one
    return _mT(g2) @ reshape(x, shape=(-1, shape(x)[-1]))


linear.defvjp(
    lambda g, out, x, w, b=None: g @ w,
    _linear_vjp_w,
    lambda g, out, x, w, b=None: g,  # the engine sums over the batch (un-broadcasting)
)
linear.defsamples(
    lambda r: [
        ((n(r, 5, 3), n(r, 4, 3), n(r, 4)), {}),
        ((n(r, 3), n(r, 2, 3)), {}),
        ((n(r, 2, 2, 3), n(r, 4, 3), n(r, 4)), {}),
    ]
)


@rule(reads={"w": "x", "x": "w", "b": ""})
def affine(w, x, b=None):
    """Y = H X + h 1^T:  de/dX = H^T G,  de/dH = G X^T,  de/dh = G 1   (samples in X's columns)

    The lecture's layer H x + h for a batch of column vectors: w (H) is O x K, x is K x P or
    a stack ... x K x P of such matrices, b (h) has O entries, added to every column.
    """
    sw, sx = shape(w), shape(x)
    if len(sw) != 2 or len(sx) < 2 or sx[-2] != sw[1]:
        raise ShapeError(
            f"affine: H must be O x K and X ... x K x P with the same K, got shapes {sw} and {sx}"
        )
    if b is not None and shape(b) != (sw[0],):
        raise ShapeError(
            f"affine: h must have shape ({sw[0]},) for H of shape {sw}, got {shape(b)}"
        )
    return B.kernels.affine(w, x, b)


affine.defvjp(
    lambda g, out, w, x, b=None: g @ _mT(x),  # the engine sums the stack axes away
    lambda g, out, w, x, b=None: _mT(w) @ g,
    lambda g, out, w, x, b=None: sum(g, axis=-1),  # and the engine sums the stack axes
)
affine.defsamples(
    lambda r: [
        ((n(r, 4, 3), n(r, 3, 5), n(r, 4)), {}),
        ((n(r, 2, 3), n(r, 3, 4)), {}),
        ((n(r, 4, 3), n(r, 2, 3, 2), n(r, 4)), {}),  # a stack of two 3 x 2 matrices
    ]
)

__all__ = [  # this section's entries (tests/test_layout.py checks them against the table)
    "matmul",
    "linear",
    "affine",
]
