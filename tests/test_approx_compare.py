"""Constructed against trained networks of the same widths (training kept tiny here)."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.approx import compare_trained, evaluate


def sin3(x):
    return np.sin(3 * x[:, 0])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_trained_network_has_the_same_widths_and_is_measured_the_same_way(optimizer):
    result = compare_trained(sin3, (-1.0, 1.0), 0.25, optimizer=optimizer, steps=150, seed=1)
    c, t = result.constructed, result.trained
    assert c.widths == t.widths == (1, 9, 9, 1) and c.parameters == t.parameters
    assert c.points == t.points and t.d == c.d  # same grid, same bound for reference
    assert c.within_bound and c.max_error < t.max_error
    assert result.losses.shape == (150,) and np.all(np.isfinite(result.losses))
    assert result.losses[-30:].mean() < 0.5 * result.losses[:10].mean()  # it learned something
    # the trained network takes raw x (the input/output scalings were folded into it)
    x = np.linspace(-1, 1, 101)[:, None]
    err = np.abs(evaluate(result.network, x)[:, 0] - sin3(x))
    assert err.max() == pytest.approx(t.max_error, rel=0.2)
    assert err.max() < 1.0
    assert "constructed" in result.table() and optimizer in result.table()


def test_two_inputs_compare():
    def f(x):
        return x[:, 0] * x[:, 1]

    result = compare_trained(f, [(0.0, 1.0), (0.0, 1.0)], 0.5, steps=20, samples=256)
    assert result.samples == 256 and result.trained.inputs == 2
    assert result.constructed.max_error == pytest.approx(0.5**2 / 4)


def test_bad_training_arguments():
    with pytest.raises(ValueError, match="unknown optimizer"):
        compare_trained(sin3, (0.0, 1.0), 0.25, optimizer="lbfgs")
    with pytest.raises(ValueError, match="positive integers"):
        compare_trained(sin3, (0.0, 1.0), 0.25, steps=0)
