"""Fused in-place optimiser updates: the formulas of :mod:`chainrule.optim`, run block by block.

    sgd_update    g = de/dh + wd h ;  v <- mu v + g  (v_1 = g) ;
                  h <- h - lr v   (nesterov: h <- h - lr (g + mu v); no momentum: h <- h - lr g)
    adam_update   g = de/dh + wd h ;  m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2 ;
                  h <- h - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Each function writes into the parameter's array and into the state arrays. The formula runs on
one block of :data:`BLOCK` numbers of h, de/dh and the state before the next block, through two
scratch arrays that stay in the CPU's cache: a large weight matrix streams through memory once
per step instead of once per operation (benchmarks/bench_speed.py measures the step). The
operations, in this order, are PyTorch's ``torch.optim.SGD`` and ``torch.optim.Adam``, so the
numbers are the same whatever the block size (tests/test_backend_updates.py checks both, and the
plain whole-array formulas above, bit for bit).

A small parameter (at most :data:`SMALL` numbers: a bias, a small network's weights) runs SGD's
operations in the same order on the whole arrays instead, without the block machinery, whose
overhead would be most of its update.

SGD on a large parameter (at least :data:`BLAS_MIN` numbers; float32 or float64, C-ordered,
without Nesterov momentum) runs as one or two level-1 BLAS calls of NumPy's own OpenBLAS
instead (``?axpby``: v <- mu v + g, or h <- (1 - lr wd) h - lr g; ``?axpy``: v += wd h and
h <- h - lr v): each streams its arrays once, on all of BLAS's threads, and a step is memory
bound here (measured: the 784 x 800 weight's update, 0.48 -> 0.26 ms on one core, 0.18 ms on
two). Those numbers equal the formulas up to rounding (BLAS may fuse a multiply and an add),
not bit for bit; without NumPy's OpenBLAS (another build) the blocks above run.

The helpers at the end give the optimisers their state arrays (copies for checkpoints), so that
:mod:`chainrule.optim` itself reaches arrays only through this module.
"""

from __future__ import annotations

import ctypes
import glob
import math
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "BLOCK",
    "SMALL",
    "BLAS_MIN",
    "sgd_update",
    "adam_update",
    "steps_array",
    "steps_from",
    "state_array",
]

#: numbers of a parameter updated together (128 KiB of float32: the block, its gradient, its
#: state and two scratch arrays stay in a core's cache)
BLOCK = 1 << 15

#: parameters with at most this many numbers are updated as a whole, without blocks
SMALL = 4096

#: parameters with at least this many numbers are updated by BLAS calls (below it the cost of a
#: ctypes call, ~5 us, outweighs the gain)
BLAS_MIN = 1 << 16

_local = threading.local()  # the scratch arrays, one pair per thread (not state)


PRECISIONS = ((np.float32, ctypes.c_float, "s"), (np.float64, ctypes.c_double, "d"))
_Level1 = tuple[Any, Any]  # (axpby, axpy): y <- a x + b y and y <- a x + y, unit strides


def _load_blas() -> dict[Any, _Level1]:
    """NumPy's bundled OpenBLAS's (saxpby, saxpy) and (daxpby, daxpy) by dtype ({}: not found).

    NumPy's wheels ship OpenBLAS as ``numpy.libs/libscipy_openblas64_*.so`` with 64-bit
    integers and the ``scipy_cblas_`` prefix and ``64_`` suffix; another build of NumPy (no
    such file, other names) gets the NumPy blocks.
    """
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    found: dict[Any, _Level1] = {}
    for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            for dtype, real, p in PRECISIONS:
                axpby, axpy = (getattr(lib, f"scipy_cblas_{p}{f}64_") for f in ("axpby", "axpy"))
                i64, ptr = ctypes.c_int64, ctypes.c_void_p
                axpby.argtypes = [i64, real, ptr, i64, real, ptr, i64]
                axpy.argtypes = [i64, real, ptr, i64, ptr, i64]
                axpby.restype = axpy.restype = None
                found[np.dtype(dtype)] = (axpby, axpy)
        except (OSError, AttributeError):
            return {}
        break
    return found


