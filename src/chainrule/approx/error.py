"""The error of a network against f, measured on a fine grid and compared with theory.

Piecewise-linear interpolation on the Freudenthal simplices of a grid with steps
d = (d_1, ..., d_K): on a simplex with vertices v_j and barycentric coordinates lambda_j,
Taylor's theorem at x gives

    f(x) - sum_j lambda_j f(v_j) = -1/2 sum_j lambda_j (v_j - x)^T f''(xi_j) (v_j - x)

and in grid units the vertices lie on a sphere of radius sqrt(K)/2 (the cube's main
diagonal is a diameter), so sum_j lambda_j |D^-1 (v_j - x)|^2 <= K/4 and

    smooth bound      |f - I f| <= (K/8) max_x |D f''(x) D|_2  <=  (K/8) d^2 max_x |f''(x)|_2
    Lipschitz bound   |f - I f| <= (sqrt(K)/2) max_x |D grad f(x)|_2  <=  (sqrt(K)/2) d max |grad f|

with d the largest step (K = 1: d^2/8 max|f''| and d/2 max|f'|; the reported bounds are the
right-hand forms). Both are tight (x1 x2 and |x|^2 reach the first). f'' and grad f are
estimated by central differences on the evaluation grid (or given), so the bound is as good
as that estimate.
The bound that is reported is the smaller of the two: the Lipschitz one wins for f with
kinks. For the pyramid method (no partition of unity) these bounds do not hold, and the
report shows it.

Honest verdicts: an estimate is only as good as the grid, so each is compared with the
same estimate on every other point (twice the step). When it grows by more than 30% - f''
or f' unbounded (tan across its pole, sqrt at 0, a kink for f'') or f varying faster than
the grid resolves - that bound is not claimed. The estimates are upper estimates (plus
their float64 rounding), and the verdict allows for the network's own float64 rounding,
measured at grid nodes, where it equals f exactly in exact arithmetic: "yes" only when the
max error is at most the bound, "up to rounding" when it exceeds it by less than that.

Width, depth and parameters are reported with the error: the lecture's point that the
complexity grows with the variation of f (smaller d), and multiplies with the input
dimension ((1/d)^K nodes) and the output dimension (one last layer row per component).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import no_grad
from ..nn import Linear, Module, Sequential
from .construct import construct
from .grid import (
    MAX_NEURONS,
    MAX_PARAMETERS,
    BudgetError,
    budget,
    check_memory,
    grid_points,
    parse_domain,
    sample,
)
from .regions import evaluate

__all__ = [
    "ErrorReport",
    "error_report",
    "MAX_POINTS",
    "MAX_WORK",
    "SweepResult",
    "sweep",
    "convergence_order",
    "building_blocks",
    "partition_of_unity",
]

_EXACT = 1e-11  # an error this small is rounding: the network is exact there, no order
# budgets of the measurement: evaluation points, and multiply-adds of a dense evaluation
# (K >= 2; 1e11 takes about half a minute on two cores)
MAX_POINTS = 2_000_000
MAX_WORK = 1e11


@dataclass(frozen=True)
class ErrorReport:
    """The measured error of a network against f, the theoretical bound and the network's size."""

    inputs: int
    outputs: int
    method: str
    d: float | None  # largest grid step, None for a network that was not constructed
    widths: tuple[int, ...]  # (K, hidden widths..., M)
    depth: int  # Linear layers (the lecture's "3-layer network")
    neurons: int  # hidden neurons
    parameters: int
    points: int  # evaluation points
    max_error: float
    rms_error: float
    worst_x: tuple[float, ...]
    smooth_bound: float | None
    lipschitz_bound: float | None
    second_derivative: float | None  # max |f''|_2 (as given, or estimated plus its rounding)
    lipschitz_constant: float | None  # max |grad f|_2 (likewise)
    max_error_per_output: tuple[float, ...] = field(default=())
    rounding: float = 0.0  # the float64 rounding of the network allowed for in the verdict
    unsettled: tuple[str, ...] = ()  # estimates not settled under refinement: bounds dropped

    @property
    def bound(self) -> float | None:
        bounds = [b for b in (self.smooth_bound, self.lipschitz_bound) if b is not None]
        return min(bounds) if bounds else None

    @property
    def bound_kind(self) -> str | None:
        if self.bound is None:
            return None
        return "smooth" if self.bound == self.smooth_bound else "Lipschitz"

    @property
    def verdict(self) -> str | None:
        """ "yes" (max error <= bound), "up to rounding" (by less than ``rounding``), "NO",
        or None when no bound holds."""
        b = self.bound
        if b is None:
            return None
        if self.max_error <= b:
            return "yes"
        return "up to rounding" if self.max_error <= b + self.rounding else "NO"

    @property
    def within_bound(self) -> bool | None:
        """Whether the max error is within the bound, allowing for float64 rounding."""
        verdict = self.verdict
        return None if verdict is None else verdict != "NO"

    def __str__(self) -> str:
        k = self.inputs
        widths = " -> ".join(str(w) for w in self.widths)
        where = ", ".join(f"{v:.4g}" for v in self.worst_x)
        width = max(self.widths[1:-1], default=0)
        lines = [
            f"network:   depth {self.depth} (Linear layers), width {width:,}"
            f" (widths {widths}), {self.neurons:,} hidden neurons, {self.parameters:,} parameters",
            f"error:     max {self.max_error:.3e} at x = ({where}), "
            f"rms {self.rms_error:.3e}  ({self.points:,} points)",
        ]
        if self.bound is not None:
            parts = []
            if self.smooth_bound is not None:
                formula = "d^2/8 max|f''|" if k == 1 else f"({k}/8) d^2 max|f''|"
                parts.append(
                    f"{formula} = {self.smooth_bound:.3e} (max|f''| ~ {self.second_derivative:.4g})"
                )
            if self.lipschitz_bound is not None:
                formula = "d/2 max|f'|" if k == 1 else f"(sqrt({k})/2) d max|grad f|"
                parts.append(
                    f"{formula} = {self.lipschitz_bound:.3e} "
                    f"(max|f'| ~ {self.lipschitz_constant:.4g})"
                )
            verdict = self.verdict
            if verdict == "up to rounding":
                verdict += (
                    f" (the max error exceeds the bound by {self.max_error - self.bound:.2g}, "
                    f"less than the float64 rounding {self.rounding:.2g} of the network)"
                )
            lines.append(
                f"bound:     {self.bound:.3e} ({self.bound_kind}); within bound: {verdict}"
            )
            lines += [f"           {p}" for p in parts]
        elif self.unsettled:
            lines.append(
                "bound:     none holds: f is not smooth or not Lipschitz on this grid; "
                "within bound: no bound to be within"
            )
        lines += [f"           not claimed: {u}" for u in self.unsettled]
        return "\n".join(lines)


