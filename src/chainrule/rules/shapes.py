"""4. Reductions and shapes: sums, maxima, and the operations that only move numbers.

A reduction's derivative copies the gradient back to every summand (``sum``) or shares it
(``mean``); a shape operation's derivative moves the gradient back where its numbers came
from (the inverse permutation, the inverse reshape, the picked entries).
"""

from __future__ import annotations

import builtins
import math
import numbers

from .. import backend as B
from ..engine import ShapeError, composite, rule
from ._common import (
    axis_index,
    axis_tuple,
    data,
    distinct,
    ints,
    mask,
    n,
    reduction_params,
    shape,
)
from .elementwise import scale


@rule(reads={"x": ""})
def transpose(x, axes=None):
    """d x^T/dx: the gradient is transposed back (by the inverse permutation)"""
    perm = tuple(range(len(shape(x))))[::-1] if axes is None else axes
    return B.xp.permute_dims(x, perm)


@transpose.defparams
def _transpose_params(x, axes=None):
    k = len(shape(x))
    if axes is None:
        return {"axes": None}
    perm = tuple(axis_index("transpose", a, k) for a in axes)
    if sorted(perm) != list(range(k)):
        raise ValueError(
            f"transpose: axes {tuple(axes)} are not a permutation of the {k} axes of shape "
            f"{shape(x)}"
        )
    return {"axes": perm}


def _transpose_vjp(g, out, x, axes=None):
    if axes is None:
        return transpose(g)
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    return transpose(g, axes=tuple(inverse))


transpose.defvjp(_transpose_vjp)
transpose.defsamples(lambda r: [((n(r, 3, 4),), {}), ((n(r, 2, 3, 4),), {"axes": (1, -1, 0)})])


def _keep_shape(dims, axis):
    """The reduced shape with keepdims (``axis`` as the reductions normalise it)."""
    reduced = axis_tuple(axis, len(dims))
    return tuple(1 if i in reduced else k for i, k in enumerate(dims))


def _count(dims, axis):
    """How many numbers a reduction over ``axis`` takes together."""
    return math.prod(dims[a] for a in axis_tuple(axis, len(dims)))


@rule(reads={"x": ""})
def sum(x, axis=None, keepdims=False):
    """d sum(x)/dx = 1 (a vector of ones): the gradient is copied to every summand"""
    return B.xp.sum(x, axis=axis, keepdims=keepdims)


def _sum_vjp(g, out, x, axis=None, keepdims=False):
    return broadcast_to(reshape(g, shape=_keep_shape(shape(x), axis)), shape=shape(x))


sum.defvjp(_sum_vjp)
sum.defparams(reduction_params("sum"))
sum.defsamples(
    lambda r: [
        ((n(r, 3, 4),), {}),
        ((n(r, 3, 4),), {"axis": 0}),
        ((n(r, 2, 3, 4),), {"axis": (0, -1), "keepdims": True}),
    ]
)


@rule(reads={"x": ""})
def mean(x, axis=None, keepdims=False):
    """d mean(x)/dx = 1/n: the gradient is shared equally by the n summands"""
    k = _count(shape(x), axis)
    total = B.xp.sum(x, axis=axis, keepdims=keepdims)
    return total / k if k else total * float("nan")  # an empty mean is NaN, as PyTorch's


mean.defvjp(
    lambda g, out, x, axis=None, keepdims=False: scale_by(
        _sum_vjp(g, out, x, axis, keepdims), _count(shape(x), axis)
    )
)
mean.defparams(reduction_params("mean"))
mean.defsamples(lambda r: [((n(r, 3, 4),), {}), ((n(r, 3, 4),), {"axis": -1})])


def scale_by(g, k):
    """g / k for a count k (0 for an empty reduction, whose gradient is empty anyway)."""
    return scale(g, alpha=1.0 / k if k else 0.0)


