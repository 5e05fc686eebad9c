"""The compiled steps (chainrule.train.compiled) equal the engine's bit for bit.

The engine's step is ``forward_backward(model, None, x, y, opt.backward_step)``: the graph,
softmax cross-entropy, back propagation with SGD's momentum folded in, the update. The
compiled step makes the same kernel calls without the graph, so after several steps the
losses, the correct counts, the parameters and the momentum buffers must be the same bytes.
A shard's gradients (``forward_backward(model, params, x, y)``, BatchThreads' threads) must be
the same bytes as CompiledGrads'. Where it cannot be the same (other layers, settings,
inputs), it must not run at all.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule import models, nn, optim
from chainrule.train.compiled import CompiledGrads, CompiledStep
from chainrule.train.threads import BatchThreads, forward_backward


def _net(widths, flatten, bias, dtype, seed, dead=0):
    """Linear/ReLU layers of ``widths``; ``dead`` hidden units with zero weights and bias, so
    their pre-activations are exactly 0 (ReLU's kink: both steps must take gradient 0 there)."""
    layers = [nn.Flatten()] if flatten else []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        lin = nn.Linear(a, b, bias=bias, rng=seed + i, dtype=dtype)
        if i < len(widths) - 2 and dead:
            lin.weight.data[:dead] = 0
            if bias:
                lin.bias.data[:dead] = 0
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _batches(rng, steps, n, in_shape, classes, dtype, zeros=False):
    out = []
    for _ in range(steps):
        x = rng.standard_normal((n, *in_shape)).astype(dtype)
        if zeros:
            x[: n // 2] = 0
        out.append((x, rng.integers(0, classes, n)))
    return out


def _run(model, batches, compiled, lrs, **sgd):
    opt = optim.SGD(model.parameters(), lr=lrs[0], **sgd)
    step = CompiledStep.of(model, opt)
    results = []
    for (x, y), lr in zip(batches, lrs, strict=True):
        opt.lr = lr  # a schedule changes it between steps
        if compiled:
            assert step is not None and step.fits(x, y)
            results.append(step(x, y))
        else:
            loss_sum, correct, _ = forward_backward(model, None, x, y, opt.backward_step)
            results.append((loss_sum, correct))
    return results, [p.data.copy() for p in opt.params], [v.copy() for v in opt.velocity], opt


def _same_steps(build, batches, lrs, changes=True, **sgd):
    a = _run(build(), batches, True, lrs, **sgd)
    b = _run(build(), batches, False, lrs, **sgd)
    assert a[0] == b[0]  # error sums and correct counts
    for p, q in zip(a[1] + a[2], b[1] + b[2], strict=True):
        assert p.dtype == q.dtype and p.shape == q.shape and p.tobytes() == q.tobytes()
    assert a[3].steps == b[3].steps == len(batches)
    # the steps changed the parameters (two steps that did nothing prove nothing); without a
    # bias a network whose ReLUs are all off for the batch has no gradient at all
    fresh = [p.data for p in build().parameters()]
    same = [np.array_equal(p, q) for p, q in zip(a[1], fresh, strict=True)]
    assert not changes or not all(same)


@settings(max_examples=25, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 40), min_size=0, max_size=2),
    flatten=st.booleans(),
    bias=st.booleans(),
    dtype=st.sampled_from(["float32", "float64"]),
    n=st.integers(1, 33),
    classes=st.integers(2, 7),
    momentum=st.sampled_from([0.5, 0.9]),
    weight_decay=st.sampled_from([0.0, 1e-2]),
    dead=st.integers(0, 1),
    zeros=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_compiled_step_is_the_engine_step(
    hidden, flatten, bias, dtype, n, classes, momentum, weight_decay, dead, zeros, seed
):
    in_shape = (2, 3, 2) if flatten else (12,)
    widths = [12, *hidden, classes]
    dead = dead if hidden else 0
    rng = np.random.default_rng(seed)
    batches = _batches(rng, 3, n, in_shape, classes, dtype, zeros)
    lrs = [0.1, 0.05, 0.02]
    _same_steps(
        lambda: _net(widths, flatten, bias, dtype, seed, dead),
        batches,
        lrs,
        changes=bias,  # the last bias's gradient p - onehot is never 0
        momentum=momentum,
        weight_decay=weight_decay,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_step_is_the_engine_step_for_the_mnist_mlp(dtype):
    """The lecture's 784-800-10 MLP: its large weight's gradient is one GEMM into v (beta = mu)
    and its update BLAS's axpy, in both steps."""
    rng = np.random.default_rng(3)
    batches = _batches(rng, 3, 64, (1, 28, 28), 10, dtype)

    def build():
        m = models.mlp(hidden=800, rng=0)
        for p in m.parameters():
            p.data = p.data.astype(dtype)
        return m

    _same_steps(build, batches, [0.05] * 3, momentum=0.9, weight_decay=5e-4)


@pytest.mark.parametrize(
    ("first", "in_shape"), [([nn.ReLU()], (12,)), ([nn.Flatten(), nn.ReLU()], (3, 4))]
)
def test_relu_never_writes_into_the_batch(first, in_shape):
    """The compiled ReLU runs in place only on an array a layer has just made: a ReLU on the
    input batch (or on Flatten's view of it) leaves the batch as it was, and the steps stay
    the engine's."""
    rng = np.random.default_rng(5)
    batches = _batches(rng, 3, 6, in_shape, 3, "float32")
    kept = [x.copy() for x, _ in batches]

    def build():
        return nn.Sequential(*first, nn.Linear(12, 5, rng=0), nn.ReLU(), nn.Linear(5, 3, rng=1))

    _run(build(), batches, True, [0.1] * 3, momentum=0.9)
    assert all(x.tobytes() == k.tobytes() for (x, _), k in zip(batches, kept, strict=True))
    assert any((k < 0).any() for k in kept)  # a batch that an in-place ReLU would change
    _same_steps(build, batches, [0.1] * 3, momentum=0.9)


def _mlp(dtype="float32"):
    return _net([12, 8, 3], True, True, dtype, 0)


def _unchanged(model):
    pairs = zip(model.parameters(), _mlp().parameters(), strict=True)
    return all(p.data.tobytes() == q.data.tobytes() for p, q in pairs)


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2)),
        nn.Sequential(nn.Linear(4, 3), nn.ReLU(grad_at_zero=0.5), nn.Linear(3, 2)),
        nn.Sequential(nn.Linear(4, 3), nn.ReLU()),
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 3, stride=(1, 2)), nn.Flatten(), nn.Linear(2, 2)),
        nn.Sequential(nn.Sequential(nn.Linear(4, 3)), nn.Linear(3, 2)),
        nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(4, 2), nn.Flatten()),
        nn.Linear(4, 2),
    ],
    ids=[
        "sigmoid", "grad_at_zero", "ends_in_relu", "avg_pool", "unequal_strides", "nested",
        "ends_in_flatten", "not_sequential",
    ],
)  # fmt: skip
def test_other_models_take_the_engine(model):
    assert CompiledStep.of(model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)) is None
    assert CompiledGrads.of(model, model.parameters()) is None


