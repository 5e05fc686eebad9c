"""What the constructions share: the grid that f is sampled on, budgets, the network's record.

A construction on the box [lo_1, hi_1] x ... x [lo_K, hi_K] with spacing d_i per direction uses
the uniform grid of N_i + 1 nodes per direction, N_i = ceil((hi_i - lo_i) / d_i), so that
every step is <= d_i; f is sampled at all its nodes (in 'ij' order) as a float64 array of
shape (n_1 ... n_K, M). Before any array of the network's size exists, its neurons and
parameters are checked against the budgets (:class:`BudgetError` otherwise). The result is a
:class:`ConstructedNetwork`: a Sequential of Linear and ReLU layers that carries its
:class:`Construction` (grid, values, method).

:mod:`.construct` (the entry point, and the lecture's 1-D network), :mod:`.simplex`,
:mod:`.pyramid` and :mod:`.layers` build on this module; it imports none of them.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn import Linear, Parameter, Sequential

__all__ = [
    "MAX_NEURONS",
    "MAX_PARAMETERS",
    "BudgetError",
    "Domain",
    "Construction",
    "ConstructedNetwork",
    "parse_domain",
    "parse_spacing",
    "intervals",
    "grid_nodes",
    "grid_points",
    "sample",
    "sample_grid",
    "grid_construction",
    "budget",
    "available_memory",
    "check_memory",
    "check_budget",
    "dense_linear",
]

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
    number = float(value)
    if not (math.isfinite(number) and number.is_integer() and number >= 1):
        raise ValueError(f"{name} must be a positive integer (at least 1), got {value!r}")
    return int(number)


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
