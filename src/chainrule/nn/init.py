"""Weight initialisation, seeded through a ``numpy.random.Generator``.

The draws come from NumPy's generator on every backend, so a seed gives the same weights
whatever array namespace is active (a Parameter moves them into it).

fan_in / fan_out of a weight: Linear out x in -> (in, out); Conv2d O x C x Fr x Fc ->
(C Fr Fc, O Fr Fc).

    pytorch_uniform  U(-1/sqrt(fan_in), 1/sqrt(fan_in))     (PyTorch's default for Linear/Conv2d)
    he_normal        N(0, 2/fan_in)                          (He et al. 2015, for ReLU)
    he_uniform       U(-sqrt(6/fan_in), sqrt(6/fan_in))
    xavier_normal    N(0, 2/(fan_in + fan_out))              (Glorot and Bengio 2010)
    xavier_uniform   U(-sqrt(6/(fan_in + fan_out)), +...)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Generator = np.random.Generator


def generator(rng: Generator | int | None) -> Generator:
    """``rng`` itself, or a new generator seeded with it (None: fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of the given shape (out x in [x Fr x Fc])."""
    if len(shape) < 2:
        raise ValueError(f"fan-in needs a weight with at least 2 axes, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def pytorch_uniform(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int | None = None, dtype=np.float32
) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of ``shape`` (PyTorch's default for Linear/Conv2d)."""
    bound = 1.0 / math.sqrt(fan_in if fan_in is not None else fans(shape)[0])
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def he_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """N(0, 2/fan_in) of ``shape`` (He et al. 2015, for ReLU networks)."""
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fans(shape)[0])).astype(dtype)


def he_uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """U(-sqrt(6/fan_in), sqrt(6/fan_in)) of ``shape`` (He et al. 2015, uniform)."""
    bound = math.sqrt(6.0 / fans(shape)[0])
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def xavier_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """N(0, 2/(fan_in + fan_out)) of ``shape`` (Glorot and Bengio 2010)."""
    fi, fo = fans(shape)
    return (rng.standard_normal(shape) * math.sqrt(2.0 / (fi + fo))).astype(dtype)


def xavier_uniform(
    rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32
) -> np.ndarray:
    """U(-sqrt(6/(fan_in + fan_out)), +sqrt(6/(fan_in + fan_out))) of ``shape`` (Glorot)."""
    fi, fo = fans(shape)
    bound = math.sqrt(6.0 / (fi + fo))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


INITS: dict[str, Callable[..., np.ndarray]] = {
    "pytorch": pytorch_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
}
