"""Broadcasting and reductions on shapes drawn by hypothesis.

The binary elementwise rules receive operands of any two broadcast-compatible shapes; the
engine un-broadcasts their gradients once (summing over the axes broadcasting stretched).
Each drawn case is checked against central differences (float64) and against PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle: installed by the test extras; missing it must fail, not skip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainrule as cr

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BINARY = {
    "add": (cr.add, torch.add),
    "subtract": (cr.subtract, torch.sub),
    "multiply": (cr.multiply, torch.mul),
    "divide": (cr.divide, torch.div),
    "power": (cr.power, torch.pow),
}

two_shapes = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3
)


def operands(name: str, shapes, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes[0])
    b = rng.standard_normal(shapes[1])
    if name == "divide":  # keep the divisor away from 0
        b = np.sign(b + 1e-3) * rng.uniform(0.5, 2.0, shapes[1])
    if name == "power":  # a positive base, so that a^p and log a exist for any p
        a = rng.uniform(0.5, 2.0, shapes[0])
    return a, b


def compare_with_torch(ours, theirs, args, axis_kw=None):
    ts = [cr.tensor(a, requires_grad=True) for a in args]
    tt = [torch.tensor(a, requires_grad=True) for a in args]
    y, yt = ours(*ts), theirs(*tt)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    r = np.random.default_rng(0).standard_normal(y.shape)
    gs = cr.autograd_grad(y, ts, grad_outputs=r)
    gts = torch.autograd.grad(yt, tt, grad_outputs=torch.tensor(r))
    for a, g, gt in zip(args, gs, gts, strict=True):
        assert g.shape == a.shape  # un-broadcast back to the operand's own shape
        np.testing.assert_allclose(g, gt.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(shapes=two_shapes, seed=st.integers(0, 2**31 - 1))
def test_binary_rules_broadcast(name, shapes, seed):
    ours, theirs = BINARY[name]
    a, b = operands(name, shapes.input_shapes, seed)
    out = ours(a, b)
    assert out.shape == shapes.result_shape
    rep = cr.check_grad(ours, a, b)
    assert rep.ok, str(rep)
    compare_with_torch(ours, theirs, (a, b))


@SETTINGS
@given(shapes=two_shapes, seed=st.integers(0, 2**31 - 1))
def test_broadcast_gradients_are_sums_over_stretched_axes(shapes, seed):
    """de/da for e = sum(a + b) counts how often each entry of a was copied."""
    sa, sb = shapes.input_shapes
    a = cr.tensor(np.zeros(sa), requires_grad=True)
    b = cr.tensor(np.zeros(sb), requires_grad=True)
    (a + b).sum().backward()
    size = int(np.prod(shapes.result_shape))
    np.testing.assert_array_equal(a.grad, np.full(sa, size / max(1, int(np.prod(sa)))))
    np.testing.assert_array_equal(b.grad, np.full(sb, size / max(1, int(np.prod(sb)))))


@st.composite
def array_and_axes(draw, min_dims=1):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=4))
    axes = draw(st.none() | hnp.valid_tuple_axes(len(shape), min_size=1))
    keepdims = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return shape, axes, keepdims, seed


REDUCTIONS = {
    "sum": (
        lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims),
        lambda x, axis, keepdims: (
            x.sum(dim=axis, keepdim=keepdims) if axis is not None else x.sum()
        ),
    ),
    "mean": (
        lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims),
        lambda x, axis, keepdims: (
            x.mean(dim=axis, keepdim=keepdims) if axis is not None else x.mean()
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@SETTINGS
@given(case=array_and_axes())
def test_reductions_over_drawn_axes(name, case):
    shape, axes, keepdims, seed = case
    ours, theirs = REDUCTIONS[name]
    x = np.random.default_rng(seed).standard_normal(shape)
    keep = keepdims and axes is not None  # PyTorch's full reduction has no keepdim
    rep = cr.check_grad(lambda t: ours(t, axes, keep), x)
    assert rep.ok, str(rep)
    compare_with_torch(lambda t: ours(t, axes, keep), lambda t: theirs(t, axes, keep), (x,))


@SETTINGS
@given(case=array_and_axes())
def test_max_over_a_drawn_axis(case):
    shape, axes, keepdims, seed = case
    axis = None if axes is None else axes[0]
    rng = np.random.default_rng(seed)
    x = (rng.permutation(int(np.prod(shape))) * 0.1).reshape(shape)  # distinct: no ties
    rep = cr.check_grad(lambda t: t.max(axis=axis, keepdims=keepdims), x)
    assert rep.ok, str(rep)
    if axis is None:
        compare_with_torch(lambda t: t.max(), lambda t: t.max(), (x,))
    else:
        compare_with_torch(
            lambda t: t.max(axis=axis, keepdims=keepdims),
            lambda t: torch.max(t, dim=axis, keepdim=keepdims).values,
            (x,),
        )


@SETTINGS
@given(shapes=two_shapes, seed=st.integers(0, 2**31 - 1))
def test_float32_broadcasting_stays_float32(shapes, seed):
    a, b = (v.astype(np.float32) for v in operands("multiply", shapes.input_shapes, seed))
    ta, tb = cr.tensor(a, requires_grad=True), cr.tensor(b, requires_grad=True)
    y = ta * tb + 1.5
    assert y.dtype == np.float32
    y.sum().backward()
    assert ta.grad.dtype == np.float32 and tb.grad.dtype == np.float32
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
