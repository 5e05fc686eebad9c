"""An MLP's training step without the graph: back propagation's kernel calls, written out once.

For a network ``Sequential([Flatten], Linear, ReLU, Linear, ..., ReLU, Linear)`` trained with
softmax cross-entropy and SGD with momentum (``chainrule train --model mlp``), every step
makes the same calls of the NumPy backend's kernels, in the same order:

    forward     a_0 = x (flattened) ;  z_l = linear(a_l, H_l, h_l) ;  a_{l+1} = relu(z_l)
    error       e, p = softmax_cross_entropy(z_L, labels)        (p: the saved softmax)
    backward    de/dz_L = (p - onehot) / N ;  for l = L .. 0:
                    de/da_l, G^T a_l, de/dh_l = linear's vjp     (the weight's gradient deferred)
                    v <- mu v + de/dH  (one GEMM, beta = mu: optim.SGD.backward_step)
                    de/dz_{l-1} = de/da_l * (z_{l-1} > 0)        (relu's vjp)
    update      v += wd h ;  h <- h - lr v   (every parameter)

:class:`CompiledStep` makes those calls directly. The engine builds and walks the graph and
runs the rules' and modules' Python around the same calls: measured, 3-7% of the 784-800-10
MLP's step on one BLAS thread and 9-11% on two (``benchmarks/bench_engine_cost.py``).

The numbers are the engine's, bit for bit: the same kernels get the same arrays
(tests/test_compiled.py compares the losses, the parameters and the momentum buffers after
several steps). A step that this cannot take exactly takes the engine
(:meth:`CompiledStep.fits` says whether): another layer or model, a ReLU with
``grad_at_zero``, another optimiser or Nesterov momentum or none, a parameter that already
holds a ``.grad``, another backend than NumPy, inputs of another type, dtype or shape (the
engine then raises its own error), graph recording switched off, and a model changed since
(a layer, a parameter or its array's shape or dtype replaced, a ReLU's ``grad_at_zero`` set).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend as B
from .. import engine
from ..backend import numpy_kernels as K
from ..nn.modules import Flatten, Linear, ReLU, Sequential
from ..optim.sgd import SGD
from ..rules.losses import _check_labels, _label_index

__all__ = ["CompiledStep"]


class CompiledStep:
    """``step(x, y) -> (error sum, correct predictions)``: forward, softmax cross-entropy,
    backward and the SGD update of one mini-batch (x: N x ... float, y: N integer labels), the
    engine's numbers without its graph. Build it with :meth:`of` (None: not such a model);
    call it only where :meth:`fits` says so."""

    def __init__(self, model: Any, flatten: bool, optimizer: SGD) -> None:
        self.model, self.modules = model, list(model.layers)  # what the step was built from
        mods = self.modules[1:] if flatten else self.modules
        self.linears, self.relus = mods[::2], mods[1::2]
        self.flatten = flatten
        # [(weight, bias or None)], Parameters, input layer first
        self.layers = [(m.weight, m.bias) for m in self.linears]
        self.optimizer, self.params = optimizer, list(optimizer.params)
        self.shapes = [p.data.shape for p in self.params]
        index, k = [], 0
        for _, b in self.layers:  # the positions of each layer's weight and bias in params
            index.append((k, k + 1 if b is not None else None))
            k += 1 if b is None else 2
        self.index = index
        self.in_features = self.shapes[0][1]

    @classmethod
    def of(cls, model: Any, optimizer: Any) -> CompiledStep | None:
        """The compiled step of ``model`` trained by ``optimizer``, or None where the model is not
        ``Sequential([Flatten], Linear, ReLU, ..., Linear)`` (plain ReLUs) or the optimizer not
        an SGD over exactly its parameters, in order."""
        if type(model) is not Sequential or type(optimizer) is not SGD:
            return None
        mods = list(model.layers)
        flatten = bool(mods) and type(mods[0]) is Flatten
        mods = mods[1:] if flatten else mods
        if len(mods) % 2 != 1:
            return None
        for i, m in enumerate(mods):
            want = Linear if i % 2 == 0 else ReLU
            if type(m) is not want or (want is ReLU and m.grad_at_zero != 0):
                return None
        params = [p for m in mods[::2] for p in (m.weight, m.bias) if p is not None]
        if [id(p) for p in optimizer.params] != [id(p) for p in params]:
            return None
        return cls(model, flatten, optimizer)

    def fits(self, x: Any, y: Any) -> bool:
        """Whether this step is the engine's for this batch now (else the engine runs it)."""
        opt = self.optimizer
        if B.kernels is not K or not engine._grad_mode.enabled:
            return False
        if not opt.momentum or opt.nesterov or type(x) is not np.ndarray:
            return False
        dtype = self.layers[0][0].data.dtype
        if x.dtype != dtype or dtype.char not in "fd" or x.ndim < 2 or len(x) != len(y):
            return False
        if (math.prod(x.shape[1:]) if self.flatten else x.shape[-1]) != self.in_features:
            return False
        if not self.flatten and x.ndim != 2:
            return False
        if not self._unchanged():
            return False
        for p, shape in zip(self.params, self.shapes, strict=True):
            if p.grad is not None or type(p.data) is not np.ndarray:
                return False
            if p.data.dtype != dtype or p.data.shape != shape:
                return False
        return True

    def _unchanged(self) -> bool:
        """The model's layers, their parameters and the optimizer's are those it was built from."""
        layers, params = self.model.layers, self.optimizer.params
        if len(layers) != len(self.modules) or len(params) != len(self.params):
            return False
        if any(a is not b for a, b in zip(layers, self.modules, strict=True)):
            return False
        if any(a is not b for a, b in zip(params, self.params, strict=True)):
            return False
        if any(m.grad_at_zero != 0 for m in self.relus):
            return False
        pairs = zip(self.linears, self.layers, strict=True)
        return all(m.weight is w and m.bias is b for m, (w, b) in pairs)

    def __call__(self, x: Any, y: Any) -> tuple[float, int]:
        opt, layers, last = self.optimizer, self.layers, len(self.layers) - 1
        a = K.reshape(x, (x.shape[0], -1)) if self.flatten else x
        inputs, pre = [], []  # each linear's input; each relu's input
        z = a
        for i, (w, b) in enumerate(layers):
            inputs.append(a)
            z = K.linear(a, w.data, None if b is None else b.data)
            if i < last:
                pre.append(z)
                a = K.relu(z)
        labels = _check_labels("softmax_cross_entropy", z, y)  # the rule's check and errors
        loss, p = K.softmax_cross_entropy(z, _label_index(labels))
        loss = np.asarray(loss)  # as the engine's loss tensor holds it
        loss_sum = float(loss) * len(y)
        correct = int(np.count_nonzero(z.argmax(axis=1) == y))
        if not math.isfinite(loss_sum):
            return loss_sum, correct  # nothing back-propagated (the caller stops)
        fast = K.FAST_VJPS
        seed = np.asarray(1, dtype=loss.dtype)
        g = fast["softmax_cross_entropy"](seed, loss, z, y, saved=p, needs=(True, False))[0]
        v, mu = opt.velocity, opt.momentum
        for i in range(last, -1, -1):
            (w, b), (wi, bi) = layers[i], self.index[i]
            has_b = b is not None
            needs = (i > 0, True, has_b)
            dx, dw, db = fast["linear"](
                g, None, inputs[i], w.data, b.data if has_b else None,
                needs=needs, defer=(False, True, has_b),
            )  # fmt: skip
            v[wi] = K.momentum_into(v[wi], dw, mu)
            if has_b:
                v[bi] = K.momentum_into(v[bi], db, mu)
            if i > 0:
                g = fast["relu"](dx, None, pre[i - 1], needs=(True,))[0]
        for h, vi in zip(opt.params, v, strict=True):
            K.sgd_apply(h.data, vi, opt.lr, opt.weight_decay)
        opt.steps += 1
        return loss_sum, correct
