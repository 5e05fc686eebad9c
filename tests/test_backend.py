"""The backend's kernels against their definition, the fused vjps against the rules' own,
the portable kernels against NumPy's, and the allocator switch."""

from __future__ import annotations

import sys
import warnings
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

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


_LAYOUTS = ["c", "f", "channels_last", "strided", "broadcast"]


def _laid_out(a: np.ndarray, layout: str) -> np.ndarray:
    """The same numbers as ``a`` in another memory layout."""
    if layout == "f":
        return np.asfortranarray(a)
    if layout == "channels_last" and a.ndim:  # a permuted view of C memory, as conv returns
        axes = tuple(range(1, a.ndim)) + (0,)
        return np.ascontiguousarray(a.transpose(axes)).transpose(np.argsort(axes))
    if layout == "strided" and a.ndim:
        big = np.repeat(a[..., None], 2, axis=-1)
        return big[..., 0]
    if layout == "broadcast" and a.ndim:
        return np.broadcast_to(a[:1], a.shape)
    return a


def layouts(x):
    """x (N, C, H, W) in three memory layouts: C order, batch innermost (CHWN), and strided."""
    return {"nchw": x, "chwn": _laid_out(x, "channels_last"), "strided": _laid_out(x, "strided")}


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


# ------------------------------------------------- kernels that only change how NumPy runs


@settings(max_examples=80, deadline=None)
@example(shape=(2, 2, 2, 1), dtype="float32", layout="channels_last", seed=0)  # found by CI
@given(
    shape=st.lists(st.integers(1, 40), min_size=0, max_size=4).map(tuple),
    dtype=st.sampled_from(["float32", "float64", "float16", "int64"]),
    layout=st.sampled_from(_LAYOUTS),
    seed=st.integers(0, 2**16),
)
def test_relu_kernel_is_maximum_against_zero_bit_for_bit(shape, dtype, layout, seed):
    """K.relu: max(x, 0) exactly as NumPy's maximum(x, 0) computes it (signed zeros, NaN,
    infinities, any dtype and memory layout), only faster; the output is laid out like x."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 3).astype(dtype)
    if a.size and a.dtype.kind == "f":
        special = np.array([-0.0, 0.0, np.nan, -np.inf, np.inf, -1e-30], dtype=dtype)
        flat = a.reshape(-1)
        picks = rng.integers(0, a.size, size=min(a.size, 12))
        flat[picks] = rng.choice(special, size=picks.size)
    x = _laid_out(a, layout)
    want, got = np.maximum(x, 0), K.relu(x)
    assert type(got) is type(want) and got.dtype == want.dtype and got.shape == want.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()
    if x.ndim and layout in ("c", "f", "channels_last"):  # laid out like x: the same strides
        # along every axis of more than one number (an axis of one has no layout: NumPy gives
        # it any stride, e.g. (2, 2, 2, 1) channels-last: 4 from maximum, 8 from empty_like)
        like = np.empty_like(x)
        assert [s for s, n in zip(got.strides, x.shape, strict=True) if n > 1] == [
            s for s, n in zip(like.strides, x.shape, strict=True) if n > 1
        ]
    inplace = _laid_out(a.copy(), layout)  # the same numbers in the same layout, for writing
    if inplace.flags.writeable:  # K.relu(inplace=True): into x itself, the same numbers
        assert K.relu(inplace, inplace=True) is inplace
        assert np.ascontiguousarray(inplace).tobytes() == np.ascontiguousarray(want).tobytes()


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 30), min_size=0, max_size=4).map(tuple),
    dtype=st.sampled_from(["float32", "float64"]),
    layout=st.sampled_from(["c", "f", "channels_last", "strided"]),
    seed=st.integers(0, 2**16),
)
def test_relu_vjp_into_the_gradient_is_the_vjp_bit_for_bit(shape, dtype, layout, seed):
    """K.relu_vjp_into(g, x) writes the vjp's g (x > 0) into g, the same bytes (the zeros'
    signs too), with x ReLU's input or its output (train.compiled's in-place ReLU)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    if x.size:
        special = np.array([-0.0, 0.0, np.nan, -np.inf, np.inf, -1e-30], dtype=dtype)
        picks = rng.integers(0, x.size, size=min(x.size, 12))
        x.reshape(-1)[picks] = rng.choice(special, size=picks.size)
        g.reshape(-1)[picks[::2]] = rng.choice(special, size=picks[::2].size)
    with np.errstate(invalid="ignore"):  # an infinite g times a zero of the mask: NaN
        want = K.FAST_VJPS["relu"](_laid_out(g, layout), None, _laid_out(x, layout), needs=(True,))
        for mask_of in (x, np.maximum(x, 0)):
            into = _laid_out(g.copy(), layout)
            assert K.relu_vjp_into(into, _laid_out(mask_of, layout)) is into
            assert np.ascontiguousarray(into).tobytes() == np.ascontiguousarray(want[0]).tobytes()


