"""Learning-rate schedules: the step size alpha_t as a function of the epoch t = 0, 1, ...

    constant   alpha_t = alpha_0
    step       alpha_t = alpha_0 gamma^floor(t / step_size)
    cosine     alpha_t = alpha_min + (alpha_0 - alpha_min) (1 + cos(pi t / T)) / 2,  T epochs

A schedule is a pure function of the epoch (no hidden counter), so a run resumed at epoch k
uses exactly the step sizes of an uninterrupted one. The values equal PyTorch's ``StepLR``
and ``CosineAnnealingLR`` (``T_max = T``) stepped once per epoch.
"""

from __future__ import annotations

import math
from typing import Any


class Schedule:
    """alpha_t for epoch t; ``schedule(t)`` returns it, ``apply(optimizer, t)`` sets it."""

    name = "schedule"

    def __init__(self, base_lr: float) -> None:
        base_lr = float(base_lr)
        if not base_lr > 0 or not math.isfinite(base_lr):
            raise ValueError(f"learning rate must be a finite number > 0, got {base_lr}")
        self.base_lr = base_lr

    def __call__(self, epoch: int) -> float:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        return self.lr_at(int(epoch))

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def apply(self, optimizer: Any, epoch: int) -> float:
        """Set ``optimizer.lr`` to alpha_epoch and return it."""
        optimizer.lr = self(epoch)
        return optimizer.lr

    def to_dict(self) -> dict[str, Any]:
        """The schedule's name and numbers (JSON-ready; :func:`make_schedule` reads it back)."""
        return {"schedule": self.name, "lr": self.base_lr}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.to_dict().items() if k != "schedule")
        return f"{type(self).__name__}({inner})"


class ConstantLR(Schedule):
    """alpha_t = alpha_0"""

    name = "constant"

    def lr_at(self, epoch: int) -> float:
        return self.base_lr


class StepLR(Schedule):
    """alpha_t = alpha_0 gamma^floor(t / step_size)"""

    name = "step"

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(base_lr)
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"step_size must be a whole number of epochs >= 1, got {step_size}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "step_size": self.step_size, "gamma": self.gamma}


class CosineLR(Schedule):
    """alpha_t = alpha_min + (alpha_0 - alpha_min) (1 + cos(pi t / T)) / 2"""

    name = "cosine"

    def __init__(self, base_lr: float, epochs: int, min_lr: float = 0.0) -> None:
        super().__init__(base_lr)
        if int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs must be a whole number >= 1, got {epochs}")
        if not 0 <= min_lr <= base_lr:
            raise ValueError(f"min_lr must lie in [0, lr = {base_lr}], got {min_lr}")
        self.epochs, self.min_lr = int(epochs), float(min_lr)

    def lr_at(self, epoch: int) -> float:
        t = min(epoch, self.epochs)
        cos = (1 + math.cos(math.pi * t / self.epochs)) / 2
        return self.min_lr + (self.base_lr - self.min_lr) * cos

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "epochs": self.epochs, "min_lr": self.min_lr}


SCHEDULES: dict[str, type[Schedule]] = {"constant": ConstantLR, "step": StepLR, "cosine": CosineLR}


def make_schedule(spec: dict[str, Any]) -> Schedule:
    """The schedule described by ``spec`` (as written by :meth:`Schedule.to_dict`)."""
    spec = dict(spec)
    name = spec.pop("schedule", "constant")
    if name not in SCHEDULES:
        raise ValueError(
            f"unknown learning-rate schedule {name!r}; choose from {sorted(SCHEDULES)}"
        )
    lr = spec.pop("lr", None)
    if lr is None:
        raise ValueError("a learning-rate schedule needs 'lr'")
    try:
        return SCHEDULES[name](lr, **spec)
    except TypeError as e:
        raise ValueError(f"schedule {name!r}: {e}") from None
