"""The im2col kernels against their definition, and the allocator switch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from chainrule import backend

# (x shape, window, stride, padding): overlapping, strided, padded, tiling, not tiling
GEOMETRIES = [
    ((2, 3, 6, 5), (3, 2), 1, 0),
    ((1, 2, 7, 7), (3, 3), 2, 1),
    ((2, 2, 4, 6), (2, 2), 2, 0),  # windows tile the image
    ((1, 1, 5, 5), (2, 2), 2, 0),  # the last row and column are in no window
    ((1, 1, 5, 5), (2, 2), 2, 1),
    ((1, 2, 6, 6), (1, 1), 3, 0),  # gaps between windows
    ((2, 1, 4, 4), (4, 4), 1, 2),
]


def unfold_by_definition(x, window, stride, padding):
    """unfold(x)[n, c, r, s, i, j] = xpad[n, c, i*stride + r, j*stride + s]."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, w = xp.shape
    fr, fc = window
    ho, wo = (h - fr) // stride + 1, (w - fc) // stride + 1
    out = np.zeros((n, c, fr, fc, ho, wo), dtype=x.dtype)
    for r in range(fr):
        for s in range(fc):
            for i in range(ho):
                for j in range(wo):
                    out[:, :, r, s, i, j] = xp[:, :, i * stride + r, j * stride + s]
    return out


@pytest.mark.parametrize(("shape", "window", "stride", "padding"), GEOMETRIES)
def test_unfold_matches_its_definition(shape, window, stride, padding):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    got = backend.unfold(x, window, stride, padding)
    assert got.flags.c_contiguous and got.dtype == np.float32
    np.testing.assert_array_equal(got, unfold_by_definition(x, window, stride, padding))


@pytest.mark.parametrize(("shape", "window", "stride", "padding"), GEOMETRIES)
def test_fold_is_the_adjoint_of_unfold(shape, window, stride, padding):
    """<unfold(x), y> = <x, fold(y)>: fold adds every copy's gradient back (the split rule)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    cols = backend.unfold(x, window, stride, padding)
    y = rng.standard_normal(cols.shape)
    folded = backend.fold(y, shape, stride, padding)
    assert folded.shape == shape
    assert np.sum(cols * y) == pytest.approx(np.sum(x * folded), rel=1e-12)


def unfold_wide_by_definition(x, window, padding):
    """cols[r, s].flat[q] = u_r[q + s] (0 past the end), u_r = rows r .. r + Ho - 1, flat."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, hp, wp = xp.shape
    fr, fc = window
    ho = hp - fr + 1
    m = c * n * ho * wp
    out = np.zeros((fr, fc, m), dtype=x.dtype)
    for r in range(fr):
        u = xp.transpose(1, 0, 2, 3)[:, :, r : r + ho].reshape(-1)
        for s in range(fc):
            for q in range(m):
                if q + s < m:
                    out[r, s, q] = u[q + s]
    return out.reshape(fr, fc, c, n, ho, wp)


WIDE = [((2, 3, 6, 5), (3, 2), 0), ((1, 2, 7, 7), (3, 3), 1), ((2, 1, 4, 4), (4, 4), 2)]


@pytest.mark.parametrize(("shape", "window", "padding"), WIDE)
def test_wide_unfold_matches_its_definition_and_the_plain_windows(shape, window, padding):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    got = backend.unfold(x, window, 1, padding, wide=True)
    np.testing.assert_array_equal(got, unfold_wide_by_definition(x, window, padding))
    plain = backend.unfold(x, window, 1, padding)  # N C Fr Fc Ho Wo
    wo = plain.shape[-1]
    np.testing.assert_array_equal(got[..., :wo].transpose(3, 2, 0, 1, 4, 5), plain)


@pytest.mark.parametrize(("shape", "window", "padding"), WIDE)
def test_wide_fold_is_the_adjoint_of_wide_unfold(shape, window, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    cols = backend.unfold(x, window, 1, padding, wide=True)
    y = rng.standard_normal(cols.shape)
    folded = backend.fold(y, shape, 1, padding, wide=True)
    assert folded.shape == shape and folded.flags.c_contiguous
    assert np.sum(cols * y) == pytest.approx(np.sum(x * folded), rel=1e-12)


def test_wide_layout_needs_stride_one():
    x = np.zeros((1, 1, 5, 5))
    with pytest.raises(ValueError, match="stride 1"):
        backend.unfold(x, (2, 2), 2, 0, wide=True)
    with pytest.raises(ValueError, match="stride 1"):
        backend.fold(np.zeros((2, 2, 1, 1, 4, 5)), (1, 1, 5, 5), 2, 0, wide=True)


def test_fold_counts_how_often_each_element_is_copied():
    ones = np.ones((1, 1, 4, 4))
    cols = backend.unfold(ones, (3, 3), 1, 0)
    counts = backend.fold(np.ones_like(cols), (1, 1, 4, 4), 1, 0)[0, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_unfold_does_not_copy_the_input_without_padding():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    before = x.copy()
    backend.unfold(x, (2, 2), 1, 0)[...] = -1  # the result is a copy, not a view of x
    np.testing.assert_array_equal(x, before)


def test_tune_allocator():
    tuned = backend.tune_allocator()
    assert isinstance(tuned, bool)
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert tuned
    big = np.ones((1024, 1024))  # allocation still works afterwards
    assert big.sum() == 1024 * 1024