def _network_size(net: Module) -> tuple[tuple[int, ...], int, int, int]:
    linears = [m for m in net.modules() if isinstance(m, Linear)]
    if not linears:
        raise TypeError(f"expected a network with Linear layers, got {type(net).__name__}")
    widths = (linears[0].in_features, *(m.out_features for m in linears))
    return widths, len(linears), sum(widths[1:-1]), net.num_parameters()


def _grid_sizes(net: Module, box: tuple[tuple[float, float], ...], points: Any) -> list[int]:
    k = len(box)
    if points is not None:
        sizes = list(np.broadcast_to(np.asarray(points, dtype=int), (k,)))
        if min(sizes) < 3:
            raise ValueError(f"points must be >= 3 per direction, got {points!r}")
        return [int(s) for s in sizes]
    construction = getattr(net, "construction", None)
    if construction is None:
        m = 20_001 if k == 1 else max(3, int(100_000 ** (1 / k)))
        return [m] * k
    cells = [len(g) - 1 for g in construction.nodes]
    if k == 1:
        return [min(200_001, max(2_001, 8 * cells[0] + 1))]
    # K >= 2: a dense forward pass; as many points per cell (8, 4 or 2: cell centres and
    # edge midpoints, where interpolation errs most) as ~1e10 multiply-adds allow
    work = net.num_parameters()
    for per_cell in (8, 4, 2):
        sizes = [per_cell * c + 1 for c in cells]
        if math.prod(sizes) * work <= 1e10 and math.prod(sizes) <= 250_000:
            return sizes
    return sizes


