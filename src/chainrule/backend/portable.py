"""The kernels in the array API standard alone: any namespace (array_api_strict, PyTorch, ...).

The same numbers as :mod:`.numpy_kernels`, without strided views, in-place writes into views or
NumPy's ``add.at``: im2col and col2im are products with 0/1 selection matrices (one per window
offset and axis: exact, since they add zeros and multiply by one), scatter-add is a product
with a one-hot matrix (so repeated indices add up, which ``array-api-extra``'s ``at().add``
does not do). Slower than NumPy's kernels; meant for correctness on other arrays and as the
starting point of a device backend.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

xp: Any = None  # set by chainrule.backend.set_backend


def use(namespace: Any) -> None:
    """Make these kernels compute with ``namespace``."""
    global xp
    xp = namespace


def out_size(size: int, window: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - window) // stride + 1


def is_view(a: Any) -> bool:
    return True  # unknown in the standard: a fresh .grad is always a copy


def copy(a: Any) -> Any:
    return xp.asarray(a, copy=True)


def quiet() -> Any:
    return contextlib.nullcontext()


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    return xp.reshape(x, tuple(shape))


def _one_hot(index: Any, n: int, dtype: Any) -> Any:
    """len(index) x n matrix with a one in each row, at column index[k]."""
    return xp.astype(xp.reshape(index, (-1, 1)) == xp.reshape(xp.arange(n), (1, -1)), dtype)


def _explicit(index: Any) -> tuple[Any, ...]:
    """A basic index with a trailing ``...`` (the standard does not assume one)."""
    items = index if isinstance(index, tuple) else (index,)
    return items if Ellipsis in items else (*items, Ellipsis)


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


def _leading_integer_arrays(index: Any, shape: tuple[int, ...], op: str) -> Any:
    """For an index of integer arrays over the leading k axes: their flat positions (k axes as
    one, C order) and the shapes (leading, rest)."""
    items = index if isinstance(index, tuple) else (index,)
    if items and items[-1] is Ellipsis:
        items = items[:-1]
    if not items or not all(hasattr(i, "shape") and not isinstance(i, (int, slice)) for i in items):
        raise NotImplementedError(
            f"{op} on this backend supports basic indices or integer arrays over the leading "
            f"axes, got {index!r}; use the NumPy backend for other fancy indices"
        )
    lead, rest = shape[: len(items)], shape[len(items) :]
    flat = xp.zeros(items[0].shape, dtype=xp.int64)
    for i, n in zip(items, lead, strict=True):
        flat = flat * n + xp.astype(i % n, xp.int64)
    return flat, lead, rest


def getitem(x: Any, index: Any) -> Any:
    """x[index]; integer arrays over the leading axes are gathered with ``take``."""
    if _is_basic(index):
        return x[_explicit(index)]
    flat, lead, rest = _leading_integer_arrays(index, tuple(x.shape), "indexing")
    picked = xp.take(xp.reshape(x, (math.prod(lead), *rest)), xp.reshape(flat, (-1,)), axis=0)
    return xp.reshape(picked, (*flat.shape, *rest))


def labels_below(labels: Any, m: int) -> bool:
    return labels.size == 0 or (int(xp.min(labels)) >= 0 and int(xp.max(labels)) < m)


def labels_fit(labels: Any, scores_shape: tuple[int, ...]) -> bool:
    return False  # the whole check, always


def scatter_add(g: Any, shape: tuple[int, ...], index: Any) -> Any:
    """zeros(shape) with g added at ``index``; integer-array indices add up where repeated."""
    if _is_basic(index):
        z = xp.zeros(shape, dtype=g.dtype)
        z[_explicit(index)] = g
        return z
    flat, lead, rest = _leading_integer_arrays(index, shape, "scatter")
    onehot = _one_hot(flat, math.prod(lead), g.dtype)  # M x prod(lead)
    gm = xp.reshape(g, (onehot.shape[0], math.prod(rest)))
    return xp.reshape(xp.matrix_transpose(onehot) @ gm, shape)


def linear(x: Any, w: Any, b: Any = None) -> Any:
    y = x @ xp.matrix_transpose(w) if w.ndim == 2 else x @ w
    return y if b is None else y + b


def affine(w: Any, x: Any, b: Any = None) -> Any:
    y = w @ x
    return y if b is None else y + xp.reshape(b, (-1, 1))


def _selection(size: int, offset: int, count: int, stride: int, dtype: Any) -> Any:
    """count x size matrix E with E[i, i*stride + offset] = 1: picks a window entry."""
    return _one_hot(xp.arange(count) * stride + offset, size, dtype)


def _pad(x: Any, padding: int) -> Any:
    """x (N, C, H, W) -> (C, N, H + 2p, W + 2p), zeros around."""
    x = xp.permute_dims(x, (1, 0, 2, 3))
    if not padding:
        return x
    c, n, h, w = x.shape
    zr = xp.zeros((c, n, padding, w), dtype=x.dtype)
    x = xp.concat([zr, x, zr], axis=2)
    zc = xp.zeros((c, n, h + 2 * padding, padding), dtype=x.dtype)
    return xp.concat([zc, x, zc], axis=3)


def unfold(x: Any, window: tuple[int, int], stride: int, padding: int) -> Any:
    """im2col: x (N, C, H, W) -> windows (C, Fr, Fc, Ho, Wo, N)."""
    fr, fc = window
    img = _pad(x, padding)  # C N Hp Wp
    c, n, hp, wp = img.shape
    ho, wo = out_size(hp, fr, stride, 0), out_size(wp, fc, stride, 0)
    entries = []
    for r in range(fr):
        er = _selection(hp, r, ho, stride, x.dtype)  # Ho x Hp
        for s in range(fc):
            es = _selection(wp, s, wo, stride, x.dtype)  # Wo x Wp
            entries.append(er @ img @ xp.matrix_transpose(es))  # C N Ho Wo
    cols = xp.stack(entries, axis=0)  # (Fr Fc) C N Ho Wo
    cols = xp.reshape(cols, (fr, fc, c, n, ho, wo))
    return xp.permute_dims(cols, (2, 0, 1, 4, 5, 3))


def im2col(x: Any, window: tuple[int, int], stride: int, padding: int) -> Any:
    cols = unfold(x, window, stride, padding)
    c, fr, fc, ho, wo, n = cols.shape
    return xp.reshape(cols, (c * fr * fc, ho * wo * n))


def fold(cols: Any, x_shape: tuple[int, ...], stride: int, padding: int) -> Any:
    """col2im, the adjoint of :func:`unfold`: (C, Fr, Fc, Ho, Wo, N) -> (N, C, H, W)."""
    n, c, h, w = x_shape
    _, fr, fc, ho, wo, _ = cols.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    img = xp.zeros((c, n, hp, wp), dtype=cols.dtype)
    for r in range(fr):
        er = _selection(hp, r, ho, stride, cols.dtype)
        for s in range(fc):
            es = _selection(wp, s, wo, stride, cols.dtype)
            entry = xp.permute_dims(cols[:, r, s, ...], (0, 3, 1, 2))  # C N Ho Wo
            img = img + xp.matrix_transpose(er) @ entry @ es
    img = img[:, :, padding : padding + h, padding : padding + w]
    return xp.permute_dims(img, (1, 0, 2, 3))


def conv2d(x: Any, w: Any, b: Any, stride: int, padding: int) -> tuple[Any, Any]:
    n, c, h, wd = x.shape
    o, _, fr, fc = w.shape
    xm = im2col(x, (fr, fc), stride, padding)
    ho, wo = out_size(h, fr, stride, padding), out_size(wd, fc, stride, padding)
    y = affine(xp.reshape(w, (o, c * fr * fc)), xm, b)
    return xp.permute_dims(xp.reshape(y, (o, ho, wo, n)), (3, 0, 1, 2)), None


def max_pool2d(x: Any, kernel: tuple[int, int], stride: int) -> tuple[Any, Any]:
    kr, kc = kernel
    win = unfold(x, kernel, stride, 0)  # C kr kc Ho Wo N
    c, _, _, ho, wo, n = win.shape
    flat = xp.reshape(win, (c, kr * kc, ho, wo, n))
    out = xp.max(flat, axis=1)
    hit = xp.astype(flat == xp.expand_dims(out, axis=1), xp.int64)
    first = (hit == 1) & (xp.cumulative_sum(hit, axis=1) == 1)
    return xp.permute_dims(out, (3, 0, 1, 2)), xp.reshape(first, win.shape)


def relu(x: Any) -> Any:
    return xp.maximum(x, 0)


def mean(a: Any) -> Any:
    return xp.mean(a)


def softmax_cross_entropy(logits: Any, index: Any) -> tuple[Any, Any]:
    z = logits - xp.max(logits, axis=-1, keepdims=True)
    logp = z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))
    if logits.ndim == 2:
        picked = xp.take_along_axis(logp, xp.reshape(index[1], (-1, 1)), axis=1)
        loss = -xp.mean(picked)
    else:
        loss = -logp[index[0]]
    return loss, xp.exp(logp)


# ----------------------------------------------------------------------------- optimisers


def sgd_update(param, grad, velocity, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """SGD's formula (see :mod:`.numpy_updates`) on whole arrays: h in place, returns v."""
    g = grad + weight_decay * param if weight_decay else grad
    if momentum:
        velocity = g if velocity is None else momentum * velocity + g
        step = g + momentum * velocity if nesterov else velocity
    else:
        velocity, step = None, g
    param[...] = param - lr * step
    return velocity


