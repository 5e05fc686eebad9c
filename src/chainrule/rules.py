"""The table of derivative rules, in the order of the lecture.

Each primitive is its forward next to its vector-Jacobian products (vjps), one per input:
given g = de/d(out), the vjp returns de/d(input). The first line of each forward's docstring
is the derivative in the lecture's denominator layout (for f: R^K -> R^M the Jacobian
df/dx is K x M, so de/dx = df/dx . de/df).

The vjps are written with operators and with the rules themselves, never with raw array
calls on their inputs: in the fast first-order path they run on NumPy arrays, and under
``create_graph`` they run on Tensors and record a graph of their own (derivatives of
derivatives). Un-broadcasting and the split rule (summing over fan-out) are the engine's
job, not the rules'.

Composite operations (``conv2d``, ``avg_pool2d``, ``split``) are written in terms of the
primitives and listed in :data:`COMPOSITES`, so that the derivative table and its checks
cover them too.
"""

from __future__ import annotations

import builtins
import math
import numbers
from collections.abc import Callable
from typing import Any

from .backend import as_batch_first as _batch_first
from .backend import channels_last_batch as _chwn
from .backend import fold as _fold
from .backend import out_size, xp
from .backend import unfold as _unfold
from .backend import window_view as _window
from .tensor import RULES, ShapeError, Tensor, rule

COMPOSITES: dict[str, Callable] = {}


def composite(formula: str) -> Callable:
    """Register an operation built from primitives, with its derivative formula, in the table."""

    def register(fn: Callable) -> Callable:
        fn.formula = formula  # type: ignore[attr-defined]
        COMPOSITES[fn.__name__] = fn
        return fn

    return register


def _d(x: Any) -> Any:
    """The array inside a Tensor (masks and indices are constants: no derivative)."""
    return x.data if isinstance(x, Tensor) else x


def _shape(x: Any) -> tuple[int, ...]:
    return xp.shape(x) if not isinstance(x, Tensor) else x.shape


def _same_or_broadcast(op: str, a: Any, b: Any) -> None:
    try:
        xp.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ShapeError(
            f"{op}: shapes {_shape(a)} and {_shape(b)} cannot be broadcast together"
        ) from None


def _axis_index(op: str, axis: Any, ndim: int) -> int:
    """One axis as an index in [0, ndim): negative axes count from the end."""
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{op}: an axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for {ndim} axes")
    return int(axis) % ndim


def _axes(op: str, axis: Any, ndim: int) -> Any:
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
    axes = tuple(sorted(_axis_index(op, a, ndim) for a in items))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: axis {axis!r} names an axis twice")
    return axes[0] if isinstance(axis, numbers.Integral) else axes


def _axis_tuple(axis: Any, ndim: int) -> tuple[int, ...]:
    """The axes a normalised ``axis`` reduces over, as a tuple."""
    if axis is None:
        return tuple(range(ndim))
    return (axis,) if isinstance(axis, numbers.Integral) else axis


def _reduction_params(op: str) -> Callable:
    def prepare(x, axis=None, keepdims=False):
        return {"axis": _axes(op, axis, len(_shape(x))), "keepdims": bool(keepdims)}

    return prepare


def _one_axis_params(op: str) -> Callable:
    def prepare(x, axis=-1):
        return {"axis": _axis_index(op, axis, builtins.max(1, len(_shape(x))))}

    return prepare


# ==================== 1. elementwise


@rule
def add(a, b):
    """d(a+b)/da = I,  d(a+b)/db = I"""
    _same_or_broadcast("add", a, b)
    return a + b


add.defvjp(lambda g, out, a, b: g, lambda g, out, a, b: g)


@rule
def subtract(a, b):
    """d(a-b)/da = I,  d(a-b)/db = -I"""
    _same_or_broadcast("subtract", a, b)
    return a - b


subtract.defvjp(lambda g, out, a, b: g, lambda g, out, a, b: negative(g))


@rule
def negative(x):
    """d(-x)/dx = -I"""
    return -x


negative.defvjp(lambda g, out, x: negative(g))


@rule
def multiply(a, b):
    """d(a*b)/da = diag(b),  d(a*b)/db = diag(a)   (elementwise product)"""
    _same_or_broadcast("multiply", a, b)
    return a * b


multiply.defvjp(lambda g, out, a, b: g * b, lambda g, out, a, b: g * a)


@rule
def scale(x, alpha):
    """d(alpha x)/dx = alpha I   (alpha a fixed number)"""
    return x * alpha