@rule(saves=True, reads={"x": "saved"})
def max(x, axis=None, keepdims=False):
    """d max(x)/dx = e_k, k = argmax (saved; on ties the first maximum takes the gradient)"""
    xp = B.xp
    if axis is None or axis == ():
        flat = xp.reshape(x, (-1,))
        k = xp.argmax(flat)
        first = xp.reshape(xp.arange(flat.shape[0]) == k, shape(x))
        out = flat[k]
        return (xp.reshape(out, (1,) * len(shape(x))) if keepdims else out), first
    if not isinstance(axis, numbers.Integral):
        raise ValueError(f"max: axis must be one int or None, got {axis!r}")
    k = xp.argmax(x, axis=axis, keepdims=True)
    where = [1] * len(shape(x))
    where[axis] = shape(x)[axis]
    first = xp.reshape(xp.arange(shape(x)[axis]), tuple(where)) == k
    out = xp.take_along_axis(x, k, axis=axis)
    return (out if keepdims else xp.squeeze(out, axis=axis)), first


max.defvjp(
    lambda g, out, x, axis=None, keepdims=False, saved=None: (
        reshape(g, shape=_keep_shape(shape(x), axis)) * mask(saved, g)
    )
)
max.defparams(reduction_params("max"))
max.defsamples(
    lambda r: [
        ((distinct(r, (3, 4)),), {}),
        ((distinct(r, (3, 4)),), {"axis": 1}),
        ((distinct(r, (3, 4)),), {"axis": -2, "keepdims": True}),
    ]
)


@rule(reads={"x": ""})
def broadcast_to(x, shape):
    """d broadcast(x)/dx: the copies' gradients are summed back (the split rule)"""
    return B.xp.broadcast_to(x, tuple(shape))


broadcast_to.defvjp(lambda g, out, x, shape: g)  # the engine sums down to x's shape
broadcast_to.defsamples(lambda r: [((n(r, 3, 1),), {"shape": (2, 3, 4)})])


@rule(reads={"x": ""})
def reshape(x, shape):
    """d reshape(x)/dx: the gradient is reshaped back"""
    try:
        return B.kernels.reshape(x, tuple(shape))
    except ValueError:
        raise ShapeError(
            f"reshape: cannot reshape shape {tuple(x.shape)} into {tuple(shape)}"
        ) from None


reshape.defvjp(lambda g, out, x, shape: reshape(g, shape=tuple(x.shape)))
reshape.defsamples(lambda r: [((n(r, 3, 4),), {"shape": (2, 6)})])


@rule(reads={"x": ""})
def cast(x, dtype):
    """d cast(x)/dx = I (the gradient is cast back)"""
    return B.xp.astype(x, dtype)


cast.defvjp(lambda g, out, x, dtype: cast(g, dtype=data(x).dtype))


@cast.defparams
def _cast_params(x, dtype):
    return {"dtype": getattr(B.xp, dtype) if isinstance(dtype, str) else dtype}


cast.defsamples(lambda r: [((n(r, 3),), {"dtype": B.xp.float64})])


@rule(reads={"x": ""})
def getitem(x, index):
    """d x[index]/dx: the gradient goes back to the picked entries (summed where repeated)"""
    try:
        return B.kernels.getitem(x, index)
    except IndexError as e:
        raise IndexError(
            f"getitem: index {index!r} does not fit shape {tuple(x.shape)}: {e}"
        ) from None


getitem.defvjp(lambda g, out, x, index: scatter(g, shape=tuple(x.shape), index=index))
getitem.defsamples(
    lambda r: [
        ((n(r, 4, 5),), {"index": (slice(1, 3), slice(None, None, 2))}),
        ((n(r, 4, 5),), {"index": (ints(0, 2, 0),)}),
        ((n(r, 4, 5),), {"index": 2}),
    ]
)


@rule(reads={"g": ""})
def scatter(g, shape, index):
    """d scatter(g)/dg: the entries at index (zeros elsewhere; the adjoint of getitem)"""
    return B.kernels.scatter_add(g, tuple(shape), index)


