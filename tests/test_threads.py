"""Mini-batches split over threads (chainrule.train.threads) and the per-thread graph mode."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from _emulate import emulated_shards

from chainrule import models, no_grad, softmax_cross_entropy, tensor
from chainrule.cli import main
from chainrule.train import TrainConfig, run_training
from chainrule.train import threads as threads_module
from chainrule.train.threads import BatchThreads, default_batch_threads

pytest.importorskip("threadpoolctl")


def _cnn64(seed: int = 0):
    """LeNet-5 in float64 (the gradients then agree to rounding of float64)."""
    model = models.cnn(rng=seed)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    assert all(p.data.dtype == np.float64 for p in model.parameters())
    return model


@pytest.mark.parametrize("threads, n", [(2, 7), (3, 8), (2, 2), (4, 3)])
def test_the_split_batch_has_the_whole_batch_gradient(threads, n, monkeypatch):
    monkeypatch.setattr(threads_module, "MIN_SHARD", 1)  # tiny shards: the split on small data
    rng = np.random.default_rng(threads * 10 + n)
    x, y = rng.random((n, 1, 28, 28)), rng.integers(0, 10, n)
    plain, split = _cnn64(), _cnn64()
    loss = softmax_cross_entropy(plain(x), y)
    loss.backward()
    with BatchThreads(split, split.parameters(), threads) as step:
        loss_sum, correct = step(x, y)
    assert loss_sum == pytest.approx(float(loss.data) * n, rel=1e-12)
    assert correct == int(np.count_nonzero(plain(x).data.argmax(axis=1) == y))
    for a, b in zip(plain.parameters(), split.parameters(), strict=True):
        assert b.grad.shape == a.grad.shape and b.grad.dtype == a.grad.dtype == np.float64
        np.testing.assert_allclose(b.grad, a.grad, rtol=1e-10, atol=1e-13)


def test_the_split_gradient_adds_to_an_existing_grad_like_backward(monkeypatch):
    monkeypatch.setattr(threads_module, "MIN_SHARD", 1)
    rng = np.random.default_rng(1)
    x, y = rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)
    plain, split = _cnn64(), _cnn64()
    for _ in range(2):
        softmax_cross_entropy(plain(x), y).backward()
    with BatchThreads(split, split.parameters(), 2) as step:
        step(x, y)
        step(x, y)
    for a, b in zip(plain.parameters(), split.parameters(), strict=True):
        np.testing.assert_allclose(b.grad, a.grad, rtol=1e-10, atol=1e-13)


def test_a_non_finite_error_leaves_the_gradients_alone(monkeypatch):
    monkeypatch.setattr(threads_module, "MIN_SHARD", 1)
    model = _cnn64()
    x = np.full((4, 1, 28, 28), np.nan)
    with BatchThreads(model, model.parameters(), 2) as step:
        loss_sum, _ = step(x, np.zeros(4, np.int64))
    assert not np.isfinite(loss_sum)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("threads", [1, 2])
def test_given_the_optimizer_the_step_also_updates(threads, monkeypatch):
    """One shard: SGD.backward_step; two: the shards' gradients, then step(). Either way the
    parameters after two steps are those of backward() then step() on the whole batch."""
    from chainrule import optim

    monkeypatch.setattr(threads_module, "MIN_SHARD", 1)
    rng = np.random.default_rng(2)
    batches = [(rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)) for _ in range(2)]
    plain, split = _cnn64(), _cnn64()
    plain_opt = optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    split_opt = optim.SGD(split.parameters(), lr=0.1, momentum=0.9)
    with BatchThreads(split, split.parameters(), threads, split_opt) as step:
        for x, y in batches:
            plain_opt.zero_grad()
            softmax_cross_entropy(plain(x), y).backward()
            plain_opt.step()
            split_opt.zero_grad()
            step(x, y)
    for a, b in zip(plain.parameters(), split.parameters(), strict=True):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-10, atol=1e-13)
    with BatchThreads(split, split.parameters(), threads, split_opt) as step:  # not finite
        before = [p.data.copy() for p in split.parameters()]
        step(np.full((4, 1, 28, 28), np.nan), np.zeros(4, np.int64))
        assert all((p.data == b).all() for p, b in zip(split.parameters(), before, strict=True))
    with pytest.raises(ValueError, match="exactly the given params"):
        BatchThreads(split, split.parameters()[1:], threads, split_opt)


def test_threads_must_be_a_positive_whole_number():
    model = models.mlp(hidden=4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a whole number >= 1"):
            BatchThreads(model, model.parameters(), bad)


def test_the_graph_mode_is_per_thread():
    inside, release = threading.Event(), threading.Event()

    def hold_no_grad():
        with no_grad():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold_no_grad)
    t.start()
    try:
        assert inside.wait(10)
        y = tensor([1.0, 2.0], requires_grad=True) * 3.0  # recorded here meanwhile
        assert y.requires_grad
    finally:
        release.set()
        t.join()


def _emulated_two_threads(cfg: TrainConfig) -> dict[str, np.ndarray]:
    """The arithmetic that the split claims: two slices per batch, one for a batch too short
    for two slices of MIN_SHARD samples."""
    return emulated_shards(cfg, lambda n: 2 if n >= 2 * threads_module.MIN_SHARD else 1)


def test_training_on_two_threads_follows_the_one_thread_trajectory(tmp_path):
    cfg = TrainConfig(dataset="digits", epochs=2, hidden=16)
    kw = {"progress": False, "plots": False, "log": None}
    one = run_training(cfg, tmp_path / "one", **kw)
    two = run_training(cfg, tmp_path / "two", batch_threads=2, **kw)
    emulated = _emulated_two_threads(cfg)
    a, b = one.fit.history, two.fit.history
    assert [h["test_accuracy"] for h in a] == [h["test_accuracy"] for h in b]
    state_one, state_two = _state(tmp_path / "one"), _state(tmp_path / "two")
    for name, w in state_one.items():
        assert np.max(np.abs(state_two[name] - w)) / np.max(np.abs(w)) < 1e-5, name
        np.testing.assert_allclose(state_two[name], emulated[name], rtol=1e-6, atol=1e-7)
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["batch_threads"] == 2


def _state(folder) -> dict[str, np.ndarray]:
    from chainrule.train import load_checkpoint

    return load_checkpoint(folder).model_state


def test_parallel_flag_chooses_the_split(tmp_path, capsys):
    args = ["train", "--dataset", "digits", "--epochs", "1", "--hidden", "8", "--threads", "2"]
    args += ["--no-progress", "--no-plots"]
    assert main([*args, "--out", str(tmp_path / "batch"), "--parallel", "batch"]) == 0
    assert main([*args, "--out", str(tmp_path / "blas"), "--parallel", "blas"]) == 0
    assert main([*args, "--out", str(tmp_path / "auto")]) == 0  # the MLP: BLAS's threads
    got = {
        k: json.loads((tmp_path / k / "metrics.json").read_text())["batch_threads"]
        for k in ("batch", "blas", "auto")
    }
    assert got == {"batch": 2, "blas": 1, "auto": 1}
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "bad"), "--parallel", "cores"])
    assert "invalid choice: 'cores'" in capsys.readouterr().err


@pytest.mark.parametrize("compiled", [True, False])
def test_a_small_batch_is_split_into_fewer_shards(monkeypatch, compiled):
    from chainrule.train.compiled import CompiledGrads

    seen = []
    real, real_compiled = threads_module.forward_backward, CompiledGrads.__call__

    def spy(model, params, x, y, *backward):
        seen.append(len(y))
        return real(model, params, x, y, *backward)

    def spy_compiled(self, x, y):
        seen.append(len(y))
        return real_compiled(self, x, y)

    monkeypatch.setattr(threads_module, "forward_backward", spy)
    monkeypatch.setattr(CompiledGrads, "__call__", spy_compiled)
    model = _cnn64()
    rng = np.random.default_rng(4)
    with BatchThreads(model, model.parameters(), 4, compiled=compiled) as step:
        assert (step._shards is not None) == compiled
        for n in (20, 40, 100):
            seen.clear()
            step(rng.random((n, 1, 28, 28)), rng.integers(0, 10, n))
            assert sorted(seen) == {20: [20], 40: [20, 20], 100: [25, 25, 25, 25]}[n]


def test_auto_splits_the_cnn_over_at_most_four_threads():
    assert [default_batch_threads("cnn", t) for t in (None, 1, 2, 4, 64)] == [1, 1, 2, 4, 4]
    assert [default_batch_threads("mlp", t) for t in (None, 2, 64)] == [1, 1, 1]


def test_one_blas_thread_inside_and_the_counts_restored_after_even_on_error():
    from threadpoolctl import threadpool_info, threadpool_limits

    from chainrule.train.threads import _single_threaded_blas

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert before and all(n == 2 for n in before)  # NumPy's OpenBLAS is loaded
        one = _single_threaded_blas()
        with one():
            assert all(n == 1 for n in blas_threads())
        assert blas_threads() == before
        with pytest.raises(RuntimeError, match="inside"), one():
            raise RuntimeError("an error inside")
        assert blas_threads() == before
