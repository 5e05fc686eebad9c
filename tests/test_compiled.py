"""The compiled MLP step (chainrule.train.compiled) equals the engine's step bit for bit.

The engine's step is ``forward_backward(model, None, x, y, opt.backward_step)``: the graph,
softmax cross-entropy, back propagation with SGD's momentum folded in, the update. The
compiled step makes the same kernel calls without the graph, so after several steps the
losses, the correct counts, the parameters and the momentum buffers must be the same bytes.
Where it cannot be the same (other layers, settings, inputs), it must not run at all.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule import models, nn, optim
from chainrule.train.compiled import CompiledStep
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
        nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)),
        nn.Sequential(nn.Flatten(), nn.Flatten(), nn.Linear(4, 2)),
        nn.Linear(4, 2),
    ],
    ids=["sigmoid", "grad_at_zero", "ends_in_relu", "no_relu", "two_flattens", "not_sequential"],
)
def test_other_models_take_the_engine(model):
    assert CompiledStep.of(model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)) is None


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
    assert BatchThreads(cnn, opt.params, 1, opt)._compiled is None


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
