"""Optimisers: the weight update of training, in place, and learning-rate schedules.

The lecture's update for every weight h, with learning rate alpha_t and gradient de/dh_t from
back propagation, and its refinements:

    SGD    h_{t+1} = h_t - alpha_t de/dh_t           (momentum, nesterov, weight decay)
    Adam   h <- h - alpha m_hat / (sqrt(v_hat) + eps), m and v running means of g and g^2

Each optimiser module (:mod:`.sgd`, :mod:`.adam`) states its formula and calls the active
backend's fused update (NumPy's runs block by block, ``backend/numpy_updates.py``); the numbers
are PyTorch's ``torch.optim.SGD`` and ``torch.optim.Adam``, operation for operation.
:mod:`.schedules` gives alpha_t per epoch; :meth:`Schedule.apply` is where a training loop sets it.

:data:`OPTIMIZERS` is the one list of optimisers by name: ``TrainConfig`` and the command
line's ``--optimizer`` choices come from it, and :func:`make_optimizer` builds one by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..engine import Tensor
from .adam import Adam
from .base import Optimizer
from .schedules import SCHEDULES, ConstantLR, CosineLR, Schedule, StepLR, make_schedule
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "OPTIMIZERS",
    "make_optimizer",
    "Schedule",
    "ConstantLR",
    "StepLR",
    "CosineLR",
    "SCHEDULES",
    "make_schedule",
]

#: The optimisers by name, in the order the command line lists them.
OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Adam)}


def make_optimizer(name: str, params: Iterable[Tensor], lr: float, **settings: Any) -> Optimizer:
    """The optimiser ``name`` for ``params`` with learning rate ``lr``.

    ``settings`` may hold any optimiser's settings (``momentum``, ``weight_decay``, ...): each
    optimiser takes those it has (``OPTIMIZERS[name].settings``), so one training
    configuration serves them all. A setting that no optimiser has is an error.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    known = {s for cls in OPTIMIZERS.values() for s in cls.settings}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(
            f"no optimizer has the setting(s) {', '.join(unknown)}; "
            f"the settings are {', '.join(sorted(known))}"
        )
    cls = OPTIMIZERS[name]
    return cls(params, lr, **{k: v for k, v in settings.items() if k in cls.settings})