def test_relu_rule_runs_the_kernel():
    x = np.random.default_rng(2).standard_normal((300, 7))
    x[0, :3] = [-0.0, np.nan, 0.0]
    y = cr.relu(cr.tensor(x)).data
    assert y.tobytes() == np.maximum(x, 0).tobytes()


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 300),
    cols=st.integers(1, 300),
    axis=st.sampled_from([0, 1, -1]),
    dtype=st.sampled_from(["float32", "float64"]),
    layout=st.sampled_from(["c", "f", "strided"]),
    seed=st.integers(0, 2**16),
)
def test_batch_sum_is_the_sum_over_the_axis(rows, cols, axis, dtype, layout, seed):
    """K._batch_sum (the bias's gradient): the sum along the axis in any layout, to rounding
    (a product with ones where the axis is contiguous, NumPy's sum elsewhere)."""
    g = _laid_out(np.random.default_rng(seed).standard_normal((rows, cols)).astype(dtype), layout)
    got = K._batch_sum(g, axis)
    exact = g.astype(np.float64).sum(axis=axis)
    assert got.dtype == g.dtype and got.shape == exact.shape
    tol = 1e-12 if dtype == "float64" else 2e-6
    scale = np.abs(g).astype(np.float64).sum(axis=axis)
    assert np.all(np.abs(got - exact) <= tol * scale + 1e-30)


