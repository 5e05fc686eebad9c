"""Trust: the engine's invariants and the rules' edge cases that were once silently wrong.

Each test here failed before its fix (issue "Trust first", items 1-8); the property tests
over every rule that takes axes (item 9) live in tests/test_axes_properties.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import GraphError, Tensor, rule

RNG = np.random.default_rng(7)


def torch_grad(fn, x: np.ndarray, cot: np.ndarray) -> np.ndarray:
    t = torch.tensor(x, requires_grad=True)
    fn(t).backward(torch.tensor(cot))
    return t.grad.numpy()


# --- 1. negative axes are normalised before a vjp inverts them


@pytest.mark.parametrize("axes", [(-1, 0), (1, -2), (-1, -2)])
def test_method_transpose_with_negative_axes_matches_pytorch(axes):
    x = RNG.standard_normal((3, 4))
    t = cr.tensor(x, requires_grad=True)
    y = t.transpose(axes)
    cot = RNG.standard_normal(y.shape)
    y.backward(cot)
    perm = tuple(a % 2 for a in axes)
    np.testing.assert_allclose(t.grad, torch_grad(lambda u: u.permute(perm), x, cot))


def test_transpose_three_axes_negative_matches_pytorch():
    x = RNG.standard_normal((2, 3, 4))
    t = cr.tensor(x, requires_grad=True)
    y = cr.transpose(t, axes=(0, -1, 1))
    cot = RNG.standard_normal(y.shape)
    y.backward(cot)
    np.testing.assert_allclose(t.grad, torch_grad(lambda u: u.permute(0, 2, 1), x, cot))


def test_transpose_rejects_a_repeated_or_out_of_range_axis():
    x = cr.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match="transpose"):
        cr.transpose(x, axes=(0, -2))
    with pytest.raises(ValueError, match="transpose"):
        cr.transpose(x, axes=(0, 2))


# --- 2. the engine checks every gradient's shape


def test_a_wrong_shaped_vjp_is_a_graph_error_naming_rule_input_and_shapes():
    @rule
    def planted_bad_rule(x):
        """d/dx: wrong on purpose (a test)"""
        return x * 2

    planted_bad_rule.defvjp(lambda g, out, x: np.ones(7))
    try:
        x = cr.tensor(np.ones(6), requires_grad=True)
        with pytest.raises(GraphError) as e:
            planted_bad_rule(x).sum().backward()
        msg = str(e.value)
        assert "planted_bad_rule" in msg and "input 0" in msg
        assert "(7,)" in msg and "(6,)" in msg
    finally:
        cr.RULES.pop("planted_bad_rule")


def test_a_vjp_whose_gradient_only_reshapes_to_fit_is_refused():
    # same number of elements, different shape: reshaping would "fit" and be silently wrong
    @rule
    def planted_reshaping_rule(x):
        """d/dx: wrong on purpose (a test)"""
        return x * 2

    planted_reshaping_rule.defvjp(lambda g, out, x: np.ones((3, 2)))
    try:
        x = cr.tensor(np.ones((2, 3)), requires_grad=True)
        with pytest.raises(GraphError, match=r"\(3, 2\).*\(2, 3\)"):
            planted_reshaping_rule(x).sum().backward()
    finally:
        cr.RULES.pop("planted_reshaping_rule")


def test_broadcast_gradients_are_still_summed_down():
    b = cr.tensor(np.ones((1, 3)), requires_grad=True)
    (cr.tensor(np.ones((4, 3))) * b).sum().backward()
    np.testing.assert_array_equal(b.grad, np.full((1, 3), 4.0))


# --- 3. power at a = 0


def _power_grads(a, p, create_graph=False):
    ta = cr.tensor(np.array(a, dtype=float), requires_grad=True)
    tp = cr.tensor(np.array(p, dtype=float), requires_grad=True)
    ga, gp = cr.autograd_grad(ta**tp, [ta, tp], create_graph=create_graph)
    return ta, tp, ga, gp


@pytest.mark.parametrize(
    "a, p", [(0.0, 0.0), (0.0, 2.0), (0.0, 1.0), (0.0, 0.5), (2.0, 0.0), (0.0, 3.0)]
)
def test_power_gradients_at_zero_match_pytorch(a, p):
    _, _, ga, gp = _power_grads(a, p)
    ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    wa, wp = torch.autograd.grad(ta**tp, [ta, tp])
    np.testing.assert_allclose(ga, wa.numpy())
    np.testing.assert_allclose(gp, wp.numpy())
    assert np.isfinite(gp)


def test_x_to_the_zero_and_zero_to_the_y_have_finite_second_derivatives():
    x = np.array([0.0, 1.0, -2.0])
    np.testing.assert_array_equal(cr.grad(lambda x: (x**0).sum())(x), 0.0)
    np.testing.assert_array_equal(cr.hessian(lambda x: (x**0).sum())(x), np.zeros((3, 3)))
    y = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(cr.grad(lambda y: (0.0**y).sum())(y), 0.0)
    np.testing.assert_array_equal(cr.hessian(lambda y: (0.0**y).sum())(y), np.zeros((3, 3)))
    # x**2 and x**3 at 0: second derivatives 2 and 0
    np.testing.assert_allclose(cr.hessian(lambda x: (x**2).sum())(np.array([0.0])), [[2.0]])
    np.testing.assert_allclose(cr.hessian(lambda x: (x**3).sum())(np.array([0.0])), [[0.0]])


@pytest.mark.parametrize(
    "a, p, limit",
    # d/da and d/dp of (p a^(p-1) + a^p log a): the limits at a = 0 (PyTorch gives NaN there)
    [(0.0, 2.0, [2.0, 0.0]), (0.0, 3.0, [0.0, 0.0]), (1.5, 2.0, None), (0.7, 0.5, None)],
)
def test_power_second_derivatives_are_the_limits_at_a_zero_base(a, p, limit):
    ta, tp, ga, gp = _power_grads(a, p, create_graph=True)
    ours = np.array(cr.autograd_grad(ga + gp, [ta, tp]))
    if limit is None:  # away from 0: PyTorch is the oracle
        ua = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        up = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        wa, wp = torch.autograd.grad(ua**up, [ua, up], create_graph=True)
        limit = [v.item() for v in torch.autograd.grad(wa + wp, [ua, up])]
    np.testing.assert_allclose(ours, limit, atol=1e-12)
    assert np.all(np.isfinite(ours))


# --- 4. reductions of 0-d tensors and over empty axes


@pytest.mark.parametrize("fn", ["sum", "mean"])
@pytest.mark.parametrize("axis", [0, -1, None, (), (0,)])
def test_reductions_of_a_0d_tensor(fn, axis):
    # PyTorch accepts dim 0 and -1 of a 0-d tensor: a reduction over nothing
    x = cr.tensor(np.array(3.0), requires_grad=True)
    y = getattr(cr, fn)(x, axis=axis)
    assert y.shape == () and float(y) == 3.0
    y.backward()
    assert isinstance(x.grad, np.ndarray) and x.grad.shape == ()
    np.testing.assert_array_equal(x.grad, 1.0)


def test_mean_over_an_empty_axis_has_an_empty_gradient():
    x = cr.tensor(np.zeros((0, 3)), requires_grad=True)
    with np.errstate(invalid="ignore"):
        y = cr.mean(x, axis=0)
    y.backward(np.ones(3))
    assert x.grad.shape == (0, 3)
    x = cr.tensor(np.zeros((3, 0)), requires_grad=True)
    cr.mean(x, axis=1).backward(np.ones(3))
    assert x.grad.shape == (3, 0)


# --- 5. numbers accepted everywhere


@pytest.mark.parametrize("value", [3.5, np.float64(2.0), np.float32(-1.5), 2])
@pytest.mark.parametrize(
    "fn",
    [
        cr.max,
        cr.sum,
        cr.mean,
        cr.exp,
        cr.sin,
        cr.cos,
        cr.tanh,
        cr.sigmoid,
        cr.relu,
        cr.negative,
        cr.absolute,
        cr.sqrt,
        cr.log,
    ],
)
def test_functions_accept_python_and_numpy_numbers(fn, value):
    v = abs(value) if fn in (cr.sqrt, cr.log) else value
    out = fn(v)
    ref = {
        cr.max: np.max,
        cr.sum: np.sum,
        cr.mean: np.mean,
        cr.exp: np.exp,
        cr.sin: np.sin,
        cr.cos: np.cos,
        cr.tanh: np.tanh,
        cr.relu: lambda x: np.maximum(x, 0),
        cr.sigmoid: lambda x: 1 / (1 + np.exp(-np.float64(x))),
        cr.negative: np.negative,
        cr.absolute: np.abs,
        cr.sqrt: np.sqrt,
        cr.log: np.log,
    }[fn](v)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-6)


def test_a_number_through_the_tensor_api_has_a_gradient():
    x = cr.tensor(3.5, requires_grad=True)
    cr.max(x).backward()
    assert x.grad.shape == () and float(x.grad) == 1.0


# --- 6. a rule without a vjp for an input


def test_missing_vjp_is_not_implemented_naming_rule_and_input():
    @rule
    def planted_half_rule(x, y):
        """d/dx only (a test)"""
        return x * y

    planted_half_rule.defvjp(lambda g, out, x, y: g * y)
    try:
        x = cr.tensor(np.ones(3), requires_grad=True)
        y = cr.tensor(np.ones(3), requires_grad=True)
        with pytest.raises(NotImplementedError, match=r"planted_half_rule.*input 1"):
            planted_half_rule(x, y).sum().backward()
    finally:
        cr.RULES.pop("planted_half_rule")


# --- 7. the gradient of a 0-d tensor is a 0-d ndarray


@pytest.mark.parametrize(
    "make", [lambda x: x * x, lambda x: cr.sum(x), lambda x: cr.max(x), lambda x: cr.exp(x) + x]
)
def test_grad_of_a_0d_tensor_is_a_writable_0d_array(make):
    x = cr.tensor(2.0, requires_grad=True)
    make(x).backward()
    assert type(x.grad) is np.ndarray and x.grad.shape == ()
    x.grad[...] = 0
    assert float(x.grad) == 0.0


def test_a_0d_axis_other_than_0_or_minus_1_is_an_error():
    with pytest.raises(ValueError, match="out of range for a 0-d input"):
        cr.sum(cr.tensor(1.0), axis=1)


def test_grad_function_of_a_scalar_returns_a_0d_array():
    g = cr.grad(lambda x: x * x)(np.array(3.0))
    assert type(g) is np.ndarray and g.shape == ()


# --- 8. concat and stack take a list, with the graph kept


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
@pytest.mark.parametrize("kind", ["concat", "stack"])
@pytest.mark.parametrize("container", [list, tuple])
def test_concat_and_stack_of_a_list_keep_the_graph(kind, axis, container):
    a = RNG.standard_normal((2, 3))
    b = RNG.standard_normal((2, 3))
    ta, tb = cr.tensor(a, requires_grad=True), cr.tensor(b, requires_grad=True)
    out = getattr(cr, kind)(container([ta, tb]), axis=axis)
    assert isinstance(out, Tensor)
    ref = (np.concatenate if kind == "concat" else np.stack)([a, b], axis=axis)
    np.testing.assert_array_equal(out.data, ref)
    cot = RNG.standard_normal(out.shape)
    out.backward(cot)
    fn = torch.cat if kind == "concat" else torch.stack
    ua, ub = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    fn([ua, ub], dim=axis).backward(torch.tensor(cot))
    np.testing.assert_allclose(ta.grad, ua.grad.numpy())
    np.testing.assert_allclose(tb.grad, ub.grad.numpy())


def test_concat_varargs_form_still_works():
    a = cr.tensor(np.ones(2), requires_grad=True)
    out = cr.concat(a, a * 2, axis=0)
    out.backward(np.arange(4.0))
    np.testing.assert_array_equal(a.grad, [0 + 2 * 2, 1 + 2 * 3])


def test_concat_of_a_list_and_more_arguments_is_an_error():
    a = cr.tensor(np.ones(2))
    with pytest.raises(TypeError, match="concat"):
        cr.concat([a, a], a)
