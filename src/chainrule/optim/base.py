"""What every optimiser shares: its parameters, the learning rate alpha_t, its state.

An optimiser updates each weight h in place from the gradient de/dh that back propagation left
in ``h.grad``; :mod:`chainrule.optim.sgd` and :mod:`chainrule.optim.adam` state the updates.
The state (momentum buffers, Adam's moments, the step count) is a dict of named arrays,
:meth:`Optimizer.state_dict`, so that a checkpoint can store it and a resumed run continues
exactly where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import backend as B
from ..engine import Tensor


class Optimizer:
    """Base class: holds the parameters and the learning rate ``lr`` (alpha_t).

    Subclasses list the names of their per-parameter state in ``state_names`` and keep it in
    ``self.state[name][i]`` (an array shaped like parameter i, or ``None`` before its first
    update), and the keyword arguments of their update (besides ``lr``) in ``settings``.
    """

    name = "optimizer"
    state_names: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"optimizer: parameter {i} is not a Tensor that requires grad")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("optimizer: a parameter appears more than once in the list")
        self.lr = positive("learning rate", lr)
        self.steps = 0
        self.state: dict[str, list[Any]] = {n: [None] * len(self.params) for n in self.state_names}

    def zero_grad(self) -> None:
        """Forget the gradients of the last backward pass (``p.grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        raise NotImplementedError

    def backward_step(self, loss: Tensor) -> None:
        """``loss.backward()``, then :meth:`step`: one training step's back propagation and
        update (an optimiser may run them as one pass: :meth:`SGD.backward_step`)."""
        loss.backward()
        self.step()

    def hyperparameters(self) -> dict[str, float | bool | list[float]]:
        """The numbers that define the update (for checkpoints and metrics)."""
        out: dict[str, Any] = {"lr": self.lr}
        for name in self.settings:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    # -- state for checkpoints -----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """State arrays by name ``<state>.<parameter index>``, plus ``steps`` (shape (1,))."""
        out = {"steps": B.kernels.steps_array(self.steps)}
        for n, arrays in self.state.items():
            for i, a in enumerate(arrays):
                if a is not None:
                    out[f"{n}.{i}"] = a
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s arrays (copied); names and shapes must fit."""
        if "steps" not in state:
            raise ValueError("optimizer state has no 'steps' entry")
        new: dict[str, list[Any]] = {n: [None] * len(self.params) for n in self.state_names}
        for key, value in state.items():
            if key == "steps":
                continue
            n, _, idx = key.rpartition(".")
            if n not in new or not idx.isdigit() or int(idx) >= len(self.params):
                raise ValueError(
                    f"optimizer state entry {key!r} does not fit {type(self).__name__} with "
                    f"{len(self.params)} parameters (state names: {list(self.state_names)})"
                )
            p = self.params[int(idx)]
            value = B.kernels.state_array(value, like=p.data)
            if value.shape != p.shape:
                raise ValueError(
                    f"optimizer state {key!r} has shape {value.shape}, parameter {idx} has "
                    f"shape {p.shape}"
                )
            new[n][int(idx)] = value
        self.state = new
        self.steps = B.kernels.steps_from(state["steps"])


def positive(what: str, value: float) -> float:
    """``value`` as a float; ValueError unless it is finite and > 0."""
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number > 0, got {value}")
    return value


def fraction(what: str, value: float) -> float:
    """``value`` as a float; ValueError unless it lies in [0, 1)."""
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{what} must lie in [0, 1), got {value}")
    return value


def non_negative(what: str, value: float) -> float:
    """``value`` as a float; ValueError unless it is >= 0."""
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return float(value)