def momentum_into(velocity, grad, momentum):
    """v <- mu v + de/dh (a new v = de/dh before the first step); returns v."""
    return xp.asarray(grad, copy=True) if velocity is None else momentum * velocity + grad


def sgd_apply(param, velocity, lr, weight_decay=0.0):
    """v += wd h ; h <- h - lr v, both in place (v is the optimiser's own array)."""
    if weight_decay:
        velocity[...] = velocity + weight_decay * param
    param[...] = param - lr * velocity


def adam_update(param, grad, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """Adam's formula on whole arrays: h in place, returns (m, v)."""
    g = grad + weight_decay * param if weight_decay else grad
    m = (1.0 - beta1) * g if m is None else beta1 * m + (1.0 - beta1) * g
    v = (1.0 - beta2) * (g * g) if v is None else beta2 * v + (1.0 - beta2) * (g * g)
    step_size = lr / (1.0 - beta1**step)
    denom = xp.sqrt(v) / math.sqrt(1.0 - beta2**step) + eps
    param[...] = param - step_size * (m / denom)
    return m, v


def steps_array(steps: int) -> Any:
    import numpy  # checkpoints are written from NumPy arrays

    return numpy.array([steps], dtype=numpy.int64)


def steps_from(array: Any) -> int:
    import numpy

    return int(numpy.asarray(array).reshape(-1)[0])


def state_array(value: Any, like: Any) -> Any:
    return xp.asarray(xp.asarray(value), dtype=like.dtype, copy=True)
