"""chainrule.approx.error: measured errors against the bounds of piecewise-linear interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule.approx import (
    SweepResult,
    construct,
    convergence_order,
    error_report,
    sweep,
)
from chainrule.nn import Linear, ReLU, Sequential


def sin3(x):
    return np.sin(3 * x[:, 0])


SMOOTH_1D = [
    (sin3, (-3.0, 3.0), 9.0),  # (f, domain, max |f''|)
    (lambda x: np.exp(x[:, 0]), (-1.0, 2.0), math.exp(2.0)),
    (lambda x: x[:, 0] ** 3 - x[:, 0], (-2.0, 1.5), 12.0),
]


@pytest.mark.parametrize("f, domain, second", SMOOTH_1D)
@pytest.mark.parametrize("d", [0.3, 0.1, 0.03, 0.01])
def test_max_error_is_within_the_bound_for_smooth_f(f, domain, second, d):
    report = error_report(construct(f, domain, d), f)
    assert report.bound_kind == "smooth"
    assert report.second_derivative == pytest.approx(second, rel=0.02)  # estimated f''
    assert report.within_bound
    assert report.max_error <= d**2 / 8 * second
    # and with the exact max |f''| given, the same
    assert error_report(construct(f, domain, d), f, second_derivative=second).within_bound


def test_the_bound_is_reached_by_x_squared():
    # x^2 - I x^2 = (x - a)(b - x): the max d^2/4 at every midpoint = d^2/8 max|f''|
    report = error_report(
        construct(lambda x: x[:, 0] ** 2, (0.0, 1.0), 0.1), lambda x: x[:, 0] ** 2
    )
    assert report.max_error == pytest.approx(0.1**2 / 4, rel=1e-9)
    assert report.max_error / report.bound == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize(
    "f, second",
    [
        (lambda x: x[:, 0] * x[:, 1], 1.0),  # all curvature in the mixed derivative
        (lambda x: (x**2).sum(axis=1), 2.0),
    ],
)
def test_two_input_bound_k_over_8_is_reached(f, second):
    box = [(0.0, 1.0), (0.0, 1.0)]
    report = error_report(construct(f, box, 0.25), f)
    assert report.second_derivative == pytest.approx(second, rel=1e-6)
    assert report.bound == pytest.approx(2 / 8 * 0.25**2 * second, rel=1e-6)
    assert report.max_error / report.bound == pytest.approx(1.0, rel=1e-6)


def test_three_inputs_within_bound():
    def f(x):
        return np.sin(x[:, 0] + 2 * x[:, 1]) * np.cos(x[:, 2])

    report = error_report(construct(f, [(0.0, 1.0)] * 3, 0.25), f)
    assert report.inputs == 3 and report.within_bound
    assert report.depth == 4


def test_observed_order_is_two_for_smooth_f():
    result = sweep(sin3, (-3.0, 3.0), [0.2, 0.1, 0.05, 0.025])
    assert isinstance(result, SweepResult)
    assert result.order == pytest.approx(2.0, abs=0.05)
    assert all(o == pytest.approx(2.0, abs=0.1) for o in result.orders())
    assert all(r.within_bound for r in result.reports)
    assert "observed order of convergence: 2.0" in str(result)


def test_observed_order_two_inputs_simplex_and_zero_for_pyramid():
    def f(x):
        return np.sin(2 * x[:, 0]) * np.cos(x[:, 1])

    box = [(-1.0, 1.0), (-1.0, 1.0)]
    assert sweep(f, box, [0.4, 0.2, 0.1]).order == pytest.approx(2.0, abs=0.15)
    pyramid = sweep(f, box, [0.4, 0.2, 0.1], method="pyramid")
    assert abs(pyramid.order) < 0.2
    assert not any(r.within_bound for r in pyramid.reports)


def test_a_kink_uses_the_lipschitz_bound_and_converges_like_d():
    def kink(x):
        return np.abs(x[:, 0] - 1 / 3)

    result = sweep(kink, (-1.0, 1.0), [0.2, 0.1, 0.05, 0.025])
    for r in result.reports:
        assert r.bound_kind == "Lipschitz" and r.within_bound
        assert r.lipschitz_constant == pytest.approx(1.0)
        # f'' is unbounded at the kink: its estimate grows with the grid, no smooth bound
        assert r.smooth_bound is None and len(r.unsettled) == 1
        assert r.unsettled[0].startswith("the smooth bound: max|f''| grows from")
    assert result.order == pytest.approx(1.0, abs=0.3)


def test_exact_fits_have_no_order():
    result = sweep(lambda x: 2 * x[:, 0] - 1, (0.0, 1.0), [0.2, 0.1])
    assert math.isnan(result.order) and math.isnan(result.orders()[0])
    assert "exact up to rounding" in str(result)


def test_report_states_width_depth_parameters():
    net = construct(sin3, (0.0, 1.0), 0.05)
    report = error_report(net, sin3)
    assert report.widths == (1, 21, 21, 1) and report.depth == 3
    assert report.neurons == 42 and report.parameters == net.num_parameters()
    assert report.points == 2001  # 8 points per cell would be 161: at least 2,001
    text = str(report)
    for word in ("depth 3", "width 21", "parameters", "max", "rms", "bound", "within bound: yes"):
        assert word in text
    assert 0 <= report.worst_x[0] <= 1


def test_complexity_multiplies_with_input_and_output_dimension():
    one = construct(sin3, (0.0, 1.0), 0.1)
    two = construct(lambda x: np.sin(x[:, 0] + x[:, 1]), [(0.0, 1.0)] * 2, 0.1)
    out3 = construct(lambda x: np.stack([sin3(x)] * 3, axis=1), (0.0, 1.0), 0.1)
    assert one.widths[-2] == 11 and two.widths[-2] == 11**2  # nodes: (1/d + 1)^K
    assert out3.num_parameters() - one.num_parameters() == 2 * (11 + 1)


def test_networks_that_were_not_constructed():
    net = Sequential(
        Linear(1, 4, dtype=np.float64, rng=0), ReLU(), Linear(4, 1, dtype=np.float64, rng=1)
    )
    with pytest.raises(ValueError, match="domain"):
        error_report(net, sin3)
    report = error_report(net, sin3, (0.0, 1.0))
    assert report.bound is None and report.within_bound is None and report.method == "network"
    assert report.points == 20_001
    assert error_report(net, sin3, (0.0, 1.0), d=0.1).bound is not None
    with pytest.raises(ValueError, match="2"):
        error_report(net, sin3, [(0, 1), (0, 1)])
    with pytest.raises(ValueError, match="returns shape"):
        error_report(net, lambda x: np.stack([sin3(x)] * 2, axis=1), (0.0, 1.0))


@pytest.mark.parametrize(
    "ds, errors, message",
    [([0.1], [0.01], "two"), ([0.1, 0.05], [0.01], "two"), ([0.1, 0.05], [0.01, 0.0], "positive")],
)
def test_convergence_order_needs_pairs_of_positive_numbers(ds, errors, message):
    with pytest.raises(ValueError, match=message):
        convergence_order(ds, errors)


def test_convergence_order_of_exact_powers():
    ds = np.array([0.1, 0.05, 0.025])
    assert convergence_order(ds, 3 * ds**2) == pytest.approx(2.0)
    assert convergence_order(ds, ds**0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two values"):
        sweep(sin3, (0.0, 1.0), [0.1])


def test_measuring_on_too_many_points_is_refused_before_allocating():
    import tracemalloc

    from chainrule.approx import BudgetError

    net = construct(sin3, (0.0, 1.0), 0.1)
    tracemalloc.start()
    with pytest.raises(
        BudgetError, match=r"1,000,000,000 points is more than max_points = 2,000,000"
    ):
        error_report(net, sin3, points=10**9)  # was 8 GB per array, then the OOM killer
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20
    assert error_report(net, sin3, points=5_000, max_points=5_000).points == 5_000
    with pytest.raises(BudgetError, match="max_points = 4,999"):
        error_report(net, sin3, points=5_000, max_points=4_999)
    with pytest.raises(ValueError, match="max_points must be a positive integer"):
        error_report(net, sin3, max_points=0)


def test_a_dense_measurement_over_the_work_budget_is_refused():
    from chainrule.approx import BudgetError

    def f(x):
        return x[:, 0] * x[:, 1]

    net = construct(f, [(0, 1), (0, 1)], 0.25)
    work = 40 * 40 * net.num_parameters()
    with pytest.raises(BudgetError, match=r"1,600 x [0-9,]+ parameters = .* more than max_work"):
        error_report(net, f, points=40, max_work=work - 1)
    assert error_report(net, f, points=40, max_work=work).points == 1_600


@pytest.mark.parametrize("d", [0.1, 0.05, 0.01])
def test_no_bound_is_claimed_across_a_pole(d):
    def tan(x):
        return np.tan(x[:, 0])

    report = error_report(construct(tan, (0.0, 3.0), d), tan)  # tan has a pole at pi/2
    assert report.bound is None and report.within_bound is None and report.verdict is None
    assert "within bound: yes" not in str(report) and "none holds" in str(report)
    assert [u.split(":")[0] for u in report.unsettled] == [
        "the smooth bound",
        "the Lipschitz bound",
    ]
    assert all("near x = (1.57" in u for u in report.unsettled)


def test_a_cusp_has_no_lipschitz_bound_either():
    report = error_report(construct(lambda x: np.sqrt(x[:, 0]), (0.0, 1.0), 0.05), np.sqrt)
    assert report.bound is None and len(report.unsettled) == 2


def test_a_max_error_above_the_bound_is_never_yes():
    import dataclasses

    report = error_report(construct(sin3, (-3.0, 3.0), 0.05), sin3)
    # 3e-12 above the bound: the old slack (1e-9 relative + 1e-12 absolute) said "yes"; the
    # network's float64 rounding here is ~6e-13, so it is above the bound by more than that
    above = dataclasses.replace(report, max_error=report.bound + 3e-12)
    assert "within bound: NO" in str(above) and not above.within_bound
    assert report.verdict == "yes" and 0 < report.rounding < 1e-12 and above.verdict == "NO"
    # above it by less than the network's measured float64 rounding: said so, not "yes"
    rounding = dataclasses.replace(report, max_error=report.bound + report.rounding / 2)
    assert rounding.verdict == "up to rounding" and rounding.within_bound
    assert "within bound: up to rounding (the max error exceeds the bound by" in str(rounding)


def test_the_rounding_allowed_for_is_measured_at_the_nodes():
    net = construct(sin3, (-3.0, 3.0), 0.05)
    c = net.construction
    from chainrule.approx import evaluate

    at_nodes = np.abs(evaluate(net, c.node_points()) - c.values).max()
    report = error_report(net, sin3)
    assert report.rounding >= 2 * at_nodes and report.rounding < 1e-12


def test_non_finite_values_of_f_on_the_measurement_grid_are_an_error():
    def f(x):
        return 1 / (x[:, 0] - 0.05)  # finite at the nodes 0, 0.1, ..., inf at 0.05

    net = construct(f, (0.0, 1.0), 0.1)
    with pytest.raises(ValueError, match=r"f is not finite at x = \(0.05\)"):
        error_report(net, f)
