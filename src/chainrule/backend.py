"""The array-namespace seam: every array operation of the engine goes through ``xp``.

``xp`` is NumPy today. A GPU backend (CuPy) would swap this module's ``xp`` and the
kernels below (``unfold`` and ``fold``, the im2col pair, with their stride-1 "wide" variants)
without touching the engine (:mod:`chainrule.tensor`) or the layers; the rule table
(:mod:`chainrule.rules`) reaches arrays only through ``xp``.

The kernels, for x of shape N x C x H x W and a window Fr x Fc moved with ``stride``:

    unfold(x)[n, c, r, s, i, j] = xpad[n, c, i*stride + r, j*stride + s]       (im2col)
    fold(cols) = the adjoint of unfold: each window entry is added back where it came from

so ``fold`` is the lecture's split rule for im2col: an input element copied into ~Fr*Fc
windows receives the sum of their gradients. Both run as one strided copy / Fr*Fc strided
adds (never a Python loop over pixels).

The layout (N, C, Fr, Fc, Ho, Wo) keeps the output positions (Ho, Wo) innermost: reshaped to
N x (C Fr Fc) x (Ho Wo) it is each sample's im2col matrix, so the convolution W im2col(x)
comes out of one batched matrix product already in N x O x Ho x Wo order (no transpose
copy), and the copies in and out of it read and write whole image rows.

For stride 1 there is also the "wide" pair (:func:`unfold_wide`, :func:`fold_wide`), used when
de/dx is needed: windows run over whole padded rows (Wp columns per row, the Wp - Wo extra
ones wrap around the row's end and are discarded by the convolution), so that im2col and
col2im become Fr*Fc shifted copies / adds of one contiguous block each - col2im's scatter-add
over short rows was the slowest step of a convolution's backward pass - and the whole batch's
convolution is one 2-D matrix product (Fr Fc C) x (N Ho Wp).

:func:`tune_allocator` lets glibc keep freed blocks for reuse (``chainrule train`` and the
benchmarks call it first).
"""

from __future__ import annotations

import numpy

xp = numpy


def out_size(size: int, window: int, stride: int, padding: int) -> int:
    """Number of window positions along one axis: floor((size + 2p - window) / stride) + 1."""
    return (size + 2 * padding - window) // stride + 1


def _pad(x, padding: int):
    if not padding:
        return x
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=x.dtype)
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


def unfold(x, window: tuple[int, int], stride: int, padding: int, wide: bool = False):
    """im2col: x (N, C, H, W) -> windows (N, C, Fr, Fc, Ho, Wo), a contiguous copy.

    ``wide=True`` (stride 1 only): the "wide" layout (Fr, Fc, C, N, Ho, Wp) of
    :func:`unfold_wide`.
    """
    if wide:
        if stride != 1:
            raise ValueError(f"unfold: the wide layout needs stride 1, got {stride}")
        return unfold_wide(x, window, padding)
    fr, fc = window
    x = _pad(x, padding)
    n, c, h, w = x.shape
    ho, wo = out_size(h, fr, stride, 0), out_size(w, fc, stride, 0)
    if stride == fr and stride == fc:
        # windows tile the image: a reshape view, so the copy below is one pass
        x = x[:, :, : ho * fr, : wo * fc].reshape(n, c, ho, fr, wo, fc)
        return xp.ascontiguousarray(x.transpose(0, 1, 3, 5, 2, 4))
    win = xp.lib.stride_tricks.sliding_window_view(x, (fr, fc), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, Fr, Fc), a view
    return xp.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3))


def _rows_from(x_shape: tuple[int, ...], padding: int, dtype):
    """Zeros (C, N, Hp, Wp): the padded images, channel-major."""
    n, c, h, w = x_shape
    return xp.zeros((c, n, h + 2 * padding, w + 2 * padding), dtype=dtype)


def unfold_wide(x, window: tuple[int, int], padding: int):
    """Stride-1 im2col over whole padded rows: x (N, C, H, W) -> (Fr, Fc, C, N, Ho, Wp).

    With U_r[c, n, i, j] = xpad[n, c, i + r, j] (Ho rows of the padded images from row r on,
    all of width Wp) read as one long row u_r of length M = C N Ho Wp,

        cols[r, s].flat[q] = u_r[q + s]     (0 where q + s >= M)

    so for j < Wo, ``cols[r, s, c, n, i, j] = xpad[n, c, i + r, j + s]``: the window entry
    (r, s) of output position (i, j). The columns j >= Wo wrap around a row's end; a
    convolution computes and discards them. In exchange the Fr Fc copies (and the adds of
    :func:`fold_wide`) each run over one contiguous block, and the matrix
    (Fr Fc C) x (N Ho Wp) makes a convolution ONE 2-D matrix product.
    """
    fr, fc = window
    n, c, h, w = x.shape
    img = _rows_from(x.shape, padding, x.dtype)
    img[:, :, padding : padding + h, padding : padding + w] = x.transpose(1, 0, 2, 3)
    hp, wp = img.shape[2:]
    ho = hp - fr + 1
    m = c * n * ho * wp
    cols = xp.empty((fr, fc, m), dtype=x.dtype)
    for r in range(fr):
        u = img[:, :, r : r + ho].reshape(m)  # a copy: rows r .. r + Ho - 1 of every image
        for s in range(fc):
            cols[r, s, : m - s] = u[s:]
            cols[r, s, m - s :] = 0
    return cols.reshape(fr, fc, c, n, ho, wp)


def fold_wide(cols, x_shape: tuple[int, ...], padding: int):
    """Adjoint of :func:`unfold_wide`: (Fr, Fc, C, N, Ho, Wp) -> (N, C, H, W) by adds."""
    n, c, h, w = x_shape
    fr, fc, _, _, ho, wp = cols.shape
    img = _rows_from(x_shape, padding, cols.dtype)
    m = c * n * ho * wp
    cols = cols.reshape(fr, fc, m)
    u = xp.empty(m, dtype=cols.dtype)
    for r in range(fr):
        u[...] = cols[r, 0]
        for s in range(1, fc):
            u[s:] += cols[r, s, : m - s]
        img[:, :, r : r + ho] += u.reshape(c, n, ho, wp)
    img = img[:, :, padding : padding + h, padding : padding + w]
    return xp.ascontiguousarray(img.transpose(1, 0, 2, 3))


def fold(cols, x_shape: tuple[int, ...], stride: int, padding: int, wide: bool = False):
    """col2im, adjoint of :func:`unfold`: (N, C, Fr, Fc, Ho, Wo) -> (N, C, H, W) by scatter-add.

    ``wide=True``: the adjoint of the wide layout, :func:`fold_wide`.
    """
    if wide:
        if stride != 1:
            raise ValueError(f"fold: the wide layout needs stride 1, got {stride}")
        return fold_wide(cols, x_shape, padding)
    n, c, h, w = x_shape
    _, _, fr, fc, ho, wo = cols.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    overlap = stride < fr or stride < fc
    if not overlap and hp == ho * fr and wp == wo * fc:
        out = xp.empty((n, c, hp, wp), dtype=cols.dtype)  # windows tile the image: all written
    else:
        out = xp.zeros((n, c, hp, wp), dtype=cols.dtype)
    for r in range(fr):
        for s in range(fc):
            dst = out[:, :, r : r + stride * ho : stride, s : s + stride * wo : stride]
            if overlap:
                dst += cols[:, :, r, s]
            else:  # no two windows share an element: assignment, no adds
                dst[...] = cols[:, :, r, s]
    if padding:
        out = out[:, :, padding : padding + h, padding : padding + w]
    return out


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
