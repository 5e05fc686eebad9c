"""Universal function approximation: the lecture's constructive proof, as actual networks.

The lecture shows ("exceedingly loosely speaking") that a 3-layer ReLU network approximates
any continuous f on a compact set: layer 1 makes building-block segments ReLU(x - n d),
layer 2 makes triangles of height 1 and width 2d centred at the multiples of d, layer 3
scales the triangle at n d by f(n d) and sums. Here that network is built, exactly:

    net = construct(f, (lo, hi), d)            # a chainrule.nn.Sequential of Linear / ReLU
    net(x)                                     # (N, 1) -> (N, M): the interpolant of f
    error_report(net, f)                       # max / RMS error, the bound d^2/8 max|f''|

and the simplifications are removed: any interval, negative values (f - f_min, f_min in the
last bias), discontinuities (nodes at x0 -+ eps), vector output (one last-layer row per
component), vector input - rigorously with the hat functions of a Freudenthal triangulation
(``method="simplex"``), or with the lecture's pyramids (``method="pyramid"``), which do not
converge for K >= 2. Depth: ``count_linear_regions`` and ``depth_demo`` (pieces multiply
with depth). ``compare_trained`` trains the same architecture from samples instead.
"""

from .compare import Comparison, compare_trained
from .construct import METHODS, construct
from .depth import DepthRow, deep_square, depth_demo, format_depth_table, sawtooth, shallow
from .error import (
    MAX_POINTS,
    MAX_WORK,
    ErrorReport,
    SweepResult,
    building_blocks,
    convergence_order,
    error_report,
    partition_of_unity,
    sweep,
)
from .grid import MAX_NEURONS, MAX_PARAMETERS, BudgetError, ConstructedNetwork, Construction
from .plot import (
    plot_approximation,
    plot_convergence,
    plot_depth,
    plot_methods,
)
from .regions import breakpoints, count_linear_regions, evaluate, knots
from .simplex import freudenthal_hat

__all__ = [
    "construct",
    "ConstructedNetwork",
    "Construction",
    "METHODS",
    "MAX_NEURONS",
    "MAX_PARAMETERS",
    "MAX_POINTS",
    "MAX_WORK",
    "BudgetError",
    "evaluate",
    "error_report",
    "ErrorReport",
    "sweep",
    "SweepResult",
    "convergence_order",
    "knots",
    "breakpoints",
    "count_linear_regions",
    "sawtooth",
    "deep_square",
    "shallow",
    "depth_demo",
    "DepthRow",
    "format_depth_table",
    "compare_trained",
    "Comparison",
    "freudenthal_hat",
    "building_blocks",
    "partition_of_unity",
    "plot_approximation",
    "plot_methods",
    "plot_convergence",
    "plot_depth",
]