scatter.defvjp(lambda g, out, gin, shape, index: getitem(g, index=index))
scatter.defsamples(
    lambda r: [
        ((n(r, 2, 3),), {"shape": (4, 3), "index": (slice(1, 3),)}),
        ((n(r, 3),), {"shape": (4,), "index": (ints(0, 2, 0),)}),
    ]
)


def _piece(g, ax, start, stop):
    return getitem(g, index=(slice(None),) * ax + (slice(start, stop),))


@rule(reads={"xs": ""})
def concat(*xs, axis=0):
    """d concat(x1, x2, ...)/dxi: the gradient is split back into the pieces"""
    try:
        return B.xp.concat(xs, axis=axis)
    except (ValueError, RuntimeError):
        raise ShapeError(
            f"concat: shapes {[shape(x) for x in xs]} do not fit along axis {axis}"
        ) from None


def _concat_vjp(g, out, *xs, axis=0):
    grads, start = [], 0
    for x in xs:
        grads.append(_piece(g, axis, start, start + shape(x)[axis]))
        start += shape(x)[axis]
    return tuple(grads)


@concat.defparams
def _concat_params(*xs, axis=0):
    if not xs:
        raise ValueError("concat: needs at least one input")
    return {"axis": axis_index("concat", axis, builtins.max(1, len(shape(xs[0]))))}


concat.defvjp_all(_concat_vjp)
concat.defsamples(
    lambda r: [
        ((n(r, 2, 3), n(r, 1, 3)), {}),
        ((n(r, 2, 3), n(r, 2, 2)), {"axis": -1}),
    ]
)


@rule(reads={"xs": ""})
def stack(*xs, axis=0):
    """d stack(x1, x2, ...)/dxi: slice i of the gradient"""
    if len({shape(x) for x in xs}) > 1:
        shapes = [shape(x) for x in xs]
        raise ShapeError(f"stack: all inputs must have the same shape, got {shapes}")
    return B.xp.stack(xs, axis=axis)


@stack.defparams
def _stack_params(*xs, axis=0):
    if not xs:
        raise ValueError("stack: needs at least one input")
    return {"axis": axis_index("stack", axis, len(shape(xs[0])) + 1)}


stack.defvjp_all(
    lambda g, out, *xs, axis=0: tuple(
        getitem(g, index=(slice(None),) * axis + (i,)) for i in range(len(xs))
    )
)
stack.defsamples(
    lambda r: [
        ((n(r, 2, 3), n(r, 2, 3)), {}),
        ((n(r, 3), n(r, 3), n(r, 3)), {"axis": 1}),
    ]
)


@composite("d split(x)/dx: the pieces' gradients are concatenated back")
def split(x, sections, axis=0):
    """Split ``x`` along ``axis`` into pieces of the given sizes (or n equal pieces)."""
    ax = axis_index("split", axis, len(shape(x)))
    k = shape(x)[ax]
    if isinstance(sections, numbers.Integral):
        if k % sections:
            raise ShapeError(
                f"split: axis {axis} of length {k} does not split into {sections} equal parts"
            )
        sizes = [k // sections] * sections
    else:
        sizes = list(sections)
        if builtins.sum(sizes) != k:
            raise ShapeError(f"split: sizes {sizes} do not add up to length {k} of axis {axis}")
    out, start = [], 0
    for s in sizes:
        out.append(_piece(x, ax, start, start + s))
        start += s
    return out


split.defsamples(
    lambda r: [
        ((n(r, 6, 2),), {"sections": 3}),
        ((n(r, 2, 5),), {"sections": [2, 3], "axis": -1}),
    ]
)

__all__ = [  # this section's entries (tests/test_layout.py checks them against the table)
    "transpose",
    "sum",
    "mean",
    "max",
    "broadcast_to",
    "reshape",
    "cast",
    "getitem",
    "scatter",
    "concat",
    "stack",
    "split",
]
