"""NumPy's kernels: strided views, in-place writes, BLAS orientation, fused first-order vjps.

The im2col pair, for x of shape N x C x H x W and a window Fr x Fc moved with ``stride``:

    unfold(x)[c, r, s, i, j, n] = xpad[n, c, i*stride + r, j*stride + s]       (im2col)
    fold(cols) = the adjoint of unfold: each window entry is added back where it came from

so ``fold`` is the lecture's split rule for im2col: an input element copied into ~Fr*Fc
windows receives the sum of their gradients. Both run as Fr*Fc strided copies / adds of
whole blocks (never a Python loop over pixels).

Batch-innermost layout. The window layout (C, Fr, Fc, Ho, Wo, N) puts the batch axis last:
reshaped to (C Fr Fc) x (Ho Wo N) it is the whole batch's im2col matrix, so a convolution
is one matrix product, and every copy and add above moves runs of Wo*N contiguous numbers
(with N last, a row of an image in the batch is no longer a run of Wo ~ 10 numbers). The
images themselves stay N x C x H x W to the user - PyTorch's layouts - but the arrays that
the convolution and pooling kernels return are views of (C, H, W, N) memory ("CHWN", as in
cuda-convnet), and the kernels read their inputs through such views without copying, so a
stack conv -> ReLU -> pool -> conv never transposes. :func:`channels_last_batch` gives that
view of any N x C x H x W array, copying only when the batch axis is not already innermost.

``FAST_VJPS`` holds the fused first-order vjps by rule name (see :mod:`chainrule.backend`):
each computes the same numbers as the rule's own vjps, in fewer passes or in BLAS's faster
orientation; ``tests/test_backend.py`` checks every one against the rule.
"""

from __future__ import annotations

from typing import Any

import numpy

from .numpy_updates import (
    Product,
    adam_update,
    momentum_into,
    sgd_apply,
    sgd_update,
    state_array,
    steps_array,
    steps_from,
)

xp = numpy

__all__ = [  # and below
    "adam_update",
    "momentum_into",
    "sgd_apply",
    "sgd_update",
    "state_array",
    "steps_array",
    "steps_from",
]


def out_size(size: int, window: int, stride: int, padding: int) -> int:
    """Number of window positions along one axis: floor((size + 2p - window) / stride) + 1."""
    return (size + 2 * padding - window) // stride + 1


# ----------------------------------------------------------------------------- small helpers


def is_view(a: Any) -> bool:
    """Whether ``a`` shares memory with another array (a fresh .grad must not)."""
    return a.base is not None


def copy(a: Any) -> Any:
    """A copy that keeps the memory layout (a straight copy, not a transposing one)."""
    return a.copy(order="K")


def quiet() -> Any:
    """A context in which an infinite or undefined value is a result, not a warning."""
    return xp.errstate(divide="ignore", invalid="ignore")


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """A view when the strides allow one, else one C-order copy.

    NumPy's own reshape copy of a transposed or overlapping view (such as unfold's windows) is
    slower than making it C-contiguous first (one pass in C order).
    """
    try:
        return xp.reshape(x, shape, copy=False)
    except ValueError:
        return xp.reshape(xp.ascontiguousarray(x), shape)


def getitem(x: Any, index: Any) -> Any:
    """x[index], NumPy's indexing."""
    return x[index]


_unsigned: dict[Any, tuple[Any, int]] = {}  # signed dtype -> (its unsigned twin, 2^(bits - 1))


def labels_below(labels: Any, m: int) -> bool:
    """Whether every integer label lies in [0, m), in one pass: signed labels are read as
    unsigned, so a negative one becomes at least 2^(bits - 1) (min and max would take two).
    That holds only while m <= 2^(bits - 1); a larger m (int8 labels, 200 classes) takes both."""
    if labels.size == 0:
        return True
    if labels.dtype.kind == "i":
        twin = _unsigned.get(labels.dtype)
        if twin is None:  # the same byte order: a big-endian int64 is read as a big-endian uint64
            d = labels.dtype
            twin = (xp.dtype(f"{d.byteorder}u{d.itemsize}"), 2 ** (8 * d.itemsize - 1))
            twin = _unsigned.setdefault(d, twin)
        if m > twin[1]:
            return int(xp.min(labels)) >= 0 and int(xp.max(labels)) < m
        labels = labels.view(twin[0])
    return bool(xp.maximum.reduce(labels, axis=None) < m)


