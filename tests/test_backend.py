"""The backend's kernels against their definition, the fused vjps against the rules' own,
the portable kernels against NumPy's, and the allocator switch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from chainrule import backend
from chainrule.backend import numpy_kernels as K

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
    """unfold(x)[c, r, s, i, j, n] = xpad[n, c, i*stride + r, j*stride + s]."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, w = xp.shape
    fr, fc = window
    ho, wo = (h - fr) // stride + 1, (w - fc) // stride + 1
    out = np.zeros((c, fr, fc, ho, wo, n), dtype=x.dtype)
    for r in range(fr):
        for s in range(fc):
            for i in range(ho):
                for j in range(wo):
                    out[:, r, s, i, j, :] = xp[:, :, i * stride + r, j * stride + s].T
    return out


@pytest.mark.parametrize(("shape", "window", "stride", "padding"), GEOMETRIES)
def test_unfold_matches_its_definition(shape, window, stride, padding):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    got = K.unfold(x, window, stride, padding)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, unfold_by_definition(x, window, stride, padding))


@pytest.mark.parametrize(("shape", "window", "stride", "padding"), GEOMETRIES)
def test_fold_is_the_adjoint_of_unfold(shape, window, stride, padding):
    """<unfold(x), y> = <x, fold(y)>: fold adds every copy's gradient back (the split rule)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    cols = K.unfold(x, window, stride, padding)
    y = rng.standard_normal(cols.shape)
    folded = K.fold(y, shape, stride, padding)
    assert folded.shape == shape
    assert np.sum(cols * y) == pytest.approx(np.sum(x * folded), rel=1e-12)


def layouts(x):
    """x (N, C, H, W) in three memory layouts: C order, batch innermost (CHWN), and strided."""
    chwn = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    big = np.zeros(x.shape[:3] + (2 * x.shape[3],), dtype=x.dtype)
    big[..., ::2] = x
    return {"nchw": x, "chwn": chwn, "strided": big[..., ::2]}


@pytest.mark.parametrize("layout", ["nchw", "chwn", "strided"])
@pytest.mark.parametrize(("shape", "window", "stride", "padding"), GEOMETRIES[:3])
def test_unfold_and_fold_read_any_memory_layout(shape, window, stride, padding, layout):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    got = K.unfold(layouts(x)[layout], window, stride, padding)
    np.testing.assert_array_equal(got, unfold_by_definition(x, window, stride, padding))
    matrix = K.im2col(layouts(x)[layout], window, stride, padding)
    assert matrix.flags.c_contiguous and matrix.flags.writeable
    np.testing.assert_array_equal(matrix.reshape(got.shape), got)
    y = rng.standard_normal(got.shape).astype(np.float32)
    want = K.fold(y, shape, stride, padding)
    big = np.zeros(y.shape[:5] + (2 * y.shape[5],), dtype=y.dtype)
    big[..., ::2] = y
    for cols in (np.asfortranarray(y), big[..., ::2]):  # windows in other memory layouts
        np.testing.assert_array_equal(K.fold(cols, shape, stride, padding), want)


def test_fold_returns_a_batch_innermost_view():
    """fold's N x C x H x W result lies in (C, H, W, N) memory: the batch axis has unit stride."""
    y = np.ones((2, 3, 3, 4, 4, 5), dtype=np.float32)  # C Fr Fc Ho Wo N
    out = K.fold(y, (5, 2, 6, 6), 1, 0)
    assert out.shape == (5, 2, 6, 6) and out.strides[0] == out.itemsize
    assert K.channels_last_batch(out).base is out.base  # no copy to go back to CHWN


def test_channels_last_batch_copies_only_when_needed():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    xc = K.channels_last_batch(x)  # C order: a copy with N innermost
    assert xc.shape == (3, 4, 5, 2) and xc.flags.c_contiguous
    np.testing.assert_array_equal(K.as_batch_first(xc), x)
    assert K.channels_last_batch(K.as_batch_first(xc)).base is xc  # a view
    one = x[:1]  # a batch of one needs no copy
    assert np.shares_memory(K.channels_last_batch(one), one)


