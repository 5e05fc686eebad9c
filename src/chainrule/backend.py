"""The array-namespace seam: every array operation of the engine goes through ``xp``.

``xp`` is NumPy today. A GPU backend (CuPy) would swap this module's ``xp`` and the two
kernels below (``unfold`` and ``fold``, the im2col pair) without touching the engine
(:mod:`chainrule.tensor`) or the layers; the rule table (:mod:`chainrule.rules`) reaches
arrays only through ``xp``.

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


def unfold(x, window: tuple[int, int], stride: int, padding: int):
    """im2col: x (N, C, H, W) -> windows (N, C, Fr, Fc, Ho, Wo), a contiguous copy."""
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


def fold(cols, x_shape: tuple[int, ...], stride: int, padding: int):
    """col2im, adjoint of :func:`unfold`: (N, C, Fr, Fc, Ho, Wo) -> (N, C, H, W) by scatter-add."""
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
