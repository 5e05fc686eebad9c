"""Adam (Kingma and Ba 2015, PyTorch's ``torch.optim.Adam``): a step per weight h scaled by
running means of the gradient g = de/dh (+ wd h with weight decay wd) and of its square:

    m <- b1 m + (1 - b1) g                      the first moment
    v <- b2 v + (1 - b2) g^2                    the second moment
    h <- h - alpha m_hat / (sqrt(v_hat) + eps)  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)

(m and v start at zero; m_hat and v_hat undo that bias at step t = 1, 2, ...)
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import backend as B
from ..engine import Tensor
from .base import Optimizer, fraction, non_negative, positive


class Adam(Optimizer):
    """h <- h - lr m_hat / (sqrt(v_hat) + eps), m and v running means of g and g^2"""

    name = "adam"
    state_names = ("m", "v")
    settings = ("betas", "eps", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        b1, b2 = betas
        self.betas = (fraction("beta1", b1), fraction("beta2", b2))
        self.eps = positive("eps", eps)
        self.weight_decay = non_negative("weight_decay", weight_decay)

    def step(self) -> None:
        self.steps += 1
        t, (b1, b2) = self.steps, self.betas
        m, v = self.state["m"], self.state["v"]
        for i, h in enumerate(self.params):
            if h.grad is not None:  # m <- b1 m + (1 - b1) g ; v <- b2 v + (1 - b2) g^2 ; h <- ...
                m[i], v[i] = B.kernels.adam_update(
                    h.data, h.grad, m[i], v[i], t, self.lr, b1, b2, self.eps, self.weight_decay
                )