_BLAS: dict[Any, _Level1] | None = None  # loaded at the first large update


def _level1(param: np.ndarray, grad: Any, *state: np.ndarray | None) -> _Level1 | None:
    """The BLAS calls for this update, or None when the NumPy blocks must run."""
    global _BLAS
    if param.size < BLAS_MIN or any(a is None for a in state):
        return None
    if not _plain(param, grad, *state):
        return None
    if _BLAS is None:
        _BLAS = _load_blas()
    return _BLAS.get(param.dtype)


def _plain(param: np.ndarray, grad: Any, *state: np.ndarray | None) -> bool:
    """Whether the update may run on the arrays themselves: C-ordered, one dtype and shape
    (state arrays that are None are made later, C-ordered in the parameter's dtype)."""
    c = param.flags.c_contiguous and type(grad) is np.ndarray and grad.flags.c_contiguous
    if not (c and grad.dtype == param.dtype and grad.shape == param.shape):
        return False
    for a in state:
        if a is not None and (a.dtype != param.dtype or not a.flags.c_contiguous):
            return False
    return True


def _scratch(size: int, dtype: Any) -> np.ndarray:
    """Two scratch rows of at least ``size`` numbers of ``dtype``, reused from call to call."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None or buffers.shape[1] < size or buffers.dtype != dtype:
        buffers = _local.buffers = np.empty((2, max(size, 1)), dtype=dtype)
    return buffers


def _blocks(param: np.ndarray, grad: Any, *state: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
    """(h, de/dh, state arrays..., scratch1, scratch2) for each block of ``param``, flat.

    The state arrays are C-contiguous (written through flat views). The gradient is read as a
    C-ordered array of the parameter's dtype (copied first only if it is not). A parameter
    that is not C-contiguous (made from a transposed array, say) is updated in a C-ordered
    copy that is written back when the last block is done.
    """
    n = param.size
    g = np.ascontiguousarray(grad, dtype=param.dtype)
    if g.shape != param.shape:
        raise ValueError(f"de/dh has shape {g.shape}, its parameter has shape {param.shape}")
    g = g.reshape(-1)
    contiguous = param.flags.c_contiguous
    h = param.reshape(-1) if contiguous else np.ascontiguousarray(param).reshape(-1)
    flat = [a.reshape(-1) for a in state]
    buffers = _scratch(min(n, BLOCK), param.dtype)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        k = stop - start
        yield (
            h[start:stop],
            g[start:stop],
            *(a[start:stop] for a in flat),
            buffers[0, :k],
            buffers[1, :k],
        )
    if not contiguous:
        param[...] = h.reshape(param.shape)


def _new_state(param: np.ndarray, zeros: bool) -> np.ndarray:
    return np.zeros_like(param, order="C") if zeros else np.empty_like(param, order="C")


def sgd_update(
    param: np.ndarray,
    grad: Any,
    velocity: np.ndarray | None,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> np.ndarray | None:
    """One SGD step on ``param`` (any shape, C-contiguous), in place; returns the velocity.

    ``grad``: de/dh, shaped like ``param``. ``velocity``: v from the last step, or ``None``
    before the first (then v_1 = de/dh + wd h, PyTorch's); the returned array (written in
    place when given) is the new v, ``None`` without momentum.
    """
    lr, mu, wd = float(lr), float(momentum), float(weight_decay)
    if not nesterov and param.size >= BLAS_MIN:
        blas = _level1(param, grad, *((velocity,) if mu else ()))
        if blas is not None:
            axpby, axpy = blas
            n, h, g = param.size, param.ctypes.data, grad.ctypes.data
            if not mu:  # h <- (1 - lr wd) h - lr g
                axpby(n, -lr, g, 1, 1.0 - lr * wd, h, 1)
                return None
            v = velocity.ctypes.data  # type: ignore[union-attr]
            axpby(n, 1.0, g, 1, mu, v, 1)  # v <- mu v + g
            if wd:
                axpy(n, wd, h, 1, v, 1)  # v += wd h
            axpy(n, -lr, v, 1, h, 1)  # h <- h - lr v
            return velocity
    if param.size <= SMALL and _plain(param, grad, velocity):
        return _sgd_small(param, grad, velocity, lr, mu, nesterov, wd)
    first = bool(mu) and velocity is None
    if first:
        velocity = _new_state(param, zeros=False)  # every number is written below
    state = (velocity,) if mu else ()
    for h, g, *v, s, u in _blocks(param, grad, *state):
        if wd:  # g = de/dh + wd h
            np.multiply(h, wd, out=s)
            s += g
            g = s
        if mu:
            (vb,) = v
            if first:  # v_1 = g
                vb[...] = g
            else:  # v <- mu v + g
                vb *= mu
                vb += g
            if nesterov:  # lr (g + mu v)
                np.multiply(vb, mu, out=u)
                u += g
                u *= lr
            else:  # lr v
                np.multiply(vb, lr, out=u)
        else:  # lr g
            np.multiply(g, lr, out=u)
        h -= u  # h <- h - lr (...)
    return velocity if mu else None


def _sgd_small(param, grad, velocity, lr, mu, nesterov, wd):
    """:func:`sgd_update`'s block operations, in the same order, on a small parameter as a whole:
    new temporaries instead of out= into scratch blocks (a small network's update is mostly call
    overhead, and calling the blocks' code with two fresh scratch arrays measured ~5% slower on
    the batch-1 step). tests/test_backend_updates.py checks both against the formulas bit for bit.
    """
    g = grad
    if wd:  # g = de/dh + wd h
        g = param * wd
        g += grad
    if mu:
        if velocity is None:  # v_1 = g
            velocity = g.copy()
        else:  # v <- mu v + g
            velocity *= mu
            velocity += g
        if nesterov:  # lr (g + mu v)
            u = velocity * mu
            u += g
            u *= lr
        else:  # lr v
            u = velocity * lr
    else:  # lr g
        u = g * lr
    param -= u  # h <- h - lr (...)
    return velocity if mu else None


def adam_update(
    param: np.ndarray,
    grad: Any,
    m: np.ndarray | None,
    v: np.ndarray | None,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Adam's step number ``step`` (t = 1, 2, ...) on ``param``, in place; returns (m, v).

    ``m``, ``v``: the running means of g and g^2 from the last step, or ``None`` before the
    first (they start at zero); the returned arrays (the given ones, written in place) are the
    new m and v.
    """
    b1, b2, wd, eps = float(beta1), float(beta2), float(weight_decay), float(eps)
    if m is None or v is None:
        m, v = _new_state(param, zeros=True), _new_state(param, zeros=True)
    step_size = float(lr) / (1.0 - b1**step)  # lr / (1 - b1^t)
    root_bias2 = math.sqrt(1.0 - b2**step)  # sqrt(1 - b2^t)
    for h, g, mb, vb, s, d in _blocks(param, grad, m, v):
        if wd:  # g = de/dh + wd h
            np.multiply(h, wd, out=s)
            s += g
            g = s
        mb *= b1  # m <- b1 m + (1 - b1) g
        np.multiply(g, 1.0 - b1, out=d)
        mb += d
        vb *= b2  # v <- b2 v + (1 - b2) g^2
        np.multiply(g, g, out=d)
        d *= 1.0 - b2
        vb += d
        np.sqrt(vb, out=d)  # h <- h - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        d /= root_bias2
        d += eps
        np.divide(mb, d, out=d)
        d *= step_size
        h -= d
    return m, v


# ------------------------------------------------------------------- state for checkpoints


def steps_array(steps: int) -> np.ndarray:
    """The step count as a checkpoint array: int64, shape (1,)."""
    return np.array([steps], dtype=np.int64)


def steps_from(array: Any) -> int:
    """The step count stored by :func:`steps_array`."""
    return int(np.asarray(array).reshape(-1)[0])


def state_array(value: Any, like: Any) -> np.ndarray:
    """A C-ordered copy of ``value`` in the dtype of ``like`` (the updates write it in place)."""
    return np.asarray(value).astype(like.dtype, order="C", copy=True)