scale.defvjp(lambda g, out, x, alpha: scale(g, alpha=alpha))


@rule
def divide(a, b):
    """d(a/b)/da = diag(1/b),  d(a/b)/db = diag(-a/b^2)   (quotient rule)"""
    _same_or_broadcast("divide", a, b)
    return a / b


divide.defvjp(lambda g, out, a, b: g / b, lambda g, out, a, b: negative(g * out / b))


@rule
def power(a, p):
    """d(a^p)/da = diag(p a^(p-1)),  d(a^p)/dp = diag(a^p log a)"""
    _same_or_broadcast("power", a, p)
    return a**p


def _power_vjp_a(g, out, a, p):
    # p a^(p-1), and 0 where p = 0 (a^0 = 1 is constant: no 0 * inf at a = 0); at a = 0 with
    # p < 1 the derivative is infinite, as it should be (no warning)
    with xp.errstate(divide="ignore"):
        if isinstance(p, numbers.Number):
            return scale(g, alpha=0.0) if p == 0 else g * scale(a ** (p - 1), alpha=float(p))
        p_is_0 = xp.equal(_d(p), 0)
        return g * (p * a ** (p - 1 + p_is_0))


def _power_vjp_p(g, out, a, p):
    # a^p log a, and 0 where a = 0 and p >= 0 (the limit; PyTorch, autograd and JAX agree)
    a_is_0 = xp.equal(_d(a), 0) & xp.greater_equal(_d(p), 0)
    return g * out * log(a + a_is_0)


power.defvjp(_power_vjp_a, _power_vjp_p)


@rule
def exp(x):
    """d exp(x)/dx = diag(exp(x))"""
    return xp.exp(x)


exp.defvjp(lambda g, out, x: g * out)


@rule
def log(x):
    """d log(x)/dx = diag(1/x)"""
    return xp.log(x)


log.defvjp(lambda g, out, x: g / x)


@rule
def sqrt(x):
    """d sqrt(x)/dx = diag(1/(2 sqrt(x)))"""
    return xp.sqrt(x)


sqrt.defvjp(lambda g, out, x: g / scale(out, alpha=2))


@rule
def absolute(x):
    """d|x|/dx = diag(sign(x))   (0 at x = 0, a subgradient)"""
    return xp.abs(x)


absolute.defvjp(lambda g, out, x: g * xp.sign(_d(x)))


@rule
def sin(x):
    """d sin(x)/dx = diag(cos(x))"""
    return xp.sin(x)


sin.defvjp(lambda g, out, x: g * cos(x))


@rule
def cos(x):
    """d cos(x)/dx = diag(-sin(x))"""
    return xp.cos(x)


cos.defvjp(lambda g, out, x: negative(g * sin(x)))


# ==================== 2. activations


@rule
def sigmoid(x):
    """d sigma(x)/dx = diag(f (1 - f)),  f = sigma(x) = 1/(1 + exp(-x))"""
    # split by sign so that exp never overflows
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


sigmoid.defvjp(lambda g, out, x: g * out * (1 - out))


@rule
def tanh(x):
    """d tanh(x)/dx = diag(1 - f^2),  f = tanh(x)"""
    return xp.tanh(x)


tanh.defvjp(lambda g, out, x: g * (1 - out * out))


@rule
def relu(x, grad_at_zero=0.0):
    """d ReLU(x)/dx = diag(1[x > 0])   (at x = 0 any value in [0, 1]: grad_at_zero)"""
    if not 0.0 <= grad_at_zero <= 1.0:
        raise ValueError(
            f"relu: grad_at_zero must lie in [0, 1] (a subgradient), got {grad_at_zero}"
        )
    return xp.maximum(x, 0)


def _relu_vjp(g, out, x, grad_at_zero=0.0):
    x = _d(x)
    if grad_at_zero:
        return g * xp.where(x > 0, 1.0, xp.where(x == 0, grad_at_zero, 0.0)).astype(x.dtype)
    return g * (x > 0)


relu.defvjp(_relu_vjp)


# ==================== 3. matrix products


def _mT(x):
    return x.T if len(_shape(x)) == 2 else transpose(x, axes=_swap_last(len(_shape(x))))


def _swap_last(n: int) -> tuple[int, ...]:
    return tuple(range(n - 2)) + (n - 1, n - 2)


def _g_times_t(g, x, rows):
    """G X^T for G (rows x P) and X (K x P): de/dA of a product A X.

    For a long contraction (im2col's Ho Wo N columns) it runs as (X G^T)^T, the orientation
    BLAS runs up to ~1.7x faster; the numbers are the same products.
    """
    if _shape(x)[1] > 8 * builtins.max(rows, _shape(x)[0]):
        return (x @ g.T).T
    return g @ x.T