def test_bias_gradient_of_a_batch_in_the_products_layout_agrees_with_the_rule():
    """linear's and affine's fused vjps take the product with ones for a contiguous batch axis
    (the layouts they produce); their bias gradient is the rule's, for a random cotangent."""
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((128, 50)), rng.standard_normal((64, 50)), rng.standard_normal(64)
    g = np.asfortranarray(rng.standard_normal((128, 64)))  # N x out view of out x N memory
    assert g.strides[0] == g.itemsize and g.size >= 4096  # the product-with-ones branch
    _, _, db = backend.fast_vjps["linear"](g, None, x, w, b, needs=(True, True, True))
    rule_db = np.asarray(cr.RULES["linear"].vjps[2](g, None, x, w, b))
    rule_db = cr.engine.sum_to_shape(rule_db, b.shape)
    np.testing.assert_allclose(db, rule_db, rtol=1e-12)
    ga = np.ascontiguousarray(g.T)  # affine: out x N
    _, _, db = backend.fast_vjps["affine"](ga, None, w, x.T, b, needs=(True, True, True))
    np.testing.assert_allclose(db, g.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("n", [1, 5, 128])
def test_softmax_cross_entropy_kernel_is_the_mean_of_minus_log_softmax(dtype, n):
    """The kernel's ufunc reductions give, bit for bit, the numbers of the formula written
    with max, sum and mean: -mean(z[k*] - log sum exp z), z = logits - max, p = exp z / sum."""
    rng = np.random.default_rng(n)
    logits = (rng.standard_normal((n, 10)) * 4).astype(dtype)
    labels = rng.integers(0, 10, n)
    rows = np.arange(n)
    z = logits - np.max(logits, axis=-1, keepdims=True)
    total = np.exp(z).sum(axis=-1, keepdims=True)
    want_loss = -np.mean(z[rows, labels] - np.log(total[:, 0]))
    loss, p = K.softmax_cross_entropy(logits.copy(), (rows, labels))
    assert type(loss) is type(want_loss) and loss.tobytes() == want_loss.tobytes()
    assert p.dtype == logits.dtype and p.tobytes() == (np.exp(z) / total).tobytes()
    one, _ = K.softmax_cross_entropy(logits[0].copy(), (3,))  # one sample: M logits
    assert one.tobytes() == (-(z[0, 3] - np.log(total[0, 0]))).tobytes()


@settings(max_examples=80, deadline=None)
@given(
    shape=st.lists(st.integers(0, 30), min_size=0, max_size=4).map(tuple),
    dtype=st.sampled_from(["float16", "float32", "float64", "int32"]),
    layout=st.sampled_from(_LAYOUTS),
    seed=st.integers(0, 2**16),
)
def test_mean_kernel_is_numpys_mean_bit_for_bit(shape, dtype, layout, seed):
    """K.mean (mse's error): NumPy's mean of every number, the same type and bytes, whatever
    the dtype (float16 and integers take mean itself), memory layout or size (0-d, empty)."""
    rng = np.random.default_rng(seed)
    a = _laid_out((rng.standard_normal(shape) * 10 ** rng.uniform(-3, 3)).astype(dtype), layout)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of nothing is NaN
        want, got = np.mean(a), K.mean(a)
    assert type(got) is type(want)
    assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


def test_mse_rule_runs_the_mean_kernel():
    """mse's forward on a large batch equals the formula mean((x - x*)^2) bit for bit."""
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((1000, 3)).astype(np.float32), rng.standard_normal((1000, 3))
    t = t.astype(np.float32)
    assert cr.mse(cr.tensor(x), t).data.tobytes() == np.asarray(np.mean((x - t) ** 2)).tobytes()


def test_big_endian_labels_are_labels():
    """Labels read from a big-endian file (">i8") are the same classes as native ones."""
    rng = np.random.default_rng(4)
    scores, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    native = cr.softmax_cross_entropy(cr.tensor(scores), labels).data
    swapped = cr.softmax_cross_entropy(cr.tensor(scores), labels.astype(">i8")).data
    assert swapped.tobytes() == native.tobytes()


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.integers(-70000, 70000) | st.integers(-300, 300), min_size=0, max_size=20),
    dtype=st.sampled_from(["int8", "int16", "int32", "int64", "uint8", "uint16", "uint64"]),
    m=st.integers(1, 300) | st.integers(1, 70000),
    order=st.sampled_from(["=", ">", "<"]),  # big-endian labels are read as big-endian
)
def test_labels_below_is_the_range_check(values, dtype, m, order):
    """K.labels_below (one pass over unsigned views): every label in [0, m), as min and max say."""
    info = np.iinfo(dtype)
    dtype = np.dtype(dtype).newbyteorder(order)
    a = np.array([v for v in values if info.min <= v <= info.max], dtype=dtype)
    want = a.size == 0 or (int(a.min()) >= 0 and int(a.max()) < m)
    assert K.labels_below(a, m) is want
    if info.min < 0:  # -1 is refused for every m, however few bits the labels have
        assert K.labels_below(np.array([-1], dtype=dtype), m) is False
    if a.size:
        assert K.labels_below(a[0], m) is (0 <= int(a[0]) < m)  # one sample: a 0-d array


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(0, 6),
    m=st.integers(1, 12),
    scores_ndim=st.integers(1, 3),
    labels_shape=st.sampled_from(["match", "column", "scalar"]),
    dtype=st.sampled_from(["int8", "int64", "uint8", "bool", "float32"]),
    low=st.integers(-3, 0),
    high=st.integers(1, 14),
    seed=st.integers(0, 2**16),
)
def test_labels_fit_accepts_exactly_what_the_label_check_accepts(
    n, m, scores_ndim, labels_shape, dtype, low, high, seed
):
    """K.labels_fit, the losses' shortcut: True only for labels the whole check accepts
    unchanged; everything else (wrong dtype, shape or range) goes on to the check's errors."""
    from chainrule.rules.losses import _check_labels

    s = ((n,) * (scores_ndim - 1)) + (m,)
    want_shape = {"match": s[:-1], "column": s[:-1] + (1,), "scalar": ()}[labels_shape]
    values = np.random.default_rng(seed).integers(low, high, want_shape)
    labels = values.astype(dtype)
    with mock.patch.object(K, "labels_fit", lambda labels, shape: False):  # the whole check
        try:
            checked = _check_labels("op", np.zeros(s, np.float32), labels)
            accepted = checked is labels
        except (TypeError, ValueError):  # ShapeError is a ValueError
            accepted = False
    assert K.labels_fit(labels, s) is accepted
    assert K.labels_fit(list(labels.reshape(-1)), s) is False  # converted by the check


def test_labels_out_of_range_are_refused_with_their_range():
    logits = cr.tensor(np.zeros((3, 4)), requires_grad=True)
    for bad in ([0, -1, 2], [0, 4, 1], np.array([0, 1, -128], dtype=np.int8)):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
            cr.softmax_cross_entropy(logits, np.asarray(bad))
    cr.softmax_cross_entropy(logits, np.array([0, 3, 1], dtype=np.uint8))  # accepted
