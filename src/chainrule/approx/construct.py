"""The lecture's constructive proof, built: a ReLU network that IS the piecewise-linear interpolant.

In one dimension (the lecture's picture), on the grid x_0 < x_1 < ... < x_N with steps
h_n = x_{n+1} - x_n:

    layer 1   r_n(x) = ReLU(x - x_n)                       identity weights, shifting biases:
                                                            the N + 1 building-block segments
    layer 2   tri_n  = ReLU(r_{n-1}/h_{n-1} - r_n (1/h_{n-1} + 1/h_n) + r_{n+1}/h_n)
                                                            a triangle of height 1 at x_n, zero
                                                            at every other node
    layer 3   y      = sum_n (f(x_n) - f_min) tri_n + f_min
                                                            each triangle scaled by f at its node

The boundary triangles are halves that saturate: tri_0 = ReLU(1 - (r_0 - r_1)/h_0) is 1 left
of x_0 and tri_N = ReLU((r_{N-1} - r_N)/h_{N-1}) is 1 right of x_N. So the triangles sum to 1
everywhere (a partition of unity) and the network equals the interpolant of f on the whole
closed domain - exact at every node - and f(clip(x)) outside it.

Negative values: the lecture approximates f - f_min (non-negative, so a final ReLU would
change nothing), then puts f_min back in the last bias and drops the last ReLU.

Discontinuities at x0: two extra nodes x0 - eps and x0 + eps (two extra branches in each
hidden layer) so the network is the interpolant of each smooth piece, exact outside
(x0 - eps, x0 + eps), and makes its jump inside that interval.

Vector output: the last layer is replicated per output component; the hidden layers
(the triangles) are shared. Vector input: :mod:`chainrule.approx.simplex` (rigorous,
default) and :mod:`chainrule.approx.pyramid` (the lecture's literal recipe).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn import Linear, Parameter, ReLU, Sequential

__all__ = [
    "MAX_NEURONS",
    "MAX_PARAMETERS",
    "METHODS",
    "BudgetError",
    "available_memory",
    "check_memory",
    "Construction",
    "ConstructedNetwork",
    "construct",
    "parse_domain",
    "parse_spacing",
    "grid_nodes",
]

METHODS = ("simplex", "pyramid")
# budgets: the lecture's layer 2 is dense, so parameters grow like (nodes)^2 in 1-D
MAX_NEURONS = 100_000
MAX_PARAMETERS = 25_000_000

Domain = tuple[tuple[float, float], ...]


class BudgetError(ValueError):
    """The network asked for needs more neurons or parameters than allowed."""


@dataclass(frozen=True, eq=False)
class Construction:
    """How a network was constructed: the grid, the values of f on it and the method.

    ``nodes[i]``: the grid coordinates along input direction i (1-D: includes x0 -+ eps);
    ``values``: f at the grid nodes, shape (n_1, ..., n_K, M) (grid in 'ij' order);
    ``spacing[i]``: the largest grid step along direction i (<= the requested d).
    """

    method: str  # "lecture" (K = 1), "simplex" or "pyramid"
    domain: Domain
    spacing: tuple[float, ...]
    nodes: tuple[np.ndarray, ...]
    values: np.ndarray
    f_min: np.ndarray
    discontinuities: tuple[float, ...] = ()
    eps: float = 0.0

    @property
    def input_dim(self) -> int:
        return len(self.domain)

    @property
    def output_dim(self) -> int:
        return int(self.values.shape[-1])

    @property
    def excluded(self) -> tuple[tuple[float, float], ...]:
        """The open intervals (x0 - eps, x0 + eps) where a discontinuity is bridged."""
        return tuple((x0 - self.eps, x0 + self.eps) for x0 in self.discontinuities)

    def node_points(self) -> np.ndarray:
        """All grid nodes as an array of shape (n_1 ... n_K, K), in the order of ``values``."""
        return grid_points(self.nodes)


class ConstructedNetwork(Sequential):
    """A Sequential of Linear and ReLU layers set by the construction; ``.construction`` says how.

    Call it on x of shape (N, K) to get (N, M). Its parameters are ordinary float64
    Parameters: inspect them, or train them further.
    """

    def __init__(self, *layers: Any, construction: Construction) -> None:
        super().__init__(*layers)
        self.construction = construction

    @property
    def widths(self) -> tuple[int, ...]:
        """Input size, each layer's output size: (K, w_1, ..., M)."""
        return layer_widths(self)


