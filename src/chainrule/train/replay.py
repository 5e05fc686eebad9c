"""A training step replayed without building its graph: the same kernels and vjps, in the same
order, on the same arrays.

Every step of ``chainrule train`` runs the same operations on batches of one shape: the
network's forward pass, softmax cross-entropy, and back propagation through the reversed
graph. Building that graph each step (a Tensor and a Node per operation, the topological walk,
the per-node bookkeeping) costs little when the caches are warm, but a step streams its
weights through the cache, so each of those small Python calls runs cold, at several times
its warm cost (benchmarks/bench_cold_python.py): 8-9% of the MLP's step at 2 threads
(benchmarks/bench_engine_cost.py).

:class:`StepReplay` records the first step's rule calls (:func:`chainrule.engine.recording`)
and its graph's reversed order, checks that the recording replays to the bit, and from then
on runs each step from the recording: each rule's forward on the arrays it read, then for each
node, in the engine's order, the same vjp (:func:`chainrule.engine.vjp_inputs`) with the
same accumulation, each leaf's gradient going to the optimiser's sink or ``.grad`` as
:func:`chainrule.engine.backward_into` would. The numbers are the engine's, bit for bit
(tests/test_replay.py).

It replays only what cannot change between steps unseen: a :class:`~chainrule.nn.Sequential`
of the layer types in :data:`REPLAYABLE` (their forward is a fixed sequence of rules whose
parameters depend on shapes only), recorded again whenever the batch's shape or dtype, a
layer's settings or parameters (identity, shape, dtype, ``requires_grad``), the backend or
grad mode change. Anything else in a recording (an array that is neither the batch, its
labels, a parameter nor an earlier result) makes the model not replayable, and the engine
runs every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backend as B
from .. import engine
from ..engine import Tensor, recording, topological_order, vjp_inputs
from ..nn.modules import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from ..rules import softmax_cross_entropy

#: the layer types whose forward a recording captures whole (exact types, not subclasses)
REPLAYABLE = (Flatten, Linear, ReLU, Conv2d, MaxPool2d)

_SETTING_TYPES = (int, float, bool, str, tuple, type(None))


def replayable(model: Any) -> bool:
    """Whether :class:`StepReplay` may replay ``model``'s steps: a Sequential of the
    :data:`REPLAYABLE` types, none of them (nor the Sequential) given a ``forward`` or
    ``__call__`` of its own (which could branch on the data)."""
    modules = [model, *getattr(model, "layers", ())]
    if type(model) is not Sequential or any("forward" in vars(m) for m in modules):
        return False
    return all(type(layer) in REPLAYABLE and "__call__" not in vars(layer) for layer in modules[1:])


class _Op:
    """One recorded rule call: the rule, where each input comes from, its parameters."""

    __slots__ = ("rule", "inputs", "params", "tensor")

    def __init__(self, rule: Any, inputs: list[tuple[Any, ...]], params: dict, tensor: bool):
        self.rule, self.inputs, self.params, self.tensor = rule, inputs, params, tensor


class _Node:
    """One entry of the reversed walk: an op's output (``op`` >= 0) or a parameter (``leaf``)."""

    __slots__ = ("key", "op", "leaf", "needs", "keys", "leaf_ids")

    def __init__(self, key: Any, op: int = -1, leaf: Tensor | None = None) -> None:
        self.key, self.op, self.leaf = key, op, leaf
        self.needs: tuple[bool, ...] = ()
        self.keys: list[Any] = []  # the key of each input's gradient
        self.leaf_ids: list[int | None] = []  # id of each input that is a parameter