def _outer(u, v):
    return reshape(u, shape=(-1, 1)) * reshape(v, shape=(1, -1))


@rule
def matmul(a, b):
    """d(Ab)/db = A^T,  d(a^T B)/da = B,  d(AB)/dA: G B^T,  d(AB)/dB: A^T G"""
    sa, sb = _shape(a), _shape(b)
    if len(sa) == 0 or len(sb) == 0:
        raise ShapeError(f"matmul: operands must have at least one axis, got shapes {sa} and {sb}")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ShapeError(f"matmul: shapes {sa} and {sb} do not fit: {ka} columns against {kb} rows")
    return a @ b


def _matmul_vjp_a(g, out, a, b):
    sa, sb = _shape(a), _shape(b)
    if len(sa) == 2 and len(sb) == 2:
        return _g_times_t(g, b, rows=sa[0])
    if len(sa) == 1 and len(sb) == 1:
        return g * b
    # promote vectors to matrices (a: 1 x k, b: k x 1), then G B^T, then drop the added axes
    if len(sb) == 1:
        g, bt = reshape(g, shape=(*_shape(g), 1)), reshape(b, shape=(1, -1))
    else:
        bt = _mT(b)
    if len(sa) == 1:
        g = reshape(g, shape=(*_shape(g)[:-1], 1, _shape(g)[-1]))
    ga = g @ bt
    if len(sa) == 1:
        ga = reshape(ga, shape=(*_shape(ga)[:-2], _shape(ga)[-1]))
    return ga  # batch axes are summed away by the engine


def _matmul_vjp_b(g, out, a, b):
    sa, sb = _shape(a), _shape(b)
    if len(sa) == 2 and len(sb) == 2:
        return a.T @ g
    if len(sa) == 1 and len(sb) == 1:
        return g * a
    if len(sa) == 1:
        at, g = reshape(a, shape=(-1, 1)), reshape(g, shape=(*_shape(g)[:-1], 1, _shape(g)[-1]))
    else:
        at = _mT(a)
    if len(sb) == 1:
        g = reshape(g, shape=(*_shape(g), 1))
    gb = at @ g
    if len(sb) == 1:
        gb = reshape(gb, shape=_shape(gb)[:-1])
    return gb


matmul.defvjp(_matmul_vjp_a, _matmul_vjp_b)


@rule
def transpose(x, axes=None):
    """d x^T/dx: the gradient is transposed back (by the inverse permutation)"""
    return xp.transpose(x, axes)


