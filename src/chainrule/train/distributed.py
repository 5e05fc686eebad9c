"""Synchronous data-parallel training over MPI: N ranks, one network, the same updates.

Launched as ``mpiexec -n N chainrule train ...``, each of the N ranks (processes) holds a copy
of the network. Every mini-batch B is the one a single process would draw (same seed, same
order); rank r takes its contiguous slice B_r (samples floor(r|B|/N) .. floor((r+1)|B|/N) - 1),
runs forward and back propagation on it, and the ranks add up

    de/dh = sum_r (|B_r| / |B|) de_r/dh        with  e_r = (1/|B_r|) sum_{i in B_r} e_i

which is de/dh of the mean error over the whole batch, e = (1/|B|) sum_{i in B} e_i: the
gradient one process computes. All gradients are packed into one contiguous buffer (float32
for training) and summed by one in-place ``Allreduce``; every rank then makes the same update.
So N ranks follow the trajectory of one process up to the order of the float additions (a
shard's products instead of the batch's, a sum over ranks): the same to ~1e-6 relative after
an epoch, not bit for bit, and the longer a run the further the roundings may carry it.

The same Allreduce carries the batch's error sum and its count of correct predictions. After
every update the ranks check together (one tiny Allreduce) whether any of them was asked to
stop (Ctrl-C or SIGTERM on any rank), so all ranks stop after the same update and rank 0 saves
a checkpoint that every rank agrees with. Evaluation is sharded by batches of the
one-process evaluation (so the scores are the same numbers) and summed. Rank 0 alone reads the
data and the checkpoint and broadcasts them, prints, and writes files.

A rank that fails or is killed ends the whole job: an error calls ``MPI_Abort`` (see
:func:`chainrule._launch.abort_if_distributed`), and mpiexec (MPICH's hydra) kills the other
ranks when one dies, printing ``BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES``. No rank
waits in a collective for a rank that is gone.

Without mpiexec (or with ``-n 1``) :func:`world` is a single rank and every method here is a
no-op that returns its input: mpi4py is never imported.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .._launch import abort_if_distributed, launched_ranks

__all__ = ["World", "world", "allreduce_gradients", "set_blas_threads", "blas_threads"]


class World:
    """The ranks of this run: ``rank`` of ``size`` (size 1 without MPI: methods are no-ops)."""

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm
        self.rank = int(comm.Get_rank()) if comm is not None else 0
        self.size = int(comm.Get_size()) if comm is not None else 1
        self.allreduce_seconds = 0.0  # time spent in the gradient Allreduce (this process)
        self.allreduce_calls = 0
        self._buffer: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that reads the data, prints and writes files."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, size), as :class:`~chainrule.data.DataLoader` takes it."""
        return (self.rank, self.size)

    def _mpi(self) -> Any:
        from mpi4py import MPI

        return MPI

    # -- the update ----------------------------------------------------------------------------
    def allreduce_gradients(
        self, params: Iterable[Any], scale: float | None = None, extras: Sequence[float] = ()
    ) -> np.ndarray:
        """Replace every ``p.grad`` by the sum over ranks of ``scale * p.grad``; sum ``extras``.

        ``scale`` defaults to 1/size (the average). The gradients are packed into one
        contiguous buffer of the parameters' dtype, followed by one 0/1 flag per parameter (has
        it a gradient on this rank: a missing one counts as zeros) and the numbers ``extras``,
        and summed by one in-place ``Allreduce``. Afterwards ``p.grad`` is a view of its part
        of the buffer (until the next call), or ``None`` when no rank had a gradient for p.
        Returns the summed ``extras`` as float64 (len(extras),).
        """
        params = list(params)
        scale = 1.0 / self.size if scale is None else float(scale)
        dtype = np.result_type(*(p.dtype for p in params))
        total = sum(p.size for p in params) + len(params) + len(extras)
        buf = self._buffer
        if buf is None or buf.size != total or buf.dtype != dtype:
            buf = self._buffer = np.empty(total, dtype)
        off = 0
        for p in params:
            part = buf[off : off + p.size].reshape(p.shape)
            if p.grad is None:
                part.fill(0)
            elif scale == 1.0:
                np.copyto(part, p.grad)
            else:
                np.multiply(p.grad, scale, out=part)
            off += p.size
        flags = buf[off : off + len(params)]
        flags[:] = [p.grad is not None for p in params]
        tail = buf[off + len(params) :]
        tail[:] = extras
        if self.size > 1:
            mpi = self._mpi()
            start = time.perf_counter()
            self.comm.Allreduce(mpi.IN_PLACE, buf, op=mpi.SUM)
            self.allreduce_seconds += time.perf_counter() - start
            self.allreduce_calls += 1
        off = 0
        for p, flag in zip(params, flags, strict=True):
            p.grad = buf[off : off + p.size].reshape(p.shape) if flag > 0 else None
            off += p.size
        return tail.astype(np.float64)

    def reduce_batch(
        self,
        params: Sequence[Any],
        shard_size: int,
        batch_size: int,
        loss_sum: float,
        correct: int,
    ) -> tuple[float, int]:
        """After back propagation on this rank's shard: the whole batch's gradient on every rank.

        Gradients are weighted by shard_size / batch_size and summed (the gradient of the mean
        error over the batch), in the same Allreduce as the shards' error sums and counts of
        correct predictions. Returns the batch's (error sum, correct predictions), the same on
        every rank. One rank: the inputs, untouched.
        """
        if self.size == 1:
            return loss_sum, correct
        loss, right = self.allreduce_gradients(params, shard_size / batch_size, (loss_sum, correct))
        return float(loss), int(round(right))

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (a collective: every rank must call it)."""
        return bool(self.max(int(bool(flag))))

    def max(self, value: int) -> int:
        """The largest ``value`` over the ranks (a collective: every rank must call it)."""
        if self.size == 1:
            return int(value)
        buf = np.array([int(value)], np.int64)
        self.comm.Allreduce(self._mpi().IN_PLACE, buf, op=self._mpi().MAX)
        return int(buf[0])

    def check_same(self, model: Any, epoch: int) -> None:
        """Raise when the ranks' parameters differ (they must after every update: one update)."""
        if self.size == 1:
            return
        crc = 0
        for p in model.parameters():
            crc = zlib.crc32(np.ascontiguousarray(p.data).tobytes(), crc)
        mine = np.array([crc], np.int64)
        everyone = np.empty(self.size, np.int64)
        self.comm.Allgather(mine, everyone)
        if np.any(everyone != everyone[0]):
            raise RuntimeError(
                f"after epoch {epoch} the ranks hold different parameters (CRC32 "
                f"{', '.join(f'{int(c):08x}' for c in everyone)}): their MPI sums disagree; "
                "rerun with one process or another MPI library"
            )

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, model: Any, dataset: Any, batch_size: int = 1000) -> Any:
        """:func:`~chainrule.train.evaluate`, the batches shared out among the ranks.

        Rank r scores batches r, r + N, r + 2N, ... of the one-process evaluation (the same
        batches, so the same numbers); the scores are summed into place on every rank and the
        Evaluation is computed from all of them, identically everywhere.
        """
        from .metrics import evaluate, evaluation_from_scores, predict_scores

        if self.size == 1:
            return evaluate(model, dataset, batch_size)
        n = len(dataset)
        if n == 0:
            raise ValueError(f"cannot evaluate on the empty dataset {dataset.name!r}")
        scores = np.zeros((n, dataset.classes), np.float32)
        for start in range(self.rank * batch_size, n, self.size * batch_size):
            part = predict_scores(model, dataset.images[start : start + batch_size], batch_size)
            if part.shape[1:] != scores.shape[1:]:
                raise ValueError(
                    f"the model gives {part.shape[1]} scores per sample, the dataset has "
                    f"{dataset.classes} classes"
                )
            scores[start : start + len(part)] = part
        self.comm.Allreduce(self._mpi().IN_PLACE, scores, op=self._mpi().SUM)  # x + 0 = x
        return evaluation_from_scores(scores, dataset)

    # -- rank 0 shares what it read --------------------------------------------------------------
    def barrier(self) -> None:
        """Wait for every rank, asleep (MPI's blocking barrier would spin a core meanwhile)."""
        if self.size == 1:
            return
        request = self.comm.Ibarrier()
        while not request.Test():
            time.sleep(0.002)

    def broadcast_json(self, value: Any) -> Any:
        """Rank 0's JSON-able ``value`` on every rank (the others pass anything, e.g. None)."""
        if self.size == 1:
            return value
        raw = json.dumps(value).encode() if self.is_root else b""
        length = np.array([len(raw)], np.int64)
        self.comm.Bcast(length, root=0)
        data = (
            np.frombuffer(raw, np.uint8).copy() if self.is_root else np.empty(length[0], np.uint8)
        )
        self.comm.Bcast(data, root=0)
        return json.loads(data.tobytes().decode())

    def broadcast_arrays(self, arrays: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Rank 0's named arrays on every rank (names, shapes and dtypes first, then the data)."""
        if self.size == 1:
            assert arrays is not None
            return arrays
        mine: dict[str, np.ndarray] = {}
        if self.is_root:
            assert arrays is not None
            mine = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        spec = self.broadcast_json(
            {k: [list(v.shape), v.dtype.str] for k, v in mine.items()} if self.is_root else None
        )
        out = {}
        for name, (shape, dtype) in spec.items():
            a = mine[name] if self.is_root else np.empty(shape, np.dtype(dtype))
            self.comm.Bcast(a, root=0)
            out[name] = a
        return out

    def broadcast_dataset(self, dataset: Any) -> Any:
        """Rank 0's Dataset on every rank (the others pass None): only rank 0 reads the files."""
        from ..data import Dataset

        if self.size == 1:
            return dataset
        self.barrier()  # the others sleep while rank 0 reads (or downloads)
        head = self.broadcast_json(
            {"name": dataset.name, "classes": dataset.classes} if self.is_root else None
        )
        arrays = self.broadcast_arrays(
            {"images": dataset.images, "labels": dataset.labels} if self.is_root else None
        )
        if self.is_root:
            return dataset
        return Dataset(arrays["images"], arrays["labels"], head["name"], head["classes"])

    def broadcast_checkpoint(self, ckpt: Any) -> Any:
        """Rank 0's loaded :class:`~chainrule.train.Checkpoint` on every rank (others: None)."""
        from dataclasses import fields
        from pathlib import Path

        from .checkpoint import Checkpoint

        if self.size == 1:
            return ckpt
        self.barrier()
        text = None
        if self.is_root:
            text = {
                f.name: getattr(ckpt, f.name)
                for f in fields(Checkpoint)
                if f.name not in ("model_state", "optimizer_state", "path")
            }
            text["path"] = str(ckpt.path) if ckpt.path else None
        meta = self.broadcast_json(text)
        model = self.broadcast_arrays(ckpt.model_state if self.is_root else None)
        opt = self.broadcast_arrays(ckpt.optimizer_state if self.is_root else None)
        if self.is_root:
            return ckpt
        path = meta.pop("path")
        return Checkpoint(
            **meta, model_state=model, optimizer_state=opt, path=Path(path) if path else None
        )

    def broadcast_state(self, model: Any, optimizer: Any = None) -> None:
        """Give every rank rank 0's parameters (in place) and optimiser state."""
        if self.size == 1:
            return
        for p in model.parameters():
            self.comm.Bcast(p.data, root=0)  # parameters are C-contiguous arrays
        if optimizer is not None:
            state = self.broadcast_arrays(optimizer.state_dict() if self.is_root else None)
            if not self.is_root:
                optimizer.load_state_dict(state)

    def communication(self, train_seconds: float) -> dict[str, Any]:
        """The Allreduce's cost so far, for metrics.json (``train_seconds``: the same span)."""
        calls = self.allreduce_calls
        return {
            "world_size": self.size,
            "allreduce_calls": calls,
            "allreduce_seconds_per_step": self.allreduce_seconds / calls if calls else 0.0,
            "allreduce_share_of_training": (
                self.allreduce_seconds / train_seconds if train_seconds > 0 else 0.0
            ),
            "gradient_buffer_bytes": int(self._buffer.nbytes) if self._buffer is not None else 0,
        }


#: the single-process world (the default of :class:`~chainrule.train.Trainer`)
LOCAL = World()
_WORLD: World | None = None


def world() -> World:
    """This process's World: MPI's ``COMM_WORLD`` under ``mpiexec -n N`` (N > 1), else LOCAL.

    Initialises MPI on first call (mpi4py imported then only); installs a hook that aborts the
    whole job when an exception escapes on any rank. Raises RuntimeError with the fix when
    mpi4py is missing or mpiexec belongs to another MPI than mpi4py's.
    """
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    n = launched_ranks()
    if n == 1:
        _WORLD = LOCAL
        return _WORLD
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError(
            f"started as one of {n} ranks by mpiexec, but mpi4py is not installed: "
            "pip install 'chainrule[mpi]' (mpi4py and MPICH), or run without mpiexec"
        ) from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != n:
        library = MPI.Get_library_version().strip().splitlines()[0]
        raise RuntimeError(
            f"mpiexec started {n} ranks, but MPI ({library}) sees {comm.Get_size()}: this "
            "mpiexec belongs to another MPI than mpi4py's; use the mpiexec next to this Python "
            f"({sys.prefix}/bin/mpiexec, from pip install mpich)"
        )
    previous = sys.excepthook

    def abort_on_error(kind: Any, value: Any, tb: Any) -> None:
        previous(kind, value, tb)
        abort_if_distributed(1)

    sys.excepthook = abort_on_error
    _WORLD = World(comm)
    return _WORLD


def allreduce_gradients(params: Iterable[Any], world_: World | None = None) -> float:
    """Average every ``p.grad`` over the ranks with one in-place Allreduce; seconds it took.

    See :meth:`World.allreduce_gradients` (weights other than 1/N, extra numbers).
    """
    w = world_ if world_ is not None else world()
    before = w.allreduce_seconds
    w.allreduce_gradients(params)
    return w.allreduce_seconds - before


def blas_threads() -> int | None:
    """The BLAS thread count NumPy runs with (None when threadpoolctl cannot tell)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def set_blas_threads(threads: int) -> None:
    """Run NumPy's BLAS with ``threads`` threads from now on (threadpoolctl)."""
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"--threads must be a whole number >= 1, got {threads}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise RuntimeError(
            "--threads needs threadpoolctl: pip install 'chainrule[train]' (or threadpoolctl)"
        ) from None
    threadpool_limits(limits=int(threads), user_api="blas")
