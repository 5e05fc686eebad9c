"""The fused optimiser updates equal the plain formulas, bit for bit, at every block size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule import optim
from chainrule.backend import numpy_updates as updates
from chainrule.backend.numpy_updates import adam_update, sgd_update
from chainrule.nn import Parameter

# ------------------------------------------------------------------- the plain formulas
# Whole-array NumPy, written as the optimisers' docstrings state them, in the fused kernels'
# order of operations (a + b and a * b commute exactly, so the order of the factors is free).


def sgd_formula(h, g, v, lr, mu=0.0, nesterov=False, wd=0.0):
    """(h, v) after h <- h - lr v, v <- mu v + (de/dh + wd h)  (v_1 = de/dh + wd h)."""
    if wd:
        g = g + wd * h
    if not mu:
        return h - lr * g, None
    v = g.copy() if v is None else mu * v + g
    return h - lr * ((g + mu * v) if nesterov else v), v


def adam_formula(h, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    """(h, m, v) after one Adam step t, bias corrections as PyTorch groups them."""
    if wd:
        g = g + wd * h
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * (g * g)
    denominator = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
    return h - (lr / (1 - b1**t)) * (m / denominator), m, v


def lecture_adam(h, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam as the textbook writes it: h - lr m_hat / (sqrt(v_hat) + eps)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return h - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


SGD_CASES = [
    {"lr": 0.1},
    {"lr": 0.1, "mu": 0.9},
    {"lr": 0.05, "mu": 0.9, "nesterov": True},
    {"lr": 0.1, "mu": 0.5, "wd": 0.01},
    {"lr": 0.1, "wd": 0.1},
    {"lr": 0.05, "mu": 0.9, "nesterov": True, "wd": 1e-3},
]
ADAM_CASES = [
    {"lr": 1e-2},
    {"lr": 3e-3, "b1": 0.8, "b2": 0.99, "eps": 1e-6},
    {"lr": 1e-2, "wd": 0.05},
]


def _gradients(rng, shape, dtype, steps=4):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


def _sgd_steps(case, start, gradients):
    """(h, v) of sgd_update and (h, v) of the formula after each gradient, from ``start``."""
    fused, plain = start.copy(), start.copy()
    v_fused = v_plain = None
    for g in gradients:
        v_fused = sgd_update(
            fused,
            g,
            v_fused,
            case["lr"],
            case.get("mu", 0.0),
            case.get("nesterov", False),
            case.get("wd", 0.0),
        )
        plain, v_plain = sgd_formula(plain, g, v_plain, **case)
        yield fused, v_fused, plain, v_plain


@pytest.mark.parametrize("block", ["whole", updates.BLOCK, 7, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", SGD_CASES, ids=str)
def test_fused_sgd_equals_the_formula_bit_for_bit(monkeypatch, case, dtype, block):
    """A small parameter is updated as a whole ("whole"), a larger one block by block."""
    if block != "whole":
        monkeypatch.setattr(updates, "SMALL", 0)  # the blocks, even for this small parameter
        monkeypatch.setattr(updates, "BLOCK", block)
    rng = np.random.default_rng(0)
    start = rng.standard_normal((6, 5)).astype(dtype)
    for fused, v_fused, plain, v_plain in _sgd_steps(case, start, _gradients(rng, (6, 5), dtype)):
        np.testing.assert_array_equal(fused, plain)
        assert fused.dtype == dtype
        if case.get("mu"):
            np.testing.assert_array_equal(v_fused, v_plain)
        else:
            assert v_fused is None


@pytest.mark.parametrize("block", [updates.BLOCK, 7, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ADAM_CASES, ids=str)
def test_fused_adam_equals_the_formula_bit_for_bit(monkeypatch, case, dtype, block):
    monkeypatch.setattr(updates, "BLOCK", block)
    rng = np.random.default_rng(1)
    start = rng.standard_normal((6, 5)).astype(dtype)
    fused, plain = start.copy(), start.copy()
    m = v = None
    m_plain, v_plain = np.zeros_like(start), np.zeros_like(start)
    b1, b2 = case.get("b1", 0.9), case.get("b2", 0.999)
    eps, wd = case.get("eps", 1e-8), case.get("wd", 0.0)
    for t, g in enumerate(_gradients(rng, start.shape, dtype), start=1):
        m, v = adam_update(fused, g, m, v, t, case["lr"], b1, b2, eps, wd)
        plain, m_plain, v_plain = adam_formula(plain, g, m_plain, v_plain, t, **case)
        for a, b in ((fused, plain), (m, m_plain), (v, v_plain)):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == dtype


def test_fused_adam_is_the_textbook_formula_up_to_rounding():
    """Grouped differently (bias corrections on the step size), so equal to rounding only."""
    rng = np.random.default_rng(2)
    fused = rng.standard_normal(50)
    plain, m_plain, v_plain = fused.copy(), np.zeros(50), np.zeros(50)
    m = v = None
    for t, g in enumerate(_gradients(rng, 50, np.float64, steps=10), start=1):
        m, v = adam_update(fused, g, m, v, t, 1e-2)
        plain, m_plain, v_plain = lecture_adam(plain, g, m_plain, v_plain, t, 1e-2)
    np.testing.assert_allclose(fused, plain, rtol=1e-13, atol=1e-15)


def test_fused_updates_write_into_the_given_arrays():
    rng = np.random.default_rng(3)
    h = rng.standard_normal((4, 3))
    v = rng.standard_normal((4, 3))
    before = h.copy()
    assert sgd_update(h, np.ones((4, 3)), v, 0.1, momentum=0.5) is v
    np.testing.assert_array_equal(h, before - 0.1 * v)
    m2, v2 = np.zeros((4, 3)), np.zeros((4, 3))
    assert adam_update(h, np.ones((4, 3)), m2, v2, 1, 0.1) == (m2, v2)
    assert np.all(m2 != 0) and np.all(v2 != 0)


@pytest.mark.parametrize(
    "update",
    [
        lambda h, g: sgd_update(h, g, None, 0.1, momentum=0.9),
        lambda h, g: adam_update(h, g, None, None, 1, 0.1),
    ],
)
def test_a_parameter_that_is_not_c_contiguous_is_updated(update):
    """A Parameter made from a transposed array: its own memory changes (not a copy's)."""
    rng = np.random.default_rng(4)
    base = rng.standard_normal((3, 5))
    g = rng.standard_normal((5, 3))
    before = base.T.copy()
    expected = before.copy()  # C-ordered: updated in place as usual
    update(expected, g)
    assert not np.array_equal(expected, before)
    p = Parameter(base.T)
    assert not p.data.flags.c_contiguous
    update(p.data, g)
    np.testing.assert_array_equal(p.data, expected)
    np.testing.assert_array_equal(base.T, expected)  # the very array the user handed in


def test_optimizer_updates_a_parameter_made_from_a_transposed_array():
    p = Parameter(np.arange(6.0).reshape(2, 3).T)
    p.grad = np.ones((3, 2))
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, np.arange(6.0).reshape(2, 3).T - 0.1)


