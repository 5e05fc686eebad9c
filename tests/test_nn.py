"""Layers: forward and backward against PyTorch and central differences, initialisation, Module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn
from chainrule.nn import init


def _torch_linear(layer: nn.Linear) -> torch.nn.Linear:
    t = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.weight.data))
        t.bias.copy_(torch.from_numpy(layer.bias.data))
    return t


def test_linear_is_x_h_transpose_plus_h_and_matches_torch_backward():
    rng = np.random.default_rng(0)
    layer = nn.Linear(5, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data.T + layer.bias.data)
    xt = cr.tensor(x, requires_grad=True)
    (layer(xt) ** 2).sum().backward()
    tl = _torch_linear(layer)
    xx = torch.tensor(x, requires_grad=True)
    (tl(xx) ** 2).sum().backward()
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(xt.grad, xx.grad.numpy(), rtol=1e-12)


def test_two_layer_network_gradient_matches_central_differences():
    """The lecture's x5 = H3 ReLU(H0 x0 + h1) + h4 with softmax cross-entropy, in float64."""
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((6, 4))
    labels = rng.integers(0, 3, 6)
    H0, h1 = rng.standard_normal((5, 4)), rng.standard_normal(5)
    H3, h4 = rng.standard_normal((3, 5)), rng.standard_normal(3)

    def error(H0, h1, H3, h4):
        return cr.softmax_cross_entropy(cr.linear(cr.relu(cr.linear(x0, H0, h1)), H3, h4), labels)

    report = cr.check_grad(error, H0, h1, H3, h4)
    assert report.ok, str(report)


def test_conv_pool_stack_matches_torch_forward_and_backward():
    rng = np.random.default_rng(2)
    conv = nn.Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64)
    net = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Flatten())
    x = rng.standard_normal((2, 2, 8, 8))
    y = net(x)
    (y * y).sum().backward()
    tconv = torch.nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(conv.weight.data))
        tconv.bias.copy_(torch.from_numpy(conv.bias.data))
    tnet = torch.nn.Sequential(
        tconv, torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.AvgPool2d(2), torch.nn.Flatten()
    )
    ty = tnet(torch.from_numpy(x))
    (ty * ty).sum().backward()
    assert y.shape == (2, 12)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(conv.weight.grad, tconv.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(conv.bias.grad, tconv.bias.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize(
    "layer, fn", [(nn.Sigmoid(), torch.sigmoid), (nn.Tanh(), torch.tanh), (nn.ReLU(), torch.relu)]
)
def test_activations_match_torch(layer, fn):
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(
        layer(cr.tensor(x)).data, fn(torch.from_numpy(x)).numpy(), rtol=1e-12
    )


def test_relu_grad_at_zero_is_a_chosen_subgradient():
    x = cr.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    nn.ReLU(grad_at_zero=0.5)(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 1.0])


# ----------------------------------------------------------------------------- initialisation


def test_pytorch_uniform_default_lies_within_one_over_sqrt_fan_in():
    layer = nn.Linear(400, 300, rng=0)
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert layer.weight.data.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)
    assert layer.weight.dtype == np.float32 and layer.weight.shape == (300, 400)


@pytest.mark.parametrize(
    "name, std",
    [
        ("he_normal", np.sqrt(2 / 500)),
        ("he_uniform", np.sqrt(2 / 500)),
        ("xavier_normal", np.sqrt(2 / (500 + 200))),
        ("xavier_uniform", np.sqrt(2 / (500 + 200))),
    ],
)
def test_he_and_xavier_have_their_variance_and_zero_bias(name, std):
    layer = nn.Linear(500, 200, init=name, rng=0)
    assert layer.weight.data.std() == pytest.approx(std, rel=0.03)
    assert abs(layer.weight.data.mean()) < 0.1 * std
    np.testing.assert_array_equal(layer.bias.data, 0)


def test_conv_fans_count_the_receptive_field():
    assert init.fans((16, 6, 5, 5)) == (150, 400)
    conv = nn.Conv2d(6, 16, 5, init="he_normal", rng=0)
    assert conv.weight.data.std() == pytest.approx(np.sqrt(2 / 150), rel=0.05)
    with pytest.raises(ValueError, match="at least 2 axes"):
        init.fans((3,))


def test_initialisation_is_reproducible_from_the_seed():
    a, b, c = nn.Linear(7, 4, rng=3), nn.Linear(7, 4, rng=3), nn.Linear(7, 4, rng=4)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(
        nn.Conv2d(1, 2, 3, rng=g1).weight.data, nn.Conv2d(1, 2, 3, rng=g2).weight.data
    )


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: nn.Linear(0, 3), ValueError, "positive"),
        (lambda: nn.Linear(3, 2, init="magic"), ValueError, "unknown init"),
        (lambda: nn.Conv2d(1, 0, 3), ValueError, "positive"),
        (lambda: nn.Conv2d(1, 2, 3, init="magic"), ValueError, "unknown init"),
        (lambda: nn.Sequential(nn.ReLU(), np.zeros(3)), TypeError, "layer 1"),
    ],
)
def test_bad_layer_arguments_are_clear_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_linear_rejects_the_wrong_number_of_features():
    with pytest.raises(cr.ShapeError, match="features"):
        nn.Linear(4, 2, rng=0)(np.zeros((3, 5), dtype=np.float32))


