"""A network's training step without the graph: back propagation's kernel calls, written out once.

For a ``Sequential`` of Linear, ReLU, Conv2d, MaxPool2d and Flatten layers that ends in a
Linear layer (``chainrule train --model mlp`` and ``--model cnn``) trained with softmax
cross-entropy, every step makes the same calls of the NumPy backend's kernels, in the same
order (ReLU before a max-pool runs after it, as ``Sequential`` runs it):

    forward     a_0 = x ;  a_{l+1} = layer_l(a_l)     (linear, relu, conv2d, max_pool2d, reshape)
    error       e, p = softmax_cross_entropy(a_L, labels)        (p: the saved softmax)
    backward    de/da_L = (p - onehot) / N ;  for l = L-1 .. (the first layer with parameters):
                    de/da_l, de/dH_l, de/dh_l = layer_l's vjp     (de/da_0 is never computed)
    update      (CompiledStep) as each gradient arrives: v <- mu v + de/dH (a linear layer's
                    one GEMM, beta = mu: optim.SGD.backward_step) ; v += wd h ; h <- h - lr v
                (CompiledGrads) the gradients, for BatchThreads to combine over its shards

:class:`CompiledStep` and :class:`CompiledGrads` make those calls directly. Two of them write
into arrays that only this step holds, where the engine (which cannot know who else holds an
array) makes new ones: ReLU into the array the layer before it has just made (not into the
input batch), and ReLU's vjp into the gradient the layer after it has just made. The engine builds
and walks the graph and runs the rules' and modules' Python around the same calls: measured,
3-7% of the 784-800-10 MLP's step on one BLAS thread and 9-11% on two
(``benchmarks/bench_engine_cost.py``); LeNet-5's step split over two threads runs 1.1x as fast
compiled (``benchmarks/bench_versions.py --model cnn``), since there each shard's Python waits
for the other's (one GIL).

The numbers are the engine's, bit for bit: the same kernels get the same numbers
(tests/test_compiled.py compares the losses, the gradients, the parameters and the momentum
buffers after several steps). A step that this cannot take exactly takes the engine
(:meth:`fits` says whether): another layer or model, a ReLU with ``grad_at_zero``, another
optimiser or Nesterov momentum or none, a parameter that already holds a ``.grad``, another
backend than NumPy, inputs of another type, dtype or shape (the engine then raises its own
error), graph recording switched off, and a model changed since (a layer, a parameter or its
array's shape or dtype replaced, a ReLU's ``grad_at_zero``, a stride, padding or window set).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from .. import backend as B
from .. import engine
from ..backend import numpy_kernels as K
from ..nn.modules import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, _run_order
from ..optim.sgd import SGD
from ..rules._common import pair
from ..rules.convolution import _stride
from ..rules.losses import _check_labels, _label_index

__all__ = ["CompiledStep", "CompiledGrads"]

LINEAR, RELU, CONV, POOL, FLATTEN = range(5)  # the layers' kinds
_KINDS = {Linear: LINEAR, ReLU: RELU, Conv2d: CONV, MaxPool2d: POOL, Flatten: FLATTEN}


#: what a layer's forward reads besides its input and parameters, as the user set it
_SETTINGS = {
    Conv2d: attrgetter("stride", "padding"),
    MaxPool2d: attrgetter("kernel_size", "stride"),
    ReLU: attrgetter("grad_at_zero"),
}


class _Program:
    """The layers of ``model`` in the order its forward runs them, as kernel calls.

    ``ops``: (kind, weight, bias, arguments), weight and bias the Parameters (or None);
    ``params``: the parameters in ``model.parameters()``'s order.
    """

    def __init__(self, model: Any, ops: list[tuple]) -> None:
        self.model, self.modules = model, list(model.layers)  # what it was built from
        self.ids = [id(m) for m in self.modules]
        self.settings = [  # (layer, what reads its settings, their values)
            (m, get, get(m)) for m in self.modules if (get := _SETTINGS.get(type(m)))
        ]
        self.owners = [(m, m.weight, m.bias) for m in self.modules if type(m) in (Linear, Conv2d)]
        self.ops = ops
        self.params = [p for m in self.modules for p in _weights(m) if p is not None]
        self.param_ids = [id(p) for p in self.params]
        self.shapes = [p.data.shape for p in self.params]
        slot = {id(p): i for i, p in enumerate(self.params)}
        # (index of the weight, of the bias or None) in params, per op
        self.index = [
            (None, None) if w is None else (slot[id(w)], None if b is None else slot[id(b)])
            for _, w, b, _ in ops
        ]
        self.first = next(i for i, op in enumerate(ops) if op[1] is not None)
        self.plans: dict[tuple[int, ...], bool] = {}  # sample shape -> whether every layer fits

    @classmethod
    def of(cls, model: Any) -> _Program | None:
        if type(model) is not Sequential:
            return None
        layers = list(model.layers)
        if not layers or type(layers[-1]) is not Linear:
            return None
        if any(type(m) not in _KINDS for m in layers):
            return None
        if any(type(m) is ReLU and m.grad_at_zero != 0 for m in layers):
            return None
        ops = []
        for m in _run_order(layers):  # as Sequential.forward runs them
            kind, args = _KINDS[type(m)], None
            try:
                if kind == CONV:
                    args = (_stride(m.stride), int(m.padding))
                    if args[1] < 0 or m.weight.data.ndim != 4:
                        return None
                elif kind == POOL:
                    k = pair(m.kernel_size, "kernel_size")
                    args = (k, _stride(m.stride if m.stride is not None else k))
                elif kind == LINEAR and m.weight.data.ndim != 2:
                    return None
            except (TypeError, ValueError):  # the engine raises the rule's error
                return None
            w, b = _weights(m) if kind in (LINEAR, CONV) else (None, None)
            ops.append((kind, w, b, args))
        params = [id(p) for m in layers for p in _weights(m) if p is not None]
        if len(set(params)) != len(params):  # a layer or parameter used twice: the engine sums
            return None
        return cls(model, ops)

    def matches(self, params: Sequence[Any]) -> bool:
        """Whether ``params`` are the model's parameters, in ``model.parameters()``'s order."""
        return list(map(id, params)) == self.param_ids

    def fits(self, x: Any, y: Any) -> bool:
        """Whether the forward and backward of this batch are the engine's (else it runs them)."""
        if B.kernels is not K or not engine._grad_mode.enabled or type(x) is not np.ndarray:
            return False
        dtype = self.params[0].data.dtype
        if x.dtype != dtype or dtype.char not in "fd" or x.ndim < 2 or not len(x):
            return False
        if len(x) != len(y) or not self._unchanged():
            return False
        for p, shape in zip(self.params, self.shapes, strict=True):
            d = p.data
            if type(d) is not np.ndarray or d.dtype != dtype or d.shape != shape:
                return False
        sample = x.shape[1:]
        plan = self.plans.get(sample)
        if plan is None:
            plan = self.plans[sample] = self._plan(sample)
        return plan

    def _unchanged(self) -> bool:
        """The model's layers, their parameters and settings are those it was built from."""
        if list(map(id, self.model.layers)) != self.ids:  # (self.modules keeps the ids taken)
            return False
        for m, get, values in self.settings:
            if get(m) != values:
                return False
        for m, w, b in self.owners:
            if m.weight is not w or m.bias is not b:
                return False
        return True

    def _plan(self, sample: tuple[int, ...]) -> bool:
        """Whether a sample of this shape passes every layer (each shape as the rules check it)."""
        s = tuple(sample)
        if not all(s):
            return False
        for kind, w, b, args in self.ops:
            if kind == LINEAR:
                out, features = w.data.shape
                if s != (features,) or (b is not None and b.data.shape != (out,)):
                    return False
                s = (out,)
            elif kind == CONV:
                o, c, fr, fc = w.data.shape
                stride, padding = args
                if len(s) != 3 or s[0] != c or (b is not None and b.data.shape != (o,)):
                    return False
                if s[1] + 2 * padding < fr or s[2] + 2 * padding < fc:
                    return False
                s = (
                    o,
                    K.out_size(s[1], fr, stride, padding),
                    K.out_size(s[2], fc, stride, padding),
                )
            elif kind == POOL:
                (kr, kc), stride = args
                if len(s) != 3 or kr > s[1] or kc > s[2]:
                    return False
                s = (s[0], K.out_size(s[1], kr, stride, 0), K.out_size(s[2], kc, stride, 0))
            elif kind == FLATTEN:
                s = (math.prod(s),)
            if not all(s):
                return False
        return True

    def run(self, x: Any, y: Any, sink: Callable[[int, Any], None], defer: bool) -> tuple:
        """(error sum, correct predictions, whether back-propagated): forward, softmax
        cross-entropy, and (the error finite) back propagation, each parameter's gradient
        handed to ``sink(its index in params, de/dh)`` as it is computed; ``defer``: a
        linear layer's weight gradient as the Product G^T X (SGD.backward_step's)."""
        tape = []  # what each layer's vjp reads: its input (and what its forward saved)
        a, own = x, False  # own: a is an array a layer has just made, that nothing else reads
        for kind, w, b, args in self.ops:
            if kind == LINEAR:
                tape.append(a)
                a, own = K.linear(a, w.data, None if b is None else b.data), True
            elif kind == RELU:  # in place on its own array (ReLU's vjp reads the output then)
                a, own = K.relu(a, inplace=own), True
                tape.append(a)
            elif kind == CONV:
                z, saved = K.conv2d(a, w.data, None if b is None else b.data, *args)
                tape.append((a, saved))
                a, own = z, True
            elif kind == POOL:
                z, mask = K.max_pool2d(a, *args)
                tape.append((a, mask))
                a, own = z, True
            else:
                tape.append(a.shape)
                a = K.reshape(a, (a.shape[0], -1))  # a view of a (or a copy): as own as a
        labels = _check_labels("softmax_cross_entropy", a, y)  # the rule's check and errors
        loss, p = K.softmax_cross_entropy(a, _label_index(labels))
        loss = np.asarray(loss)  # as the engine's loss tensor holds it
        loss_sum = float(loss) * len(y)
        correct = int(np.count_nonzero(a.argmax(axis=1) == y))
        if not math.isfinite(loss_sum):
            return loss_sum, correct, False  # nothing back-propagated (the caller stops)
        fast = K.FAST_VJPS
        seed = np.asarray(1, dtype=loss.dtype)
        g = fast["softmax_cross_entropy"](seed, loss, a, y, saved=p, needs=(True, False))[0]
        ops, index, first = self.ops, self.index, self.first
        for i in range(len(ops) - 1, first - 1, -1):
            kind, w, b, args = ops[i]
            if kind == LINEAR or kind == CONV:
                has_b = b is not None
                needs = (i > first, True, has_b)
                if kind == LINEAR:
                    dx, dw, db = fast["linear"](
                        g, None, tape[i], w.data, b.data if has_b else None,
                        needs=needs, defer=(False, True, has_b) if defer else (),
                    )  # fmt: skip
                else:
                    inp, saved = tape[i]
                    stride, padding = args
                    dx, dw, db = fast["conv2d"](
                        g, None, inp, w.data, b.data if has_b else None,
                        stride=stride, padding=padding, saved=saved, needs=needs,
                    )  # fmt: skip
                wi, bi = index[i]
                sink(wi, dw)
                if has_b:
                    sink(bi, db)
                g = dx
            elif kind == RELU:  # g: the array the next layer's vjp has just made
                g = K.relu_vjp_into(g, tape[i])
            elif kind == POOL:
                inp, mask = tape[i]
                kernel, stride = args
                g = fast["max_pool2d"](
                    g, None, inp, kernel, stride=stride, saved=mask, needs=(True,)
                )
                g = g[0]
            else:
                g = K.reshape(g, tape[i])
        return loss_sum, correct, True


