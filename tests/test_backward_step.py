"""SGD.backward_step: the momentum folded into back propagation equals backward() then step().

The backend may hand a linear layer's weight gradient to the optimiser as a deferred product
G^T X, which one GEMM computes into the momentum buffer (v <- mu v + G^T X); every other
gradient arrives as an array. Either way the parameters and velocities after several steps
must be those of the two-call step (float64: to rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.backend import numpy_updates as updates
from chainrule.backend.numpy_updates import Product, momentum_into
from chainrule.engine import backward_into


def _mlp(hidden=96, dtype="float64"):  # 784 x 96 = 75,264 weights: BLAS's size
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, hidden, rng=1, dtype=dtype),
        nn.ReLU(),
        nn.Linear(hidden, 10, rng=2, dtype=dtype),
    )


def _cnn(dtype="float64", activation=nn.ReLU):  # conv2d's vjp defers nothing: arrays
    return nn.Sequential(
        nn.Conv2d(1, 4, 5, rng=1, dtype=dtype),
        activation(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 12 * 12, 10, rng=2, dtype=dtype),
    )


def _train(model, fused, steps=4, seed=0, **settings):
    opt = optim.SGD(model.parameters(), **{"lr": 0.05, "momentum": 0.9, **settings})
    rng = np.random.default_rng(seed)
    dtype = model.parameters()[0].data.dtype
    for _ in range(steps):
        x = rng.random((24, 1, 28, 28)).astype(dtype)
        y = rng.integers(0, 10, 24)
        opt.zero_grad()
        loss = cr.softmax_cross_entropy(model(x), y)
        if fused:
            opt.backward_step(loss)
        else:
            loss.backward()
            opt.step()
    velocities = [v.copy() for v in opt.velocity if v is not None]
    return [p.data.copy() for p in opt.params], velocities, opt


@pytest.mark.parametrize("build", [_mlp, _cnn, lambda: _mlp(hidden=8)], ids=["mlp", "cnn", "small"])
@pytest.mark.parametrize("settings", [{}, {"weight_decay": 1e-2}, {"momentum": 0.5}])
def test_backward_step_equals_backward_then_step(build, settings):
    want_p, want_v, _ = _train(build(), False, **settings)
    got_p, got_v, opt = _train(build(), True, **settings)
    for got, want in zip(got_p + got_v, want_p + want_v, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert all(p.grad is None for p in opt.params)  # the gradient went into v, not .grad
    assert opt.steps == 4


def test_float32_backward_step_agrees_to_rounding():
    want_p, want_v, _ = _train(_mlp(dtype="float32"), False)
    got_p, got_v, _ = _train(_mlp(dtype="float32"), True)
    for got, want in zip(got_p + got_v, want_p + want_v, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-7)


def test_the_linear_weight_gradient_is_computed_into_the_velocity(monkeypatch):
    """One GEMM per large linear weight and step (beta 0 at the first step, then mu); the
    10 x 96 weight's product is left to NumPy (fewer than BLAS_MIN numbers)."""
    if updates._blas(np.dtype(np.float64)) is None:
        pytest.skip("this NumPy has no bundled OpenBLAS: the products are computed in NumPy")
    betas = []
    real = updates._gemm_into

    def spy(c, p, beta):
        done = real(c, p, beta)
        betas.append((c.shape, beta, done))
        return done

    monkeypatch.setattr(updates, "_gemm_into", spy)
    _train(_mlp(), True, steps=2)
    assert betas == [
        ((10, 96), 0.0, False),
        ((96, 784), 0.0, True),
        ((10, 96), 0.9, False),
        ((96, 784), 0.9, True),
    ]


