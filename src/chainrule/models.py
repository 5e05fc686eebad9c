"""The lecture's networks for digit recognition.

``mlp``: the lecture's example network, one hidden layer of width 800 (default)

    x5 = H3 ReLU(H0 x0 + h1) + h4,      x0 the flattened image (784 values for MNIST),
                                         H0: 800 x 784, h1: 800, H3: 10 x 800, h4: 10

and x5 the 10 scores (logits) whose softmax cross-entropy is the training error.

``cnn``: LeNet-5 in its common modern form (ReLU and max-pooling instead of the original's
scaled tanh and trainable sub-sampling), for 28 x 28 images:

    conv 1->6 5x5 padding 2 (28x28), ReLU, max-pool 2 (14x14),
    conv 6->16 5x5 (10x10), ReLU, max-pool 2 (5x5), flatten (400),
    linear 120, ReLU, linear 84, ReLU, linear 10

A model is described by its *architecture*, a small JSON-ready dict such as
``{"name": "mlp", "input_shape": [1, 28, 28], "hidden": 800, "classes": 10}``; checkpoints
store it, and :func:`build` makes the model again from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import rules
from .engine import Tensor, tensor
from .nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

__all__ = ["mlp", "cnn", "build", "architecture", "parameter_shapes", "MODELS", "lecture_network"]


def _shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    s = tuple(int(n) for n in input_shape)
    if len(s) != 3 or min(s) < 1:
        raise ValueError(f"input_shape must be (channels, height, width), got {tuple(input_shape)}")
    return s  # type: ignore[return-value]


def _lenet_features(h: int, w: int) -> tuple[int, int]:
    """LeNet-5's feature-map size after conv (pad 2) -> pool 2 -> conv 5x5 -> pool 2."""
    h2, w2 = (h // 2 - 4) // 2, (w // 2 - 4) // 2
    if h2 < 1 or w2 < 1:
        raise ValueError(
            f"the LeNet-5 cnn needs images of at least 12 x 12 pixels (it is made for 28 x 28), "
            f"got {h} x {w}; use the mlp for the 8 x 8 digits"
        )
    return h2, w2


def mlp(
    input_shape: Sequence[int] = (1, 28, 28),
    hidden: int = 800,
    classes: int = 10,
    *,
    rng: np.random.Generator | int | None = None,
    init: str = "pytorch",
) -> Sequential:
    """x5 = H3 ReLU(H0 x0 + h1) + h4: images (N, C, H, W) -> scores (N, classes)."""
    c, h, w = _shape(input_shape)
    if int(hidden) != hidden or hidden < 1:
        raise ValueError(f"hidden width must be a whole number >= 1, got {hidden}")
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return Sequential(
        Flatten(),
        Linear(c * h * w, int(hidden), init=init, rng=g),  # H0, h1
        ReLU(),
        Linear(int(hidden), classes, init=init, rng=g),  # H3, h4
    )


def cnn(
    input_shape: Sequence[int] = (1, 28, 28),
    classes: int = 10,
    *,
    rng: np.random.Generator | int | None = None,
    init: str = "pytorch",
) -> Sequential:
    """LeNet-5 (modern form): images (N, C, 28, 28) -> scores (N, classes)."""
    c, h, w = _shape(input_shape)
    h2, w2 = _lenet_features(h, w)
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return Sequential(
        Conv2d(c, 6, 5, padding=2, init=init, rng=g),
        ReLU(),
        MaxPool2d(2),
        Conv2d(6, 16, 5, init=init, rng=g),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(16 * h2 * w2, 120, init=init, rng=g),
        ReLU(),
        Linear(120, 84, init=init, rng=g),
        ReLU(),
        Linear(84, classes, init=init, rng=g),
    )


MODELS: dict[str, Callable[..., Sequential]] = {"mlp": mlp, "cnn": cnn}


def architecture(
    name: str, input_shape: Sequence[int], classes: int = 10, hidden: int = 800
) -> dict[str, Any]:
    """The JSON-ready description of a model (``hidden`` is kept for the mlp only)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    arch: dict[str, Any] = {
        "name": name,
        "input_shape": [int(n) for n in input_shape],
        "classes": int(classes),
    }
    if name == "mlp":
        arch["hidden"] = int(hidden)
    return arch


def build(arch: dict[str, Any], rng: np.random.Generator | int | None = None) -> Sequential:
    """The model an architecture dict describes, initialised from ``rng``."""
    try:
        name = arch["name"]
        kwargs: dict[str, Any] = {
            "input_shape": arch["input_shape"],
            "classes": arch["classes"],
            "rng": rng,
        }
    except (KeyError, TypeError):
        raise ValueError(
            f"architecture must be a dict with name, input_shape and classes, got {arch!r}"
        ) from None
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    if name == "mlp":
        kwargs["hidden"] = arch.get("hidden", 800)
    return MODELS[name](**kwargs)


def parameter_shapes(arch: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The names and shapes of :func:`build`'s ``state_dict()``, by arithmetic: nothing allocated.

    For checking a checkpoint's tensors against its architecture, and estimating memory, before
    a possibly huge model is built. Raises ValueError on an architecture :func:`build` rejects.
    """
    try:
        name, classes = arch["name"], arch["classes"]
        c, h, w = _shape(arch["input_shape"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"architecture must be a dict with name, input_shape (C, H, W) and classes, "
            f"got {arch!r} ({e})"
        ) from None
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be a whole number >= 2, got {classes!r}")
    if name == "mlp":
        hidden = arch.get("hidden", 800)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden width must be a whole number >= 1, got {hidden!r}")
        layers: dict[str, tuple[int, ...]] = {"1": (hidden, c * h * w), "3": (classes, hidden)}
    elif name == "cnn":
        h2, w2 = _lenet_features(h, w)
        layers = {
            "0": (6, c, 5, 5),
            "3": (16, 6, 5, 5),
            "7": (120, 16 * h2 * w2),
            "9": (84, 120),
            "11": (classes, 84),
        }
    else:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, weight in layers.items():
        shapes[f"{layer}.weight"] = weight
        shapes[f"{layer}.bias"] = weight[:1]
    return shapes


# ------------------------------------------------------------------------ the lecture's example


def lecture_network(seed: int = 0, sizes: tuple[int, int, int] = (3, 4, 2)) -> Tensor:
    """The lecture's network x5 = H3 ReLU(H0 x0 + h1) + h4 with e = softmax cross-entropy.

    ``sizes`` = (input K, hidden, classes M). Returns the error e (a scalar Tensor) with every
    tensor named as in the lecture: x0 ... x5, H0, h1, H3, h4, e.
    """
    k, h, m = sizes
    rng = np.random.default_rng(seed)

    def param(name: str, *shape: int) -> Tensor:
        return tensor(
            rng.standard_normal(shape) / np.sqrt(shape[-1]), requires_grad=True, name=name
        )

    x0 = tensor(rng.standard_normal(k), name="x0")
    H0, h1, H3, h4 = param("H0", h, k), param("h1", h), param("H3", m, h), param("h4", m)
    x1 = H0 @ x0
    x2 = x1 + h1
    x3 = rules.relu(x2)
    x4 = H3 @ x3
    x5 = x4 + h4
    e = rules.softmax_cross_entropy(x5, np.array(m - 1))
    for name, t in (("x1", x1), ("x2", x2), ("x3", x3), ("x4", x4), ("x5", x5), ("e", e)):
        t.name = name
    return e