def test_a_layer_used_twice_takes_the_engine():
    """Its weight's gradient is the sum over both uses (the engine adds them); an optimizer
    refuses the repeated parameter, a shard's gradients do not."""
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert CompiledGrads.of(model, model.parameters()) is None


def test_other_optimizers_take_the_engine():
    model = _mlp()
    params = model.parameters()
    assert CompiledStep.of(model, optim.Adam(params, lr=0.1)) is None
    assert CompiledStep.of(model, optim.SGD(params[:2], lr=0.1, momentum=0.9)) is None
    assert CompiledStep.of(model, optim.SGD(params[::-1], lr=0.1, momentum=0.9)) is None


def test_steps_it_cannot_take_exactly_take_the_engine():
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = CompiledStep.of(model, opt)
    assert step is not None
    x, y = np.ones((4, 2, 3, 2), dtype=np.float32), np.array([0, 1, 2, 0])
    assert step.fits(x, y)
    assert not step.fits(x.astype(np.float64), y)  # the engine promotes: not the same numbers
    assert not step.fits(x[:, :1], y)  # 6 features, not 12: the engine's ShapeError
    assert not step.fits(x, y[:3])
    assert not step.fits(cr.tensor(x), y)
    with cr.no_grad():
        assert not step.fits(x, y)
    model.parameters()[0].grad = np.zeros((8, 12), dtype=np.float32)  # accumulated by the user
    assert not step.fits(x, y)
    model.parameters()[0].grad = None
    opt.nesterov = True
    assert not step.fits(x, y)
    opt.nesterov, opt.momentum = False, 0.0
    assert not step.fits(x, y)
    opt.momentum = 0.9
    with cr.use_backend(pytest.importorskip("array_api_strict")):
        assert not step.fits(x, y)
    assert step.fits(x, y)


