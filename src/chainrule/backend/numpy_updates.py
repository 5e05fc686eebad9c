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

``SGD.backward_step`` splits SGD with momentum into its two halves around back propagation:
:func:`momentum_into` (v <- mu v + de/dh, during the backward pass) and :func:`sgd_apply`
(v += wd h ; h <- h - lr v, after it). A weight's gradient may then arrive as a
:class:`Product` G^T X that the linear layer's vjp has not computed: one ``?gemm`` writes
mu v + G^T X straight into v (beta = mu), so the gradient is never written to memory and read
back (measured: 0.5 ms of a 6 ms MLP step on one core).

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
    "momentum_into",
    "sgd_apply",
    "Product",
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
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS's enums


def _load_blas() -> dict[Any, tuple[Any, Any, Any]]:
    """NumPy's bundled OpenBLAS's (?axpby, ?axpy, ?gemm) by dtype, s or d ({}: not found).

    NumPy's wheels ship OpenBLAS as ``numpy.libs/libscipy_openblas64_*.so`` with 64-bit
    integers and the ``scipy_cblas_`` prefix and ``64_`` suffix; another build of NumPy (no
    such file, other names) gets the NumPy blocks.
    """
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    found: dict[Any, tuple[Any, Any, Any]] = {}
    for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            for dtype, real, p in PRECISIONS:
                axpby, axpy, gemm = (
                    getattr(lib, f"scipy_cblas_{p}{f}64_") for f in ("axpby", "axpy", "gemm")
                )
                i64, ptr, enum = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
                axpby.argtypes = [i64, real, ptr, i64, real, ptr, i64]
                axpy.argtypes = [i64, real, ptr, i64, ptr, i64]
                # order, trans A, trans B, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc
                gemm.argtypes = [enum] * 3 + [i64] * 3 + [real, ptr, i64, ptr, i64, real, ptr, i64]
                axpby.restype = axpy.restype = gemm.restype = None
                found[np.dtype(dtype)] = (axpby, axpy, gemm)
        except (OSError, AttributeError):
            return {}
        break
    return found


_BLAS: dict[Any, tuple[Any, Any, Any]] | None = None  # loaded at the first large update


def _blas(dtype: Any) -> tuple[Any, Any, Any] | None:
    global _BLAS
    if _BLAS is None:
        _BLAS = _load_blas()
    return _BLAS.get(dtype)


def _level1(param: np.ndarray, grad: Any, *state: np.ndarray | None) -> _Level1 | None:
    """The BLAS calls for this update, or None when the NumPy blocks must run."""
    if param.size < BLAS_MIN or any(a is None for a in state):
        return None
    if not _plain(param, grad, *state):
        return None
    blas = _blas(param.dtype)
    return None if blas is None else blas[:2]


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
            if not mu:  # h <- (1 - lr wd) h - lr g
                blas[0](param.size, -lr, grad.ctypes.data, 1, 1.0 - lr * wd, param.ctypes.data, 1)
                return None
            # the same BLAS calls as SGD.backward_step's two halves: v <- mu v + g (axpby),
            # then v += wd h and h <- h - lr v (axpy)
            velocity = momentum_into(velocity, grad, mu)
            sgd_apply(param, velocity, lr, wd)
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


class Product:
    """A B, not computed yet: the gradient of a weight (G^T X) on its way to a destination that
    BLAS can write it into in one pass (:func:`momentum_into`: v <- mu v + A B).

    The engine asks a vjp for one only for a leaf whose gradient has a destination
    (``SGD.backward_step``); added to anything, or asked for its :meth:`value`, it is the
    plain product.
    """

    __slots__ = ("a", "b", "shape", "dtype")
    __array_ufunc__ = None  # ndarray + Product: NumPy defers to __radd__ (not an object array)

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype:
            raise ValueError(
                f"Product needs K x M and M x N arrays of one dtype, got "
                f"{a.shape} {a.dtype} and {b.shape} {b.dtype}"
            )
        self.a, self.b = a, b
        self.shape, self.dtype = (a.shape[0], b.shape[1]), a.dtype

    def value(self) -> np.ndarray:
        return self.a @ self.b

    def __add__(self, other: Any) -> Any:
        return self.value() + (other.value() if isinstance(other, Product) else other)

    __radd__ = __add__


def _operand(a: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a 2-D array as row-major BLAS reads it."""
    if a.flags.c_contiguous:
        return NO_TRANS, max(1, a.shape[1])
    if a.flags.f_contiguous:
        return TRANS, max(1, a.shape[0])
    return None


def _gemm_into(c: np.ndarray, p: Product, beta: float) -> bool:
    """c <- beta c + A B by one ?gemm of NumPy's OpenBLAS; False (c untouched) where it cannot
    or need not run: another build of NumPy, another dtype, a strided operand, an empty side,
    a result of fewer than :data:`BLAS_MIN` numbers (NumPy's product then costs less than the
    ctypes call)."""
    a, b = p.a, p.b
    (m, k), n = a.shape, b.shape[1]
    if c.dtype != a.dtype or not c.flags.c_contiguous or c.shape != (m, n) or 0 in (m, n, k):
        return False
    if m * n < BLAS_MIN:
        return False
    blas, ta, tb = _blas(c.dtype), _operand(a), _operand(b)
    if blas is None or ta is None or tb is None:
        return False
    A, B, C = a.ctypes.data, b.ctypes.data, c.ctypes.data
    blas[2](ROW_MAJOR, ta[0], tb[0], m, n, k, 1.0, A, ta[1], B, tb[1], beta, C, n)
    return True


def momentum_into(velocity: np.ndarray | None, grad: Any, momentum: float) -> np.ndarray:
    """v <- mu v + de/dh, in place; before the first step (``velocity`` None) a new v = de/dh.

    ``grad``: an array shaped like the parameter, or a :class:`Product` A B (then one GEMM
    computes mu v + A B into v, with beta = 0 for a new v: its memory is never read).
    """
    mu = float(momentum)
    if isinstance(grad, Product):
        v = np.empty(grad.shape, grad.dtype) if velocity is None else velocity
        if _gemm_into(v, grad, 0.0 if velocity is None else mu):
            return v
        grad = grad.value()
        if velocity is None:  # a new array already
            return np.ascontiguousarray(grad)
    if velocity is None:
        return np.array(grad, order="C")  # a copy: v must not share memory with de/dh
    if grad.shape != velocity.shape:
        raise ValueError(f"de/dh has shape {grad.shape}, its momentum has {velocity.shape}")
    blas = _level1(velocity, grad)
    if blas is not None:
        blas[0](velocity.size, 1.0, grad.ctypes.data, 1, mu, velocity.ctypes.data, 1)
    else:
        velocity *= mu
        velocity += grad
    return velocity


def sgd_apply(
    param: np.ndarray, velocity: np.ndarray, lr: float, weight_decay: float = 0.0
) -> None:
    """The rest of an SGD step after :func:`momentum_into`: v += wd h ; h <- h - lr v (in place)."""
    lr, wd = float(lr), float(weight_decay)
    blas = _level1(param, velocity)
    if blas is not None:
        n, h, v = param.size, param.ctypes.data, velocity.ctypes.data
        if wd:
            blas[1](n, wd, h, 1, v, 1)  # v += wd h
        blas[1](n, -lr, v, 1, h, 1)  # h <- h - lr v
        return
    if wd:
        velocity += param * wd
    param -= velocity * lr


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