def _check_measurement(
    sizes: list[int], outputs: int, parameters: int, max_points: int, max_work: float, given: bool
) -> None:
    """Refuse a measurement grid over the budgets before any array of its size exists."""
    k, count = len(sizes), math.prod(sizes)
    grid = " x ".join(f"{m:,}" for m in sizes) + " = " if k > 1 else ""
    if count > max_points:
        raise BudgetError(
            f"measuring the error on {grid}{count:,} points is more than max_points = "
            f"{max_points:,}: use fewer points per direction, or raise max_points"
        )
    if given and k >= 2 and count * parameters > max_work:
        raise BudgetError(
            f"measuring the error on {count:,} points takes {count:,} x {parameters:,} "
            f"parameters = {count * parameters:.2g} multiply-adds, more than max_work = "
            f"{max_work:.2g} (about half a minute): use fewer points per direction, or raise "
            "max_work"
        )
    # the points, f and the network there, the errors, the difference stencils
    check_memory(
        8 * count * (4 * k + 2 * k * k + 8 * outputs + 4),
        f"measuring the error on {count:,} points",
        "use fewer points per direction",
    )


@dataclass(frozen=True)
class _Estimate:
    second: float  # max |f''|_2
    slope: float  # max |grad f|_2
    where_second: tuple[float, ...]  # where they are largest
    where_slope: tuple[float, ...]


def _estimate(
    values: np.ndarray, axes: Sequence[np.ndarray], exclude: Sequence[tuple[float, float]]
) -> _Estimate:
    """max |f''|_2 and max |grad f|_2 by central differences on the grid ``axes``.

    values: (m_1, ..., m_K, M), f on the grid (NaN where excluded); stencils reaching into
    an excluded interval (a bridged jump) say nothing about f'' and are left out.
    """
    valid = np.ones([a.size - 2 for a in axes], dtype=bool)
    for lo, hi in exclude:
        t = axes[0]
        valid &= ~((t[:-2] < hi) & (t[2:] > lo))
    steps = [float(a[1] - a[0]) for a in axes]
    second, slope, i, j = _differences(values, steps, valid)
    inner = valid.shape

    def where(flat: int) -> tuple[float, ...]:
        if flat < 0:
            return ()
        index = np.unravel_index(flat, inner)
        return tuple(float(a[n + 1]) for a, n in zip(axes, index, strict=True))

    return _Estimate(second, slope, where(i), where(j))


def _differences(
    values: np.ndarray, steps: Sequence[float], valid: np.ndarray
) -> tuple[float, float, int, int]:
    """(max |f''|_2, max |grad f|_2, and the flat interior indices where they are largest)
    by central differences at interior grid points.

    values: (m_1, ..., m_K, M); steps: the grid steps; valid: mask over interior points
    whose stencil stays clear of an excluded interval.
    """
    k = len(steps)
    inner = (slice(1, -1),) * k

    def shifted(offsets: dict[int, int]) -> np.ndarray:
        index = tuple(
            slice(1 + offsets.get(i, 0), values.shape[i] - 1 + offsets.get(i, 0)) for i in range(k)
        )
        return values[index]

    centre = values[inner]
    hess = np.empty((*centre.shape, k, k))
    grad = np.empty((*centre.shape, k))
    for i in range(k):
        plus, minus = shifted({i: 1}), shifted({i: -1})
        hess[..., i, i] = (plus - 2 * centre + minus) / steps[i] ** 2
        grad[..., i] = (plus - minus) / (2 * steps[i])
        for j in range(i):
            mixed = (
                shifted({i: 1, j: 1})
                - shifted({i: 1, j: -1})
                - shifted({i: -1, j: 1})
                + shifted({i: -1, j: -1})
            ) / (4 * steps[i] * steps[j])
            hess[..., i, j] = hess[..., j, i] = mixed
    mask = valid[..., None] & np.ones(centre.shape[-1], dtype=bool)
    if not mask.any():
        return math.nan, math.nan, -1, -1
    norms = (
        np.abs(np.linalg.eigvalsh(hess[mask])).max(axis=-1)
        if k > 1
        else np.abs(hess[mask][..., 0, 0])
    )
    slopes = np.linalg.norm(grad[mask], axis=-1)
    points = np.flatnonzero(mask) // centre.shape[-1]  # the interior point of each entry
    return (
        float(norms.max()),
        float(slopes.max()),
        int(points[np.argmax(norms)]),
        int(points[np.argmax(slopes)]),
    )


