"""Vector input: Freudenthal hats (exact interpolant) against the lecture's pyramids."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import Delaunay

import chainrule as cr
from chainrule.approx import (
    building_blocks,
    construct,
    error_report,
    freudenthal_hat,
    partition_of_unity,
)
from chainrule.approx.simplex import construct_simplex
from chainrule.nn import Linear


def run(net, x):
    with cr.no_grad():
        return net(np.asarray(x, dtype=float)).data


def freudenthal_interpolant(values, nodes, x):
    """Oracle, independent of the hat formula: barycentric coordinates in the Kuhn simplex.

    In a cell, sort the local coordinates y (descending, order p): the simplex has vertices
    v, v + e_p1, v + e_p1 + e_p2, ... with weights 1 - y_p1, y_p1 - y_p2, ..., y_pK.
    """
    k = len(nodes)
    n = np.array([g.size for g in nodes])
    lo = np.array([g[0] for g in nodes])
    d = np.array([g[1] - g[0] for g in nodes])
    s = (x - lo) / d
    base = np.clip(np.floor(s), 0, n - 2).astype(int)
    y = s - base
    order = np.argsort(-y, axis=1, kind="stable")
    ys = np.take_along_axis(y, order, axis=1)
    weights = np.concatenate([1 - ys[:, :1], ys[:, :-1] - ys[:, 1:], ys[:, -1:]], axis=1)
    vertex = base.copy()
    out = weights[:, [0]] * values[tuple(vertex.T)]
    for j in range(k):
        vertex[np.arange(len(x)), order[:, j]] += 1
        out = out + weights[:, [j + 1]] * values[tuple(vertex.T)]
    return out


def wave(x):
    return np.sin(x.sum(axis=1)) + x[:, 0] ** 2 - np.cos(2 * x[:, -1])


def boxes(k):
    return [(-1.0, 1.0 + 0.25 * i) for i in range(k)]


def uniform(box, n, seed=0):
    lo, hi = np.array(box).T
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, len(box)))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_hat_formula_is_the_barycentric_hat(k):
    # the hat of the origin on the grid {-2..2}^K: interpolant of the indicator of 0
    nodes = [np.arange(-2.0, 3.0)] * k
    values = np.zeros((5,) * k + (1,))
    values[(2,) * k] = 1.0
    t = np.random.default_rng(k).uniform(-1.6, 1.6, size=(4000, k))
    np.testing.assert_allclose(
        freudenthal_hat(t), freudenthal_interpolant(values, nodes, t)[:, 0], atol=1e-12
    )
    assert freudenthal_hat(np.zeros((1, k)))[0] == 1.0


@pytest.mark.parametrize("k", [2, 3])
def test_simplex_network_is_exact_at_nodes_and_the_interpolant_between(k):
    d = 0.25 if k == 2 else 0.5
    net = construct(wave, boxes(k), d)
    c = net.construction
    assert c.method == "simplex" and c.values.shape == (*(g.size for g in c.nodes), 1)
    nodes = c.node_points()
    np.testing.assert_allclose(run(net, nodes), wave(nodes)[:, None], rtol=0, atol=1e-12)
    x = uniform(boxes(k), 3000)
    expected = freudenthal_interpolant(c.values, c.nodes, x)
    np.testing.assert_allclose(run(net, x), expected, rtol=0, atol=1e-12)


def test_two_inputs_match_scipy_on_the_same_triangulation():
    # SciPy's Delaunay of the grid sheared by A keeps the short diagonal (1, 1) - Freudenthal's;
    # linear interpolation commutes with the shear.
    box = [(-1.0, 1.0), (0.0, 1.5)]
    net = construct(wave, box, 0.1)
    c = net.construction
    shear = np.array([[1.0, -0.2], [-0.2, 1.0]])
    nodes = c.node_points()
    scipy = LinearNDInterpolator(Delaunay(nodes @ shear.T), wave(nodes))
    x = uniform(box, 4000, seed=3)
    np.testing.assert_allclose(run(net, x)[:, 0], scipy(x @ shear.T), rtol=0, atol=1e-10)


def test_ridge_form_and_tree_form_are_the_same_function():
    box = boxes(2)
    ridge = construct_simplex(wave, tuple(box), (0.2, 0.2), 10**6, 10**8, form="ridge")
    tree = construct_simplex(wave, tuple(box), (0.2, 0.2), 10**6, 10**8, form="tree")
    x = uniform(box, 2000)
    np.testing.assert_allclose(run(ridge, x), run(tree, x), atol=1e-12)
    assert len(ridge.widths) - 1 == 3 and len(tree.widths) - 1 == 4


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_depth_grows_like_log2_of_k_plus_1(k):
    net = construct_simplex(
        lambda x: x.sum(axis=1),
        tuple((0.0, 1.0) for _ in range(k)),
        (0.5,) * k,
        10**6,
        10**8,
        form="ridge" if k == 2 else "tree",
    )
    linear = sum(isinstance(m, Linear) for m in net.layers)
    expected = 3 if k <= 2 else 2 + math.ceil(math.log2(k + 1))
    assert linear == expected
    nodes = net.construction.node_points()
    np.testing.assert_allclose(run(net, nodes)[:, 0], nodes.sum(axis=1), atol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_affine_functions_are_reproduced_everywhere_by_simplex_not_by_pyramid(k):
    def affine(x):
        return 1 + 2 * x[:, 0] - 3 * x[:, 1]

    x = uniform(boxes(k), 2000, seed=1)
    simplex = construct(affine, boxes(k), 0.25)
    np.testing.assert_allclose(run(simplex, x)[:, 0], affine(x), atol=1e-12)
    pyramid = construct(affine, boxes(k), 0.25, method="pyramid")
    nodes = pyramid.construction.node_points()
    np.testing.assert_allclose(run(pyramid, nodes)[:, 0], affine(nodes), atol=1e-12)  # nodes: yes
    assert np.abs(run(pyramid, x)[:, 0] - affine(x)).max() > 1.0  # between them: no


def test_hats_are_a_partition_of_unity_and_pyramids_are_not():
    box = [(0.0, 1.0), (0.0, 1.0)]
    simplex = construct(wave, box, 0.125)
    pyramid = construct(wave, box, 0.125, method="pyramid")
    x = uniform(box, 3000)
    np.testing.assert_allclose(building_blocks(simplex, x).sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        building_blocks(pyramid, simplex.construction.node_points()).sum(axis=1), 1.0
    )
    centres = np.array([[0.0625, 0.0625], [0.5625, 0.3125]])  # every corner's pyramid is 0
    np.testing.assert_allclose(building_blocks(pyramid, centres).sum(axis=1), 0.0, atol=1e-12)
    f_min = pyramid.construction.f_min[0]
    np.testing.assert_allclose(run(pyramid, centres)[:, 0], f_min)  # the network forgets f
    assert partition_of_unity(simplex) == pytest.approx((1.0, 1.0), abs=1e-12)
    assert partition_of_unity(pyramid) == pytest.approx((0.0, 1.0), abs=1e-12)
    lecture = construct(wave, [(0.0, 1.0)], 0.1)
    assert partition_of_unity(lecture) == pytest.approx((1.0, 1.0), abs=1e-12)
    three = construct(wave, [(0.0, 1.0)] * 3, 0.5, method="pyramid")
    assert partition_of_unity(three)[0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="constructed"):
        partition_of_unity(lecture.layers[0])


def test_pyramid_error_does_not_shrink_with_d_while_simplex_error_does():
    def f(x):
        return np.sin(2 * x[:, 0]) * np.cos(x[:, 1])

    box = [(-1.0, 1.0), (-1.0, 1.0)]
    errors = {
        method: [
            error_report(construct(f, box, d, method=method), f).max_error for d in (0.4, 0.2, 0.1)
        ]
        for method in ("simplex", "pyramid")
    }
    simplex, pyramid = errors["simplex"], errors["pyramid"]
    assert simplex[1] < simplex[0] / 3.5 and simplex[2] < simplex[1] / 3.5
    assert min(pyramid) > 0.9 * max(pyramid) > 1.0  # about max f - f_min, at every d
    assert pyramid[-1] > 100 * simplex[-1]


def test_simplex_vector_output_and_size():
    def f(x):
        return np.stack([wave(x), x[:, 0] * x[:, 1]], axis=1)

    box = boxes(2)
    net = construct(f, box, 0.25)
    x = uniform(box, 500)
    out = run(net, x)
    assert out.shape == (500, 2)
    c = net.construction
    np.testing.assert_allclose(out, freudenthal_interpolant(c.values, c.nodes, x), atol=1e-12)
    single = construct(wave, box, 0.25)
    assert net.num_parameters() - single.num_parameters() == single.widths[-2] + 1


def test_a_step_per_direction():
    box = [(-1.0, 1.0), (0.0, 3.0)]
    net = construct(wave, box, [0.25, 0.5])
    c = net.construction
    assert c.spacing == (0.25, 0.5) and c.values.shape == (9, 7, 1)
    x = uniform(box, 2000, seed=2)
    np.testing.assert_allclose(
        run(net, x), freudenthal_interpolant(c.values, c.nodes, x), atol=1e-12
    )
    report = error_report(net, wave)
    assert report.d == 0.5 and report.within_bound