@transpose.defparams
def _transpose_params(x, axes=None):
    n = len(_shape(x))
    if axes is None:
        return {"axes": None}
    perm = tuple(_axis_index("transpose", a, n) for a in axes)
    if sorted(perm) != list(range(n)):
        raise ValueError(
            f"transpose: axes {tuple(axes)} are not a permutation of the {n} axes of shape "
            f"{_shape(x)}"
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


@rule
def linear(x, w, b=None):
    """y = x H^T + h:  de/dx = G H,  de/dH = G^T x,  de/dh = sum over the batch of G"""
    if _shape(x)[-1] != _shape(w)[-1]:
        raise ShapeError(
            f"linear: input has {_shape(x)[-1]} features (shape {_shape(x)}) but the weight "
            f"expects {_shape(w)[-1]} (weight shape {_shape(w)}, out x in)"
        )
    if len(_shape(x)) == 2:
        # computed as H X^T, the samples as columns (the lecture's H x + h): the result is the
        # N x out view of out x N memory; the next layer's H x and the backward products then
        # run in BLAS's faster orientation (~7% of an MLP step)
        y = (w @ x.T).T
    else:
        y = x @ w.T
    if b is not None:
        y += b
    return y


def _linear_vjp_x(g, out, x, w, b=None):
    if len(_shape(g)) == 2:
        return (w.T @ g.T).T  # the same G H, in the layout of the forward pass
    return g @ w


def _linear_vjp_w(g, out, x, w, b=None):
    if len(_shape(x)) == 2:
        return g.T @ x
    if len(_shape(x)) == 1:
        return _outer(g, x)
    g2 = reshape(g, shape=(-1, _shape(g)[-1]))
    return g2.T @ reshape(x, shape=(-1, _shape(x)[-1]))


linear.defvjp(
    _linear_vjp_x,
    _linear_vjp_w,
    lambda g, out, x, w, b=None: g,  # the engine sums over the batch (un-broadcasting)
)


@rule
def affine(w, x, b=None):
    """Y = H X + h 1^T:  de/dX = H^T G,  de/dH = G X^T,  de/dh = G 1   (samples in X's columns)

    The lecture's layer H x + h for a batch of column vectors: w (H) is O x K, x is K x P or
    a stack ... x K x P of such matrices, b (h) has O entries, added to every column.
    """
    sw, sx = _shape(w), _shape(x)
    if len(sw) != 2 or len(sx) < 2 or sx[-2] != sw[1]:
        raise ShapeError(
            f"affine: H must be O x K and X ... x K x P with the same K, got shapes {sw} and {sx}"
        )
    if b is not None and _shape(b) != (sw[0],):
        raise ShapeError(
            f"affine: h must have shape ({sw[0]},) for H of shape {sw}, got {_shape(b)}"
        )
    y = w @ x
    if b is not None:
        y += b[:, None]
    return y


def _affine_vjp_w(g, out, w, x, b=None):
    if len(_shape(x)) == 2:
        return _g_times_t(g, x, rows=_shape(w)[0])
    return g @ _mT(x)  # the engine sums the stack axes away


affine.defvjp(
    _affine_vjp_w,
    lambda g, out, w, x, b=None: w.T @ g,
    lambda g, out, w, x, b=None: sum(g, axis=-1),  # and the engine sums the stack axes
)


# ==================== 4. reductions, shapes


def _keep_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The reduced shape with keepdims (``axis`` as :func:`_axes` normalised it)."""
    axes = _axis_tuple(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


@rule
def sum(x, axis=None, keepdims=False):
    """d sum(x)/dx = 1 (a vector of ones): the gradient is copied to every summand"""
    return xp.sum(x, axis=axis, keepdims=keepdims)


def _sum_vjp(g, out, x, axis=None, keepdims=False):
    return broadcast_to(reshape(g, shape=_keep_shape(_shape(x), axis)), shape=_shape(x))


sum.defvjp(_sum_vjp)
sum.defparams(_reduction_params("sum"))


def _count(shape: tuple[int, ...], axis: Any) -> int:
    """How many numbers a reduction over ``axis`` takes together."""
    return math.prod(shape[a] for a in _axis_tuple(axis, len(shape)))


@rule
def mean(x, axis=None, keepdims=False):
    """d mean(x)/dx = 1/n: the gradient is shared equally by the n summands"""
    n = _count(xp.shape(x), axis)
    with xp.errstate(invalid="ignore", divide="ignore"):  # an empty mean is NaN, as PyTorch's
        return xp.divide(xp.sum(x, axis=axis, keepdims=keepdims), n)


def _mean_vjp(g, out, x, axis=None, keepdims=False):
    n = _count(_shape(x), axis)
    return scale(_sum_vjp(g, out, x, axis, keepdims), alpha=1.0 / n if n else 0.0)


mean.defvjp(_mean_vjp)
mean.defparams(_reduction_params("mean"))


@rule(saves=True)
def max(x, axis=None, keepdims=False):
    """d max(x)/dx = e_k, k = argmax (saved; on ties the first maximum takes the gradient)"""
    if axis is None or axis == ():
        k = xp.argmax(x)
        mask = xp.zeros(x.size, dtype=bool)
        mask[k] = True
        out = x.reshape(-1)[k]
        return (out.reshape((1,) * x.ndim) if keepdims else out), mask.reshape(x.shape)
    if not isinstance(axis, numbers.Integral):
        raise ValueError(f"max: axis must be one int or None, got {axis!r}")
    k = xp.expand_dims(xp.argmax(x, axis=axis), axis)
    out = xp.take_along_axis(x, k, axis=axis)
    mask = xp.zeros(x.shape, dtype=bool)
    xp.put_along_axis(mask, k, True, axis=axis)
    return (out if keepdims else xp.squeeze(out, axis=axis)), mask


max.defvjp(
    lambda g, out, x, axis=None, keepdims=False, saved=None: (
        reshape(g, shape=_keep_shape(_shape(x), axis)) * saved
    )
)
max.defparams(_reduction_params("max"))


@rule
def broadcast_to(x, shape):
    """d broadcast(x)/dx: the copies' gradients are summed back (the split rule)"""
    return xp.broadcast_to(x, shape)


broadcast_to.defvjp(lambda g, out, x, shape: g)  # the engine sums down to x's shape


@rule
def reshape(x, shape):
    """d reshape(x)/dx: the gradient is reshaped back"""
    try:
        try:
            return xp.reshape(x, shape, copy=False)  # a view when the strides allow one
        except ValueError:
            # a copy: one C-order pass first (NumPy's own reshape copy of a transposed or
            # overlapping view, such as unfold's windows, is ~3x slower)
            return xp.reshape(xp.ascontiguousarray(x), shape)
    except ValueError:
        raise ShapeError(
            f"reshape: cannot reshape shape {xp.shape(x)} into {tuple(shape)}"
        ) from None


reshape.defvjp(lambda g, out, x, shape: reshape(g, shape=_shape(x)))


@rule
def cast(x, dtype):
    """d cast(x)/dx = I (the gradient is cast back)"""
    return x.astype(dtype)


cast.defvjp(lambda g, out, x, dtype: cast(g, dtype=_d(x).dtype))


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(i, (numbers.Integral, slice)) or i is None or i is Ellipsis for i in items
    )