# an estimate that grows by more than this when the grid step halves is not settled
_SETTLED = 1.3


def _settled(
    name: str, fine: float, coarse: float | None, noise: float, where: tuple[float, ...]
) -> str:
    """'' when the estimate on the evaluation grid agrees with the one at twice the step,
    else why the bound that rests on it is not claimed."""
    if coarse is None or not math.isfinite(fine) or fine <= _SETTLED * coarse + noise:
        return ""
    at = ", ".join(f"{v:.4g}" for v in where)
    bound, singular = ("smooth", "kink") if name == "f''" else ("Lipschitz", "cusp")
    return (
        f"the {bound} bound: max|{name}| grows from {coarse:.3g} to {fine:.3g} when the grid "
        f"step halves (largest near x = ({at})): {name} is unbounded there (a pole, or a "
        f"{singular}), or f varies faster than the grid resolves (use more points)"
    )


def _network_rounding(net: Module, construction: Any, scale: float) -> float:
    """The float64 rounding of the network's values, as measured at (up to 256 of) its grid
    nodes, where the interpolant equals f in exact arithmetic; twice that (two building blocks
    meet between nodes), and at least 8 eps max|f|."""
    floor = 8 * float(np.finfo(np.float64).eps) * scale
    if construction is None:
        return floor
    nodes = construction.node_points()
    values = construction.values.reshape(nodes.shape[0], -1)
    pick = np.unique(np.linspace(0, nodes.shape[0] - 1, min(256, nodes.shape[0])).astype(int))
    out = evaluate(net, nodes[pick]).astype(float)
    return max(floor, 2 * float(np.abs(out - values[pick]).max(initial=0.0)))


def building_blocks(net: Sequential, x: Any) -> np.ndarray:
    """The last hidden layer's outputs at x (N, K): (N, width) - the triangles / hats / pyramids.

    The network is ``building_blocks(net, x) @ W.T + b`` with (W, b) its last Linear layer.
    """
    if not isinstance(net, Sequential) or not isinstance(net.layers[-1], Linear):
        raise TypeError("building_blocks needs a Sequential that ends with a Linear layer")
    h: Any = np.asarray(x, dtype=float)
    with no_grad():
        for layer in net.layers[:-1]:
            h = layer(h)
    return np.asarray(getattr(h, "data", h))


def partition_of_unity(net: Sequential, points_per_cell: int = 2) -> tuple[float, float]:
    """(min, max) over the domain of the sum of the building blocks (hats, pyramids).

    The bounds for interpolation rest on sum_v phi_v = 1 (then the network is an average of
    f at nearby nodes). Measured on a grid through the nodes, the edge midpoints and the cell
    centres (``points_per_cell`` = 2): (1, 1) for the lecture's 1-D triangles and for the
    simplex hats; (0, 1) for the lecture's pyramids when K >= 2 - they vanish together at
    every cell centre, where the network returns f_min whatever f is.
    """
    c = getattr(net, "construction", None)
    if c is None:
        raise ValueError("partition_of_unity needs a constructed network (approx.construct)")
    axes = [
        np.unique(
            np.concatenate(
                [np.linspace(a, b, points_per_cell + 1) for a, b in zip(g[:-1], g[1:], strict=True)]
            )
        )
        for g in c.nodes
    ]
    x = grid_points(axes)
    total = building_blocks(net, x).sum(axis=1)
    return float(total.min()), float(total.max())


