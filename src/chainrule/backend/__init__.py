"""The array backend: the only part of chainrule that knows NumPy, memory layouts and BLAS.

The engine, the rule table, ``functional``, ``nn`` and ``optim`` reach arrays through three
names of this package, which :func:`set_backend` rebinds together:

``xp``
    the active array namespace (NumPy by default): the Python array API standard's
    functions (``xp.exp``, ``xp.matmul``, ``xp.permute_dims``, ``xp.concat``, ...).
``kernels``
    the operations that the standard cannot express, or only slowly: im2col/col2im
    (``unfold``/``fold``), the max-pool kernel, the products of ``linear``/``affine``/
    ``conv2d`` in BLAS's faster orientation, scatter-add, the fused optimiser updates.
    :mod:`.numpy_kernels` is NumPy's set (strided views, in-place writes, the batch-innermost
    memory of convolution); :mod:`.portable` computes the same numbers with the standard
    alone, for any other namespace.
``fast_vjps``
    fused first-order vector-Jacobian products by rule name (the one documented hook):
    when ``create_graph`` is off the engine calls ``fast_vjps[name](g, out, *inputs,
    needs=..., **params)`` instead of the rule's own (differentiable) vjps. Each one is
    tested to agree with the rule's vjps (tests/test_backend.py). One marked ``defers``
    (linear's) also takes ``defer=``: the inputs whose gradient may come back as a deferred
    product, for a leaf whose gradient has a destination (``SGD.backward_step``).

NumPy stays the default and the fast path; ``set_backend(array_api_strict)`` or
``set_backend(array_api_compat.torch)`` runs the same engine and rules on other arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy

from . import numpy_kernels, portable
from .numpy_kernels import tune_allocator

xp: Any = numpy
kernels: Any = numpy_kernels
fast_vjps: dict[str, Any] = numpy_kernels.FAST_VJPS
#: the type of the active namespace's arrays (``type(x) is array_type`` is the hot-path test)
array_type: type = numpy.ndarray

__all__ = [
    "xp",
    "kernels",
    "fast_vjps",
    "array_type",
    "set_backend",
    "get_backend",
    "use_backend",
    "tune_allocator",
    "is_array",
    "to_numpy",
]


def set_backend(namespace: Any = None) -> Any:
    """Make ``namespace`` (an array API namespace; None or NumPy: the default) the active one.

    Returns the namespace that was active before, so it can be restored.
    """
    global xp, kernels, fast_vjps, array_type
    previous = xp
    if namespace is None or namespace is numpy:
        xp, kernels, fast_vjps = numpy, numpy_kernels, numpy_kernels.FAST_VJPS
        array_type = numpy.ndarray
        return previous
    for name in ("asarray", "matmul", "permute_dims", "sum", "exp", "zeros"):
        if not hasattr(namespace, name):
            raise TypeError(
                f"set_backend: {getattr(namespace, '__name__', namespace)!r} is not an array API "
                f"namespace (it has no {name!r}); pass e.g. array_api_strict or "
                "array_api_compat.torch"
            )
    portable.use(namespace)
    xp, kernels, fast_vjps = namespace, portable, {}
    array_type = type(namespace.asarray(0.0))
    return previous


def get_backend() -> Any:
    """The active array namespace."""
    return xp


@contextlib.contextmanager
def use_backend(namespace: Any) -> Iterator[Any]:
    """``with use_backend(ns):`` runs the block on ``ns`` and restores the previous namespace."""
    previous = set_backend(namespace)
    try:
        yield namespace
    finally:
        set_backend(previous)


def to_numpy(x: Any) -> Any:
    """The values of an array of any namespace as a NumPy array (no copy for NumPy's)."""
    if isinstance(x, numpy.ndarray):
        return x
    if hasattr(x, "detach"):  # a PyTorch tensor
        return x.detach().cpu().numpy()
    return numpy.asarray(x)


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of the active namespace."""
    return isinstance(x, array_type)