@pytest.mark.parametrize(
    "y", [np.array([0, 1, 3, 0]), np.array([0.0, 1.0, 2.0, 0.0]), np.array([0, 1, 2])]
)
def test_bad_labels_raise_the_engines_error(y):
    x = np.ones((4, 2, 3, 2), dtype=np.float32)
    errors = []
    for compiled in (True, False):
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with pytest.raises((ValueError, TypeError)) as info:
            BatchThreads(model, opt.params, 1, opt, compiled=compiled)(x, y)
        errors.append((type(info.value), str(info.value)))
        assert _unchanged(model)
    assert errors[0] == errors[1]


def test_a_non_finite_error_updates_nothing():
    x = np.full((4, 2, 3, 2), np.inf, dtype=np.float32)
    y = np.array([0, 1, 2, 0])
    for compiled in (True, False):
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with np.errstate(invalid="ignore", over="ignore"):
            loss_sum, _ = BatchThreads(model, opt.params, 1, opt, compiled=compiled)(x, y)
        assert not np.isfinite(loss_sum)
        assert opt.steps == 0 and all(v is None for v in opt.velocity)
        assert _unchanged(model)


def test_batch_threads_and_the_trainer_use_it():
    model = models.mlp(hidden=16, rng=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert BatchThreads(model, opt.params, 1, opt)._compiled is not None
    assert BatchThreads(model, opt.params, 1, opt, compiled=False)._compiled is None
    assert BatchThreads(model, opt.params, 1)._compiled is None  # no optimizer: .grad is left
    cnn = models.cnn(rng=0)
    opt = optim.SGD(cnn.parameters(), lr=0.1, momentum=0.9)
    assert BatchThreads(cnn, opt.params, 1, opt)._compiled is not None
    assert BatchThreads(cnn, opt.params, 2, opt)._shards is not None
    assert BatchThreads(cnn, opt.params, 2, opt, compiled=False)._shards is None
    assert BatchThreads(cnn, opt.params[::-1], 2)._shards is None


def test_a_model_changed_since_takes_the_engine():
    x, y = np.ones((4, 2, 3, 2), dtype=np.float32), np.array([0, 1, 2, 0])
    changes = [
        lambda m, opt: m.layers.__setitem__(2, nn.Sigmoid()),
        lambda m, opt: m.layers.append(nn.ReLU()),
        lambda m, opt: setattr(m.layers[2], "grad_at_zero", 0.5),
        lambda m, opt: setattr(m.layers[1], "weight", nn.Parameter(np.ones((8, 12), "f4"))),
        lambda m, opt: setattr(m.layers[1].weight, "data", np.ones((8, 12))),  # float64
        lambda m, opt: setattr(m.layers[3].bias, "data", np.ones((1, 3), "f4")),  # broadcasts
        lambda m, opt: opt.params.pop(),
    ]
    for change in changes:
        model = _mlp()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = CompiledStep.of(model, opt)
        assert step is not None and step.fits(x, y)
        change(model, opt)
        assert not step.fits(x, y)


# ----------------------------------------------------------------------------- CNNs


@st.composite
def _cnns(draw):
    """(build, input shape, classes): a CNN that fits its input, drawn layer by layer (convs
    of every stride, padding and size, ReLU before or after a max-pool or neither, dead
    channels whose outputs are exactly 0: ties in every pooling window)."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(4, 9)), draw(st.integers(4, 9))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    seed, classes = draw(st.integers(0, 2**16)), draw(st.integers(2, 5))
    specs, shape = [], (c, h, w)
    for _ in range(draw(st.integers(1, 2))):
        k = draw(st.integers(1, min(3, shape[1], shape[2])))
        stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
        out = draw(st.integers(1, 4))
        specs.append(("conv", shape[0], out, k, stride, padding, draw(st.booleans())))
        ho = (shape[1] + 2 * padding - k) // stride + 1
        wo = (shape[2] + 2 * padding - k) // stride + 1
        shape = (out, ho, wo)
        order = draw(st.sampled_from(["relu pool", "pool relu", "relu", "pool", ""])).split()
        for name in order:
            if name == "relu":
                specs.append(("relu",))
            elif min(shape[1:]) >= 2:
                pk = draw(st.integers(1, 2))
                ps = draw(st.sampled_from([None, 1]))
                specs.append(("pool", pk, ps))
                s = ps or pk
                shape = (shape[0], (shape[1] - pk) // s + 1, (shape[2] - pk) // s + 1)
    features = int(np.prod(shape))
    hidden = draw(st.lists(st.integers(1, 6), max_size=1))
    dead = draw(st.booleans())

    def build():
        layers, r = [], seed
        for spec in specs:
            r += 1
            if spec[0] == "conv":
                _, ci, co, k, stride, padding, bias = spec
                conv = nn.Conv2d(ci, co, k, stride=stride, padding=padding, bias=bias, rng=r,
                                 dtype=dtype)  # fmt: skip
                if dead:
                    conv.weight.data[0] = 0
                    if bias:
                        conv.bias.data[0] = 0
                layers.append(conv)
            elif spec[0] == "relu":
                layers.append(nn.ReLU())
            else:
                layers.append(nn.MaxPool2d(spec[1], spec[2]))
        layers.append(nn.Flatten())
        widths = [features, *hidden, classes]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(a, b, rng=r + 1 + i, dtype=dtype))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    return build, (c, h, w), classes, dtype


@settings(max_examples=30, deadline=None)
@given(
    net=_cnns(),
    n=st.integers(1, 9),
    momentum=st.sampled_from([0.5, 0.9]),
    weight_decay=st.sampled_from([0.0, 1e-2]),
    seed=st.integers(0, 2**16),
)
def test_compiled_cnn_step_is_the_engine_step(net, n, momentum, weight_decay, seed):
    build, in_shape, classes, dtype = net
    rng = np.random.default_rng(seed)
    # small integers: exact zeros and ties in the inputs of ReLUs and pools
    batches = [
        (rng.integers(-2, 3, (n, *in_shape)).astype(dtype), rng.integers(0, classes, n))
        for _ in range(3)
    ]
    _same_steps(build, batches, [0.1, 0.05, 0.02], momentum=momentum, weight_decay=weight_decay)


@settings(max_examples=30, deadline=None)
@given(net=_cnns(), n=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_compiled_cnn_grads_are_the_engines(net, n, seed):
    build, in_shape, classes, dtype = net
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, *in_shape)).astype(dtype)
    y = rng.integers(0, classes, n)
    model = build()
    params = model.parameters()
    grads = CompiledGrads.of(model, params)
    assert grads is not None and grads.fits(x, y)
    got = grads(x, y)
    want = forward_backward(model, params, x, y)
    assert got[:2] == want[:2]
    for p, a, b in zip(params, got[2], want[2], strict=True):
        assert a.shape == b.shape == p.shape and a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()


def test_compiled_mlp_grads_are_the_engines():
    rng = np.random.default_rng(5)
    model = models.mlp(hidden=40, rng=1)
    x = rng.random((20, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 20)
    got = CompiledGrads.of(model, model.parameters())(x, y)
    want = forward_backward(model, model.parameters(), x, y)
    assert got[:2] == want[:2]
    assert [g.tobytes() for g in got[2]] == [g.tobytes() for g in want[2]]


@pytest.mark.parametrize("threads", [1, 2])
def test_lenet_steps_through_batch_threads_are_the_engines(threads):
    """LeNet-5 as `chainrule train --model cnn` runs it: the whole batch compiled (1 thread) or
    each of the 2 shards compiled, and the same bytes as the engine's after 3 steps."""
    rng = np.random.default_rng(7)
    batches = [
        (rng.random((48, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 48)) for _ in range(3)
    ]
    out = []
    for compiled in (True, False):
        model = models.cnn(rng=0)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        with BatchThreads(model, opt.params, threads, opt, compiled=compiled) as split:
            assert (split._compiled if threads == 1 else split._shards) is not None or not compiled
            losses = []
            for x, y in batches:
                opt.zero_grad()
                losses.append(split(x, y))
        out.append((losses, [p.data.tobytes() for p in opt.params]))
    assert out[0] == out[1]


def test_the_shards_take_the_engine_where_the_compiled_grads_do_not_fit(monkeypatch):
    """A batch CompiledGrads does not fit (here float64 into a float32 CNN) goes through the
    engine's forward_backward in every thread (which promotes it, as the plain step does)."""
    from chainrule.train import threads as T

    calls = []
    real = T.forward_backward
    monkeypatch.setattr(T, "forward_backward", lambda *a: calls.append(1) or real(*a))
    model = models.cnn(rng=0)
    with BatchThreads(model, model.parameters(), 2) as split:
        x = np.random.default_rng(0).random((32, 1, 28, 28))
        split(x.astype(np.float32), np.arange(32) % 10)
        assert calls == []
        split(x, np.arange(32) % 10)
        assert calls == [1, 1]


def test_a_cnn_changed_since_takes_the_engine():
    x, y = np.ones((4, 1, 28, 28), dtype=np.float32), np.array([0, 1, 2, 0])
    changes = [
        lambda m: setattr(m.layers[0], "stride", 2),
        lambda m: setattr(m.layers[0], "padding", 1),
        lambda m: setattr(m.layers[2], "kernel_size", 3),
        lambda m: setattr(m.layers[2], "stride", 1),
        lambda m: setattr(m.layers[1], "grad_at_zero", 1.0),
        lambda m: setattr(m.layers[3], "bias", None),
        lambda m: m.layers.insert(3, nn.Tanh()),
    ]
    for change in changes:
        model = models.cnn(rng=0)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step, grads = CompiledStep.of(model, opt), CompiledGrads.of(model, opt.params)
        assert step.fits(x, y) and grads.fits(x, y)
        change(model)
        assert not step.fits(x, y) and not grads.fits(x, y)


@pytest.mark.parametrize(
    "shape", [(4, 3, 28, 28), (4, 1, 12, 28), (4, 1, 4, 4), (4, 1, 28), (4, 784)],
    ids=["channels", "features", "too_small", "three_axes", "flat"],
)  # fmt: skip
def test_inputs_the_cnn_does_not_take_go_to_the_engine(shape):
    """Each raises the engine's error there (shapes the rules refuse, features that do not
    match the first linear layer)."""
    model = models.cnn(rng=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = np.ones(shape, dtype=np.float32), np.array([0, 1, 2, 0])
    assert not CompiledStep.of(model, opt).fits(x, y)
    assert not CompiledGrads.of(model, opt.params).fits(x, y)
    with pytest.raises(cr.ShapeError):
        forward_backward(model, None, x, y)