@pytest.mark.parametrize(
    "update",
    [
        lambda h, g: sgd_update(h, g, None, 0.1),
        lambda h, g: adam_update(h, g, None, None, 1, 0.1),
    ],
)
def test_a_gradient_of_another_shape_is_an_error(update):
    h = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"de/dh has shape \(4, 3\), its parameter has shape"):
        update(h, np.ones((4, 3)))  # the same number of entries: no silent reshape
    np.testing.assert_array_equal(h, 0)


def test_state_array_is_a_c_ordered_copy_in_the_parameters_dtype():
    like = np.zeros((3, 4), dtype=np.float32)
    value = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    a = updates.state_array(value, like)
    assert a.dtype == np.float32 and a.flags.c_contiguous and not np.shares_memory(a, value)
    np.testing.assert_array_equal(a, value)
    assert updates.steps_from(updates.steps_array(7)) == 7


@pytest.mark.parametrize(
    "cls, kwargs", [(optim.SGD, {"lr": 0.1, "momentum": 0.9}), (optim.Adam, {"lr": 0.01})]
)
def test_state_loaded_in_fortran_order_keeps_being_updated(cls, kwargs):
    """A checkpoint's state array in another memory order still receives the updates."""
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal((3, 4)) for _ in range(4)]
    start = rng.standard_normal((3, 4))
    runs = []
    for order in ("C", "F"):
        p = Parameter(start.copy())
        opt = cls([p], **kwargs)
        p.grad = grads[0]
        opt.step()
        state = {
            k: np.asarray(a, order=order).copy(order=order) for k, a in opt.state_dict().items()
        }
        opt = cls([p], **kwargs)
        opt.load_state_dict(state)
        for g in grads[1:]:
            p.grad = g
            opt.step()
        runs.append((p.data.copy(), {k: a.copy() for k, a in opt.state_dict().items()}))
    (p_c, s_c), (p_f, s_f) = runs
    np.testing.assert_array_equal(p_c, p_f)
    assert s_c.keys() == s_f.keys()
    for k in s_c:
        np.testing.assert_array_equal(s_c[k], s_f[k])


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        (optim.SGD, {"lr": 0.1}),
        (optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
        (optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
        (optim.Adam, {"lr": 1e-2, "weight_decay": 0.05}),
    ],
)
def test_updates_block_by_block_give_the_same_numbers(monkeypatch, make, kwargs):
    """The update runs on blocks of updates.BLOCK numbers: any block size, the same bits."""
    results = []
    monkeypatch.setattr(updates, "SMALL", 0)  # the blocks (not the whole-array small path)
    for block in (10**9, 7, 1):  # one block; blocks of 7 with a short last one; single numbers
        monkeypatch.setattr(updates, "BLOCK", block)
        rng = np.random.default_rng(5)
        ps = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in ((5, 9), (3,))]
        opt = make(ps, **kwargs)
        for _ in range(3):
            for p in ps:
                g = rng.standard_normal(p.shape[::-1]).astype(np.float32).T  # not C-ordered
                p.grad = g
            opt.step()
        results.append([p.data.copy() for p in ps] + [a for a in opt.state_dict().values()])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------- large parameters: BLAS calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", [c for c in SGD_CASES if not c.get("nesterov")], ids=str)