def _weights(m: Any) -> tuple[Any, Any]:
    """(weight, bias) of a Linear or Conv2d layer, () for the others."""
    return (m.weight, m.bias) if type(m) in (Linear, Conv2d) else ()


class CompiledStep:
    """``step(x, y) -> (error sum, correct predictions)``: forward, softmax cross-entropy,
    backward and the SGD update of one mini-batch (x: N x ... float, y: N integer labels), the
    engine's numbers without its graph. Build it with :meth:`of` (None: not such a model);
    call it only where :meth:`fits` says so."""

    def __init__(self, program: _Program, optimizer: SGD) -> None:
        self.program, self.optimizer = program, optimizer

    @classmethod
    def of(cls, model: Any, optimizer: Any) -> CompiledStep | None:
        """The compiled step of ``model`` trained by ``optimizer``, or None where the model is not
        a ``Sequential`` of Linear, ReLU (plain), Conv2d, MaxPool2d and Flatten layers ending in
        a Linear layer, or the optimizer not an SGD over exactly its parameters, in order."""
        if type(optimizer) is not SGD:
            return None
        program = _Program.of(model)
        if program is None or not program.matches(optimizer.params):
            return None
        return cls(program, optimizer)

    def fits(self, x: Any, y: Any) -> bool:
        """Whether this step is the engine's for this batch now (else the engine runs it)."""
        opt = self.optimizer
        if not opt.momentum or opt.nesterov:
            return False
        if not self.program.matches(opt.params):  # the optimizer's list changed since
            return False
        if any(p.grad is not None for p in opt.params):  # accumulated: the two-call step
            return False
        return self.program.fits(x, y)

    def __call__(self, x: Any, y: Any) -> tuple[float, int]:
        opt = self.optimizer
        v, mu, lr, wd, params = opt.velocity, opt.momentum, opt.lr, opt.weight_decay, opt.params

        def sink(i: int, grad: Any) -> None:
            # the whole update of h as soon as de/dh is there (h, v and G still in the
            # caches): back propagation no longer reads h (each parameter is one layer's, and
            # its vjp has returned), so the numbers are those of updating after the last one
            v[i] = K.momentum_into(v[i], grad, mu)
            K.sgd_apply(params[i].data, v[i], lr, wd)

        loss_sum, correct, done = self.program.run(x, y, sink, defer=True)
        if done:
            opt.steps += 1
        return loss_sum, correct


class CompiledGrads:
    """``grads(x, y) -> (error sum, correct predictions, [de/dh] or None)``: one shard's forward
    and back propagation (``BatchThreads`` with several threads), the engine's
    ``forward_backward(model, params, x, y)`` without its graph; the gradients of the shard's
    mean error in ``params``' order, None where the error is not finite. Build it with
    :meth:`of`; call it only where :meth:`fits` says so (each thread may call it at once)."""

    def __init__(self, program: _Program) -> None:
        self.program = program

    @classmethod
    def of(cls, model: Any, params: Sequence[Any]) -> CompiledGrads | None:
        """None where the model is not one :class:`CompiledStep` takes, or ``params`` are not
        exactly its parameters, in order."""
        program = _Program.of(model)
        if program is None or not program.matches(params):
            return None
        return cls(program)

    def fits(self, x: Any, y: Any) -> bool:
        return self.program.fits(x, y)

    def __call__(self, x: Any, y: Any) -> tuple[float, int, list[Any] | None]:
        grads: list[Any] = [None] * len(self.program.params)

        def sink(i: int, grad: Any) -> None:
            grads[i] = grad

        loss_sum, correct, done = self.program.run(x, y, sink, defer=False)
        return loss_sum, correct, grads if done else None
