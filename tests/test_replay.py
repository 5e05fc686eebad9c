"""StepReplay (chainrule.train.replay): a recorded training step replayed without its graph
gives the engine's numbers bit for bit, and is recorded again whenever something it depends on
changes; what it cannot replay runs on the engine."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("threadpoolctl")

from chainrule import models, nn, optim, rules  # noqa: E402
from chainrule.train import replay  # noqa: E402
from chainrule.train.threads import BatchThreads  # noqa: E402


def twins(make, opt="sgd", dtype=np.float64):
    """Two identical models with their optimisers and one-thread steps: one replays, one not."""
    out = []
    for _ in range(2):
        model = make()
        for p in model.parameters():
            p.data = p.data.astype(dtype)
        if opt == "sgd":
            o = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        else:
            o = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        out.append((model, o, BatchThreads(model, o.params, 1, o)))
    assert out[0][2]._replay is not None
    out[1][2]._replay = None  # the engine's step
    return out


def batches(shape, n, sizes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((b, *shape)).astype(dtype), rng.integers(0, n, b)) for b in sizes]


def assert_same(a, b):
    (ma, oa, _), (mb, ob, _) = a, b
    for pa, pb in zip(ma.parameters(), mb.parameters(), strict=True):
        assert pa.data.dtype == pb.data.dtype and pa.data.tobytes() == pb.data.tobytes()
    for name in oa.state_names:
        for va, vb in zip(oa.state[name], ob.state[name], strict=True):
            assert (va is None) == (vb is None)
            if va is not None:
                assert va.tobytes() == vb.tobytes()


def step_both(pair, x, y, zero=True):
    results = []
    for _, o, bt in pair:
        if zero:
            o.zero_grad()
        results.append(bt(x, y))
    assert results[0] == results[1]  # (error sum, correct predictions), exactly
    return results[0]


def small_mlp():
    return models.mlp(input_shape=(1, 6, 6), hidden=24, rng=3)


def small_cnn():
    return models.cnn(rng=4)


def wide_mlp():  # a first weight of 78,400 numbers: SGD's momentum GEMM (numpy_updates.BLAS_MIN)
    return models.mlp(hidden=100, rng=5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("make", "shape"),
    [(small_mlp, (1, 6, 6)), (wide_mlp, (1, 28, 28)), (small_cnn, (1, 28, 28))],
    ids=["mlp", "wide-mlp", "cnn"],
)
def test_replayed_steps_are_the_engines_bit_for_bit(make, shape, dtype):
    pair = twins(make, dtype=dtype)
    data = batches(shape, 10, [8, 8, 8, 5, 8, 8], dtype)  # a smaller batch: recorded again
    for x, y in data:
        step_both(pair, x, y)
        assert_same(*pair)
    r = pair[0][2]._replay
    assert r.ops is not None and r.key[0] == (8, *shape)  # replaying batches of 8 again


def test_after_the_recording_the_model_forward_is_not_called(monkeypatch):
    pair = twins(small_mlp)
    data = batches((1, 6, 6), 10, [8] * 4, np.float64)
    step_both(pair, *data[0])
    model = pair[0][0]

    def no(*a, **k):
        raise AssertionError("the replay built a graph")

    monkeypatch.setattr(type(model), "forward", no)
    for x, y in data[1:]:
        pair[0][1].zero_grad()
        pair[0][2](x, y)
    monkeypatch.undo()
    for x, y in data[1:]:
        pair[1][1].zero_grad()
        pair[1][2](x, y)
    assert_same(*pair)


def test_changes_between_steps_are_seen():
    pair = twins(small_cnn)
    data = batches((1, 28, 28), 10, [8] * 6, np.float64)
    step_both(pair, *data[0])
    for (m, _, _), v in zip(pair, (0.5, 0.5), strict=True):  # ReLU's subgradient at 0: the order
        m.layers[1].grad_at_zero = v  # of pool and ReLU (Sequential._pool_first) changes too
    step_both(pair, *data[1])
    assert_same(*pair)
    rng = np.random.default_rng(9)
    new = rng.standard_normal(pair[0][0].layers[-1].weight.data.shape)
    for m, _, _ in pair:  # new arrays behind the same parameters (load_state_dict)
        m.layers[-1].weight.data = new.copy()
    step_both(pair, *data[2])
    assert_same(*pair)
    for m, _, _ in pair:  # a frozen layer: no gradient, no update
        m.layers[0].weight.requires_grad = False
    frozen = pair[0][0].layers[0].weight.data.copy()
    step_both(pair, *data[3])
    assert_same(*pair)
    assert pair[0][0].layers[0].weight.data.tobytes() == frozen.tobytes()
    step_both(pair, *data[4], zero=False)  # gradients left from the last step: added to
    assert_same(*pair)


def test_adam_replays_too():
    pair = twins(small_mlp, opt="adam")
    for x, y in batches((1, 6, 6), 10, [8] * 4, np.float64):
        step_both(pair, x, y)
        assert_same(*pair)


def test_a_non_finite_error_updates_nothing():
    pair = twins(small_mlp)
    data = batches((1, 6, 6), 10, [8] * 3, np.float64)
    step_both(pair, *data[0])
    before = [p.data.copy() for p in pair[0][0].parameters()]
    x, y = data[1]
    x = x.copy()
    x[0, 0, 0, 0] = np.nan
    loss_sum, _ = pair[0][2](x, y)
    assert not np.isfinite(loss_sum)
    for p, b in zip(pair[0][0].parameters(), before, strict=True):
        assert p.data.tobytes() == b.tobytes()


def test_what_it_cannot_replay_runs_on_the_engine(monkeypatch):
    class Scaled(nn.Linear):  # a subclass: its forward is not the library's
        pass

    model = nn.Sequential(nn.Flatten(), Scaled(36, 10, rng=1))
    assert not replay.replayable(model)
    o = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert BatchThreads(model, o.params, 1, o)._replay is None
    own = nn.Sequential(nn.Flatten(), nn.Linear(36, 10, rng=1))
    own.layers[0].forward = lambda x: x  # a forward of its own, which could branch on the data
    assert not replay.replayable(own)

    # an array from outside the recording (a changed library forward multiplying by a mask):
    # recorded once, found not replayable, every step on the engine
    mask = np.linspace(0.5, 1.5, 36)
    monkeypatch.setattr(
        nn.Flatten,
        "forward",
        lambda self, x: rules.multiply(rules.reshape(x, shape=(len(x), -1)), mask),
    )
    pair = twins(lambda: nn.Sequential(nn.Flatten(), nn.Linear(36, 10, rng=1)))
    for x, y in batches((1, 6, 6), 10, [8] * 3, np.float64):
        step_both(pair, x, y)
        assert_same(*pair)
    assert pair[0][2]._replay.ops is None


def test_the_replay_computes_sgds_momentum_into_its_buffer(monkeypatch):
    """As backward_step does: the wide weight's G^T X goes into v by one GEMM (beta = mu)."""
    from chainrule.backend import numpy_updates

    pair = twins(wide_mlp, dtype=np.float32)
    data = batches((1, 28, 28), 10, [8] * 3, np.float32)
    step_both(pair, *data[0])
    ran = []
    gemm = numpy_updates._gemm_into

    def counted(c, p, beta):
        done = gemm(c, p, beta)
        ran.append((c.shape, beta, done))
        return done

    monkeypatch.setattr(numpy_updates, "_gemm_into", counted)
    for x, y in data[1:]:
        pair[0][1].zero_grad()
        pair[0][2](x, y)
    assert ((100, 784), pytest.approx(0.9), True) in ran and len(ran) >= 2
