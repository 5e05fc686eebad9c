"""chainrule.approx.construct: the lecture's 1-D network is the interpolant of f, exactly."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import chainrule as cr
from chainrule.approx import BudgetError, ConstructedNetwork, construct, error_report
from chainrule.nn import Linear, ReLU, Sequential
from chainrule.optim import SGD


def sin3(x):
    return np.sin(3 * x[:, 0])


def run(net, x):
    with cr.no_grad():
        return net(np.asarray(x, dtype=float)).data


def interpolant(nodes, values, x):
    """The oracle: NumPy's piecewise-linear interpolation (constant beyond the ends)."""
    return np.interp(x, nodes, values)


def test_the_lecture_three_layers():
    net = construct(sin3, (0.0, 1.0), 0.1)
    assert isinstance(net, Sequential) and isinstance(net, ConstructedNetwork)
    kinds = [type(m) for m in net.layers]
    assert kinds == [Linear, ReLU, Linear, ReLU, Linear]  # no ReLU after layer 3
    nodes = np.linspace(0, 1, 11)
    l1, l2, l3 = net.layers[0], net.layers[2], net.layers[4]
    assert all(p.dtype == np.float64 for p in net.parameters())
    # layer 1: identity weights, shifting biases -> ReLU(x - n d)
    np.testing.assert_array_equal(l1.weight.data, np.ones((11, 1)))
    np.testing.assert_allclose(l1.bias.data, -nodes, atol=1e-15)
    # layer 2, an inner triangle: (r_{n-1} - 2 r_n + r_{n+1}) / d
    row = l2.weight.data[5]
    np.testing.assert_allclose(row[4:7], [10, -20, 10], rtol=1e-12)
    assert np.count_nonzero(row) == 3 and l2.bias.data[5] == 0
    # layer 3: f(x_n) - f_min, with f_min in the bias
    f_nodes = np.sin(3 * nodes)
    np.testing.assert_allclose(l3.weight.data[0], f_nodes - f_nodes.min(), atol=1e-15)
    np.testing.assert_allclose(l3.bias.data, [f_nodes.min()])
    assert net.widths == (1, 11, 11, 1)


@pytest.mark.parametrize(
    "f, domain, d",
    [
        (sin3, (-3.0, 3.0), 0.05),
        (lambda x: np.exp(x[:, 0]), (-1.0, 2.0), 0.07),  # d does not divide the length
        (lambda x: x[:, 0] ** 3 - x[:, 0], (-2.0, 2.0), 0.3),
        (lambda x: np.abs(x[:, 0] - 0.123), (-1.0, 1.0), 0.01),
    ],
)
def test_exact_at_every_node_and_the_interpolant_between(f, domain, d):
    net = construct(f, domain, d)
    c = net.construction
    nodes = c.nodes[0]
    assert nodes[0] == domain[0] and nodes[-1] == domain[1]
    assert np.diff(nodes).max() <= d * (1 + 1e-12)
    scale = max(1.0, np.abs(c.values).max())
    values = f(nodes[:, None])
    np.testing.assert_allclose(run(net, nodes[:, None])[:, 0], values, rtol=0, atol=1e-12 * scale)
    x = np.linspace(*domain, 7919)
    expected = interpolant(nodes, values, x)
    np.testing.assert_allclose(run(net, x[:, None])[:, 0], expected, rtol=0, atol=1e-12 * scale)


def test_outside_the_domain_the_network_is_f_at_the_nearest_end():
    net = construct(sin3, (-1.0, 2.0), 0.1)
    out = run(net, [[-5.0], [-1.5], [2.5], [40.0]])[:, 0]
    np.testing.assert_allclose(out, np.sin(3 * np.array([-1.0, -1.0, 2.0, 2.0])), atol=1e-12)


def test_negative_values_are_shifted_by_f_min_into_the_last_bias():
    def f(x):
        return x[:, 0] ** 2 - 5

    net = construct(f, (-2.0, 1.0), 0.25)
    last = net.layers[-1]
    assert isinstance(last, Linear)  # the last ReLU dropped, as the lecture says
    assert last.bias.data[0] == pytest.approx(-5.0)
    assert last.weight.data.min() >= 0  # it scales f - f_min >= 0
    nodes = net.construction.nodes[0]
    np.testing.assert_allclose(run(net, nodes[:, None])[:, 0], f(nodes[:, None]), atol=1e-12)
    x = np.linspace(-2, 1, 1001)
    assert run(net, x[:, None]).max() < 0  # negative values come out negative