def labels_fit(labels: Any, scores_shape: tuple[int, ...]) -> bool:
    """Whether ``labels`` is already what the losses' label check accepts for scores of that
    shape (M, or N x M): an integer array of shape () or (N,), every label in [0, M). In a few
    attribute reads and :func:`labels_below`; False sends the caller through the whole check
    (conversion, and the error that names what is wrong)."""
    return (
        type(labels) is xp.ndarray
        and labels.dtype.kind in "iu"
        and 1 <= len(scores_shape) <= 2
        and labels.shape == scores_shape[:-1]
        and labels_below(labels, scores_shape[-1])
    )


def scatter_add(g: Any, shape: tuple[int, ...], index: Any) -> Any:
    """zeros(shape) with g added at ``index`` (repeated entries of a fancy index add up)."""
    z = xp.zeros(shape, dtype=g.dtype)
    items = index if isinstance(index, tuple) else (index,)
    if all(isinstance(i, (int, xp.integer, slice)) or i is None or i is Ellipsis for i in items):
        z[index] = g
    else:
        xp.add.at(z, index, g)
    return z


# ----------------------------------------------------------------------------- products


def _g_times_t(g: Any, x: Any, rows: int) -> Any:
    """G X^T for G (rows x P) and X (K x P), as (X G^T)^T for a long contraction P.

    BLAS runs that orientation faster when P (im2col's Ho Wo N columns) is much longer than
    both other sides; the numbers are the same products.
    """
    if x.shape[1] > 8 * max(rows, x.shape[0]):
        return (x @ g.T).T
    return g @ x.T


def _batch_sum(g: Any, axis: int) -> Any:
    """g (2-D) summed along ``axis`` (the batch), the bias's gradient.

    Where that axis is g's contiguous one (the layouts of the products above), NumPy's sum
    adds each short run on its own (measured: 49 us for a 128 x 800 float32 gradient); the
    product with a vector of ones, one BLAS matrix-vector call, takes 13 us for the same sums
    (in another order of addition: equal up to rounding).
    """
    contiguous = g.strides[axis] == g.itemsize and g.size >= 4096 and g.dtype.char in "fd"
    if not contiguous:
        return xp.add.reduce(g, axis=axis)  # g.sum(axis), without its Python wrapper
    ones = xp.ones(g.shape[axis], dtype=g.dtype)
    return ones @ g if axis == 0 else g @ ones


def linear(x: Any, w: Any, b: Any = None) -> Any:
    """x H^T + h. For a batch (2-D x) computed as H X^T, the samples as columns (the lecture's
    H x + h): the result is the N x out view of out x N memory, and the next layer's product
    and the backward products then run in BLAS's faster orientation."""
    y = (w @ x.T).T if x.ndim == 2 else x @ w.T
    if b is not None:
        y += b
    return y


def _linear_vjp(g, out, x, w, b=None, needs=(), defer=()):
    """``defer[1]``: the weight's gradient as the :class:`Product` G^T X, for its destination
    to compute (the engine asks for it when one is waiting: ``SGD.backward_step``)."""
    if x.ndim != 2:
        return NotImplemented
    dw = None
    if needs[1]:
        dw = Product(g.T, x) if defer and defer[1] and g.dtype == x.dtype else g.T @ x
    return (
        (w.T @ g.T).T if needs[0] else None,  # G H, in the layout of the forward pass
        dw,
        _batch_sum(g, 0) if len(needs) > 2 and needs[2] else None,  # summed over the batch
    )


_linear_vjp.defers = True  # type: ignore[attr-defined]  # the engine may pass defer=


def affine(w: Any, x: Any, b: Any = None) -> Any:
    """H X + h 1^T, the bias added in place into the product's output."""
    y = w @ x
    if b is not None:
        y += b[:, None]
    return y


def _affine_vjp(g, out, w, x, b=None, needs=()):
    if x.ndim != 2:
        return NotImplemented
    return (
        _g_times_t(g, x, rows=w.shape[0]) if needs[0] else None,
        w.T @ g if needs[1] else None,
        _batch_sum(g, 1) if len(needs) > 2 and needs[2] else None,
    )