def test_blas_sgd_equals_the_formula_to_rounding(monkeypatch, case, dtype):
    """A parameter of at least BLAS_MIN numbers goes through NumPy's OpenBLAS (axpby, axpy)."""
    calls = []
    real = updates._level1

    def spy(*args):
        found = real(*args)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(updates, "_level1", spy)
    rng = np.random.default_rng(3)
    start = rng.standard_normal((updates.BLAS_MIN // 64 + 3, 64)).astype(dtype)
    *_, (fused, v_fused, plain, v_plain) = _sgd_steps(
        case, start, _gradients(rng, start.shape, dtype)
    )
    assert any(calls), "the BLAS path was not taken"
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(fused, plain, rtol=8 * eps, atol=8 * eps)
    if v_plain is not None:
        np.testing.assert_allclose(v_fused, v_plain, rtol=8 * eps, atol=8 * eps)
    assert fused.dtype == dtype and not np.array_equal(fused, start)


def test_small_or_strided_parameters_take_the_blocks():
    big = np.ones((updates.BLAS_MIN,), np.float32)
    assert updates._level1(big, big.copy(), big.copy()) is not None
    assert updates._level1(big[: updates.BLAS_MIN - 1], big[1:].copy()) is None  # small
    square = np.ones((512, 512), np.float32)
    assert updates._level1(square.T, square.copy()) is None  # not C-ordered
    assert updates._level1(square, square.T) is None
    assert updates._level1(square, square.astype(np.float64)) is None  # another dtype
    assert updates._level1(square, square.copy(), None) is None  # no velocity yet
    assert updates._level1(square.astype(np.float16), square.astype(np.float16)) is None


def test_a_small_parameter_is_updated_as_a_whole_and_a_strided_one_in_blocks(monkeypatch):
    calls = []
    real = updates._blocks
    monkeypatch.setattr(updates, "_blocks", lambda *a: calls.append(1) or real(*a))
    h = np.ones((16, 16), np.float32)
    sgd_update(h, np.ones_like(h), None, 0.1)
    assert calls == [] and np.all(h == np.float32(1) - np.float32(0.1))
    g = np.ones((16, 32), np.float32)[:, ::2]  # not C-ordered: the blocks read a copy
    sgd_update(h, g, None, 0.1)
    assert calls == [1] and np.all(h == np.float32(1) - np.float32(0.1) - np.float32(0.1))
