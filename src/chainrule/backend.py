"""The array-namespace seam: every array operation of the engine goes through ``xp``.

``xp`` is NumPy today. A GPU backend (CuPy) would swap this module's ``xp`` and the
kernels below (``unfold`` and ``fold``, the im2col pair) without touching the engine
(:mod:`chainrule.tensor`) or the layers; the rule table (:mod:`chainrule.rules`) reaches
arrays only through ``xp``.

The kernels, for x of shape N x C x H x W and a window Fr x Fc moved with ``stride``:

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
the convolution and pooling rules return are views of (C, H, W, N) memory ("CHWN", as in
cuda-convnet), and the kernels read their inputs through such views without copying, so a
stack conv -> ReLU -> pool -> conv never transposes. :func:`channels_last_batch` gives that
view of any N x C x H x W array, copying only when the batch axis is not already innermost.

:func:`tune_allocator` lets glibc keep freed blocks for reuse (``chainrule train`` and the
benchmarks call it first).
"""

from __future__ import annotations

import numpy

xp = numpy


def out_size(size: int, window: int, stride: int, padding: int) -> int:
    """Number of window positions along one axis: floor((size + 2p - window) / stride) + 1."""
    return (size + 2 * padding - window) // stride + 1


def channels_last_batch(x):
    """x (N, C, H, W) -> a (C, H, W, N) array with unit stride along N (a view when possible)."""
    xc = x.transpose(1, 2, 3, 0)
    if xc.shape[3] > 1 and xc.strides[3] != xc.itemsize:
        xc = xp.ascontiguousarray(xc)
    return xc


def as_batch_first(xc):
    """(C, H, W, N) -> the N x C x H x W view of the same memory."""
    return xc.transpose(3, 0, 1, 2)


def window_view(xc, r: int, s: int, ho: int, wo: int, stride: int):
    """Entry (r, s) of every window: xc[:, i*stride + r, j*stride + s, :] for all i < Ho, j < Wo."""
    return xc[:, r : r + stride * (ho - 1) + 1 : stride, s : s + stride * (wo - 1) + 1 : stride]


def unfold(x, window: tuple[int, int], stride: int, padding: int, contiguous: bool = False):
    """im2col: x (N, C, H, W) -> windows (C, Fr, Fc, Ho, Wo, N), a read-only view.

    Only the column windows are copied: ``rows[h, c, s, j, n] = xpad[n, c, h, j*stride + s]``
    (Fc copies; each padded image row with its Fc shifted copies side by side), and the
    windows are the overlapping view ``cols[c, r, s, i, j, n] = rows[i*stride + r, c, s, j, n]``,
    so the (Fr C Fc) x (Wo N) im2col matrix of output row i is the contiguous block of rows
    i*stride .. i*stride + Fr - 1: a fraction stride/Fr of the memory of the full matrix.
    ``contiguous=True``: a C-contiguous copy of the windows instead (Fr Fc block copies, ~2x
    faster than copying the view), for one matrix product over the whole batch.
    """
    fr, fc = window
    n, c, h, w = x.shape
    ho, wo = out_size(h, fr, stride, padding), out_size(w, fc, stride, padding)
    if padding:
        img = xp.zeros((c, h + 2 * padding, w + 2 * padding, n), dtype=x.dtype)
        img[:, padding : padding + h, padding : padding + w] = x.transpose(1, 2, 3, 0)
    else:
        img = channels_last_batch(x)
    if contiguous:
        cols = xp.empty((c, fr, fc, ho, wo, n), dtype=x.dtype)
        for r in range(fr):
            for s in range(fc):
                cols[:, r, s] = window_view(img, r, s, ho, wo, stride)
        return cols
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


def fold(cols, x_shape: tuple[int, ...], stride: int, padding: int):
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
