"""Linear regions, exact evaluation through the knots, and the depth demonstration."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.approx import (
    breakpoints,
    construct,
    count_linear_regions,
    deep_square,
    depth_demo,
    evaluate,
    format_depth_table,
    knots,
    sawtooth,
    shallow,
)
from chainrule.nn import Linear, ReLU, Sequential, Tanh


def run(net, x):
    with cr.no_grad():
        return net(np.asarray(x, dtype=float)).data


def random_net(seed, widths=(1, 8, 8, 1)):
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [Linear(a, b, init="he_normal", rng=rng, dtype=np.float64), ReLU()]
        layers[-2].bias.data = rng.normal(size=b)
    return Sequential(*layers[:-1])


def pieces_on_a_fine_grid(net, a, b, points=400_001):
    """Oracle: clusters of non-zero second differences of the output on a fine grid."""
    x = np.linspace(a, b, points)
    y = run(net, x[:, None])
    second = np.abs(np.diff(y, 2, axis=0)).max(axis=1)
    kink = second > 1e-9 * (np.abs(y).max() + 1)
    starts = kink & ~np.concatenate([[False], kink[:-1]])
    return 1 + int(starts.sum())


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 8, 12])
def test_the_sawtooth_has_two_to_the_depth_pieces(depth):
    net = sawtooth(depth)
    assert sum(isinstance(m, Linear) for m in net.layers) == depth + 1
    assert count_linear_regions(net, (0.0, 1.0)) == 2**depth
    np.testing.assert_allclose(
        breakpoints(net, (0.0, 1.0)), np.arange(1, 2**depth) / 2**depth, atol=1e-12
    )


def test_one_hidden_layer_of_n_neurons_gives_n_pieces_deep_gives_2_to_the_m():
    for n in (1, 3, 7, 20):
        assert count_linear_regions(shallow(lambda x: x[:, 0] ** 2, (0.0, 1.0), n), (0.0, 1.0)) == n
    for m in (1, 4, 9):
        assert count_linear_regions(deep_square(m), (0.0, 1.0)) == 2**m


@pytest.mark.parametrize("seed", range(6))
def test_count_matches_a_fine_grid_on_random_networks(seed):
    net = random_net(seed)
    count = count_linear_regions(net, (-3.0, 3.0))
    assert count == pieces_on_a_fine_grid(net, -3.0, 3.0)
    # every activation region is found: the knots are where some neuron's sign flips
    p, _ = knots(net, (-3.0, 3.0))
    x = np.linspace(-3, 3, 400_001)[:, None]
    h, flips = x, 0
    for m in net.layers:
        h = run(m, h)
        if isinstance(m, Linear) and m is not net.layers[-1]:
            pattern = h > 0
            flips += int(np.any(pattern[1:] != pattern[:-1], axis=1).sum())
    assert len(p) - 1 >= count and len(p) - 2 == flips


def test_constructed_network_has_one_piece_per_cell():
    net = construct(lambda x: np.exp(x[:, 0]), (-1.0, 1.0), 0.01)  # convex: no collinear cells
    assert count_linear_regions(net, (-1.0, 1.0)) == 200
    assert count_linear_regions(net, (-2.0, 2.0)) == 202  # constant beyond both ends
    np.testing.assert_allclose(
        breakpoints(net, (-1.0, 1.0)), net.construction.nodes[0][1:-1], atol=1e-12
    )
    # collinear cells merge: |x| on a grid through 0 is two pieces
    assert (
        count_linear_regions(construct(lambda x: np.abs(x[:, 0]), (-1.0, 1.0), 0.1), (-1, 1)) == 2
    )


@pytest.mark.parametrize(
    "net",
    [
        construct(lambda x: np.sin(5 * x[:, 0]), (-1.0, 2.0), 0.01),
        sawtooth(6),
        random_net(11),
    ],
    ids=["constructed", "sawtooth", "random"],
)
def test_evaluate_through_the_knots_equals_the_forward_pass(net):
    x = np.random.default_rng(0).uniform(-1.5, 2.5, size=5000)
    direct = run(net, x[:, None])
    fast = evaluate(net, x)  # a 1-D array is one input per point
    assert fast.shape == direct.shape
    np.testing.assert_allclose(fast, direct, rtol=1e-10, atol=1e-10 * np.abs(direct).max())


def test_evaluate_other_networks_in_batches():
    net = construct(lambda x: x[:, 0] * x[:, 1], [(0, 1), (0, 1)], 0.25)
    x = np.random.default_rng(1).uniform(0, 1, size=(300, 2))
    np.testing.assert_allclose(evaluate(net, x, batch_size=64), run(net, x), atol=1e-14)
    smooth = Sequential(Linear(1, 3, rng=0), Tanh(), Linear(3, 1, rng=1))
    x1 = np.linspace(0, 1, 200)[:, None].astype(np.float32)
    np.testing.assert_allclose(evaluate(smooth, x1), run(smooth, x1), rtol=1e-6)
    with pytest.raises(ValueError, match="columns"):
        evaluate(net, np.ones((4, 3)))
    with pytest.raises(ValueError, match="shape"):
        evaluate(net, np.ones((2, 2, 2)))


def test_regions_refuse_what_they_cannot_count():
    with pytest.raises(ValueError, match="one input"):
        count_linear_regions(construct(lambda x: x[:, 0], [(0, 1), (0, 1)], 0.5), (0, 1))
    with pytest.raises(TypeError, match="Tanh"):
        count_linear_regions(Sequential(Linear(1, 2), Tanh(), Linear(2, 1)), (0, 1))
    with pytest.raises(ValueError, match="a < b"):
        count_linear_regions(sawtooth(2), (1.0, 0.0))
    with pytest.raises(ValueError, match="pair"):
        count_linear_regions(sawtooth(2), 3.0)
    with pytest.raises(ValueError, match="more than 100 knots"):
        knots(sawtooth(10), (0, 1), max_knots=100)
    with pytest.raises(ValueError, match="positive integer"):
        sawtooth(0)


def test_depth_demo_deep_beats_shallow_with_the_same_neurons():
    rows = depth_demo(range(1, 9))
    for r in rows:
        assert r.neurons == 3 * r.depth
        assert r.deep_pieces == 2**r.depth and r.shallow_pieces == 3 * r.depth
        assert r.deep_paths == 3**r.depth and r.shallow_paths == 3 * r.depth
        assert r.deep_error == pytest.approx(4.0 ** -(r.depth + 1), rel=1e-6)
        assert r.shallow_error == pytest.approx(1 / (4 * (3 * r.depth) ** 2), rel=1e-3)
    assert all(r.deep_error < r.shallow_error for r in rows if r.depth >= 4)
    assert rows[-1].shallow_error / rows[-1].deep_error > 100
    table = format_depth_table(rows)
    assert table.count("\n") == len(rows) + 1 and "256 / 24" in table