class StepReplay:
    """The forward, softmax cross-entropy and back propagation of ``model``'s training step,
    replayed from a recording (see the module's docstring); ``model`` must be
    :func:`replayable`."""

    def __init__(self, model: Any) -> None:
        if not replayable(model):
            raise TypeError("StepReplay: a Sequential of Flatten, Linear, ReLU, Conv2d, MaxPool2d")
        self.model = model
        self.key: Any = None
        self.ops: list[_Op] | None = None
        self.walk: list[_Node] = []
        self.scores = self.loss = -1

    def __call__(self, x: Any, y: Any, backward_with: Callable[[Any], None]) -> tuple[float, int]:
        """(error sum, correct predictions) of the batch, after back propagation through
        ``backward_with(backward)`` (an optimiser's :meth:`backward_with`); nothing is
        back-propagated when the error is not finite."""
        key = self._key(x, y)
        if key != self.key:
            return self._record(x, y, key, backward_with)
        if self.ops is None:  # not replayable: the engine
            return self._engine_step(x, y, backward_with)
        values, inputs, saved = self._forward(x, y)
        loss_sum, correct = _stats(values[self.loss], values[self.scores], y)
        if math.isfinite(loss_sum):
            backward_with(lambda sinks: self._backward(values, inputs, saved, sinks))
        return loss_sum, correct

    # -- recording -------------------------------------------------------------------------
    def _key(self, x: Any, y: Any) -> tuple[Any, ...]:
        """What the recording depends on besides the arrays' values."""
        if type(x) is not B.array_type or type(y) is not B.array_type:
            return (None,)  # record every step: the engine runs them
        parts: list[Any] = [x.shape, x.dtype, y.shape, y.dtype, engine._grad_mode.enabled]
        parts += [id(B.xp), id(B.fast_vjps), len(self.model.layers)]
        for layer in self.model.layers:
            parts.append(id(layer))
            for name, v in vars(layer).items():
                if isinstance(v, Tensor):
                    parts.append((name, id(v), v.data.shape, v.data.dtype, v.requires_grad))
                elif type(v) in _SETTING_TYPES:
                    parts.append((name, v))
                else:
                    parts.append((name, id(v)))
        return tuple(parts)

    def _engine_step(self, x: Any, y: Any, backward_with: Callable[[Any], None]) -> tuple:
        scores = self.model(x)
        loss = softmax_cross_entropy(scores, y)
        loss_sum, correct = _stats(loss.data, scores.data, y)
        if math.isfinite(loss_sum):
            backward_with(lambda sinks: engine.backward_into(loss, sinks))
        return loss_sum, correct

    def _record(self, x: Any, y: Any, key: Any, backward_with: Callable[[Any], None]) -> tuple:
        self.key, self.ops = key, None
        if key == (None,):
            return self._engine_step(x, y, backward_with)
        with recording() as calls:
            scores = self.model(x)
            loss = softmax_cross_entropy(scores, y)
        if self._plan(calls, x, y, scores, loss):
            values, _, _ = self._forward(x, y)
            same = _bits(values[self.loss]) == _bits(loss.data)
            if not (same and _bits(values[self.scores]) == _bits(scores.data)):
                self.ops = None  # it does not replay to the bit: the engine runs every step
        loss_sum, correct = _stats(loss.data, scores.data, y)
        if math.isfinite(loss_sum):
            backward_with(lambda sinks: engine.backward_into(loss, sinks))
        return loss_sum, correct

    def _plan(self, calls: list[tuple[Any, ...]], x: Any, y: Any, scores: Any, loss: Any) -> bool:
        """Build self.ops and self.walk from a recording; False where it cannot replay."""
        params = {
            id(v): v
            for layer in self.model.layers
            for v in vars(layer).values()
            if isinstance(v, Tensor)
        }
        where: dict[int, tuple[Any, ...]] = {id(x): ("x",), id(y): ("y",)}
        ops: list[_Op] = []
        for rule, args, datas, kw, result in calls:
            inputs: list[tuple[Any, ...]] = []
            for a, d in zip(args, datas, strict=True):
                if id(a) in where:
                    inputs.append(where[id(a)])
                elif isinstance(a, Tensor):
                    if id(a) not in params or a._node is not None:
                        return False  # a Tensor that is no parameter and no earlier result
                    inputs.append(("p", a))
                elif a is None or type(a) in (int, float, bool):
                    inputs.append(("c", d))
                else:
                    return False  # an array made outside the recording (a constant, a mask)
            if isinstance(result, Tensor) and result._retain:
                return False  # retain_grad(): the engine stores that gradient
            where[id(result)] = ("o", len(ops))
            ops.append(_Op(rule, inputs, kw, isinstance(result, Tensor)))
        if not ops or where.get(id(loss)) != ("o", len(ops) - 1) or id(scores) not in where:
            return False
        self.scores, self.loss = where[id(scores)][1], len(ops) - 1
        walk = []
        for t in reversed(topological_order([loss])):
            if t._node is None:
                if id(t) not in params:
                    return False
                walk.append(_Node(("p", id(t)), leaf=t))
                continue
            k = where[id(t)][1]
            node = _Node(("o", k), op=k)
            node.needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in t._node.inputs)
            for a in t._node.inputs:
                if not isinstance(a, Tensor):
                    node.keys.append(None)
                    node.leaf_ids.append(None)
                elif a._node is None:
                    node.keys.append(("p", id(a)))
                    node.leaf_ids.append(id(a))
                else:
                    node.keys.append(("o", where[id(a)][1]))
                    node.leaf_ids.append(None)
            walk.append(node)
        self.ops, self.walk = ops, walk
        return True

    # -- replay ----------------------------------------------------------------------------
    def _forward(self, x: Any, y: Any) -> tuple[list[Any], list[tuple[Any, ...]], list[Any]]:
        """Each op's forward on the arrays it reads: (outputs, inputs, saved) by op."""
        assert self.ops is not None
        array = B.array_type
        values: list[Any] = []
        inputs: list[tuple[Any, ...]] = []
        saved: list[Any] = []
        for op in self.ops:
            datas = []
            for ref in op.inputs:
                kind = ref[0]
                if kind == "o":
                    datas.append(values[ref[1]])
                elif kind == "p":
                    datas.append(ref[1].data)
                elif kind == "x":
                    datas.append(x)
                elif kind == "y":
                    datas.append(y)
                else:
                    datas.append(ref[1])
            out = op.rule.forward(*datas, **op.params)
            kept = None
            if op.rule.saves:
                out, kept = out
            if op.tensor and type(out) is not array:
                out = B.xp.asarray(out)  # as the engine stores a ufunc's 0-d result
            values.append(out)
            inputs.append(tuple(datas))
            saved.append(kept)
        return values, inputs, saved

    def _backward(
        self, values: list[Any], inputs: list[tuple[Any, ...]], saved: list[Any], sinks: Any
    ) -> None:
        """The engine's backprop (accumulate, no graph kept) over the recorded walk."""
        assert self.ops is not None
        loss = values[self.loss]
        grads: dict[Any, Any] = {("o", self.loss): engine.seed_of(loss)}
        owned: set[int] = set()
        prev = engine._grad_mode.enabled
        engine._grad_mode.enabled = False
        try:
            for node in self.walk:
                g = grads.pop(node.key, None)
                if g is None:
                    continue
                if node.leaf is not None:
                    sink = sinks.get(id(node.leaf)) if sinks else None
                    if sink is not None:
                        sink(g)
                    else:
                        engine._store_grad(node.leaf, g, owned)
                    continue
                op = self.ops[node.op]
                kw = dict(op.params, saved=saved[node.op]) if op.rule.saves else op.params
                defer = None
                if sinks and getattr(B.fast_vjps.get(op.rule.name), "defers", False):
                    flags = [
                        need and i is not None and i in sinks
                        for need, i in zip(node.needs, node.leaf_ids, strict=True)
                    ]
                    defer = tuple(flags) if any(flags) else None
                got = vjp_inputs(
                    op.rule, g, values[node.op], inputs[node.op], kw, node.needs, defer
                )
                for i, gi in got:
                    k = node.keys[i]
                    before = grads.get(k)
                    grads[k] = gi if before is None else before + gi  # the split rule
        finally:
            engine._grad_mode.enabled = prev


def _stats(loss: Any, scores: Any, y: Any) -> tuple[float, int]:
    """(error sum, correct predictions), as :func:`chainrule.train.threads.forward_backward`."""
    return float(loss) * len(y), int(np.count_nonzero(scores.argmax(axis=1) == y))


def _bits(a: Any) -> bytes:
    return np.ascontiguousarray(B.to_numpy(a)).tobytes()