@rule
def getitem(x, index):
    """d x[index]/dx: the gradient goes back to the picked entries (summed where repeated)"""
    try:
        return x[index]
    except IndexError as e:
        raise IndexError(
            f"getitem: index {index!r} does not fit shape {xp.shape(x)}: {e}"
        ) from None


getitem.defvjp(lambda g, out, x, index: scatter(g, shape=_shape(x), index=index))


@rule
def scatter(g, shape, index):
    """d scatter(g)/dg: the entries at index (zeros elsewhere; the adjoint of getitem)"""
    z = xp.zeros(shape, dtype=g.dtype)
    if _is_basic(index):
        z[index] = g
    else:
        xp.add.at(z, index, g)
    return z


scatter.defvjp(lambda g, out, gin, shape, index: getitem(g, index=index))


@rule
def concat(*xs, axis=0):
    """d concat(x1, x2, ...)/dxi: the gradient is split back into the pieces"""
    shapes = [xp.shape(x) for x in xs]
    try:
        return xp.concatenate(xs, axis=axis)
    except ValueError:
        raise ShapeError(f"concat: shapes {shapes} do not fit along axis {axis}") from None


def _concat_vjp(g, out, *xs, axis=0):
    ax = axis
    grads, start = [], 0
    for x in xs:
        n = _shape(x)[ax]
        grads.append(getitem(g, index=(slice(None),) * ax + (slice(start, start + n),)))
        start += n
    return tuple(grads)


concat.defvjp_all(_concat_vjp)


@concat.defparams
def _concat_params(*xs, axis=0):
    if not xs:
        raise ValueError("concat: needs at least one input")
    return {"axis": _axis_index("concat", axis, builtins.max(1, len(_shape(xs[0]))))}


@rule
def stack(*xs, axis=0):
    """d stack(x1, x2, ...)/dxi: slice i of the gradient"""
    shapes = [xp.shape(x) for x in xs]
    try:
        return xp.stack(xs, axis=axis)
    except ValueError:
        raise ShapeError(f"stack: all inputs must have the same shape, got {shapes}") from None


def _stack_vjp(g, out, *xs, axis=0):
    ax = axis
    return tuple(getitem(g, index=(slice(None),) * ax + (i,)) for i in range(len(xs)))


stack.defvjp_all(_stack_vjp)


@stack.defparams
def _stack_params(*xs, axis=0):
    if not xs:
        raise ValueError("stack: needs at least one input")
    return {"axis": _axis_index("stack", axis, len(_shape(xs[0])) + 1)}


@composite("d split(x)/dx: the pieces' gradients are concatenated back")
def split(x, sections, axis=0):
    """Split ``x`` along ``axis`` into pieces of the given sizes (or n equal pieces)."""
    ax = _axis_index("split", axis, len(_shape(x)))
    n = _shape(x)[ax]
    if isinstance(sections, numbers.Integral):
        if n % sections:
            raise ShapeError(
                f"split: axis {axis} of length {n} does not split into {sections} equal parts"
            )
        sizes = [n // sections] * sections
    else:
        sizes = list(sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} do not add up to length {n} of axis {axis}")
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, index=(slice(None),) * ax + (slice(start, start + s),)))
        start += s
    return out


# ==================== 5. convolution and pooling


def _pair(v: Any, name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, numbers.Integral) else tuple(v)
    if len(t) != 2 or not all(isinstance(i, numbers.Integral) and int(i) > 0 for i in t):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