def test_vector_output_replicates_the_last_layer_only():
    def f(x):
        t = x[:, 0]
        return np.stack([np.sin(t), np.cos(2 * t) - 3, t**2], axis=1)

    single = construct(lambda x: np.sin(x[:, 0]), (0.0, 2.0), 0.1)
    net = construct(f, (0.0, 2.0), 0.1)
    assert net.widths == (1, 21, 21, 3)
    for a, b in zip(net.layers[:-1], single.layers[:-1], strict=True):  # shared hidden layers
        if isinstance(a, Linear):
            np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert net.num_parameters() - single.num_parameters() == 2 * (21 + 1)
    x = np.linspace(0, 2, 501)
    out = run(net, x[:, None])
    assert out.shape == (501, 3)
    nodes = net.construction.nodes[0]
    expected = f(nodes[:, None])
    for j in range(3):
        np.testing.assert_allclose(out[:, j], interpolant(nodes, expected[:, j], x), atol=1e-12)


def step_sine(x):
    t = x[:, 0]
    return np.sin(t) + np.where(t > 0.3, 2.0, 0.0)


def test_a_discontinuity_is_bridged_by_two_extra_nodes():
    eps = 1e-4
    net = construct(step_sine, (-1.0, 1.0), 0.1, discontinuities=[0.3], eps=eps)
    c = net.construction
    assert c.excluded == ((0.3 - eps, 0.3 + eps),)
    assert 0.3 - eps in c.nodes[0] and 0.3 + eps in c.nodes[0]
    x = np.linspace(-1, 1, 20001)
    outside = np.abs(x - 0.3) >= eps
    err = np.abs(run(net, x[:, None])[:, 0] - step_sine(x[:, None]))[outside]
    # each smooth piece is interpolated: |f''| = |sin| <= 1, step <= 0.1 (+ eps)
    assert err.max() <= (0.1 + 3 * eps) ** 2 / 8
    np.testing.assert_allclose(
        run(net, [[0.3 - eps], [0.3 + eps]])[:, 0], step_sine(np.array([[0.3 - eps], [0.3 + eps]]))
    )
    report = error_report(net, step_sine)
    assert report.within_bound and report.bound_kind == "smooth"
    # without the bridge the jump is smeared over a whole cell
    plain = construct(step_sine, (-1.0, 1.0), 0.1)
    assert np.abs(run(plain, x[:, None])[:, 0] - step_sine(x[:, None])).max() > 0.5


def test_the_default_eps_is_a_thousandth_of_d():
    net = construct(step_sine, (-1.0, 1.0), 0.1, discontinuities=0.3)
    assert net.construction.eps == pytest.approx(1e-4)


def test_constructed_networks_train_further():
    net = construct(sin3, (-1.0, 1.0), 0.2)
    x = np.linspace(-1, 1, 64)[:, None]
    loss = cr.mse(net(x), np.cos(x))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.all(np.isfinite(p.grad))
    before = net.layers[-1].weight.data.copy()
    SGD(net.parameters(), lr=0.01).step()
    assert not np.array_equal(before, net.layers[-1].weight.data)


@pytest.mark.parametrize(
    "domain, d, message",
    [
        ((0.0, 1.0), 0.0, "d must be positive"),
        ((0.0, 1.0), -0.1, "d must be positive"),
        ((0.0, 1.0), float("nan"), "d must be positive"),
        ((0.0, 1.0), [0.1, 0.1], "d must be one number, got"),
        ((1.0, 1.0), 0.1, "empty"),
        ((2.0, 1.0), 0.1, "inverted"),
        ((0.0, float("inf")), 0.1, "finite"),
        ((0.0, 1.0, 2.0), 0.1, "pairs"),
        ([], 0.1, "pairs"),
        ("abc", 0.1, "domain must be"),
    ],
)
def test_bad_domain_or_d_is_refused_clearly(domain, d, message):
    with pytest.raises(ValueError, match=message):
        construct(sin3, domain, d)


