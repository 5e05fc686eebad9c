"""Property tests over every rule that takes axes, against PyTorch in float64.

Random shapes, random (also negative) axes, keepdims; every comparison goes through a random
cotangent (a sum of the outputs cannot see a permuted or misplaced gradient).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule as cr

SETTINGS = settings(max_examples=60, deadline=None)

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def axis_of(ndim: int):
    return st.integers(-ndim, ndim - 1)


def compare(ours, theirs, inputs, seed, tie_free=False):
    """Values and de/d(inputs) for one random cotangent, ours against PyTorch's."""
    rng = np.random.default_rng(seed)
    xs = [cr.tensor(x, requires_grad=True) for x in inputs]
    ts = [torch.tensor(x, requires_grad=True) for x in inputs]
    y, w = ours(*xs), theirs(*ts)
    ys = y if isinstance(y, (list, tuple)) else [y]
    ws = w if isinstance(w, (list, tuple)) else [w]
    assert len(ys) == len(ws)
    cots = [rng.standard_normal(v.shape) for v in ys]
    for a, b in zip(ys, ws, strict=True):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-12, atol=1e-12)
    e = sum(cr.sum(a * c) for a, c in zip(ys, cots, strict=True))
    e.backward()
    torch.autograd.backward(list(ws), [torch.tensor(c) for c in cots])
    for x, t in zip(xs, ts, strict=True):
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31), data_=st.data())
def test_transpose(shape, seed, data_):
    n = len(shape)
    perm = data_.draw(st.permutations(range(n)))
    signed = tuple(p - n if data_.draw(st.booleans()) else p for p in perm)
    compare(
        lambda x: cr.transpose(x, axes=signed),
        lambda x: x.permute(*perm),
        [data(shape, seed)],
        seed,
    )
    compare(lambda x: x.transpose(signed), lambda x: x.permute(*perm), [data(shape, seed)], seed)


def reduction_axes(ndim):
    one = axis_of(ndim)
    many = st.lists(axis_of(ndim), min_size=1, max_size=ndim, unique_by=lambda a: a % ndim)
    return st.one_of(st.none(), one, many.map(tuple))


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31), keepdims=st.booleans(), data_=st.data())
def test_sum_and_mean(shape, seed, keepdims, data_):
    axis = data_.draw(reduction_axes(len(shape)))
    dim = tuple(range(len(shape))) if axis is None else axis
    for ours, theirs in [(cr.sum, torch.sum), (cr.mean, torch.mean)]:
        compare(
            lambda x, ours=ours: ours(x, axis=axis, keepdims=keepdims),
            lambda x, theirs=theirs: theirs(x, dim=dim, keepdim=keepdims),
            [data(shape, seed)],
            seed,
        )
        compare(
            lambda x, ours=ours: getattr(x, ours.name)(axis=axis, keepdims=keepdims),
            lambda x, theirs=theirs: theirs(x, dim=dim, keepdim=keepdims),
            [data(shape, seed)],
            seed,
        )


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31), keepdims=st.booleans(), data_=st.data())
def test_max(shape, seed, keepdims, data_):
    axis = data_.draw(st.one_of(st.none(), axis_of(len(shape))))
    x = data(shape, seed)  # continuous values: no ties, one argmax

    def theirs(t):
        if axis is None:
            m = t.max()
            return m.reshape((1,) * t.ndim) if keepdims else m
        return t.max(dim=axis, keepdim=keepdims).values

    compare(lambda t: cr.max(t, axis=axis, keepdims=keepdims), theirs, [x], seed)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31), k=st.integers(1, 3), data_=st.data())
def test_concat_stack_split(shape, seed, k, data_):
    n = len(shape)
    axis = data_.draw(axis_of(n))
    sizes = data_.draw(st.lists(st.integers(1, 3), min_size=k, max_size=k))
    pieces = []
    for i, s in enumerate(sizes):
        sh = list(shape)
        sh[axis] = s
        pieces.append(data(tuple(sh), seed + i))
    compare(
        lambda *xs: cr.concat(list(xs), axis=axis),
        lambda *ts: torch.cat(ts, dim=axis),
        pieces,
        seed,
    )
    compare(
        lambda *xs: cr.concat(*xs, axis=axis), lambda *ts: torch.cat(ts, dim=axis), pieces, seed
    )
    same = [data(shape, seed + i) for i in range(k)]
    sax = data_.draw(axis_of(n + 1))
    compare(lambda *xs: cr.stack(xs, axis=sax), lambda *ts: torch.stack(ts, dim=sax), same, seed)
    whole = data(tuple(sum(sizes) if i == axis % n else d for i, d in enumerate(shape)), seed)
    compare(
        lambda x: cr.split(x, sizes, axis=axis),
        lambda t: torch.split(t, sizes, dim=axis),
        [whole],
        seed,
    )


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31), data_=st.data())
def test_softmax_and_log_softmax(shape, seed, data_):
    axis = data_.draw(axis_of(len(shape)))
    x = data(shape, seed)
    compare(lambda t: cr.softmax(t, axis=axis), lambda t: torch.softmax(t, dim=axis), [x], seed)
    compare(
        lambda t: cr.log_softmax(t, axis=axis), lambda t: torch.log_softmax(t, dim=axis), [x], seed
    )


def test_the_property_tests_cover_every_rule_that_takes_an_axis():
    import inspect

    takes_axes = {
        name
        for name, fn in {**cr.RULES, **cr.COMPOSITES}.items()
        if {"axis", "axes"} & set(inspect.signature(getattr(fn, "forward", fn)).parameters)
    }
    covered = {
        "transpose",
        "sum",
        "mean",
        "max",
        "concat",
        "stack",
        "split",
        "softmax",
        "log_softmax",
    }
    assert takes_axes <= covered, f"rules with axes but no property test: {takes_axes - covered}"
