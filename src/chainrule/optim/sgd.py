"""Stochastic gradient descent: the lecture's weight update, for every weight h,

    h_{t+1} = h_t - alpha_t de/dh_t

with PyTorch's (``torch.optim.SGD``) momentum mu, Nesterov momentum and weight decay wd:

    g  = de/dh + wd h          weight decay: the gradient of e + (wd/2) |h|^2
    v <- mu v + g              momentum: a running sum of the gradients (v_1 = g)
    h <- h - alpha v           (nesterov: h <- h - alpha (g + mu v); no momentum: h <- h - alpha g)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import backend as B
from ..engine import Tensor, backward_into
from .base import Optimizer, fraction, non_negative


class SGD(Optimizer):
    """h <- h - lr de/dh   (with momentum: v <- mu v + de/dh ; h <- h - lr v)"""

    name = "sgd"
    state_names = ("velocity",)
    settings = ("momentum", "weight_decay", "nesterov")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = fraction("momentum", momentum)
        self.weight_decay = non_negative("weight_decay", weight_decay)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)

    @property
    def velocity(self) -> list[Any]:
        """The momentum buffers v, one per parameter (``None`` before its first update)."""
        return self.state["velocity"]

    def step(self) -> None:
        for i, h in enumerate(self.params):
            if h.grad is not None:
                self._update(i, h)
        self.steps += 1

    def _update(self, i: int, h: Tensor) -> None:
        """v <- mu v + (de/dh + wd h) ;  h <- h - lr v, from ``h.grad``."""
        v = self.velocity
        v[i] = B.kernels.sgd_update(
            h.data, h.grad, v[i], self.lr, self.momentum, self.nesterov, self.weight_decay
        )

    def backward_step(self, loss: Tensor) -> None:
        """``loss.backward()`` then :meth:`step`, the same update, with v <- mu v + de/dh done
        during back propagation: each weight's gradient goes straight into its momentum buffer
        (a linear layer's G^T X is computed into v by one product, beta = mu) and is never
        stored in ``.grad``. Then v += wd h ; h <- h - lr v.

        The numbers equal the two-call step up to rounding. A parameter that already holds a
        ``.grad`` (accumulated over several backward passes), and Nesterov momentum or none,
        take the two-call step.
        """
        if not self.momentum or self.nesterov:
            super().backward_step(loss)
            return
        v, mu = self.velocity, self.momentum
        got: list[int] = []

        def sink(i: int) -> Any:
            def put(grad: Any) -> None:
                v[i] = B.kernels.momentum_into(v[i], grad, mu)
                got.append(i)

            return put

        sinks = {id(h): sink(i) for i, h in enumerate(self.params) if h.grad is None}
        backward_into(loss, sinks)
        for i in got:
            B.kernels.sgd_apply(self.params[i].data, v[i], self.lr, self.weight_decay)
        for i, h in enumerate(self.params):  # those that had a .grad: the two-call step
            if id(h) not in sinks and h.grad is not None:
                self._update(i, h)
        self.steps += 1
