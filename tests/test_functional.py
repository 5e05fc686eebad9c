"""The calculus API: derivative, grad, jacobian (both layouts), hessian, directional
derivative, linearize, jvp/vjp, their composition, and their errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import GraphError

RNG = np.random.default_rng(7)
A = RNG.standard_normal((3, 3))
B = RNG.standard_normal((2, 3))


def central_jacobian(f, x, eps=1e-6):
    """Denominator layout x.shape + y.shape by central differences (the definition)."""
    x = np.array(x, dtype=float)
    y0 = np.asarray(f(cr.tensor(x)).data)
    jac = np.zeros(x.shape + y0.shape)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        jac[idx] = (f(cr.tensor(up)).data - f(cr.tensor(down)).data) / (2 * eps)
    return jac


# ----------------------------------------------------------------------------- derivative


@pytest.mark.parametrize(
    ("f", "df", "x"),
    [
        (lambda x: x**3, lambda x: 3 * x**2, 1.7),
        (lambda x: cr.sin(x) * cr.exp(x), lambda x: np.exp(x) * (np.sin(x) + np.cos(x)), -0.4),
        (lambda x: cr.log(x) / x, lambda x: (1 - np.log(x)) / x**2, 2.5),
        (lambda x: cr.sigmoid(x), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2, 0.3),
        (lambda x: cr.sqrt(x * x + 1), lambda x: x / np.sqrt(x * x + 1), -1.2),
    ],
)
def test_derivative_of_scalar_functions(f, df, x):
    d = cr.derivative(f)(x)
    assert isinstance(d, float)
    assert d == pytest.approx(df(x), rel=1e-12)


def test_derivative_accepts_ints_and_zero_dim_arrays_and_rejects_vectors():
    assert cr.derivative(lambda x: x * x)(3) == 6.0
    assert float(cr.derivative(lambda x: x * x)(np.array(2.0))) == 4.0
    with pytest.raises(ValueError, match=r"R -> R.*shape \(2,\).*grad\(\)"):
        cr.derivative(lambda x: x * x)(np.ones(2))


def test_derivative_of_a_constant_is_zero():
    assert cr.derivative(lambda x: 5.0)(1.0) == 0.0


# ----------------------------------------------------------------------------- grad


def test_grad_has_the_shape_of_the_input_and_the_right_value():
    x = RNG.standard_normal((2, 3))
    g = cr.grad(lambda X: (cr.tanh(X) ** 2).sum())(x)
    assert g.shape == (2, 3)
    np.testing.assert_allclose(g, 2 * np.tanh(x) * (1 - np.tanh(x) ** 2), rtol=1e-12)
    np.testing.assert_allclose(g, central_jacobian(lambda X: (cr.tanh(X) ** 2).sum(), x), rtol=1e-7)


def test_gradient_of_the_quadratic_form_is_a_plus_a_transpose_x():
    x = RNG.standard_normal(3)
    np.testing.assert_allclose(cr.grad(lambda x: x @ A @ x)(x), (A + A.T) @ x, rtol=1e-12)
    # the lecture's forms x^T a and a^T x: gradient a
    a = RNG.standard_normal(3)
    np.testing.assert_allclose(cr.grad(lambda x: x @ a)(x), a)
    np.testing.assert_allclose(cr.grad(lambda x: a @ x)(x), a)


def test_grad_argnums():
    f = lambda x, y: (x * y).sum() + (y**2).sum()  # noqa: E731
    x, y = RNG.standard_normal(3), RNG.standard_normal(3)
    np.testing.assert_allclose(cr.grad(f)(x, y), y)
    np.testing.assert_allclose(cr.grad(f, argnums=1)(x, y), x + 2 * y)
    np.testing.assert_allclose(cr.grad(f, argnums=-1)(x, y), x + 2 * y)
    gx, gy = cr.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, y)
    np.testing.assert_allclose(gy, x + 2 * y)
    (only,) = cr.grad(f, argnums=(1,))(x, y)  # a tuple argnums gives a tuple
    np.testing.assert_allclose(only, x + 2 * y)


def test_grad_of_python_floats_gives_floats():
    g = cr.grad(lambda x, y: x * x * y, argnums=(0, 1))(3.0, 2.0)
    assert g == (12.0, 9.0) and all(isinstance(v, float) for v in g)
    assert cr.grad(lambda x: (x * x).sum())([1.0, 2.0]).tolist() == [2.0, 4.0]  # lists: arrays


def test_grad_keeps_float32():
    g = cr.grad(lambda x: (x * x).sum())(np.ones(3, dtype=np.float32))
    assert g.dtype == np.float32


def test_value_and_grad():
    v, g = cr.value_and_grad(lambda x: (x**2).sum())(np.array([1.0, 2.0]))
    assert v == 5.0
    np.testing.assert_allclose(g, [2.0, 4.0])


def test_grad_of_a_non_scalar_function_names_the_shape():
    with pytest.raises(GraphError, match=r"scalar-valued.*shape \(3,\).*jacobian"):
        cr.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(GraphError, match=r"\(2, 2\)"):
        cr.grad(lambda x: x.reshape(2, 2))(np.ones(4))


def test_grad_bad_input_errors():
    with pytest.raises(ValueError, match="argnums 2 out of range for 1"):
        cr.grad(lambda x: x, argnums=2)(1.0)
    with pytest.raises(TypeError, match="must return a Tensor, got str"):
        cr.grad(lambda x: "x")(1.0)
    with pytest.raises(TypeError, match="needs at least one argument"):
        cr.grad(lambda: 1.0)()
    with pytest.raises(TypeError, match="real numbers.*dtype <U3"):
        cr.grad(lambda x: x.sum())("abc")
    with pytest.raises(TypeError, match="real numbers.*complex128"):
        cr.grad(lambda x: x.sum())(np.array([1 + 2j]))


def test_grad_of_a_function_that_ignores_its_input_is_zero():
    np.testing.assert_array_equal(cr.grad(lambda x: cr.tensor(3.0))(np.ones(2)), np.zeros(2))


def test_nested_grad_grad():
    f = lambda x: x**4 + cr.sin(x)  # noqa: E731
    x = 0.8
    assert cr.grad(cr.grad(f))(x) == pytest.approx(12 * x**2 - np.sin(x), rel=1e-12)
    assert cr.grad(cr.grad(cr.grad(f)))(x) == pytest.approx(24 * x - np.cos(x), rel=1e-12)
    # the gradient of a gradient's component: d/dy of (df/dx) for f = x^2 y^3
    g = cr.grad(lambda x, y: cr.grad(lambda x, y: x * x * y**3)(x, y), argnums=1)
    assert g(2.0, 3.0) == pytest.approx(2 * 2.0 * 3 * 3.0**2)


def test_derivatives_inside_derivatives_see_the_outer_variable():
    # through a closure: d/dy [d/dx (x y^2)] = 2y
    assert cr.grad(lambda y: cr.grad(lambda x: x * y * y)(2.0))(3.0) == pytest.approx(6.0)
    # jvp, vjp and jacobian inside grad: d/da of a derivative of x -> a x^2 at x = 1
    assert cr.grad(lambda a: cr.jvp(lambda x: a * x * x, 1.0, 1.0)[1])(5.0) == pytest.approx(2.0)
    assert cr.grad(lambda a: cr.vjp(lambda x: a * x * x, 1.0)[1](1.0))(5.0) == pytest.approx(2.0)
    assert cr.grad(lambda a: cr.jacobian(lambda x: a * x * x)(np.ones(2)).sum())(
        5.0
    ) == pytest.approx(4.0)


# ----------------------------------------------------------------------------- jacobian


def test_jacobian_denominator_layout_is_k_by_m():
    f = lambda x: B @ cr.tanh(x)  # noqa: E731  R^3 -> R^2
    x = RNG.standard_normal(3)
    J = cr.jacobian(f)(x)
    assert J.shape == (3, 2)  # K x M: column m is grad f_m
    expected = (B * (1 - np.tanh(x) ** 2)).T  # d f_m / d x_k
    np.testing.assert_allclose(J, expected, rtol=1e-12)
    np.testing.assert_allclose(J, central_jacobian(f, x), rtol=1e-7, atol=1e-9)
    Jn = cr.jacobian(f, layout="numerator")(x)
    assert Jn.shape == (2, 3)
    np.testing.assert_allclose(Jn, J.T)


def test_jacobian_of_linear_maps_is_the_transposed_matrix():
    x = RNG.standard_normal(3)
    np.testing.assert_allclose(cr.jacobian(lambda x: A @ x)(x), A.T)  # d(Ax)/dx = A^T
    np.testing.assert_allclose(cr.jacobian(lambda x: x @ A)(x), A)  # d(x^T A)/dx = A


def test_jacobian_of_higher_rank_tensors():
    X = RNG.standard_normal((2, 3))
    f = lambda X: X @ X.T  # noqa: E731  2x3 -> 2x2
    J = cr.jacobian(f)(X)
    assert J.shape == (2, 3, 2, 2)  # x.shape + y.shape
    np.testing.assert_allclose(J, central_jacobian(f, X), rtol=1e-7, atol=1e-9)
    Jn = cr.jacobian(f, layout="numerator")(X)
    assert Jn.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(Jn, J.transpose(2, 3, 0, 1))


def test_jacobian_of_scalar_function_is_the_gradient():
    x = RNG.standard_normal(4)
    f = lambda x: (x**3).sum()  # noqa: E731
    np.testing.assert_allclose(cr.jacobian(f)(x), cr.grad(f)(x))


def test_jacobian_of_softmax_is_diag_p_minus_p_pt():
    x = RNG.standard_normal(4)
    p = np.exp(x) / np.exp(x).sum()
    np.testing.assert_allclose(cr.jacobian(cr.softmax)(x), np.diag(p) - np.outer(p, p), atol=1e-15)


def test_jacobian_of_a_constant_function_is_zero():
    J = cr.jacobian(lambda x: cr.tensor(np.ones(2)))(np.ones(3))
    assert J.shape == (3, 2) and not J.any()


def test_jacobian_bad_layout():
    with pytest.raises(ValueError, match="layout must be"):
        cr.jacobian(lambda x: x, layout="rows")


# ----------------------------------------------------------------------------- hessian


def test_hessian_of_the_quadratic_form_is_a_plus_a_transpose():
    H = cr.hessian(lambda x: x @ A @ x)(RNG.standard_normal(3))
    np.testing.assert_allclose(H, A + A.T, rtol=1e-12)


def test_hessian_is_symmetric_and_matches_differences_of_gradients():
    f = lambda x: cr.log(cr.exp(x).sum()) + (cr.sin(x) * x[0]).sum()  # noqa: E731
    x = RNG.standard_normal(4)
    H = cr.hessian(f)(x)
    assert H.shape == (4, 4)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)
    numeric = central_jacobian(lambda t: cr.tensor(cr.grad(f)(t.data)), x)
    np.testing.assert_allclose(H, numeric, rtol=1e-6, atol=1e-8)


def test_hessian_of_a_matrix_input():
    X = RNG.standard_normal((2, 2))
    H = cr.hessian(lambda X: (X @ X).sum())(X)
    assert H.shape == (2, 2, 2, 2)
    flat = H.reshape(4, 4)
    np.testing.assert_allclose(flat, flat.T, atol=1e-12)


def test_hessian_of_python_float():
    assert float(cr.hessian(lambda x: x**4)(2.0)) == pytest.approx(48.0)


# ------------------------------------------------------ directional derivative, linearize


def test_directional_derivative_is_grad_dot_u():
    f = lambda x: (x**2).sum() + x[0] * x[1]  # noqa: E731
    x, u = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    g = np.array([2 * 1 + 2, 2 * 2 + 1])
    assert cr.directional_derivative(f, x, u) == pytest.approx(g @ u)
    assert cr.directional_derivative(f, x, u, normalize=True) == pytest.approx(g @ u / 5)
    eps = 1e-6
    numeric = (f(cr.tensor(x + eps * u)).item() - f(cr.tensor(x - eps * u)).item()) / (2 * eps)
    assert cr.directional_derivative(f, x, u) == pytest.approx(numeric, rel=1e-8)


def test_directional_derivative_errors():
    f = lambda x: (x**2).sum()  # noqa: E731
    with pytest.raises(ValueError, match=r"direction has shape \(1,\), x has \(2,\)"):
        cr.directional_derivative(f, [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="zero direction"):
        cr.directional_derivative(f, [1.0, 2.0], [0.0, 0.0], normalize=True)


def test_linearize_is_exact_at_a_and_second_order_accurate():
    f = lambda x: cr.stack(cr.sin(x[0]) * x[1], cr.exp(x[1]))  # noqa: E731  R^2 -> R^2
    a = np.array([0.5, -0.3])
    L = cr.linearize(f, a)
    np.testing.assert_allclose(L(a), f(cr.tensor(a)).data)
    d = np.array([0.7, -0.4])
    ratios = []
    for h in (1e-1, 1e-2, 1e-3):
        err = np.abs(L(a + h * d) - f(cr.tensor(a + h * d)).data).max()
        ratios.append(err / h**2)
    # error / |x - a|^2 settles to a constant (half the second derivative): O(|x-a|^2)
    assert ratios[1] == pytest.approx(ratios[2], rel=0.05)
    assert ratios[2] > 1e-3
    assert "Linearization" in repr(L)


def test_linearize_scalar_function_of_a_scalar():
    L = cr.linearize(lambda x: x**2, 3.0)
    assert L(3.1) == pytest.approx(9.0 + 6.0 * 0.1)


# ----------------------------------------------------------------------------- jvp, vjp


def test_jvp_is_jacobian_transpose_times_v():
    f = lambda x: B @ cr.tanh(x)  # noqa: E731
    x, v = RNG.standard_normal(3), RNG.standard_normal(3)
    y, jv = cr.jvp(f, x, v)
    np.testing.assert_allclose(y, B @ np.tanh(x))
    np.testing.assert_allclose(jv, cr.jacobian(f)(x).T @ v, rtol=1e-12)
    eps = 1e-6
    numeric = (f(cr.tensor(x + eps * v)).data - f(cr.tensor(x - eps * v)).data) / (2 * eps)
    np.testing.assert_allclose(jv, numeric, rtol=1e-7)


def test_vjp_is_jacobian_times_u():
    f = lambda x: B @ cr.tanh(x)  # noqa: E731
    x = RNG.standard_normal(3)
    y, pullback = cr.vjp(f, x)
    u = RNG.standard_normal(2)
    np.testing.assert_allclose(pullback(u), cr.jacobian(f)(x) @ u, rtol=1e-12)
    np.testing.assert_allclose(pullback([1.0, 0.0]), cr.jacobian(f)(x)[:, 0])  # reusable
    with pytest.raises(ValueError, match=r"cotangent has shape \(3,\), the output has \(2,\)"):
        pullback(np.ones(3))


def test_jvp_errors_and_constant_functions():
    with pytest.raises(ValueError, match=r"tangent has shape \(3,\), x has \(2,\)"):
        cr.jvp(lambda x: x * 2, np.ones(2), np.ones(3))
    y, jv = cr.jvp(lambda x: cr.tensor(np.ones(2)), np.ones(3), np.ones(3))
    np.testing.assert_array_equal(jv, np.zeros(2))
    y, jv = cr.jvp(lambda x: 3 * x, np.ones(2), np.array([1.0, -1.0]))  # linear: J^T v exactly
    np.testing.assert_array_equal(jv, [3.0, -3.0])


def test_functions_compose_jacobian_of_grad_is_hessian():
    f = lambda x: (cr.sin(x) * x).sum()  # noqa: E731
    x = RNG.standard_normal(3)
    np.testing.assert_allclose(cr.jacobian(cr.grad(f))(x), cr.hessian(f)(x))
    expected = np.diag(2 * np.cos(x) - x * np.sin(x))
    np.testing.assert_allclose(cr.hessian(f)(x), expected, atol=1e-14)


def test_inputs_may_be_tensors_arrays_or_numbers():
    f = lambda x: (x * x).sum()  # noqa: E731
    for x in ([1.0, 2.0], np.array([1.0, 2.0]), cr.tensor([1.0, 2.0])):
        np.testing.assert_allclose(cr.grad(f)(x), [2.0, 4.0])
