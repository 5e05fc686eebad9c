"""Several threads in one process: each mini-batch split over T threads, one BLAS thread each.

With T BLAS threads, only the matrix products run on all cores; everything between them
(im2col and col2im, max-pool, ReLU, bias, the softmax, the engine's Python) runs on one core
while the others wait. :class:`BatchThreads` instead splits each mini-batch into T
contiguous shards and runs forward and backward of each shard in its own thread, every
product single-threaded: NumPy's kernels and BLAS release the GIL, so all of the work runs in
parallel, and only the engine's Python takes turns. The gradient of the batch's mean error
is then

    de/dh = sum_k (n_k / n) de_k/dh      (e_k: the mean error over shard k, n_k samples)

the same numbers as the whole batch's back propagation up to the order of the float sums.
``benchmarks/bench_speed.py`` measures what it gains (LeNet-5 gains, the MLP, whose step is
one large product, does not: see the README's speed table), and ``chainrule train
--parallel`` chooses between the two ways of using the cores.

Each thread's back propagation uses :func:`chainrule.engine.autograd_grad`, which leaves
``.grad`` alone, and the graph mode is per thread (one thread's backward pass never stops
another's forward pass from recording).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from typing import Any

import numpy as np

from ..engine import autograd_grad
from ..rules import softmax_cross_entropy
from .compiled import CompiledGrads, CompiledStep

__all__ = ["BatchThreads", "forward_backward", "default_batch_threads"]


#: ``--parallel auto`` splits over at most this many threads: the shards' Python takes turns
#: (one GIL), and the split was measured on 2 cores only
AUTO_MAX_THREADS = 4

#: a shard has at least this many samples (a smaller batch is split into fewer shards)
MIN_SHARD = 16


def default_batch_threads(model: str, blas_threads: int | None) -> int:
    """``chainrule train --parallel auto``: the CNN splits its batches over the BLAS threads
    (at most :data:`AUTO_MAX_THREADS`), the MLP (one large product per layer: BLAS's own
    threads win) does not."""
    if model != "cnn":
        return 1
    return max(1, min(blas_threads or 1, AUTO_MAX_THREADS))


def forward_backward(
    model: Any,
    params: Sequence[Any] | None,
    x: Any,
    y: Any,
    backward: Callable[[Any], None] | None = None,
) -> tuple[float, int, Any]:
    """One shard: (error sum, correct predictions, de/dh of the shard's mean error or None).

    ``params=None``: back propagation into ``.grad`` (``loss.backward()``, or ``backward(loss)``
    when given, e.g. an optimiser's ``backward_step``), gradients None. Nothing is
    back-propagated when the error is not finite (the caller stops the run).
    """
    scores = model(x)
    loss = softmax_cross_entropy(scores, y)
    loss_sum = float(loss.data) * len(y)
    correct = int(np.count_nonzero(scores.data.argmax(axis=1) == y))
    if not math.isfinite(loss_sum):
        return loss_sum, correct, None
    if params is None:
        if backward is None:
            loss.backward()
        else:
            backward(loss)
        return loss_sum, correct, None
    return loss_sum, correct, autograd_grad(loss, list(params))


class BatchThreads:
    """Forward and backward of a mini-batch in ``threads`` shards, one thread (and one BLAS
    thread) each; :meth:`__call__` leaves the batch's gradient in every parameter's ``.grad``.
    A shard holds at least :data:`MIN_SHARD` samples: a smaller batch uses fewer threads.

    ``threads`` = 1 runs the whole batch in the calling thread, as a plain step does. Given an
    ``optimizer`` (whose parameters are ``params``), :meth:`__call__` is the whole training step:
    it also updates the parameters, the whole batch through ``optimizer.backward_step(loss)``
    (SGD never stores the gradient then: :meth:`chainrule.optim.SGD.backward_step`), shards
    through ``.grad`` and ``optimizer.step()``; nothing is updated when the error is not finite.
    The whole-batch step of an MLP or a CNN (:mod:`chainrule.train.compiled`: Linear, ReLU,
    Conv2d, MaxPool2d, Flatten) then runs compiled, and so does each shard's forward and
    backward without an optimizer too (the engine's kernel calls and numbers, without the
    graph), unless ``compiled=False``.
    Call :meth:`close` (or use ``with``) to stop the worker threads.
    """

    def __init__(
        self,
        model: Any,
        params: Sequence[Any],
        threads: int,
        optimizer: Any = None,
        compiled: bool = True,
    ) -> None:
        if isinstance(threads, bool) or int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be a whole number >= 1, got {threads}")
        if optimizer is not None and [id(p) for p in optimizer.params] != [id(p) for p in params]:
            raise ValueError("BatchThreads: the optimizer must update exactly the given params")
        self.model, self.params, self.threads = model, list(params), int(threads)
        self.optimizer = optimizer
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self._blas = _single_threaded_blas() if self.threads > 1 else None
        # the whole step, and each shard's gradients, as straight-line kernel calls: the
        # engine's numbers (compiled.py); None: not such a model (or, for the step, not SGD)
        self._compiled = CompiledStep.of(model, optimizer) if compiled else None
        self._shards = CompiledGrads.of(model, self.params) if compiled else None

    def __call__(self, x: Any, y: Any) -> tuple[float, int]:
        """(error sum, correct predictions) of the batch (x: N x ..., y: N labels)."""
        n = len(y)
        shards = []
        if self._pool is not None:
            k = max(1, min(self.threads, n // MIN_SHARD))
            bounds = [n * i // k for i in range(k + 1)]
            shards = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
        if len(shards) < 2:  # the plain step: backward() into .grad
            if self._compiled is not None and self._compiled.fits(x, y):
                return self._compiled(x, y)
            update = None if self.optimizer is None else self.optimizer.backward_step
            loss_sum, correct, _ = forward_backward(self.model, None, x, y, update)
            return loss_sum, correct
        if self._shards is not None and self._shards.fits(x, y):
            run: Callable[..., Any] = self._shards
        else:
            run = partial(forward_backward, self.model, self.params)
        with self._blas():  # each shard's products on one core: the shards fill the cores
            futures = [self._pool.submit(run, x[lo:hi], y[lo:hi]) for lo, hi in shards[1:]]
            lo, hi = shards[0]
            try:
                results = [run(x[lo:hi], y[lo:hi])]
            finally:  # no thread may still be running when this returns or raises
                wait(futures)
            results += [f.result() for f in futures]
        sizes = [hi - lo for lo, hi in shards]
        loss_sum = sum(r[0] for r in results)
        correct = sum(r[1] for r in results)
        if any(r[2] is None for r in results):
            return loss_sum, correct  # not finite: no gradient (the caller stops)
        for i, p in enumerate(self.params):
            grad = None
            for (_, _, grads), size in zip(results, sizes, strict=True):
                g = grads[i] * (size / n)
                grad = g if grad is None else grad + g
            p.grad = grad if p.grad is None else p.grad + grad
        if self.optimizer is not None:
            self.optimizer.step()
        return loss_sum, correct

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> BatchThreads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _single_threaded_blas() -> Any:
    """A context-manager factory: BLAS runs with one thread inside (threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        raise RuntimeError(
            "splitting batches over threads needs threadpoolctl: pip install 'chainrule[train]'"
        ) from None
    controller = ThreadpoolController()  # finds the libraries once; limit() is then cheap
    return lambda: controller.limit(limits=1, user_api="blas")
