"""Optimisers and learning-rate schedules: in-place updates, PyTorch's numbers, state, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import optim
from chainrule.nn import Parameter


def _params(rng, shapes=((3, 4), (4,))):
    return [Parameter(rng.standard_normal(s)) for s in shapes]


def _run_both(make_cr, make_torch, steps=6, seed=0):
    """Feed the same gradient sequence to chainrule's and torch's optimiser; return both params."""
    rng = np.random.default_rng(seed)
    ours = _params(rng)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt, topt = make_cr(ours), make_torch(theirs)
    for _ in range(steps):
        for p, t in zip(ours, theirs, strict=True):
            g = rng.standard_normal(p.shape)
            p.grad = g
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
    return ours, theirs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01},
        {"lr": 0.1, "weight_decay": 0.1},
    ],
)
def test_sgd_matches_torch(kwargs):
    ours, theirs = _run_both(
        lambda ps: optim.SGD(ps, **kwargs), lambda ts: torch.optim.SGD(ts, **kwargs)
    )
    for p, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-12)


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
    """The update runs on blocks of optim.BLOCK numbers: any block size, the same bits."""
    results = []
    for block in (10**9, 7, 1):  # one block; blocks of 7 with a short last one; single numbers
        monkeypatch.setattr(optim, "BLOCK", block)
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


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 1e-2},
        {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6},
        {"lr": 1e-2, "weight_decay": 0.05},
    ],
)
def test_adam_matches_torch(kwargs):
    ours, theirs = _run_both(
        lambda ps: optim.Adam(ps, **kwargs), lambda ts: torch.optim.Adam(ts, **kwargs), steps=8
    )
    for p, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "make", [lambda ps: optim.SGD(ps, 0.1, momentum=0.9), lambda ps: optim.Adam(ps)]
)
def test_updates_happen_in_place_in_float32(make):
    rng = np.random.default_rng(1)
    p = Parameter(rng.standard_normal((5, 3)).astype(np.float32))
    buffer = p.data
    opt = make([p])
    for _ in range(3):
        p.grad = rng.standard_normal((5, 3)).astype(np.float32)
        opt.step()
    assert p.data is buffer and p.data.dtype == np.float32
    assert all(a.dtype == np.float32 for a in opt.state_dict().values() if a.dtype.kind == "f")


def test_sgd_is_the_lectures_update_h_minus_alpha_gradient():
    p = Parameter(np.array([1.0, -2.0]))
    p.grad = np.array([0.5, 4.0])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.05, -2.0 - 0.4])


def test_sgd_with_momentum_minimises_a_quadratic():
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    h = Parameter(np.zeros(2))
    opt = optim.SGD([h], lr=0.1, momentum=0.9)
    for _ in range(300):
        e = 0.5 * (h @ cr.tensor(A) @ h) - (cr.tensor(b) * h).sum()
        opt.zero_grad()
        e.backward()
        opt.step()
    np.testing.assert_allclose(h.data, np.linalg.solve(A, b), atol=1e-8)


def test_parameters_without_gradient_are_left_alone():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(3))
    a.grad = np.ones(2)
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    opt.step()
    np.testing.assert_array_equal(b.data, np.ones(3))
    assert opt.velocity[1] is None and "velocity.1" not in opt.state_dict()


@pytest.mark.parametrize(
    "cls, kwargs", [(optim.SGD, {"lr": 0.1, "momentum": 0.9}), (optim.Adam, {"lr": 0.01})]
)
def test_state_dict_round_trip_continues_exactly(cls, kwargs):
    rng = np.random.default_rng(2)
    grads = [[rng.standard_normal(s) for s in ((3, 4), (4,))] for _ in range(6)]
    start = _params(np.random.default_rng(3))

    def run(params, opt, gs):
        for g in gs:
            for p, gi in zip(params, g, strict=True):
                p.grad = gi
            opt.step()

    a = [Parameter(p.data.copy()) for p in start]
    opt_a = cls(a, **kwargs)
    run(a, opt_a, grads)

    b = [Parameter(p.data.copy()) for p in start]
    opt_b = cls(b, **kwargs)
    run(b, opt_b, grads[:3])
    state = {k: v.copy() for k, v in opt_b.state_dict().items()}
    c = [Parameter(p.data.copy()) for p in b]
    opt_c = cls(c, **kwargs)
    opt_c.load_state_dict(state)
    assert opt_c.steps == 3
    run(c, opt_c, grads[3:])
    for pa, pc in zip(a, c, strict=True):
        np.testing.assert_array_equal(pa.data, pc.data)


def test_load_state_dict_rejects_what_does_not_fit():
    opt = optim.SGD(_params(np.random.default_rng(0)), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="steps"):
        opt.load_state_dict({})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({"steps": np.array([1]), "velocity.0": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="does not fit"):
        opt.load_state_dict({"steps": np.array([1]), "m.0": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="does not fit"):
        opt.load_state_dict({"steps": np.array([1]), "velocity.7": np.zeros((3, 4))})


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda ps: optim.SGD(ps, lr=0), "learning rate"),
        (lambda ps: optim.SGD(ps, lr=float("nan")), "learning rate"),
        (lambda ps: optim.SGD(ps, lr=0.1, momentum=1.0), "momentum"),
        (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov"),
        (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), "weight_decay"),
        (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), "beta2"),
        (lambda ps: optim.Adam(ps, eps=0), "eps"),
        (lambda ps: optim.SGD([], lr=0.1), "empty"),
        (lambda ps: optim.SGD(ps + ps, lr=0.1), "more than once"),
    ],
)
def test_bad_settings_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make(_params(np.random.default_rng(0)))


def test_optimizer_needs_tensors_that_require_grad():
    with pytest.raises(TypeError, match="requires grad"):
        optim.SGD([np.zeros(3)], lr=0.1)


# ----------------------------------------------------------------------------- schedules


def _torch_lrs(make_sched, epochs, lr=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_sched(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_step_schedule_matches_torch_steplr():
    ours = optim.StepLR(0.1, step_size=3, gamma=0.5)
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 10)
    np.testing.assert_allclose([ours(t) for t in range(10)], theirs, rtol=1e-12)


def test_cosine_schedule_matches_torch_cosine_annealing():
    ours = optim.CosineLR(0.1, epochs=8, min_lr=0.001)
    theirs = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=0.001), 8
    )
    np.testing.assert_allclose([ours(t) for t in range(8)], theirs, rtol=1e-12)
    assert ours(0) == 0.1 and math.isclose(ours(8), 0.001)


def test_schedule_sets_the_optimizer_learning_rate_and_round_trips():
    opt = optim.SGD(_params(np.random.default_rng(0)), lr=1.0)
    sched = optim.StepLR(0.2, step_size=2)
    assert sched.apply(opt, 2) == pytest.approx(0.02) and opt.lr == pytest.approx(0.02)
    for s in (optim.ConstantLR(0.3), sched, optim.CosineLR(0.1, 5, 0.01)):
        again = optim.make_schedule(s.to_dict())
        assert type(again) is type(s) and [again(t) for t in range(6)] == [s(t) for t in range(6)]
    assert "step_size=2" in repr(sched)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optim.StepLR(0.1, step_size=0), "step_size"),
        (lambda: optim.StepLR(0.1, step_size=2, gamma=0), "gamma"),
        (lambda: optim.CosineLR(0.1, epochs=0), "epochs"),
        (lambda: optim.CosineLR(0.1, epochs=3, min_lr=1.0), "min_lr"),
        (lambda: optim.ConstantLR(-1), "learning rate"),
        (lambda: optim.make_schedule({"schedule": "warp", "lr": 0.1}), "unknown"),
        (lambda: optim.make_schedule({"schedule": "step"}), "needs 'lr'"),
        (lambda: optim.make_schedule({"schedule": "step", "lr": 0.1, "bogus": 1}), "bogus"),
        (lambda: optim.ConstantLR(0.1)(-1), "epoch"),
    ],
)
def test_bad_schedules_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