def error_report(
    net: Module,
    f: Callable[[np.ndarray], Any],
    domain: Any = None,
    *,
    points: int | Sequence[int] | None = None,
    d: float | Sequence[float] | None = None,
    second_derivative: float | None = None,
    lipschitz: float | None = None,
    exclude: Sequence[tuple[float, float]] | None = None,
    max_points: int = MAX_POINTS,
    max_work: float = MAX_WORK,
) -> ErrorReport:
    """Max and RMS error of ``net`` against f on a fine grid of ``domain``, and the bound.

    ``domain`` defaults to the constructed network's; ``points`` per direction to a grid
    with several points per cell; ``d`` (the grid step for the bound) to the construction's.
    ``second_derivative`` / ``lipschitz``: known bounds on max |f''|_2 / max |grad f|_2
    (otherwise estimated by central differences). ``exclude``: open intervals (K = 1) left
    out of the measurement - by default those bridging the construction's discontinuities.
    Refused before any allocation (BudgetError): more than ``max_points`` points, more than
    ``max_work`` multiply-adds for a network of K >= 2 inputs, or more memory than available.
    """
    max_points = budget(max_points, "max_points")
    construction = getattr(net, "construction", None)
    if domain is None:
        if construction is None:
            raise ValueError("error_report needs the domain of a network that was not constructed")
        domain = construction.domain
    box = parse_domain(domain)
    k = len(box)
    widths, depth, neurons, parameters = _network_size(net)
    if widths[0] != k:
        raise ValueError(f"the network takes {widths[0]} inputs but the domain has {k}")
    if exclude is None:
        exclude = construction.excluded if construction is not None else ()
    if exclude and k != 1:
        raise ValueError("exclude (intervals) is for one input only")

    sizes = _grid_sizes(net, box, points)
    _check_measurement(sizes, widths[-1], parameters, max_points, max_work, points is not None)
    axes = [np.linspace(lo, hi, m) for (lo, hi), m in zip(box, sizes, strict=True)]
    x = grid_points(axes)
    keep = np.ones(x.shape[0], dtype=bool)
    for lo, hi in exclude:  # f need not even be defined at a jump
        keep &= ~((x[:, 0] > lo) & (x[:, 0] < hi))
    kept = sample(f, x[keep])
    out = evaluate(net, x[keep]).astype(float)
    if out.shape != kept.shape:
        raise ValueError(f"the network returns shape {out.shape} but f returns {kept.shape}")
    y = np.full((x.shape[0], kept.shape[1]), np.nan)
    y[keep] = kept
    err = np.abs(out - kept)
    worst = int(np.argmax(err.max(axis=1)))

    spacing: tuple[float, ...] | None = None
    if d is not None:
        spacing = tuple(np.broadcast_to(np.asarray(d, dtype=float), (k,)).tolist())
    elif construction is not None:
        spacing = tuple(construction.spacing)
    smooth = lip = None
    second, slope = second_derivative, lipschitz
    second_upper, slope_upper = second, slope  # what the bounds use
    unsettled: list[str] = []
    scale = float(np.nanmax(np.abs(y), initial=0.0))
    if spacing is not None:
        if second is None or slope is None:
            grid = y.reshape(*(a.size for a in axes), -1)
            fine = _estimate(grid, axes, exclude)
            coarse = None
            if all(a.size >= 5 for a in axes):  # the same estimates at twice the step
                every_other = (slice(None, None, 2),) * k
                coarse = _estimate(grid[every_other], [a[::2] for a in axes], exclude)
            h = min(float(a[1] - a[0]) for a in axes)
            eps = float(np.finfo(np.float64).eps)
            noise_second, noise_slope = 16 * k * eps * scale / h**2, 4 * eps * scale / h
            if second is None:
                second = fine.second
                why = _settled(
                    "f''",
                    fine.second,
                    coarse.second if coarse else None,
                    noise_second,
                    fine.where_second,
                )
                second_upper = math.nan if why else second + noise_second
                unsettled += [why] if why else []
            if slope is None:
                slope = fine.slope
                why = _settled(
                    "f'",
                    fine.slope,
                    coarse.slope if coarse else None,
                    noise_slope,
                    fine.where_slope,
                )
                slope_upper = math.nan if why else slope + noise_slope
                unsettled += [why] if why else []
        dmax = max(spacing)
        assert second_upper is not None and slope_upper is not None
        smooth = k / 8 * dmax**2 * float(second_upper) if math.isfinite(second_upper) else None
        lip = math.sqrt(k) / 2 * dmax * float(slope_upper) if math.isfinite(slope_upper) else None
    return ErrorReport(
        inputs=k,
        outputs=y.shape[1],
        method=construction.method if construction is not None else "network",
        d=None if spacing is None else max(spacing),
        widths=widths,
        depth=depth,
        neurons=neurons,
        parameters=parameters,
        points=int(keep.sum()),
        max_error=float(err.max()),
        rms_error=float(np.sqrt(np.mean(err**2))),
        worst_x=tuple(float(v) for v in x[keep][worst]),
        smooth_bound=smooth,
        lipschitz_bound=lip,
        second_derivative=_shown(second, second_upper),
        lipschitz_constant=_shown(slope, slope_upper),
        max_error_per_output=tuple(float(v) for v in err.max(axis=0)),
        rounding=_network_rounding(net, construction, scale),
        unsettled=tuple(unsettled),
    )