@pytest.mark.parametrize("settings", [{"nesterov": True}, {"momentum": 0.0}])
def test_nesterov_and_plain_sgd_take_the_two_call_step_bit_for_bit(settings):
    want_p, _, _ = _train(_mlp(), False, **settings)
    got_p, _, _ = _train(_mlp(), True, **settings)
    for got, want in zip(got_p, want_p, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_weight_used_twice_gets_the_sum_of_its_paths():
    """A tied weight: its deferred product is added to the other path's array."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 300))
    y = rng.integers(0, 300, 5)

    def run(fused):
        w = cr.tensor(np.random.default_rng(1).standard_normal((300, 300)) / 20, requires_grad=True)
        opt = optim.SGD([w], lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            loss = cr.softmax_cross_entropy(cr.linear(cr.tanh(cr.linear(x, w)), w), y)
            opt.backward_step(loss) if fused else (loss.backward(), opt.step())
        return w.data.copy(), opt.velocity[0].copy()

    for got, want in zip(run(True), run(False), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_a_gradient_already_in_grad_is_added_as_backward_would():
    """Accumulated over two backward passes: the second one goes through backward_step."""

    def run(fused):
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        rng = np.random.default_rng(5)
        for _ in range(2):
            opt.zero_grad()
            x, y = rng.random((8, 1, 28, 28)), rng.integers(0, 10, 8)
            cr.softmax_cross_entropy(model(x), y).backward()  # the first half-batch
            loss = cr.softmax_cross_entropy(model(x[::-1]), y[::-1])
            opt.backward_step(loss) if fused else (loss.backward(), opt.step())
        return [p.data.copy() for p in opt.params]

    for got, want in zip(run(True), run(False), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_backward_into_hands_leaves_their_gradient_and_leaves_grad_alone():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((7, 40))
    w = cr.tensor(rng.standard_normal((30, 40)), requires_grad=True)
    b = cr.tensor(rng.standard_normal(30), requires_grad=True)
    cot = rng.standard_normal((7, 30))  # a random cotangent
    got = {}
    out = cr.linear(x, w, b)
    backward_into(out, {id(w): lambda g: got.setdefault("w", g)}, grad=cot)
    assert w.grad is None and isinstance(got["w"], Product)  # deferred: the sink computes it
    np.testing.assert_allclose(got["w"].value(), cot.T @ x, rtol=1e-13)
    np.testing.assert_allclose(b.grad, cot.sum(axis=0), rtol=1e-13)  # no sink: .grad as ever


def test_a_product_added_to_anything_is_its_value():
    rng = np.random.default_rng(7)
    a, b, c = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    p = Product(a, b)
    assert p.shape == (4, 5) and p.dtype == np.float64
    for total in (p + c, c + p, p + p):
        assert type(total) is np.ndarray
    np.testing.assert_allclose(c + p, c + a @ b, rtol=1e-15)
    np.testing.assert_allclose(p + p, 2 * (a @ b), rtol=1e-15)
    with pytest.raises(ValueError, match="K x M and M x N"):
        Product(a, c)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_momentum_into_a_product_in_every_layout(layout, monkeypatch):
    """The GEMM reads C- and F-ordered operands; a strided one is multiplied by NumPy first."""
    monkeypatch.setattr(updates, "BLAS_MIN", 1)  # small arrays through the GEMM
    calls = []
    real = updates._gemm_into
    monkeypatch.setattr(updates, "_gemm_into", lambda *a: calls.append(real(*a)) or calls[-1])
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((6, 9)), rng.standard_normal((9, 7))
    if layout == "F":
        a, b = np.asfortranarray(a), np.asfortranarray(b)
    elif layout == "strided":
        a = np.repeat(a, 2, axis=1)[:, ::2]
    v = rng.standard_normal((6, 7))
    want = 0.9 * v + a @ b
    got = momentum_into(v.copy(), Product(a, b), 0.9)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    fresh = momentum_into(None, Product(a, b), 0.9)
    np.testing.assert_allclose(fresh, a @ b, rtol=1e-13)
    if updates._blas(np.dtype(np.float64)) is not None:
        assert calls == [layout != "strided"] * 2  # the GEMM ran, or NumPy for a strided A


def test_the_gemm_never_reads_a_new_velocity(monkeypatch):
    """beta 0 for a new v: NaN left in its uninitialised memory stays out of the result."""
    if updates._blas(np.dtype(np.float64)) is None:
        pytest.skip("this NumPy has no bundled OpenBLAS")
    monkeypatch.setattr(updates, "BLAS_MIN", 1)  # a small product through the GEMM too
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((6, 9)), np.asfortranarray(rng.standard_normal((9, 7)))
    nan = np.full((6, 7), np.nan)
    assert updates._gemm_into(nan, Product(a, b), 0.0)
    np.testing.assert_allclose(nan, a @ b, rtol=1e-13)
    v = rng.standard_normal((6, 7))
    want = 0.5 * v + a @ b
    assert updates._gemm_into(v, Product(a.T.copy().T, b), 0.5)  # F-ordered A
    np.testing.assert_allclose(v, want, rtol=1e-13)


def _tanh_cnn(dtype="float64"):  # a layer the compiled step does not take
    return _cnn(dtype, activation=nn.Tanh)


@pytest.mark.parametrize("build", [_mlp, _cnn, _tanh_cnn], ids=["mlp", "cnn", "tanh_cnn"])
def test_the_trainer_steps_through_backward_step_in_one_process(monkeypatch, build):
    """Every batch takes SGD.backward_step, or for an MLP or a CNN of Linear, ReLU, Conv2d,
    MaxPool2d and Flatten layers the compiled step, which makes the same kernel calls
    (tests/test_compiled.py)."""
    from chainrule.data import Dataset
    from chainrule.train import Trainer
    from chainrule.train.compiled import CompiledStep

    calls = []
    for cls, name in ((optim.SGD, "backward_step"), (CompiledStep, "__call__")):
        real = getattr(cls, name)

        def spy(self, *args, real=real, name=name):
            calls.append(name)
            return real(self, *args)

        monkeypatch.setattr(cls, name, spy)
    rng = np.random.default_rng(9)
    data = Dataset(rng.random((64, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 64))
    model = build(dtype="float32")
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    Trainer(model, opt, data, batch_size=16, progress=False, log=None).fit(1)
    want = "backward_step" if build is _tanh_cnn else "__call__"
    assert calls == [want] * 4  # every batch: 64 / 16


def test_momentum_into_refuses_a_gradient_of_another_shape():
    v = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"de/dh has shape \(4, 3\), its momentum has \(3, 4\)"):
        momentum_into(v, np.ones((4, 3)), 0.9)
    assert not v.any()  # untouched