def _matmul_vjp(g, out, a, b, needs=()):
    if a.ndim != 2 or b.ndim != 2:
        return NotImplemented
    return (_g_times_t(g, b, rows=a.shape[0]) if needs[0] else None, a.T @ g if needs[1] else None)


#: the length of the zero row that :func:`relu` compares against
ZERO_ROW = 256
_zero_rows: dict[Any, Any] = {}


def relu(x: Any, inplace: bool = False) -> Any:
    """max(x, 0): the same numbers as ``maximum(x, 0)``, about twice as fast on a large array;
    ``inplace``: written into x itself, which is returned (x must be writeable and used by
    nothing else: ``train.compiled`` runs ReLU so on the arrays its layers have just made).

    NumPy 2.4 runs ``maximum`` against a scalar without its SIMD loop (measured: 98 us for a
    128 x 800 float32 array, 43 us against a row of zeros). So x's memory, in memory order, is
    compared as rows of :data:`ZERO_ROW` numbers with one read-only row of zeros (1 KiB, in
    cache), and the result has x's memory layout (the products' N x out view of out x N
    memory, a channels-last view, stay what they are). Anything else (integers, small or
    strided arrays) takes ``maximum(x, 0)`` itself.
    """
    if type(x) is not xp.ndarray or x.dtype.kind != "f" or x.size < ZERO_ROW:
        return xp.maximum(x, 0, out=x if inplace else None)
    back: Any = None  # the axes that take the result from memory order back to x's
    if x.flags.c_contiguous:
        m = x
    elif x.flags.f_contiguous:
        m, back = x.T, "T"
    else:
        axes = sorted(range(x.ndim), key=lambda a: -x.strides[a])  # memory order
        m, back = x.transpose(axes), tuple(axes.index(a) for a in range(x.ndim))
        if not m.flags.c_contiguous:
            return xp.maximum(x, 0, out=x if inplace else None)
    zero = _zero_rows.get(x.dtype)
    if zero is None:
        zero = xp.zeros(ZERO_ROW, dtype=x.dtype)
        zero.flags.writeable = False
        zero = _zero_rows.setdefault(x.dtype, zero)
    n = x.size
    r = m if inplace else xp.empty(m.shape, dtype=x.dtype)
    flat, out, head = m.reshape(-1), r.reshape(-1), n - n % ZERO_ROW
    xp.maximum(flat[:head].reshape(-1, ZERO_ROW), zero, out=out[:head].reshape(-1, ZERO_ROW))
    if head < n:
        xp.maximum(flat[head:], 0, out=out[head:])
    if inplace or back is None:
        return x if inplace else r
    return r.T if back == "T" else r.transpose(back)


def _relu_vjp(g, out, x, grad_at_zero=0.0, needs=()):
    if grad_at_zero:
        return NotImplemented
    return (g * (x > 0),)  # a boolean mask multiplies in one pass


def relu_vjp_into(g: Any, x: Any) -> Any:
    """:func:`_relu_vjp`'s g (x > 0), the same numbers, written into g itself (returned): g
    must be writeable and used by nothing else. x: ReLU's input, or its output, which is
    positive exactly where the input is (max(x, 0) > 0 iff x > 0, for NaN too)."""
    return xp.multiply(g, x > 0, out=g)


# ----------------------------------------------------------------------------- memory layout


def channels_last_batch(x: Any) -> Any:
    """x (N, C, H, W) -> a (C, H, W, N) array with unit stride along N (a view when possible)."""
    xc = x.transpose(1, 2, 3, 0)
    if xc.shape[3] > 1 and xc.strides[3] != xc.itemsize:
        xc = xp.ascontiguousarray(xc)
    return xc


def as_batch_first(xc: Any) -> Any:
    """(C, H, W, N) -> the N x C x H x W view of the same memory."""
    return xc.transpose(3, 0, 1, 2)


def window_view(xc: Any, r: int, s: int, ho: int, wo: int, stride: int) -> Any:
    """Entry (r, s) of every window: xc[:, i*stride + r, j*stride + s, :] for all i < Ho, j < Wo."""
    return xc[:, r : r + stride * (ho - 1) + 1 : stride, s : s + stride * (wo - 1) + 1 : stride]