def _shown(value: float | None, upper: float | None) -> float | None:
    """The estimate a bound used (with its rounding), or the raw one where no bound is claimed."""
    if upper is not None and math.isfinite(upper):
        return float(upper)
    return None if value is None else float(value)


def convergence_order(ds: Sequence[float], errors: Sequence[float]) -> float:
    """The slope p of log(error) against log(d), least squares: error ~ C d^p."""
    d = np.asarray(ds, dtype=float)
    e = np.asarray(errors, dtype=float)
    if d.shape != e.shape or d.size < 2:
        raise ValueError("convergence_order needs at least two (d, error) pairs")
    if np.any(d <= 0) or np.any(e <= 0):
        raise ValueError(
            "convergence_order needs positive d and errors (an exact fit has no order)"
        )
    return float(np.polyfit(np.log(d), np.log(e), 1)[0])


@dataclass(frozen=True)
class SweepResult:
    """Error reports for a sequence of d, with the observed order of convergence."""

    reports: tuple[ErrorReport, ...]

    @property
    def ds(self) -> list[float]:
        return [float(r.d) for r in self.reports]  # type: ignore[arg-type]

    @property
    def order(self) -> float:
        """The fitted order (nan when the network is exact, up to rounding, at some d)."""
        errors = [r.max_error for r in self.reports]
        if min(errors) <= _EXACT:
            return math.nan
        return convergence_order(self.ds, errors)

    def orders(self) -> list[float]:
        """The order between each d and the next (nan where an error is 0 up to rounding)."""
        r = self.reports
        out = []
        for a, b in zip(r[:-1], r[1:], strict=True):
            if min(a.max_error, b.max_error) <= _EXACT:
                out.append(math.nan)
            else:
                out.append(math.log(a.max_error / b.max_error) / math.log(a.d / b.d))  # type: ignore[operator]
        return out

    def table(self) -> str:
        """A Markdown table: d, size, errors, bound and the order between rows."""
        lines = [
            "| d | neurons | parameters | max error | rms error | bound | within | order |",
            "|---|---|---|---|---|---|---|---|",
        ]
        orders = ["", *("-" if math.isnan(o) else f"{o:.2f}" for o in self.orders())]
        for r, o in zip(self.reports, orders, strict=True):
            bound = "-" if r.bound is None else f"{r.bound:.2e}"
            within = "-" if r.verdict is None else r.verdict
            lines.append(
                f"| {r.d:.4g} | {r.neurons:,} | {r.parameters:,} | {r.max_error:.2e} "
                f"| {r.rms_error:.2e} | {bound} | {within} | {o} |"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        order = self.order
        said = "- (exact up to rounding)" if math.isnan(order) else f"{order:.2f}"
        return f"{self.table()}\nobserved order of convergence: {said}"


def sweep(
    f: Callable[[np.ndarray], Any],
    domain: Any,
    ds: Sequence[float],
    *,
    method: str = "simplex",
    discontinuities: Sequence[float] = (),
    eps: float | None = None,
    max_neurons: int = MAX_NEURONS,
    max_parameters: int = MAX_PARAMETERS,
    points: int | Sequence[int] | None = None,
    max_points: int = MAX_POINTS,
    second_derivative: float | None = None,
    lipschitz: float | None = None,
) -> SweepResult:
    """Construct and measure the network for each d in ``ds`` (at least two)."""
    if len(ds) < 2:
        raise ValueError(f"a sweep needs at least two values of d, got {list(ds)}")
    reports = []
    for d in ds:
        net = construct(
            f,
            domain,
            d,
            discontinuities,
            method=method,
            eps=eps,
            max_neurons=max_neurons,
            max_parameters=max_parameters,
        )
        reports.append(
            error_report(
                net,
                f,
                points=points,
                max_points=max_points,
                second_derivative=second_derivative,
                lipschitz=lipschitz,
            )
        )
    return SweepResult(tuple(reports))
