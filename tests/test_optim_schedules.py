"""Learning-rate schedules: PyTorch's values, applied to an optimiser, round trips, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from chainrule import optim
from chainrule.nn import Parameter


def _params(rng, shapes=((3, 4), (4,))):
    return [Parameter(rng.standard_normal(s)) for s in shapes]


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