def test_non_finite_f_is_named_with_its_point():
    with pytest.raises(ValueError, match=r"not finite at x = \(0\)"):
        construct(lambda x: np.log(x[:, 0]), (0.0, 1.0), 0.1)


@pytest.mark.parametrize(
    "f, message",
    [
        (lambda x: np.ones((x.shape[0], 2, 2)), "returned shape"),
        (lambda x: np.ones(3), "returned shape"),
        (lambda x: x.reshape(7, -1), "f failed"),
    ],
)
def test_f_with_a_wrong_output_is_refused(f, message):
    with pytest.raises(ValueError, match=message):
        construct(f, (0.0, 1.0), 0.1)


def test_other_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        construct(3.0, (0.0, 1.0), 0.1)
    with pytest.raises(ValueError, match="unknown method"):
        construct(sin3, (0.0, 1.0), 0.1, method="spline")
    with pytest.raises(ValueError, match="inside the domain"):
        construct(sin3, (0.0, 1.0), 0.1, discontinuities=[1.5])
    with pytest.raises(ValueError, match="closer than"):
        construct(sin3, (0.0, 1.0), 0.1, discontinuities=[0.5, 0.5001], eps=1e-3)
    with pytest.raises(ValueError, match="eps must be positive"):
        construct(sin3, (0.0, 1.0), 0.1, discontinuities=[0.5], eps=0.0)
    with pytest.raises(ValueError, match="K = 1"):
        construct(lambda x: x[:, 0], [(0, 1), (0, 1)], 0.1, discontinuities=[0.5])


def test_a_d_needing_too_many_neurons_is_refused_before_building():
    with pytest.raises(BudgetError, match="max_neurons"):
        construct(sin3, (0.0, 1.0), 1e-9)  # would be 2e9 neurons: refused at once
    with pytest.raises(BudgetError, match="max_neurons = 100"):
        construct(sin3, (0.0, 1.0), 0.01, max_neurons=100)
    with pytest.raises(BudgetError, match="max_parameters"):
        construct(sin3, (0.0, 1.0), 0.01, max_parameters=5_000)
    with pytest.raises(BudgetError, match="max_neurons"):
        construct(lambda x: x[:, 0], [(0, 1), (0, 1)], 0.001)
    assert construct(sin3, (0.0, 1.0), 0.01, max_neurons=202).widths == (1, 101, 101, 1)


def _peak_bytes(call):
    """(what call raised, the peak bytes it allocated): NumPy reports to tracemalloc."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
    except Exception as e:  # noqa: BLE001 - returned to the test, which checks it
        raised = e
    else:
        raised = None
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return raised, peak


@pytest.mark.parametrize("name", ["max_neurons", "max_parameters"])
@pytest.mark.parametrize("value", [0, -5, 2.5])
def test_a_budget_that_is_not_a_positive_integer_is_refused(name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        construct(sin3, (0.0, 1.0), 0.1, **{name: value})
    assert construct(sin3, (0.0, 1.0), 0.1, **{name: 1e8}).widths == (1, 11, 11, 1)


def test_a_network_larger_than_the_memory_is_refused_before_allocating(monkeypatch):
    module = importlib.import_module("chainrule.approx.grid")  # where the budgets are checked

    # a raised parameter budget still meets the memory: 1e12 parameters are 8 TB of weights
    raised, peak = _peak_bytes(
        lambda: construct(sin3, (0.0, 1.0), 1e-6, max_neurons=10**7, max_parameters=10**13)
    )
    assert isinstance(raised, BudgetError) and "GiB of memory, more than the" in str(raised)
    assert "available: use a larger d" in str(raised) and peak < 2**20
    monkeypatch.setattr(module, "available_memory", lambda: 2**16)  # a machine with 64 KiB free
    with pytest.raises(BudgetError, match=r"about 0.7 MiB of memory, more than the 0.1 MiB"):
        construct(sin3, (0.0, 1.0), 0.01)
    with pytest.raises(BudgetError, match=r"grid nodes\) would need about"):  # K = 2: the grid
        construct(lambda x: x[:, 0] * x[:, 1], [(0, 1), (0, 1)], 0.01)