def _padded(x: Any, padding: int) -> Any:
    n, c, h, w = x.shape
    if not padding:
        return channels_last_batch(x)
    img = xp.zeros((c, h + 2 * padding, w + 2 * padding, n), dtype=x.dtype)
    img[:, padding : padding + h, padding : padding + w] = x.transpose(1, 2, 3, 0)
    return img


def unfold(x: Any, window: tuple[int, int], stride: int, padding: int) -> Any:
    """im2col: x (N, C, H, W) -> windows (C, Fr, Fc, Ho, Wo, N), a read-only view.

    Only the column windows are copied: ``rows[h, c, s, j, n] = xpad[n, c, h, j*stride + s]``
    (Fc copies; each padded image row with its Fc shifted copies side by side), and the
    windows are the overlapping view ``cols[c, r, s, i, j, n] = rows[i*stride + r, c, s, j, n]``,
    so the (Fr C Fc) x (Wo N) im2col matrix of output row i is the contiguous block of rows
    i*stride .. i*stride + Fr - 1: a fraction stride/Fr of the memory of the full matrix.
    """
    fr, fc = window
    n, c, h, w = x.shape
    ho, wo = out_size(h, fr, stride, padding), out_size(w, fc, stride, padding)
    img = _padded(x, padding)
    hu = (ho - 1) * stride + fr  # the image rows that some window reads
    rows = xp.empty((hu, c, fc, wo, n), dtype=x.dtype)
    for s in range(fc):
        rows[:, :, s] = img[:, :hu, s : s + stride * (wo - 1) + 1 : stride].transpose(1, 0, 2, 3)
    e, row = rows.itemsize, c * fc * wo * n
    return xp.lib.stride_tricks.as_strided(
        rows,
        shape=(c, fr, fc, ho, wo, n),
        strides=(fc * wo * n * e, row * e, wo * n * e, stride * row * e, n * e, e),
        writeable=False,
    )


def im2col(x: Any, window: tuple[int, int], stride: int, padding: int) -> Any:
    """The whole batch's im2col matrix (C Fr Fc) x (Ho Wo N), contiguous: Fr Fc block copies
    of whole window entries (fewer, longer runs than copying :func:`unfold`'s view)."""
    fr, fc = window
    n, c, h, w = x.shape
    ho, wo = out_size(h, fr, stride, padding), out_size(w, fc, stride, padding)
    img = _padded(x, padding)
    cols = xp.empty((c, fr, fc, ho, wo, n), dtype=x.dtype)
    for r in range(fr):
        for s in range(fc):
            cols[:, r, s] = window_view(img, r, s, ho, wo, stride)
    return cols.reshape(c * fr * fc, ho * wo * n)


def fold(cols: Any, x_shape: tuple[int, ...], stride: int, padding: int) -> Any:
    """col2im, adjoint of :func:`unfold`: (C, Fr, Fc, Ho, Wo, N) -> (N, C, H, W) by adds.

    The result is the N x C x H x W view of a (C, H, W, N) array.
    """
    n, c, h, w = x_shape
    _, fr, fc, ho, wo, _ = cols.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    overlap = stride < fr or stride < fc
    if not overlap and hp == ho * fr and wp == wo * fc:
        img = xp.empty((c, hp, wp, n), dtype=cols.dtype)  # windows tile the image: all written
    else:
        img = xp.zeros((c, hp, wp, n), dtype=cols.dtype)
    for r in range(fr):
        for s in range(fc):
            dst = window_view(img, r, s, ho, wo, stride)
            if overlap:
                dst += cols[:, r, s]
            else:  # no two windows share an element: assignment, no adds
                dst[...] = cols[:, r, s]
    if padding:
        img = img[:, padding : padding + h, padding : padding + w]
    return as_batch_first(img)


# ----------------------------------------------------------------------------- convolution

#: conv2d multiplies row by row when the kernel has at most this many numbers O C Fr Fc (a first
#: layer on grey images), else in one product; ``benchmarks/bench_conv_paths.py`` times both
SMALL_KERNEL = 256