@rule
def unfold(x, window, stride=1, padding=0, contiguous=False):
    """im2col: each input element is copied into every window that covers it (~Fr*Fc times)

    x: N x C x H x W -> windows C x Fr x Fc x Ho x Wo x N (the batch innermost, see
    :mod:`chainrule.backend`): reshaped to (C Fr Fc) x (Ho Wo N), the whole batch's im2col
    matrix. A read-only view of a buffer of column windows, or with ``contiguous=True`` a
    contiguous copy (the same numbers).
    """
    return _unfold(x, window, stride, padding, contiguous)


unfold.defvjp(
    lambda g, out, x, window, stride=1, padding=0, contiguous=False: fold(
        g, x_shape=_shape(x), stride=stride, padding=padding
    )
)


@rule
def fold(cols, x_shape, stride=1, padding=0):
    """col2im (adjoint of im2col): the copies' gradients are added back (the split rule)

    cols: C x Fr x Fc x Ho x Wo x N -> N x C x H x W (``x_shape``).
    """
    return _fold(cols, x_shape, stride, padding)


def _fold_vjp(g, out, cols, x_shape, stride=1, padding=0):
    return unfold(g, window=_shape(cols)[1:3], stride=stride, padding=padding)


fold.defvjp(_fold_vjp)


def _stride(v: Any) -> int:
    s = _pair(v, "stride")
    if s[0] != s[1]:
        raise ValueError(f"stride: only equal strides along both axes are supported, got {v!r}")
    return s[0]


def _check_image(op: str, x: Any) -> tuple[int, int, int, int]:
    s = _shape(x)
    if len(s) != 4:
        raise ShapeError(f"{op}: input must be N x C x H x W (4 axes), got shape {s}")
    return s  # type: ignore[return-value]


