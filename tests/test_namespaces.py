"""The core on other array namespaces: array_api_strict and PyTorch CPU tensors (through
array-api-compat), each compared with the NumPy backend's results.

What a GPU user's CuPy or torch arrays will exercise: the engine, the rules, functional, nn and
optim reach arrays only through ``chainrule.backend``; the kernels the standard cannot express
come from ``chainrule.backend.portable``.
"""

from __future__ import annotations

import array_api_compat.torch as torch_xp
import array_api_strict
import numpy as np
import pytest

import chainrule as cr
from chainrule import backend, models, optim

NAMESPACES = {"array_api_strict": array_api_strict, "torch": torch_xp}


@pytest.fixture(params=sorted(NAMESPACES))
def xp(request):
    with cr.use_backend(NAMESPACES[request.param]) as ns:
        yield ns


def to_np(a):
    return backend.to_numpy(a.data if isinstance(a, cr.Tensor) else a)


def test_set_backend_is_restored_and_checks_its_argument():
    with cr.use_backend(array_api_strict):
        assert cr.get_backend() is array_api_strict
        assert type(cr.tensor([1.0]).data).__module__.startswith("array_api_strict")
    assert cr.get_backend() is np
    with pytest.raises(TypeError, match="not an array API namespace"):
        cr.set_backend(object())


def f(x):
    return (cr.sin(x) * x).sum() + (x**3).sum() / 3


def test_grad_jacobian_hessian_match_numpy(xp):
    x0 = np.array([0.3, -1.2, 2.0])
    with cr.use_backend(np):
        g_np, j_np, h_np = (
            cr.grad(f)(x0),
            cr.jacobian(lambda x: cr.tanh(x) * x[0])(x0),
            cr.hessian(f)(x0),
        )
    x = xp.asarray(x0)
    np.testing.assert_allclose(to_np(cr.grad(f)(x)), g_np, rtol=1e-12)
    np.testing.assert_allclose(to_np(cr.jacobian(lambda x: cr.tanh(x) * x[0])(x)), j_np, rtol=1e-12)
    np.testing.assert_allclose(to_np(cr.hessian(f)(x)), h_np, rtol=1e-12)


def _step(model, x, y, fused=False):
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss = cr.softmax_cross_entropy(model(cr.tensor(x)), y)
        if fused:  # the momentum folded into back propagation (the portable kernels')
            opt.backward_step(loss)
        else:
            loss.backward()
            opt.step()
        losses.append(float(loss))
    return losses, [to_np(p) for p in model.parameters()]


@pytest.mark.parametrize("fused", [False, True], ids=["backward-step", "backward_step"])
@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_mlp_and_lenet_train_steps_match_numpy(xp, which, fused):
    """The lecture's MLP and LeNet-5, two SGD steps with momentum, in float64."""
    rng = np.random.default_rng(0)
    shape = (1, 28, 28) if which == "cnn" else (1, 6, 6)
    x = rng.standard_normal((4, *shape))
    y = np.array([0, 3, 9, 3])

    def build(ns):
        with cr.use_backend(np):
            model = models.cnn(shape, rng=1) if which == "cnn" else models.mlp(shape, 16, rng=1)
        for p in model.parameters():
            p.data = ns.asarray(np.asarray(p.data, dtype=np.float64))
        return model

    with cr.use_backend(np):
        want_losses, want_params = _step(build(np), x, y)
    got_losses, got_params = _step(build(xp), xp.asarray(x), xp.asarray(y), fused)
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-10)
    for got, want in zip(got_params, want_params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_fancy_index_backward_adds_repeated_indices(xp):
    x0 = np.arange(12.0).reshape(4, 3)
    idx = np.array([0, 2, 0, 0])
    cot = np.random.default_rng(3).standard_normal((4, 3))
    with cr.use_backend(np):
        t = cr.tensor(x0, requires_grad=True)
        t[idx].backward(cot)
        want = t.grad
    t = cr.tensor(xp.asarray(x0), requires_grad=True)
    t[(xp.asarray(idx), ...)].backward(xp.asarray(cot))
    np.testing.assert_allclose(to_np(t.grad), want)
    assert want[0].tolist() == list(cot[0] + cot[2] + cot[3])  # three rows added, not one


def test_every_rule_matches_numpy_on_its_samples(xp):
    """Values and gradients of each table entry, through a random cotangent."""
    from chainrule.rules import SAMPLES, TABLE

    for name, entry in TABLE.items():
        for args, params in SAMPLES[name](np.random.default_rng(0)):
            results = []
            for ns in (np, xp):
                with cr.use_backend(ns):
                    ts = [
                        cr.tensor(ns.asarray(a), requires_grad=a.dtype.kind == "f")
                        if isinstance(a, np.ndarray)
                        else a
                        for a in args
                    ]
                    kw = {
                        k: (
                            tuple(ns.asarray(i) if isinstance(i, np.ndarray) else i for i in v)
                            if isinstance(v, tuple)
                            else v
                        )
                        for k, v in params.items()
                    }
                    if name == "cast":
                        kw["dtype"] = ns.float64
                    out = entry(*ts, **kw)
                    outs = out if isinstance(out, list) else [out]
                    rng = np.random.default_rng(1)
                    e = None
                    for o in outs:
                        c = cr.tensor(ns.asarray(rng.standard_normal(o.shape)))
                        term = (o * c).sum()
                        e = term if e is None else e + term
                    e.backward()
                    results.append(
                        [to_np(o) for o in outs]
                        + [
                            to_np(t.grad)
                            for t in ts
                            if isinstance(t, cr.Tensor) and t.requires_grad
                        ]
                    )
            for a, b in zip(*results, strict=True):
                np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=name)