def conv2d(x: Any, w: Any, b: Any, stride: int, padding: int) -> tuple[Any, Any]:
    """(Y, saved): Y = W im2col(x) + b as N x O x Ho x Wo, the view of (Ho or O, ...) memory.

    A tiny kernel multiplies row by row straight from :func:`unfold`'s buffer (no im2col
    copy): Ho products (O x K) (K x Wo N). Otherwise ONE product over the whole batch's
    im2col matrix. ``saved`` keeps the matrix (or the rows) for the backward products.
    """
    n, c, h, wd = x.shape
    o, _, fr, fc = w.shape
    ho, wo = out_size(h, fr, stride, padding), out_size(wd, fc, stride, padding)
    k = c * fr * fc
    if o * k <= SMALL_KERNEL:
        cols = unfold(x, (fr, fc), stride, padding)  # C Fr Fc Ho Wo N
        rows = reshape(cols.transpose(3, 1, 0, 2, 4, 5), (ho, k, wo * n))  # a view: no copy
        wm = xp.ascontiguousarray(w.transpose(0, 2, 1, 3)).reshape(o, k)  # O x (Fr C Fc)
        y = wm @ rows  # Ho x O x (Wo N)
        if b is not None:
            y += b[:, None]
        out = y.reshape(ho, o, wo, n).transpose(3, 1, 0, 2)
        return out, ("rows", rows, wm)
    xm = im2col(x, (fr, fc), stride, padding)  # (C Fr Fc) x (Ho Wo N)
    wm = w.reshape(o, k)
    y = affine(wm, xm, b)
    return y.reshape(o, ho, wo, n).transpose(3, 0, 1, 2), ("matrix", xm, wm)


def _conv2d_vjp(g, out, x, w, b=None, stride=1, padding=0, saved=None, needs=()):
    kind, xm, wm = saved
    n, c, h, wd = x.shape
    o, _, fr, fc = w.shape
    _, _, ho, wo = g.shape
    dx = dw = db = None
    if kind == "matrix":
        gm = reshape(g.transpose(1, 2, 3, 0), (o, ho * wo * n))  # O x (Ho Wo N)
        if needs[1]:
            dw = _g_times_t(gm, xm, rows=o).reshape(w.shape)
        if needs[0]:
            dcols = (wm.T @ gm).reshape(c, fr, fc, ho, wo, n)
            dx = fold(dcols, x.shape, stride, padding)
    else:  # row by row: G as Ho x O x (Wo N)
        gm = reshape(g.transpose(2, 1, 3, 0), (ho, o, wo * n))
        if needs[1]:
            dwm = xp.matmul(gm, xm.transpose(0, 2, 1)).sum(axis=0)  # sum_i G_i rows_i^T
            dw = dwm.reshape(o, fr, c, fc).transpose(0, 2, 1, 3)
        if needs[0]:
            drows = (wm.T @ gm).reshape(ho, fr, c, fc, wo, n)  # Ho x (Fr C Fc) x (Wo N)
            dx = fold(drows.transpose(2, 1, 3, 0, 4, 5), x.shape, stride, padding)
    if len(needs) > 2 and needs[2]:
        db = g.sum(axis=(0, 2, 3))
    return dx, dw, db


# ----------------------------------------------------------------------------- pooling


def max_pool2d(x: Any, kernel: tuple[int, int], stride: int) -> tuple[Any, Any]:
    """(the window maxima N x C x Ho x Wo, the first-maximum mask C x kr x kc x Ho x Wo x N).

    Each window entry is a strided view of (C, H, W, N) memory (runs of N numbers); the mask
    takes a few passes per window entry (argmax along a middle axis makes short strided passes).
    """
    kr, kc = kernel
    xc = channels_last_batch(x)
    ho, wo = out_size(xc.shape[1], kr, stride, 0), out_size(xc.shape[2], kc, stride, 0)
    views = [window_view(xc, r, q, ho, wo, stride) for r in range(kr) for q in range(kc)]
    out = views[0].copy()
    for v in views[1:]:
        xp.maximum(out, v, out=out)
    mask = xp.empty((xc.shape[0], kr, kc, ho, wo, xc.shape[3]), dtype=bool)
    m = mask.reshape(xc.shape[0], kr * kc, ho, wo, xc.shape[3])
    free = ~xp.equal(views[0], out, out=m[:, 0])  # windows whose maximum is not yet found
    for j in range(1, kr * kc):
        hit = xp.equal(views[j], out, out=m[:, j])
        hit &= free
        if j < kr * kc - 1:
            free ^= hit
    return as_batch_first(out), mask


