"""Optimisers: in-place updates, PyTorch's numbers, state, errors, the registry by name."""

from __future__ import annotations

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


def test_a_gradient_of_the_wrong_shape_is_an_error_not_a_silent_reshape():
    p = Parameter(np.zeros((3, 4)))
    p.grad = np.ones((4, 3))
    with pytest.raises(ValueError, match="shape"):
        optim.SGD([p], lr=0.1).step()
    np.testing.assert_array_equal(p.data, 0)


# ------------------------------------------------------------------------------ registry


def test_the_registry_names_each_optimizer_by_its_name():
    assert list(optim.OPTIMIZERS) == ["sgd", "adam"]
    for name, cls in optim.OPTIMIZERS.items():
        assert cls.name == name and issubclass(cls, optim.Optimizer)


def test_make_optimizer_passes_each_optimizer_the_settings_it_has():
    ps = _params(np.random.default_rng(0))
    sgd = optim.make_optimizer("sgd", ps, 0.1, momentum=0.5, weight_decay=0.01, nesterov=True)
    assert type(sgd) is optim.SGD
    assert sgd.hyperparameters() == {
        "lr": 0.1,
        "momentum": 0.5,
        "weight_decay": 0.01,
        "nesterov": True,
    }
    adam = optim.make_optimizer("adam", ps, 0.01, momentum=0.5, weight_decay=0.01, eps=1e-6)
    assert type(adam) is optim.Adam
    assert adam.hyperparameters() == {
        "lr": 0.01,
        "betas": [0.9, 0.999],
        "eps": 1e-6,
        "weight_decay": 0.01,
    }


@pytest.mark.parametrize(
    "name, settings, match",
    [
        ("rmsprop", {}, "unknown optimizer 'rmsprop'; choose from sgd, adam"),
        ("sgd", {"momentun": 0.9}, "no optimizer has the setting.* momentun"),
    ],
)
def test_make_optimizer_rejects_unknown_names_and_settings(name, settings, match):
    with pytest.raises(ValueError, match=match):
        optim.make_optimizer(name, _params(np.random.default_rng(0)), 0.1, **settings)


class PlainGD(optim.Optimizer):
    """h <- h - lr de/dh (a third optimiser, registered by the tests below)"""

    name = "plain"

    def step(self) -> None:
        for h in self.params:
            if h.grad is not None:
                h.data -= self.lr * h.grad
        self.steps += 1


def test_a_registered_optimizer_is_available_to_train_config(monkeypatch):
    from chainrule.train import TrainConfig

    monkeypatch.setitem(optim.OPTIMIZERS, "plain", PlainGD)
    cfg = TrainConfig(optimizer="plain", lr=0.5).resolved()
    opt = cfg.make_optimizer(_params(np.random.default_rng(0)))
    assert type(opt) is PlainGD and opt.lr == 0.5
    with pytest.raises(ValueError, match="choose from sgd, adam, plain"):
        TrainConfig(optimizer="rmsprop").resolved()


def test_a_registered_optimizer_is_available_to_compare_trained(monkeypatch):
    from chainrule.approx import compare_trained

    monkeypatch.setitem(optim.OPTIMIZERS, "plain", PlainGD)
    with pytest.raises(ValueError, match="no default lr for 'plain': pass lr"):
        compare_trained(np.sin, (0.0, 1.0), 0.5, optimizer="plain", steps=2)
    result = compare_trained(np.sin, (0.0, 1.0), 0.5, optimizer="plain", lr=0.01, steps=3)
    assert result.optimizer == "plain" and result.losses.shape == (3,)
