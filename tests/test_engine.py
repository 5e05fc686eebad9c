"""The engine: the backward walk, the split rule, un-broadcasting, modes, dtypes, errors."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import GraphError, ShapeError


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.backward()
    assert x.grad == pytest.approx(1.0000001**100_000, rel=1e-9)


def test_fan_out_sums_gradients_the_split_rule():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x * x + cr.sin(x) + x  # x used four times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + np.cos(x.data) + 1)


def test_broadcasting_is_undone_once_in_the_engine():
    a = cr.tensor(np.ones((3, 1)), requires_grad=True)
    b = cr.tensor(np.arange(4.0), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(a.grad, np.full((3, 1), 6.0))
    np.testing.assert_allclose(b.grad, np.full(4, 3.0))


def test_quadratic_form_gradient_is_a_plus_a_transpose_x():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    x0 = rng.standard_normal(4)
    x = cr.tensor(x0, requires_grad=True)
    (x @ cr.tensor(A) @ x).backward()
    np.testing.assert_allclose(x.grad, (A + A.T) @ x0)
    # x^T A x with .T: the lecture's form
    x2 = cr.tensor(x0.reshape(4, 1), requires_grad=True)
    (x2.T @ A @ x2).sum().backward()
    np.testing.assert_allclose(x2.grad.ravel(), (A + A.T) @ x0)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = cr.tensor([3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [12.0])
    x.zero_grad()
    assert x.grad is None


def test_backward_twice_on_a_freed_graph_is_a_clear_error():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (cr.exp(x) * 2).sum()
    y.backward()
    with pytest.raises(GraphError, match="already freed.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (cr.exp(x) * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.exp(x.data))


def test_non_scalar_backward_needs_grad_and_names_the_shape():
    x = cr.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(GraphError, match=r"\(2, 3\)"):
        (x * 2).backward()
    (x * 2).backward(np.ones((2, 3)))
    np.testing.assert_allclose(x.grad, 2 * np.ones((2, 3)))
    with pytest.raises(ShapeError, match="grad has shape"):
        (x * 2).backward(np.ones(3))


def test_no_grad_records_nothing():
    x = cr.tensor([1.0], requires_grad=True)
    with cr.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(GraphError, match="does not require grad"):
        y.backward()

    @cr.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert cr.is_grad_enabled()


def test_double_backward_gives_second_derivatives():
    f = lambda x: x**3 * cr.sin(x)  # noqa: E731
    d2 = cr.derivative(cr.derivative(f))
    x = 0.7
    exact = 6 * x * np.sin(x) + 6 * x**2 * np.cos(x) - x**3 * np.sin(x)
    assert d2(x) == pytest.approx(exact, rel=1e-12)
    d3 = cr.derivative(d2)
    assert np.isfinite(d3(x))


def test_first_order_backward_builds_no_second_graph():
    x = cr.tensor(np.ones(3), requires_grad=True)
    y = cr.tanh(x).sum()
    y.backward()
    assert isinstance(x.grad, np.ndarray)


def test_float32_is_preserved_and_python_scalars_do_not_upcast():
    x = cr.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (2.5 * x + 1) / 3.0 - x**2
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        cr.tensor([1, 2, 3], requires_grad=True)


def test_shape_errors_name_the_op_and_both_shapes():
    a = cr.tensor(np.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"matmul.*\(2, 3\).*\(2, 3\)"):
        a @ a
    with pytest.raises(ShapeError, match=r"add.*\(2, 3\).*\(4,\)"):
        a + np.ones(4)
    with pytest.raises(ShapeError, match=r"reshape.*\(2, 3\).*\(4,\)"):
        a.reshape(4)
    with pytest.raises(ShapeError, match="conv2d"):
        cr.conv2d(np.ones((1, 2, 5, 5)), np.ones((3, 1, 3, 3)))
    with pytest.raises(ShapeError, match=r"affine.*\(2, 3\).*\(4, 5\)"):
        cr.affine(a, np.ones((4, 5)))
    with pytest.raises(ShapeError, match=r"affine: h must have shape \(2,\).*\(3,\)"):
        cr.affine(a, np.ones((3, 5)), np.ones(3))


def test_arrays_in_arrays_out_tensors_in_tensors_out():
    assert isinstance(cr.exp(np.ones(2)), np.ndarray)
    assert isinstance(cr.exp(cr.tensor(np.ones(2))), cr.Tensor)
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([1.0, 1.0]) * x  # ndarray on the left defers to the Tensor
    assert isinstance(y, cr.Tensor) and y.requires_grad


def test_gradient_arrays_are_not_shared_between_leaves():
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 10
    np.testing.assert_allclose(b.grad, [1.0, 1.0])


def test_retain_grad_and_detach():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    d = h.detach()
    assert not d.requires_grad and d.data is h.data


def test_item_and_repr():
    assert cr.tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match="one element"):
        cr.tensor([1.0, 2.0]).item()
    assert "requires_grad=True" in repr(cr.tensor([1.0], requires_grad=True))


def test_max_ties_send_the_gradient_to_the_first_maximum():
    x = cr.tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 0, 0])
    p = cr.tensor(np.array([[[[1.0, 1.0], [1.0, 1.0]]]]), requires_grad=True)
    cr.max_pool2d(p, 2).sum().backward()
    np.testing.assert_array_equal(p.grad[0, 0], [[1, 0], [0, 0]])


def test_relu_subgradient_at_zero_is_selectable():
    for gaz in (0.0, 0.5, 1.0):
        x = cr.tensor([-1.0, 0.0, 2.0], requires_grad=True)
        cr.relu(x, grad_at_zero=gaz).sum().backward()
        np.testing.assert_array_equal(x.grad, [0.0, gaz, 1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cr.relu(cr.tensor([0.0]), grad_at_zero=2.0)


def test_losses_validate_labels():
    logits = cr.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(TypeError, match="integer"):
        cr.softmax_cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cr.softmax_cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ShapeError, match="labels of shape"):
        cr.softmax_cross_entropy(logits, np.array([0, 1, 2]))


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    x = cr.tensor(np.array([[1000.0, 0.0, -1000.0]]), requires_grad=True)
    e = cr.softmax_cross_entropy(x, np.array([0]))
    assert e.item() == pytest.approx(0.0, abs=1e-12)
    e.backward()
    assert np.all(np.isfinite(x.grad))
