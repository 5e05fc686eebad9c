"""The table of derivative rules, in the order of the lecture, one module per section.

1. :mod:`.elementwise` (add ... cos), 2. :mod:`.activations` (sigmoid, tanh, relu),
3. :mod:`.products` (matmul, linear, affine), 4. :mod:`.shapes` (sum, max, reshape, getitem,
concat, ...), 5. :mod:`.convolution` (unfold, fold, conv2d, pooling), 6. :mod:`.losses`
(softmax and the errors).

Each entry is in one place: its forward next to its vector-Jacobian products (vjps), one per
input: given g = de/d(out), the vjp returns de/d(input). The first line of each forward's
docstring is the derivative in the lecture's denominator layout (for f: R^K -> R^M the
Jacobian df/dx is K x M, so de/dx = df/dx . de/df); ``reads=`` says which forward values the
vjps read (what :func:`chainrule.to_dot` marks as saved for backward); ``defsamples`` gives
the inputs where ``chainrule gradcheck`` checks it.

The vjps are written with operators and with the rules themselves: in the first-order path
they run on arrays, and under ``create_graph`` on Tensors, recording a graph of their own
(derivatives of derivatives). Un-broadcasting and the split rule are the engine's job; speed
and memory layout are the backend's (:mod:`chainrule.backend`).

This package also builds Tensor's operators (:data:`OPERATORS`) and installs them.
"""

from __future__ import annotations

import numbers
from typing import Any

from ..engine import COMPOSITES, RULES, Tensor, install_operators
from . import activations, convolution, elementwise, losses, products, shapes
from .activations import *  # noqa: F403  (each section's __all__: its entries)
from .convolution import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .losses import *  # noqa: F403
from .products import *  # noqa: F403
from .shapes import *  # noqa: F403

SECTIONS = (elementwise, activations, products, shapes, convolution, losses)

#: every entry of the table by name: the rules (primitives), then the composites
TABLE: dict[str, Any] = {**RULES, **COMPOSITES}

#: the inputs where each entry is checked, ``SAMPLES[name](rng) -> [(args, params), ...]``
SAMPLES = {name: entry.samples for name, entry in TABLE.items() if entry.samples is not None}


def _index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def _shape_args(shape: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _mul(a: Any, b: Any) -> Tensor:
    if isinstance(b, numbers.Number):
        return elementwise.scale(a, alpha=b)
    return elementwise.multiply(a, b)


def _rmul(a: Any, b: Any) -> Tensor:
    if isinstance(b, numbers.Number):
        return elementwise.scale(a, alpha=b)
    return elementwise.multiply(b, a)


def _truediv(a: Any, b: Any) -> Tensor:
    if isinstance(b, (int, float)) and b != 0:
        return elementwise.scale(a, alpha=1.0 / b)
    return elementwise.divide(a, b)


def _transpose(t: Tensor, *axes: Any) -> Tensor:
    """Permute the axes (reversed when none are given)."""
    axes = _shape_args(axes)
    return shapes.transpose(t, axes=tuple(axes) if axes else None)


def _reshape(t: Tensor, *shape: Any) -> Tensor:
    return shapes.reshape(t, shape=_shape_args(shape))


def _flatten(t: Tensor, start_dim: int = 0) -> Tensor:
    """Merge the axes from ``start_dim`` on into one."""
    return shapes.reshape(t, shape=(*t.shape[:start_dim], -1))


def _reduction(r: Any) -> Any:
    def method(t: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        return r(t, axis=_axis(axis), keepdims=keepdims)

    method.__name__ = r.name
    method.__doc__ = r.formula
    return method


def _unary(r: Any) -> Any:
    def method(t: Tensor) -> Tensor:
        return r(t)

    method.__name__ = r.name
    method.__doc__ = r.formula
    return method


# Tensor's operators and methods, each one of the table's rules (the engine knows none of them)
OPERATORS: dict[str, Any] = {
    "__add__": lambda a, b: elementwise.add(a, b),
    "__radd__": lambda a, b: elementwise.add(b, a),
    "__sub__": lambda a, b: elementwise.subtract(a, b),
    "__rsub__": lambda a, b: elementwise.subtract(b, a),
    "__mul__": _mul,
    "__rmul__": _rmul,
    "__truediv__": _truediv,
    "__rtruediv__": lambda a, b: elementwise.divide(b, a),
    "__pow__": lambda a, b: elementwise.power(a, b),
    "__rpow__": lambda a, b: elementwise.power(b, a),
    "__matmul__": lambda a, b: products.matmul(a, b),
    "__rmatmul__": lambda a, b: products.matmul(b, a),
    "__neg__": _unary(elementwise.negative),
    "__abs__": _unary(elementwise.absolute),
    "__getitem__": lambda a, index: shapes.getitem(a, index=_index(index)),
    "T": property(_unary(shapes.transpose)),
    "transpose": _transpose,
    "reshape": _reshape,
    "flatten": _flatten,
    "sum": _reduction(shapes.sum),
    "mean": _reduction(shapes.mean),
    "max": _reduction(shapes.max),
    "astype": lambda a, dtype: shapes.cast(a, dtype=dtype),
    "exp": _unary(elementwise.exp),
    "log": _unary(elementwise.log),
    "sqrt": _unary(elementwise.sqrt),
    "relu": _unary(activations.relu),
    "sigmoid": _unary(activations.sigmoid),
    "tanh": _unary(activations.tanh),
}
install_operators(OPERATORS)

__all__ = sorted(TABLE) + ["TABLE", "SAMPLES", "OPERATORS", "SECTIONS", "RULES", "COMPOSITES"]