def layer_widths(net: Sequential) -> tuple[int, ...]:
    linears = [m for m in net.layers if isinstance(m, Linear)]
    return (linears[0].in_features, *(m.out_features for m in linears))


# --------------------------------------------------------------------------------- checking


def parse_domain(domain: Any) -> Domain:
    """((lo_1, hi_1), ..., (lo_K, hi_K)) from ``(lo, hi)`` (K = 1) or a list of K pairs."""
    try:
        arr = np.asarray(domain, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"domain must be (lo, hi) or a list of (lo, hi) pairs, got {domain!r}"
        ) from None
    if arr.shape == (2,):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"domain must be (lo, hi) or a list of (lo, hi) pairs, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"domain must be finite, got {arr.tolist()}")
    for i, (lo, hi) in enumerate(arr):
        if not lo < hi:
            what = "empty" if lo == hi else "inverted"
            raise ValueError(f"domain of input {i} is {what}: [{lo:g}, {hi:g}] (need lo < hi)")
    return tuple((float(lo), float(hi)) for lo, hi in arr)


def parse_spacing(d: Any, k: int) -> tuple[float, ...]:
    """The grid spacing d per direction: a positive number, or K of them."""
    try:
        arr = np.asarray(d, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"d must be a positive number, got {d!r}") from None
    if arr.ndim == 0:
        arr = np.full(k, float(arr))
    if arr.shape != (k,):
        also = "" if k == 1 else f" or {k} numbers (one per input)"
        raise ValueError(f"d must be one number{also}, got {d!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"d must be positive and finite, got {d!r}")
    return tuple(float(v) for v in arr)


def intervals(lo: float, hi: float, d: float) -> int:
    """The number of grid intervals N = ceil((hi - lo) / d), so that the step is <= d."""
    ratio = (hi - lo) / d
    if ratio > 1e12:
        return int(1e12)  # only ever compared against a budget
    return max(1, math.ceil(ratio * (1 - 1e-12)))


def grid_nodes(domain: Domain, spacing: Sequence[float]) -> tuple[np.ndarray, ...]:
    """Uniform nodes per direction with step <= d, both ends included."""
    return tuple(
        np.linspace(lo, hi, intervals(lo, hi, d) + 1)
        for (lo, hi), d in zip(domain, spacing, strict=True)
    )


def grid_points(axes: Sequence[np.ndarray]) -> np.ndarray:
    """The tensor grid of the 1-D ``axes`` as points (n_1 ... n_K, K), in 'ij' order."""
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def sample_grid(
    f: Callable[[np.ndarray], Any],
    box: Domain,
    spacing: Sequence[float],
    what: str,
    max_neurons: int,
    max_parameters: int,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The grid nodes of ``box`` (steps <= spacing) and f at all of them, (n_1 ... n_K, M).

    A grid with more nodes than ``max_neurons`` is refused before any array of its size.
    """
    count = math.prod(intervals(lo, hi, d) + 1 for (lo, hi), d in zip(box, spacing, strict=True))
    check_budget(count, 0, max_neurons, max_parameters, what)  # before any array of that size
    nodes = grid_nodes(box, spacing)
    return nodes, sample(f, grid_points(nodes))


def grid_construction(
    method: str, box: Domain, nodes: tuple[np.ndarray, ...], values: np.ndarray
) -> Construction:
    """The record of a K-input construction from f's ``values`` (n_1 ... n_K, M) at ``nodes``."""
    return Construction(
        method=method,
        domain=box,
        spacing=tuple(float(g[1] - g[0]) for g in nodes),
        nodes=nodes,
        values=values.reshape(*(g.size for g in nodes), -1),
        f_min=values.min(axis=0),
    )


def sample(f: Callable[[np.ndarray], Any], x: np.ndarray, what: str = "f") -> np.ndarray:
    """f at the points x (N, K) as a float64 array (N, M); clear errors for bad f."""
    try:
        with np.errstate(all="ignore"):  # a nan or inf is reported below, with its x
            y = f(x)
    except (ValueError, TypeError, ArithmeticError) as e:
        raise ValueError(f"{what} failed on an array of shape {x.shape}: {e}") from e
    y = np.asarray(getattr(y, "data", y), dtype=float)
    n = x.shape[0]
    if y.ndim == 0:
        y = np.full((n, 1), float(y))
    elif y.ndim == 1 and y.shape[0] == n:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(
            f"{what} must map an array of shape (N, K) = {x.shape} to (N,) or (N, M); "
            f"it returned shape {np.shape(y)}"
        )
    bad = ~np.all(np.isfinite(y), axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        where = ", ".join(f"{v:.6g}" for v in x[i])
        raise ValueError(
            f"{what} is not finite at x = ({where}) ({int(bad.sum())} of {n} points): "
            f"got {y[i].tolist()}; the construction needs finite values on the whole domain"
        )
    return y


def budget(value: Any, name: str) -> int:
    """A budget such as max_neurons as an int >= 1 (1e8 is accepted), or a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if not (math.isfinite(value) and float(value).is_integer() and value >= 1):
        raise ValueError(f"{name} must be a positive integer (at least 1), got {value!r}")
    return int(value)


def available_memory() -> int | None:
    """The bytes of memory available to a new allocation now (Linux: MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse work that would need more memory than is available, before allocating it."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise BudgetError(
            f"{what} would need about {_size(nbytes)} of memory, more than the "
            f"{_size(free)} available: {fix}"
        )


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.1f} MiB"


# bytes of memory per parameter (and per grid node) while a network is built and measured:
# the float64 weights, the 1-D evaluation at the knots (n x n twice) and temporaries
BYTES_PER_PARAMETER = 64


def check_budget(
    neurons: int, parameters: int, max_neurons: int, max_parameters: int, what: str
) -> None:
    """Refuse a network over the neuron or parameter budget, or over the memory available."""
    max_neurons = budget(max_neurons, "max_neurons")
    max_parameters = budget(max_parameters, "max_parameters")
    if neurons > max_neurons:
        raise BudgetError(
            f"{what} would need {neurons:,} hidden neurons, more than max_neurons = "
            f"{max_neurons:,}: use a larger d or a smaller domain, or raise max_neurons"
        )
    if parameters > max_parameters:
        raise BudgetError(
            f"{what} would need {parameters:,} parameters ({parameters * 8 / 2**20:,.0f} MiB in "
            f"float64), more than max_parameters = {max_parameters:,}: use a larger d or a "
            f"smaller domain, or raise max_parameters"
        )
    check_memory(
        BYTES_PER_PARAMETER * (parameters + neurons),
        f"{what} ({neurons:,} grid nodes)"
        if not parameters
        else f"{what} ({neurons:,} hidden neurons, {parameters:,} parameters)",
        "use a larger d or a smaller domain",
    )


def dense_linear(weight: np.ndarray, bias: np.ndarray) -> Linear:
    """A float64 Linear layer holding exactly these weights (out, in) and bias (out,)."""
    layer = Linear(1, 1, dtype=np.float64)  # no random init of a big matrix only to overwrite it
    layer.weight = Parameter(np.ascontiguousarray(weight, dtype=np.float64))
    layer.bias = Parameter(np.ascontiguousarray(bias, dtype=np.float64))
    layer.out_features, layer.in_features = weight.shape
    return layer


# ---------------------------------------------------------------------------- construction


def construct(
    f: Callable[[np.ndarray], Any],
    domain: Any,
    d: Any,
    discontinuities: Sequence[float] = (),
    *,
    method: str = "simplex",
    eps: float | None = None,
    max_neurons: int = MAX_NEURONS,
    max_parameters: int = MAX_PARAMETERS,
) -> ConstructedNetwork:
    """The lecture's network for f on ``domain`` with grid spacing <= d: Linear/ReLU layers.

    ``f`` maps x of shape (N, K) to (N,) or (N, M); ``domain`` is ``(lo, hi)`` (K = 1) or a
    list of K pairs; ``d`` one spacing or K of them. The returned network maps (N, K) to
    (N, M) and equals the piecewise-linear interpolant of f on the grid (``method="simplex"``,
    the default; for K = 1 both methods are the lecture's three layers). ``discontinuities``
    (K = 1 only): points x0 where f jumps; the network is exact outside (x0 - eps, x0 + eps),
    ``eps`` defaulting to d / 1000. Raises ValueError when the network would need more than
    ``max_neurons`` hidden neurons or ``max_parameters`` parameters.
    """
    if not callable(f):
        raise TypeError(f"f must be callable (an array (N, K) -> (N,) or (N, M)), got {f!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    max_neurons = budget(max_neurons, "max_neurons")
    max_parameters = budget(max_parameters, "max_parameters")
    box = parse_domain(domain)
    spacing = parse_spacing(d, len(box))
    disc = tuple(float(x) for x in np.atleast_1d(np.asarray(discontinuities, dtype=float)))
    if len(box) == 1:
        return _construct_1d(f, box, spacing[0], disc, eps, max_neurons, max_parameters)
    if disc:
        raise ValueError(
            "discontinuities are points, so they are supported for one input (K = 1) only; "
            f"this domain has K = {len(box)}"
        )
    if method == "pyramid":
        from .pyramid import construct_pyramid

        return construct_pyramid(f, box, spacing, max_neurons, max_parameters)
    from .simplex import construct_simplex

    return construct_simplex(f, box, spacing, max_neurons, max_parameters)


def _nodes_1d(
    lo: float, hi: float, d: float, disc: tuple[float, ...], eps: float | None
) -> tuple[np.ndarray, float]:
    n = intervals(lo, hi, d)
    grid = np.linspace(lo, hi, n + 1)
    if not disc:
        return grid, 0.0
    step = (hi - lo) / n
    eps = step / 1000 if eps is None else float(eps)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be positive and finite, got {eps!r}")
    points = np.sort(np.asarray(disc))
    for x0 in points:
        if not (lo < x0 - eps and x0 + eps < hi):
            raise ValueError(
                f"discontinuity at {x0:g} with eps = {eps:g} must lie inside the domain "
                f"[{lo:g}, {hi:g}] (x0 - eps > lo and x0 + eps < hi)"
            )
    if np.any(np.diff(points) <= 2 * eps):
        raise ValueError(f"discontinuities {points.tolist()} are closer than 2 eps = {2 * eps:g}")
    # drop grid nodes within 2 eps of a bridge (so no step is shorter than eps), add x0 -+ eps
    near = np.any(np.abs(grid[:, None] - points[None, :]) < 3 * eps, axis=1)
    near[[0, -1]] = False
    nodes = np.concatenate([grid[~near], points - eps, points + eps])
    return np.sort(nodes), eps


def _construct_1d(
    f: Callable[[np.ndarray], Any],
    box: Domain,
    d: float,
    disc: tuple[float, ...],
    eps: float | None,
    max_neurons: int,
    max_parameters: int,
) -> ConstructedNetwork:
    lo, hi = box[0]
    n = intervals(lo, hi, d) + 1 + 2 * len(disc)  # nodes
    check_budget(
        2 * n, n * n + 3 * n, max_neurons, max_parameters, f"d = {d:g} on [{lo:g}, {hi:g}]"
    )
    x, eps_used = _nodes_1d(lo, hi, d, disc, eps)
    values = sample(f, x[:, None])  # (n, M)
    f_min = values.min(axis=0)
    n = x.size
    h = np.diff(x)  # (n - 1,)

    # layer 1: r_n = ReLU(x - x_n)
    layer1 = dense_linear(np.ones((n, 1)), -x)
    # layer 2: triangles from second differences of the segments (the lecture's layer 2)
    w2 = np.zeros((n, n))
    b2 = np.zeros(n)
    inner = np.arange(1, n - 1)
    w2[inner, inner - 1] = 1 / h[:-1]
    w2[inner, inner] = -(1 / h[:-1] + 1 / h[1:])
    w2[inner, inner + 1] = 1 / h[1:]
    w2[0, 0], w2[0, 1], b2[0] = -1 / h[0], 1 / h[0], 1.0  # saturating half-triangles
    w2[n - 1, n - 2], w2[n - 1, n - 1] = 1 / h[-1], -1 / h[-1]
    layer2 = dense_linear(w2, b2)
    # layer 3: scale each triangle by f - f_min at its node, f_min back in the bias, no ReLU
    layer3 = dense_linear((values - f_min).T, f_min)
    construction = Construction(
        method="lecture",
        domain=box,
        spacing=(float(h.max()),),
        nodes=(x,),
        values=values,
        f_min=f_min,
        discontinuities=tuple(sorted(disc)),
        eps=eps_used,
    )
    return ConstructedNetwork(layer1, ReLU(), layer2, ReLU(), layer3, construction=construction)
