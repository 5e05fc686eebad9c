"""Writing down a layer of a constructed network: each neuron is ReLU(affine combination).

A constructed network is described neuron by neuron: "this neuron is ReLU(1 - a/2 - b/2)"
where a, b are neurons of the layer below. :class:`Affine` holds such a combination for a
whole grid of nodes at once - a constant plus terms (coefficient, neuron index), where the
index arrays (and coefficients) broadcast over the grid axes (n_1, ..., n_K) - so a layer's
weight matrix is filled with one vectorised assignment per term, never a loop over neurons.

    ridge features       ReLU(a . s - c),  s = (x - lo) / d  the input in grid units
    a hidden layer       blocks of neurons ReLU(Affine), each block shaped like its indices
    carrying             a non-negative neuron passes a ReLU unchanged: ReLU(r) = r, so a
                         value needed two layers up is copied with weight 1 (the identity)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .grid import check_budget, dense_linear

Coefficient = float | np.ndarray


@dataclass
class Affine:
    """const + sum_t coef_t * neuron[idx_t]; coefficients, constant and indices broadcast."""

    terms: list[tuple[Coefficient, np.ndarray]] = field(default_factory=list)
    const: Coefficient = 0.0

    @staticmethod
    def of(idx: np.ndarray, coef: Coefficient = 1.0) -> Affine:
        return Affine([(coef, np.asarray(idx))])

    def __add__(self, other: Affine | float) -> Affine:
        if not isinstance(other, Affine):
            return Affine(list(self.terms), self.const + other)
        return Affine(self.terms + other.terms, self.const + other.const)

    __radd__ = __add__

    def __neg__(self) -> Affine:
        return Affine([(-c, i) for c, i in self.terms], -self.const)

    def __sub__(self, other: Affine | float) -> Affine:
        return self + (-other)

    def __rsub__(self, other: float) -> Affine:
        return (-self) + other

    def __mul__(self, s: float) -> Affine:
        return Affine([(c * s, i) for c, i in self.terms], self.const * s)

    __rmul__ = __mul__

    def shape(self) -> tuple[int, ...]:
        parts = [np.shape(i) for _, i in self.terms] + [np.shape(c) for c, _ in self.terms]
        return np.broadcast_shapes(*parts, np.shape(self.const))

    def indices(self) -> np.ndarray:
        """Every neuron index it uses (flat, unique)."""
        return np.unique(np.concatenate([np.ravel(i) for _, i in self.terms]))

    def renumber(self, old: np.ndarray, new: np.ndarray) -> Affine:
        """The same combination after neurons ``old`` (sorted) were copied to ``new``."""
        return Affine([(c, new[np.searchsorted(old, i)]) for c, i in self.terms], self.const)


class Ridges:
    """Layer 1: features ReLU(a . s - c) of the input in grid units s = (x - lo) / d."""

    def __init__(self, lo: np.ndarray, spacing: np.ndarray) -> None:
        self.lo, self.spacing = lo, spacing
        self.rows: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        self.count = 0

    def add(self, a: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Indices of the new features ReLU(a . s - c_j), one per entry of c."""
        a = np.asarray(a, dtype=float)
        c = np.asarray(c, dtype=float)
        self.rows.append(np.broadcast_to(a / self.spacing, (c.size, a.size)))
        self.biases.append(-float(np.dot(a, self.lo / self.spacing)) - c)
        idx = self.count + np.arange(c.size)
        self.count += c.size
        return idx

    def layer(self) -> Any:
        return dense_linear(np.concatenate(self.rows), np.concatenate(self.biases))


def along(idx: np.ndarray, axis: int, k: int) -> np.ndarray:
    """A per-direction array reshaped to lie along grid axis ``axis`` of K."""
    shape = [1] * k
    shape[axis] = -1
    return np.reshape(idx, shape)


@dataclass
class Plan:
    """The hidden layers above layer 1, block by block, before any weight is allocated."""

    inputs: int  # width of layer 1
    layers: list[list[Affine]] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)

    def add_layer(self, blocks: list[Affine]) -> list[np.ndarray]:
        """Append a layer of ReLU(block) neurons; return each block's neuron indices (its shape)."""
        out, offset = [], 0
        for q in blocks:
            shape = q.shape()
            size = math.prod(shape)
            out.append(offset + np.arange(size).reshape(shape))
            offset += size
        self.layers.append(blocks)
        self.widths.append(offset)
        return out

    def carry(self, quantities: list[Affine]) -> tuple[Affine, np.ndarray]:
        """The block that copies every neuron the quantities use, and those neurons (sorted)."""
        used = np.unique(np.concatenate([q.indices() for q in quantities]))
        return Affine.of(used), used

    def parameters(self, k: int, outputs: int) -> int:
        sizes = [self.inputs, *self.widths, outputs]
        above = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        return (k + 1) * self.inputs + above

    def check(self, k: int, outputs: int, max_neurons: int, max_parameters: int, what: str) -> None:
        neurons = self.inputs + sum(self.widths)
        check_budget(neurons, self.parameters(k, outputs), max_neurons, max_parameters, what)

    def build(self) -> list[Any]:
        """The Linear layers above layer 1, weights filled block by block."""
        out, n_in = [], self.inputs
        for blocks, width in zip(self.layers, self.widths, strict=True):
            w = np.zeros((width, n_in))
            b = np.zeros(width)
            offset = 0
            for q in blocks:
                shape = q.shape()
                rows = offset + np.arange(math.prod(shape))
                for coef, idx in q.terms:
                    cols = np.broadcast_to(idx, shape).ravel()
                    w[rows, cols] += np.broadcast_to(coef, shape).ravel()
                b[rows] = np.broadcast_to(q.const, shape).ravel()
                offset += rows.size
            out.append(dense_linear(w, b))
            n_in = width
        return out
