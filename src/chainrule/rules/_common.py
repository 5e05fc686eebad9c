"""What the table's entries share: operand checks, axis normalisation, sample makers."""

from __future__ import annotations

import builtins
import math
import numbers
from collections.abc import Callable
from typing import Any

from .. import backend as B
from ..engine import ShapeError, Tensor, broadcast_shapes


def data(x: Any) -> Any:
    """The array inside a Tensor (masks and indices are constants: no derivative)."""
    return x.data if isinstance(x, Tensor) else x


def shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else ()


def mask(condition: Any, like: Any) -> Any:
    """A 0/1 constant array in the dtype of ``like`` (a boolean array does not multiply)."""
    return B.xp.astype(data(condition), data(like).dtype)


def broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that broadcasting gives, or a ShapeError naming ``op`` and the shapes."""
    out = broadcast_shapes(*shapes)
    if out is None:
        raise ShapeError(
            f"{op}: shapes {' and '.join(map(str, shapes))} cannot be broadcast together"
        )
    return out


def axis_index(op: str, axis: Any, ndim: int) -> int:
    """One axis as an index in [0, ndim): negative axes count from the end."""
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{op}: an axis must be an int, got {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for {ndim} axes")
    return int(axis) % ndim


def axes(op: str, axis: Any, ndim: int) -> Any:
    """A reduction's ``axis`` normalised: None, an int in [0, ndim) or a sorted tuple of them.

    A 0-d input accepts axis 0 and -1 (a reduction over nothing, ``()``), as PyTorch does.
    """
    if axis is None:
        return None
    items = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    if ndim == 0:
        if any(not isinstance(a, numbers.Integral) or a not in (0, -1) for a in items):
            raise ValueError(f"{op}: axis {axis!r} is out of range for a 0-d input")
        return ()
    out = tuple(sorted(axis_index(op, a, ndim) for a in items))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis!r} names an axis twice")
    return out[0] if isinstance(axis, numbers.Integral) else out


def axis_tuple(axis: Any, ndim: int) -> tuple[int, ...]:
    """The axes a normalised ``axis`` reduces over, as a tuple."""
    if axis is None:
        return tuple(range(ndim))
    return (int(axis),) if isinstance(axis, numbers.Integral) else tuple(axis)


def reduction_params(op: str) -> Callable:
    """A ``defparams`` for reductions: ``axis`` normalised, ``keepdims`` a bool."""

    def prepare(x: Any, axis: Any = None, keepdims: bool = False) -> dict[str, Any]:
        return {"axis": axes(op, axis, len(shape(x))), "keepdims": bool(keepdims)}

    return prepare


def one_axis_params(op: str) -> Callable:
    """A ``defparams`` for rules along one axis (softmax): ``axis`` made non-negative."""

    def prepare(x: Any, axis: int = -1) -> dict[str, Any]:
        return {"axis": axis_index(op, axis, builtins.max(1, len(shape(x))))}

    return prepare


def pair(v: Any, name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, numbers.Integral) else tuple(v)
    if len(t) != 2 or not all(isinstance(i, numbers.Integral) and int(i) > 0 for i in t):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


# ----------------------------------------------------------------------------- sample inputs
# Inputs where the table checks each rule (``chainrule gradcheck``, tests/test_rules.py): away
# from kinks (ReLU at 0, ties of a max, |x| at 0) where the derivative jumps. ``r`` is a
# NumPy random Generator.


def n(r: Any, *dims: int) -> Any:
    return r.standard_normal(dims)


def pos(r: Any, *dims: int) -> Any:
    return r.uniform(0.5, 2.0, size=dims)


def away_from_zero(r: Any, dims: tuple[int, ...], margin: float = 0.1) -> Any:
    return r.uniform(margin, 1.5, size=dims) * r.choice([-1.0, 1.0], size=dims)


def distinct(r: Any, dims: tuple[int, ...]) -> Any:
    """Values with gaps of at least 0.05 between any two (no ties for max)."""
    k = math.prod(dims)
    return (r.permutation(k) * 0.05 + r.uniform(0, 0.01, k)).reshape(dims)


def ints(*values: int) -> Any:
    """Class labels or indices as an integer array."""
    return B.xp.asarray(values[0] if len(values) == 1 else list(values))