def test_fold_counts_how_often_each_element_is_copied():
    ones = np.ones((1, 1, 4, 4))
    cols = K.unfold(ones, (3, 3), 1, 0)
    counts = K.fold(np.ones_like(cols), (1, 1, 4, 4), 1, 0)[0, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_unfold_is_a_read_only_view_of_its_own_buffer():
    x = np.arange(2 * 3 * 6 * 5, dtype=np.float32).reshape(2, 3, 6, 5)
    cols = K.unfold(x, (3, 2), 1, 0)
    assert not np.shares_memory(cols, x)  # x's memory is never reached through the windows
    assert not cols.flags.writeable
    buffer = cols.base.base  # as_strided's wrapper around the rows buffer
    assert buffer.shape == (6, 3, 2, 4, 2)  # image rows x C x Fc x Wo x N: no Fr copies
    with pytest.raises(ValueError, match="read-only"):
        cols[...] = 0


def test_tune_allocator():
    tuned = backend.tune_allocator()
    assert isinstance(tuned, bool)
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert tuned
    big = np.ones((1024, 1024))  # allocation still works afterwards
    assert big.sum() == 1024 * 1024


# ----------------------------------------------------------------------------- fused vjps

import chainrule as cr  # noqa: E402
from chainrule.rules import SAMPLES  # noqa: E402


def _plain_and_fast(name, args, params, seed=0):
    """The rule's own vjps and the backend's fused one, at one sample and cotangent."""
    rule = cr.RULES[name]
    if rule.prepare is not None:
        params = rule.prepare(*args, **params)
    out = rule.forward(*args, **params)
    kw = dict(params)
    if rule.saves:
        out, kw["saved"] = out
    g = np.random.default_rng(seed).standard_normal(np.shape(out))
    needs = tuple(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in args)
    fast = backend.fast_vjps[name](g, out, *args, needs=needs, **kw)
    if fast is NotImplemented:
        return None
    plain = [
        (
            rule.vjp_all(g, out, *args, **kw)[i]
            if rule.vjp_all
            else rule.vjps[i](g, out, *args, **kw)
        )
        if needs[i]
        else None
        for i in range(len(args))
    ]
    return plain, list(fast), args


# samples where the fused kernels take their other branches (a conv kernel of >256 numbers,
# a batch for linear, overlapping pools, ties)
EXTRA = {
    "conv2d": [
        (
            (
                np.random.default_rng(5).standard_normal((3, 6, 8, 8)),
                np.random.default_rng(6).standard_normal((16, 6, 5, 5)),
                np.random.default_rng(7).standard_normal(16),
            ),
            {},
        ),
        (
            (
                np.random.default_rng(5).standard_normal((3, 1, 8, 8)),
                np.random.default_rng(6).standard_normal((6, 1, 5, 5)),
                np.random.default_rng(7).standard_normal(6),
            ),
            {"padding": 2},
        ),
    ],
    "max_pool2d": [
        (
            (np.random.default_rng(8).integers(0, 3, (2, 3, 6, 6)).astype(float),),
            {"kernel_size": 2},
        ),
        (
            (np.random.default_rng(9).integers(0, 3, (2, 1, 5, 5)).astype(float),),
            {"kernel_size": 3, "stride": 1},
        ),
    ],
    "relu": [((np.array([-1.0, 0.0, 2.0, 0.0]),), {})],
    "linear": [
        (
            (
                np.random.default_rng(1).standard_normal((7, 5)),
                np.random.default_rng(2).standard_normal((3, 5)),
                np.random.default_rng(3).standard_normal(3),
            ),
            {},
        )
    ],
}


@pytest.mark.parametrize("name", sorted(backend.fast_vjps))
def test_every_fused_vjp_agrees_with_the_rule(name):
    """The hook's contract: a fused first-order vjp computes the rule's own vjps' numbers."""
    cases = SAMPLES[name](np.random.default_rng(0)) + EXTRA.get(name, [])
    checked = 0
    for args, params in cases:
        got = _plain_and_fast(name, args, params)
        if got is None:
            continue
        plain, fast, args = got
        for i, (p, f) in enumerate(zip(plain, fast, strict=False)):
            if p is None:
                continue
            assert f is not None, f"{name}: the fused vjp gave no gradient for input {i}"
            p = cr.engine.sum_to_shape(np.asarray(p), np.shape(args[i]))
            f = cr.engine.sum_to_shape(np.asarray(f), np.shape(args[i]))
            np.testing.assert_allclose(f, p, rtol=1e-12, atol=1e-12, err_msg=f"{name} input {i}")
            checked += 1
    assert checked, f"{name}: no sample reached the fused vjp"


def test_conv2d_products_per_row_and_whole_agree(monkeypatch):
    """NumPy's conv2d multiplies row by row or in one product (SMALL_KERNEL): same numbers."""
    for args, params in SAMPLES["conv2d"](np.random.default_rng(3)) + EXTRA["conv2d"]:
        results = []
        for per_row in (False, True):
            monkeypatch.setattr(K, "SMALL_KERNEL", 10**9 if per_row else 0)
            ts = [cr.tensor(a, requires_grad=True) for a in args]
            y = cr.conv2d(*ts, **params)
            (y * y).sum().backward()
            results.append([y.data] + [t.grad for t in ts])
        for whole, per_row in zip(*results, strict=True):
            np.testing.assert_allclose(whole, per_row, rtol=1e-12, atol=1e-12)