@composite("Y = W im2col(x) + b:  de/dW = G im2col(x)^T,  de/db = G 1,  de/dx = col2im(W^T G)")
def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D convolution (cross-correlation) as one matrix product over the im2col matrix.

    x: N x C x H x W, w: O x C x Fr x Fc, b: O -> N x O x Ho x Wo with
    Ho = (H + 2 padding - Fr) // stride + 1 (likewise Wo).
    """
    n, c, h, wd = _check_image("conv2d", x)
    sw = _shape(w)
    if len(sw) != 4 or sw[1] != c:
        raise ShapeError(
            f"conv2d: weight must be O x C x Fr x Fc with C = {c} input channels, got shape {sw} "
            f"for input shape {_shape(x)}"
        )
    if b is not None and _shape(b) != (sw[0],):
        raise ShapeError(f"conv2d: bias must have shape ({sw[0]},), got {_shape(b)}")
    stride, padding = _stride(stride), int(padding)
    if padding < 0:
        raise ValueError(f"conv2d: padding must be >= 0, got {padding}")
    o, _, fr, fc = sw
    ho, wo = out_size(h, fr, stride, padding), out_size(wd, fc, stride, padding)
    if ho <= 0 or wo <= 0:
        raise ShapeError(
            f"conv2d: a {fr}x{fc} kernel does not fit in a {h}x{wd} image (padding {padding})"
        )
    # im2col(x) with the batch innermost (see unfold): output row i's windows are a
    # (Fr C Fc) x (Wo N) block of unfold's buffer
    k = c * fr * fc
    if o * k <= _SMALL_KERNEL:
        # a tiny kernel: one product per output row, straight from the buffer (no copy), gives
        # Ho x O x (Wo N); the result N x O x Ho x Wo is a view of that memory
        cols = unfold(x, window=(fr, fc), stride=stride, padding=padding)  # C Fr Fc Ho Wo N
        rows = reshape(transpose(cols, axes=(3, 1, 0, 2, 4, 5)), shape=(ho, k, wo * n))
        y = affine(reshape(transpose(w, axes=(0, 2, 1, 3)), shape=(o, k)), rows, b)
        return transpose(reshape(y, shape=(ho, o, wo, n)), axes=(3, 1, 0, 2))
    # otherwise ONE product over the whole batch's im2col matrix (C Fr Fc) x (Ho Wo N)
    cols = unfold(x, window=(fr, fc), stride=stride, padding=padding, contiguous=True)
    y = affine(reshape(w, shape=(o, k)), reshape(cols, shape=(k, ho * wo * n)), b)  # O x HoWoN
    return transpose(reshape(y, shape=(o, ho, wo, n)), axes=(3, 0, 1, 2))


# conv2d multiplies row by row when the kernel has at most this many numbers O C Fr Fc (a first
# layer on grey images), else in one product. `python benchmarks/bench_conv_paths.py` times
# both (2 cores, OpenBLAS): row by row is ~2x faster for LeNet's 6 x 1 x 5 x 5, one product
# ~1.2x faster for LeNet's 16 x 6 x 5 x 5 and for 3 x 3 kernels from 16 x 3 x 3 x 3 on.
_SMALL_KERNEL = 256


def _pool_geometry(op: str, x: Any, kernel_size: Any, stride: Any) -> tuple[Any, int, int, int]:
    """(kernel, stride, Ho, Wo) of a pooling, after checking that its window fits."""
    _, _, h, w = _check_image(op, x)
    k = _pair(kernel_size, "kernel_size")
    s = _stride(stride if stride is not None else k)
    if k[0] > h or k[1] > w:
        raise ShapeError(f"{op}: a {k[0]}x{k[1]} window does not fit in a {h}x{w} image")
    return k, s, out_size(h, k[0], s, 0), out_size(w, k[1], s, 0)


@rule(saves=True)
def max_pool2d(x, kernel_size, stride=None):
    """d maxpool/dx: each window's gradient goes to its saved argmax (first maximum on ties)

    Max pooling: x N x C x H x W -> N x C x Ho x Wo (stride defaults to the kernel size).
    Ties go to the first maximum in the window's row-major order, as in PyTorch. The saved
    argmax is a mask in the layout of :func:`unfold`'s windows (C x kr x kc x Ho x Wo x N).
    """
    (kr, kc), s, ho, wo = _pool_geometry("max_pool2d", x, kernel_size, stride)
    xc = _chwn(x)  # C H W N: each window entry below is a strided view, runs of N numbers
    views = [_window(xc, r, q, ho, wo, s) for r in range(kr) for q in range(kc)]
    out = views[0].copy()
    for v in views[1:]:
        xp.maximum(out, v, out=out)
    # the saved argmax, as a mask over each window: its first entry equal to the maximum
    # (a few passes per window entry; argmax along a middle axis is several times slower)
    mask = xp.empty((xc.shape[0], kr, kc, ho, wo, xc.shape[3]), dtype=bool)
    m = mask.reshape(xc.shape[0], kr * kc, ho, wo, xc.shape[3])
    free = ~xp.equal(views[0], out, out=m[:, 0])  # windows whose maximum is not yet found
    for j in range(1, kr * kc):
        hit = xp.equal(views[j], out, out=m[:, j])
        hit &= free
        if j < kr * kc - 1:
            free ^= hit
    return _batch_first(out), mask


def _max_pool2d_vjp(g, out, x, kernel_size, stride=None, saved=None):
    (kr, kc), s, ho, wo = _pool_geometry("max_pool2d", x, kernel_size, stride)
    if isinstance(g, Tensor):  # under create_graph: the mask times G, then col2im (rules)
        d = reshape(transpose(g, axes=(1, 2, 3, 0)), shape=(_shape(g)[1], 1, 1, ho, wo, -1))
        return fold(d * saved, x_shape=_shape(x), stride=s, padding=0)
    # first order: the same, fused - each window entry's G * mask goes straight to its place
    gc = _chwn(g)
    n, c, h, w = _shape(x)
    tiled = s == kr == kc and h == ho * kr and w == wo * kc
    dx = (xp.empty if tiled else xp.zeros)((c, h, w, n), dtype=g.dtype)
    for r in range(kr):
        for q in range(kc):
            dst = _window(dx, r, q, ho, wo, s)
            if s >= kr and s >= kc:  # windows do not overlap
                xp.multiply(gc, saved[:, r, q], out=dst)
            else:
                dst += gc * saved[:, r, q]
    return _batch_first(dx)


max_pool2d.defvjp(_max_pool2d_vjp)


@composite("d avgpool/dx: each window's gradient is divided equally among its Fr*Fc inputs")
def avg_pool2d(x, kernel_size, stride=None):
    """Average pooling: x N x C x H x W -> N x C x Ho x Wo (stride defaults to the kernel size)."""
    (kr, kc), s, ho, wo = _pool_geometry("avg_pool2d", x, kernel_size, stride)
    n, c = _shape(x)[:2]
    win = unfold(x, window=(kr, kc), stride=s, padding=0)  # C x kr x kc x Ho x Wo x N
    return transpose(mean(win, axis=(1, 2)), axes=(3, 0, 1, 2))


# ==================== 6. softmax and errors


@rule
def softmax(x, axis=-1):
    """d softmax(x)/dx = diag(p) - p p^T,  p = softmax(x)"""
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


softmax.defvjp(lambda g, out, x, axis=-1: out * (g - sum(g * out, axis=axis, keepdims=True)))
softmax.defparams(_one_axis_params("softmax"))


@rule
def log_softmax(x, axis=-1):
    """d log softmax(x)/dx = I - 1 p^T,  p = softmax(x)"""
    m = xp.max(x, axis=axis, keepdims=True)
    z = x - m
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


log_softmax.defvjp(lambda g, out, x, axis=-1: g - exp(out) * sum(g, axis=axis, keepdims=True))
log_softmax.defparams(_one_axis_params("log_softmax"))


def _check_labels(op: str, scores: Any, labels: Any) -> Any:
    labels = xp.asarray(_d(labels))
    s = _shape(scores)
    if not xp.issubdtype(labels.dtype, xp.integer):
        raise TypeError(f"{op}: labels must be integer class indices, got dtype {labels.dtype}")
    if len(s) == 1:
        want: tuple[int, ...] = ()
    elif len(s) == 2:
        want = (s[0],)
    else:
        raise ShapeError(f"{op}: scores must be M (one sample) or N x M (a batch), got shape {s}")
    if labels.shape != want:
        raise ShapeError(
            f"{op}: scores of shape {s} need labels of shape {want}, got {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= s[-1]):
        raise ValueError(
            f"{op}: labels must lie in [0, {s[-1]}), "
            f"got values from {labels.min()} to {labels.max()}"
        )
    return labels


def _label_index(labels: Any) -> Any:
    return (xp.arange(labels.shape[0]), labels) if labels.ndim == 1 else (labels,)


@rule
def cross_entropy(p, labels):
    """e = -log p(k*):  de/dp = -1/p(k*) at the true class k*, 0 elsewhere (mean over a batch)"""
    labels = _check_labels("cross_entropy", p, labels)
    picked = p[_label_index(labels)]
    return -xp.mean(xp.log(picked)) if p.ndim == 2 else -xp.log(picked)


def _cross_entropy_vjp(g, out, p, labels):
    labels = xp.asarray(_d(labels))
    idx = _label_index(labels)
    n = labels.shape[0] if labels.ndim == 1 else 1
    return scatter(negative(g / scale(getitem(p, index=idx), alpha=n)), shape=_shape(p), index=idx)


cross_entropy.defvjp(_cross_entropy_vjp)


@rule
def mse(x, target, half=False):
    """e = (1/K) |x - x*|^2:  de/dx = (2/K)(x - x*)   (half=True: e/2, de/dx = (1/K)(x - x*))"""
    if xp.shape(x) != xp.shape(target):
        raise ShapeError(
            f"mse: prediction shape {xp.shape(x)} differs from target shape {xp.shape(target)}"
        )
    d = x - target
    e = xp.mean(d * d)
    return e / 2 if half else e


def _mse_vjp_x(g, out, x, target, half=False):
    k = math.prod(_shape(x))
    return scale(g * (x - target), alpha=(1.0 if half else 2.0) / k)


mse.defvjp(
    _mse_vjp_x, lambda g, out, x, target, half=False: negative(_mse_vjp_x(g, out, x, target, half))
)


@rule(saves=True)
def softmax_cross_entropy(logits, labels):
    """e = -log softmax(x)(k*):  de/dx = p - onehot(k*)   (mean over a batch, log-sum-exp stable)"""
    labels = _check_labels("softmax_cross_entropy", logits, labels)
    z = logits - xp.max(logits, axis=-1, keepdims=True)
    z_true = z[_label_index(labels)]
    ez = xp.exp(z, out=z)  # in place: z is no longer needed
    s = ez.sum(axis=-1, keepdims=True)
    logp_true = z_true - xp.log(s[..., 0])
    loss = -xp.mean(logp_true) if logits.ndim == 2 else -logp_true
    ez /= s  # p, saved for the backward pass
    return loss, ez


def _sce_vjp(g, out, logits, labels, saved=None):
    labels = xp.asarray(_d(labels))
    idx = _label_index(labels)
    n = labels.shape[0] if labels.ndim == 1 else 1
    if isinstance(logits, Tensor):  # create_graph: p must be a function of the logits
        onehot = scatter(xp.ones(labels.shape, dtype=logits.dtype), shape=_shape(logits), index=idx)
        return (softmax(logits, axis=-1) - onehot) * scale(g, alpha=1.0 / n)
    d = saved.copy()
    d[idx] -= 1
    d *= g / n
    return d


softmax_cross_entropy.defvjp(_sce_vjp)


__all__ = sorted(RULES) + sorted(COMPOSITES)