# ----------------------------------------------------------------------------- Module


def _net():
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1))


def test_parameters_are_found_in_order_with_dotted_names():
    net = _net()
    assert [n for n, _ in net.named_parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert net.num_parameters() == 4 * 3 + 3 + 3 * 2 + 2
    assert net.parameters()[0] is net[1].weight and len(net) == 4
    assert [type(m).__name__ for m in net] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert "Linear(in=4, out=3, bias=True)" in repr(net)


def test_train_and_eval_reach_every_layer_and_zero_grad_clears():
    net = _net()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    cr.softmax_cross_entropy(
        net(np.ones((2, 1, 2, 2), dtype=np.float32)), np.array([0, 1])
    ).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip_copies_and_checks():
    a, b = (
        _net(),
        nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=7), nn.ReLU(), nn.Linear(3, 2, rng=8)),
    )
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).random((5, 1, 2, 2), dtype=np.float32)
    np.testing.assert_array_equal(a(x).data, b(x).data)
    b[1].weight.data += 1  # a copy, not shared
    assert not np.array_equal(a[1].weight.data, b[1].weight.data)
    with pytest.raises(KeyError, match="missing"):
        b.load_state_dict({"1.weight": a[1].weight.data})
    bad = dict(a.state_dict(), **{"1.weight": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="shape"):
        b.load_state_dict(bad)


def test_flatten_keeps_the_batch_axis():
    assert nn.Flatten()(cr.tensor(np.zeros((3, 2, 4, 5)))).shape == (3, 40)


def _plain_relu_then_pool(x, grad_at_zero, kernel, stride):
    """The lecture's order, rule by rule: max-pool of ReLU(x)."""
    h = cr.relu(x, grad_at_zero=grad_at_zero) if grad_at_zero else cr.relu(x)
    return cr.max_pool2d(h, kernel, stride)


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 1), (2, 1), ((2, 3), 2)])
@pytest.mark.parametrize("seed", range(4))
def test_relu_then_max_pool_runs_pool_first_with_the_same_values_and_gradients(
    kernel, stride, seed
):
    # small integers: many ties within a window, many zeros, all-negative windows
    rng = np.random.default_rng(seed)
    x0 = rng.integers(-2, 3, size=(3, 2, 6, 6)).astype(np.float64)
    x0[0, 0] = 0.0  # whole windows of zeros
    x0[0, 1] = -1.0  # whole windows of negative ties
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(kernel, stride))
    x, xr = cr.tensor(x0, requires_grad=True), cr.tensor(x0, requires_grad=True)
    y = model(x)
    ref = _plain_relu_then_pool(xr, 0.0, kernel, stride)
    assert y.node.rule.name == "relu"  # the reordered path ran (pool first, then ReLU)
    assert ref.node.rule.name == "max_pool2d"
    np.testing.assert_array_equal(y.data, ref.data)
    g = rng.standard_normal(ref.shape)
    y.backward(g)
    ref.backward(g)
    np.testing.assert_array_equal(x.grad, xr.grad)
    # and PyTorch's relu -> max_pool2d agrees (overlapping windows add in another order)
    xt = torch.tensor(x0, requires_grad=True)
    k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    yt = torch.nn.functional.max_pool2d(torch.relu(xt), k, stride or k)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-14, atol=1e-15)


def test_relu_with_a_chosen_grad_at_zero_or_an_average_pool_keeps_the_lecture_order():
    x0 = np.zeros((1, 1, 2, 2))
    x0[0, 0, 1, 1] = 0.0  # the window's first entry is 0: the plain order sends g there
    x = cr.tensor(x0, requires_grad=True)
    y = nn.Sequential(nn.ReLU(grad_at_zero=0.5), nn.MaxPool2d(2))(x)
    assert y.node.rule.name == "max_pool2d"
    y.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(x.grad[0, 0], [[0.5, 0.0], [0.0, 0.0]])
    avg = nn.Sequential(nn.ReLU(), nn.AvgPool2d(2))(cr.tensor(x0 - 1, requires_grad=True))
    assert avg.node.rule.name != "relu"


def test_lenet_forward_and_gradients_equal_the_layer_by_layer_composition():
    from chainrule import models

    rng = np.random.default_rng(0)
    model = models.cnn(rng=1)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    x0 = rng.standard_normal((4, 1, 28, 28))
    x0[:, :, :8] = 0.0  # zero rows: ties at 0 after the first ReLU
    labels = np.array([0, 3, 9, 3])
    e = cr.softmax_cross_entropy(model(cr.tensor(x0)), labels)
    e.backward()
    fast = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    h = cr.tensor(x0)
    for layer in model:  # one layer after another, in the lecture's order
        h = layer(h)
    e_plain = cr.softmax_cross_entropy(h, labels)
    e_plain.backward()
    assert e.item() == e_plain.item()
    for a, p in zip(fast, model.parameters(), strict=True):
        np.testing.assert_array_equal(a, p.grad)