def _max_pool2d_vjp(g, out, x, kernel_size, stride=None, saved=None, needs=()):
    _, kr, kc, ho, wo, _ = saved.shape
    s = stride
    gc = channels_last_batch(g)
    n, c, h, w = x.shape
    tiled = s == kr == kc and h == ho * kr and w == wo * kc
    dx = (xp.empty if tiled else xp.zeros)((c, h, w, n), dtype=g.dtype)
    for r in range(kr):
        for q in range(kc):
            dst = window_view(dx, r, q, ho, wo, s)
            if s >= kr and s >= kc:  # windows do not overlap: each G * mask goes to its place
                xp.multiply(gc, saved[:, r, q], out=dst)
            else:
                dst += gc * saved[:, r, q]
    return (as_batch_first(dx),)


# ----------------------------------------------------------------------------- errors


def mean(a: Any) -> Any:
    """The mean of all of ``a``'s numbers: the same number as ``mean(a)``, as its ufunc
    (``add.reduce`` over all axes, divided by the count) without its Python wrapper, which
    costs more than the arithmetic on a small network's error (float16, whose mean sums in
    float32, an empty or non-float array: ``mean`` itself)."""
    if type(a) is not xp.ndarray or a.dtype.kind != "f" or a.dtype.itemsize < 4 or not a.size:
        return xp.mean(a)
    return xp.add.reduce(a, axis=None) / a.size


def softmax_cross_entropy(logits: Any, index: Any) -> tuple[Any, Any]:
    """(mean of -log softmax(logits)[index], p = softmax(logits)): one exp pass, in place.

    The reductions are the ufuncs' own (``maximum.reduce``, ``add.reduce``, :func:`mean`: the
    same numbers as ``max``, ``sum`` and ``mean``, without their Python wrappers, which cost
    more than the arithmetic on a batch of 10 classes)."""
    z = logits - xp.maximum.reduce(logits, axis=-1, keepdims=True)
    z_true = z[index]
    ez = xp.exp(z, out=z)  # in place: z is no longer needed
    s = xp.add.reduce(ez, axis=-1, keepdims=True)
    logp_true = z_true - xp.log(s[..., 0])
    loss = -logp_true if logits.ndim == 1 else -mean(logp_true)
    ez /= s  # p, saved for the backward pass
    return loss, ez


def _softmax_cross_entropy_vjp(g, out, logits, labels, saved=None, needs=()):
    labels = xp.asarray(labels.data if hasattr(labels, "requires_grad") else labels)
    idx = (xp.arange(labels.shape[0]), labels) if labels.ndim == 1 else (labels,)
    n = labels.shape[0] if labels.ndim == 1 else 1
    scale = g / n
    d = saved * scale  # (p - onehot) g / n in one pass over p: the onehot part is N numbers
    d[idx] -= scale
    return (d, None)


def _mse_vjp(g, out, x, target, half=False, needs=()):
    """(2/K) g (x - x*) and its negative for x*, without two calls of the table's scale."""
    d = g * (x - target)
    d *= (1.0 if half else 2.0) / d.size
    return (d if needs[0] else None, -d if len(needs) > 1 and needs[1] else None)


FAST_VJPS = {
    "linear": _linear_vjp,
    "affine": _affine_vjp,
    "matmul": _matmul_vjp,
    "relu": _relu_vjp,
    "conv2d": _conv2d_vjp,
    "max_pool2d": _max_pool2d_vjp,
    "softmax_cross_entropy": _softmax_cross_entropy_vjp,
    "mse": _mse_vjp,
}


def tune_allocator(keep_mb: int = 512) -> bool:
    """Let the C allocator keep freed blocks for reuse instead of handing them back to the OS.

    NumPy allocates each large temporary (im2col matrices, activations, gradients) afresh. By
    default glibc returns big freed blocks to the operating system, so every training step
    page-faults and zero-fills the same memory again: a third of a small CNN's step. This sets
    glibc's mmap threshold to 32 MiB and its trim threshold to ``keep_mb`` (what the environment
    variables MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ do at start-up). It affects the
    whole process; returns False where it does not apply (not Linux with glibc).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
    return ok and mallopt(m_trim_threshold, int(keep_mb) * 1024 * 1024) == 1
