"""The array-namespace seam: every array operation of the engine goes through ``xp``.

``xp`` is NumPy today. A GPU backend (CuPy) would swap this module's ``xp`` and the two
kernels below (``unfold`` and ``fold``, the im2col pair) without touching the engine
(:mod:`chainrule.tensor`) or the layers; the rule table (:mod:`chainrule.rules`) reaches
arrays only through ``xp``.

The kernels, for x of shape N x C x H x W and a window Fr x Fc moved with ``stride``:

    unfold(x)[n, i, j, c, r, s] = xpad[n, c, i*stride + r, j*stride + s]       (im2col)
    fold(cols) = the adjoint of unfold: each window entry is added back where it came from

so ``fold`` is the lecture's split rule for im2col: an input element copied into ~Fr*Fc
windows receives the sum of their gradients. Both run as one strided copy / Fr*Fc strided
adds (never a Python loop over pixels).
"""

from __future__ import annotations

import numpy

xp = numpy


def out_size(size: int, window: int, stride: int, padding: int) -> int:
    """Number of window positions along one axis: floor((size + 2p - window) / stride) + 1."""
    return (size + 2 * padding - window) // stride + 1


def unfold(x, window: tuple[int, int], stride: int, padding: int):
    """im2col: x (N, C, H, W) -> windows (N, Ho, Wo, C, Fr, Fc), a contiguous copy."""
    fr, fc = window
    if padding:
        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = xp.lib.stride_tricks.sliding_window_view(x, (fr, fc), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, Fr, Fc), a view
    return xp.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5))


def fold(cols, x_shape: tuple[int, ...], stride: int, padding: int):
    """col2im, the adjoint of :func:`unfold`: (N, Ho, Wo, C, Fr, Fc) -> (N, C, H, W) by scatter-add."""
    n, c, h, w = x_shape
    _, ho, wo, _, fr, fc = cols.shape
    out = xp.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    src = cols.transpose(0, 3, 4, 5, 1, 2)  # (N, C, Fr, Fc, Ho, Wo), a view
    if stride >= fr and stride >= fc:
        # windows do not overlap: one strided assignment per kernel offset, no adds needed
        for r in range(fr):
            for s in range(fc):
                out[:, :, r : r + stride * ho : stride, s : s + stride * wo : stride] = src[:, :, r, s]
    else:
        for r in range(fr):
            for s in range(fc):
                out[:, :, r : r + stride * ho : stride, s : s + stride * wo : stride] += src[:, :, r, s]
    if padding:
        out = out[:, :, padding : padding + h, padding : padding + w]
    return out
