"""The training loop of the lecture: forward propagation, error, back propagation, weight update.

For every mini-batch (X_B, y_B) of an epoch (a seeded shuffle of the training set):

    x5 = model(X_B)                          forward propagation (scores, N x 10)
    e  = softmax_cross_entropy(x5, y_B)      the surrogate error, mean over the batch
    e.backward()                             back propagation: de/dh for every weight h
    h <- h - alpha_t de/dh                   the optimiser's in-place update

After every epoch the model is evaluated (no graph, large batches) on training and test data,
giving both the surrogate error (cross-entropy) and the actual error (top-1); then the
checkpoint is rewritten atomically.

The order of the mini-batches of epoch t depends on (seed, t) only, and the learning rate is a
function of t: a run resumed from a checkpoint (parameters, optimiser state, epoch, position
inside the epoch) repeats exactly the updates an uninterrupted run would make.

Ctrl-C (SIGINT) or SIGTERM asks the loop to stop: it finishes the current update, saves a
checkpoint with its position inside the epoch, and returns with ``interrupted=True`` (and
``stop_signal`` saying which); a second signal stops at once.

Divergence: when the surrogate error of a mini-batch is NaN or inf (checked every batch, before
its update), or a parameter is (checked before every checkpoint is written), the loop raises
:class:`DivergenceError` without saving: the last checkpoint on disk is the last finite state.

Progress shows as ``tqdm.auto`` bars (widgets in a notebook, text in a terminal); in a Jupyter
notebook the error curves are also redrawn in place after every epoch (``live_plot``).

Data-parallel (``world``, :mod:`chainrule.train.distributed`): each rank runs the same loop on
its shard of every batch; the hooks marked "distributed" sum the gradients and the counts and
agree on stopping, and only rank 0 prints and saves. With one process they change nothing.
Threads (``batch_threads``, :mod:`chainrule.train.threads`): each batch (or rank's shard) is
split again over threads in this process, with the same sum of gradients.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DataLoader, Dataset
from ..display import LiveCurves, in_notebook
from ..optim import Schedule
from .checkpoint import Checkpoint, save_checkpoint
from .distributed import LOCAL, World
from .threads import BatchThreads

__all__ = ["Trainer", "FitResult", "DivergenceError", "epoch_seed", "TRAIN_EVAL_SAMPLES"]

#: After each epoch the training error is measured on at most this many training samples
#: (a fixed, seeded subset when the training set is larger) to keep evaluation cheap.
TRAIN_EVAL_SAMPLES = 10_000
EVAL_BATCH = 1000


def say(line: str) -> None:
    """Print one line at once (flushed: epoch lines show up promptly in pipes and logs)."""
    print(line, flush=True)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of epoch ``epoch``: a function of (seed, epoch) only."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


class DivergenceError(RuntimeError):
    """The loss or a parameter became NaN or inf; nothing was saved after the last finite state."""


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did."""

    history: list[dict[str, Any]]
    epochs_done: int
    interrupted: bool = False
    checkpoint: Path | None = None
    train_seconds: float = 0.0
    samples: int = 0
    stop_signal: int | None = None  # signal.SIGINT or SIGTERM when a signal stopped the run

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds > 0 else 0.0


class _StopFlag:
    """SIGINT and SIGTERM handler for the loop's lifetime: the first signal sets a flag (and
    remembers which), the second raises KeyboardInterrupt."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)


@dataclass
class _Position:
    """Where an epoch stands: batches done and the running sums of the progress bar."""

    epoch: int
    batches: int = 0
    seen: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batches": self.batches,
            "seen": self.seen,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seconds": self.seconds,
        }


class Trainer:
    """Trains ``model`` with ``optimizer`` on ``train_set``, evaluating on ``test_set``.

    ``architecture`` and ``hyperparameters`` go into each checkpoint's metadata (written to
    ``checkpoint_path`` after every epoch when it is given). ``schedule`` sets the learning
    rate at the start of each epoch (:meth:`Schedule.apply`). ``live_plot``: redraw the curves
    after each epoch in a notebook (None: on in a Jupyter notebook, off elsewhere; or a
    LiveCurves).
    ``world``: the ranks of a data-parallel run (:func:`chainrule.train.distributed.world`);
    only its rank 0 prints and writes.
    ``shift``: each training image is moved by a random offset of up to ``shift`` pixels per
    axis, drawn from (seed, epoch) like the order.
    ``batch_threads``: split every mini-batch over this many threads, one BLAS thread each
    (:class:`chainrule.train.threads.BatchThreads`); 1: the whole batch in this thread.
    """

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        train_set: Dataset,
        test_set: Dataset | None = None,
        *,
        batch_size: int = 64,
        seed: int = 0,
        schedule: Schedule | None = None,
        architecture: dict[str, Any] | None = None,
        hyperparameters: dict[str, Any] | None = None,
        checkpoint_path: str | Path | None = None,
        progress: bool = True,
        log: Callable[[str], None] | None = say,
        live_plot: bool | LiveCurves | None = None,
        world: World | None = None,
        shift: int = 0,
        batch_threads: int = 1,
    ) -> None:
        if not isinstance(train_set, Dataset):
            raise TypeError(f"train_set must be a Dataset, got {type(train_set).__name__}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size}")
        if len(train_set) == 0:
            raise ValueError("the training set is empty")
        self.model, self.optimizer = model, optimizer
        self.train_set, self.test_set = train_set, test_set
        self.batch_size, self.seed, self.schedule = int(batch_size), int(seed), schedule
        self.shift = shift
        bad = isinstance(batch_threads, bool) or int(batch_threads) != batch_threads
        if bad or batch_threads < 1:
            raise ValueError(f"batch_threads must be a whole number >= 1, got {batch_threads}")
        self.batch_threads = int(batch_threads)
        self.architecture = architecture or {}
        self.hyperparameters = hyperparameters or {}
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.progress, self.log = progress, log
        if live_plot is None:
            live_plot = in_notebook()
        elif live_plot is True and not in_notebook():
            raise ValueError("live_plot=True needs a Jupyter notebook; outside one see curves.png")
        self.live = (
            live_plot
            if isinstance(live_plot, LiveCurves)
            else (LiveCurves() if live_plot else None)
        )
        self.world = world if world is not None else LOCAL  # distributed: rank 0 alone speaks
        if not self.world.is_root:
            self.progress, self.log, self.live = False, None, None
        self.loader(0)  # a bad shift is an error now, before any training
        self.epoch = 0  # completed epochs
        self.position: _Position | None = None  # inside an interrupted epoch
        self.history: list[dict[str, Any]] = []
        self.data_fingerprint = train_set.fingerprint()
        self.after_save: Callable[[Path], None] | None = None  # called with each saved path
        n = len(train_set)
        if n > TRAIN_EVAL_SAMPLES:
            pick = np.sort(np.random.default_rng(self.seed).permutation(n)[:TRAIN_EVAL_SAMPLES])
            self.train_eval_set = train_set.subset(pick)
        else:
            self.train_eval_set = train_set

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write the checkpoint (model, optimiser state, epoch, position, history)."""
        target = Path(path) if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("no checkpoint path: pass one or give the Trainer checkpoint_path=")
        self.check_finite()
        if not self.world.is_root:  # distributed: every rank holds the same state; rank 0 saves
            return target
        saved = save_checkpoint(
            target,
            self.model,
            self.optimizer,
            architecture=self.architecture,
            hyperparameters=self.hyperparameters,
            epoch=self.epoch,
            progress=self.position.to_dict() if self.position is not None else None,
            history=self.history,
            data=self.data_fingerprint,
        )
        if self.after_save is not None:
            self.after_save(saved)
        return saved

    def check_finite(self) -> None:
        """Raise DivergenceError when a parameter holds NaN or inf."""
        bad = [k for k, v in self.model.state_dict().items() if not np.isfinite(v).all()]
        if bad:
            p = self.position
            where = f"in epoch {p.epoch + 1}" if p is not None else f"after epoch {self.epoch}"
            raise DivergenceError(
                f"training diverged {where}: the parameters {', '.join(bad)} hold NaN or inf values"
            )

    def check_data(self, ckpt: Checkpoint) -> None:
        """Raise ValueError when ``ckpt`` was trained on other data than ``self.train_set``."""
        saved, here = ckpt.data, self.data_fingerprint
        if saved is None or saved == here:
            return

        def describe(f: dict[str, Any]) -> str:
            return (
                f"{f.get('count')} images of shape {tuple(f.get('image_shape', ()))}, labels "
                f"sha256 {str(f.get('labels_sha256'))[:12]}, image sample sha256 "
                f"{str(f.get('images_sample_sha256'))[:12]}"
            )

        raise ValueError(
            f"cannot resume {ckpt.path or 'the checkpoint'}: it was trained on other data "
            f"({describe(saved)}); these training data have {describe(here)}. Resume with the "
            "data of the original run, or start a new run in another folder"
        )

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint: parameters, optimiser state, epoch, position, history.

        Raises ValueError when the checkpoint records other training data (its fingerprint).
        """
        self.check_data(ckpt)
        self.model.load_state_dict(ckpt.model_state)
        name = ckpt.optimizer.get("name")
        if name is not None and name != self.optimizer.name:
            raise ValueError(
                f"the checkpoint was trained with {name!r}, this run uses {self.optimizer.name!r}"
            )
        if ckpt.optimizer_state:
            self.optimizer.load_state_dict(ckpt.optimizer_state)
        self.epoch = ckpt.epoch
        self.history = list(ckpt.history)
        p = ckpt.progress
        self.position = (
            _Position(
                p["epoch"], p["batches"], p["seen"], p["loss_sum"], p["correct"], p["seconds"]
            )
            if p
            else None
        )

    # -- the loop ----------------------------------------------------------------------------
    def loader(self, epoch: int) -> DataLoader:
        """The mini-batches of epoch ``epoch`` (shuffled, and shifted, from (seed, epoch))."""
        return DataLoader(
            self.train_set,
            self.batch_size,
            shuffle=True,
            seed=epoch_seed(self.seed, epoch),
            shard=self.world.shard,  # distributed: this rank's slice of every batch
            shift=self.shift,
        )

    def fit(self, epochs: int, on_batch: Callable[[int, int], None] | None = None) -> FitResult:
        """Train until ``epochs`` epochs are complete (continuing from ``self.epoch``).

        ``on_batch(epoch, batch)`` is called after each update (e.g. for tests).
        """
        if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs must be a whole number >= 1, got {epochs}")
        interrupted = False
        # one process: the step updates too (SGD folds its momentum into back propagation);
        # distributed: the gradient is summed over the ranks before the update, below
        opt = self.optimizer if self.world.size == 1 else None
        step = BatchThreads(self.model, self.optimizer.params, self.batch_threads, opt)
        # overflow is no warning here: a non-finite loss or parameter stops the loop explicitly
        with _StopFlag() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                while self.epoch < epochs:
                    pos = self._train_epoch(self.epoch, epochs, stop, on_batch, step)
                    if pos.batches < self.batches_per_epoch:  # stopped inside the epoch
                        self.position = pos
                        if self.checkpoint_path is not None:
                            self.save()
                        interrupted = True
                        break
                    self._end_epoch(pos, epochs)  # evaluates, saves the checkpoint
                    if self.world.any(stop.requested):  # distributed: all ranks stop together
                        interrupted = True
                        break
            finally:  # also when the run diverges
                step.close()
                if self.live is not None:
                    self.live.close()
        result = self.result(interrupted)
        # distributed: the signal of whichever rank received one (SIGTERM before SIGINT)
        signum = self.world.max(stop.signum or 0) if interrupted else 0
        result.stop_signal = signum or None
        return result

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.train_set) // self.batch_size)

    def result(self, interrupted: bool = False) -> FitResult:
        """What the loop has done so far (history, epochs, seconds, the checkpoint on disk)."""
        path = self.checkpoint_path
        if path is not None and not path.exists():
            path = None
        seconds = sum(h["seconds"] for h in self.history)
        samples = sum(h["samples"] for h in self.history)
        if self.position is not None:
            seconds += self.position.seconds
            samples += self.position.seen
        return FitResult(list(self.history), self.epoch, interrupted, path, seconds, samples)

    def _train_epoch(
        self,
        epoch: int,
        epochs: int,
        stop: _StopFlag,
        on_batch: Callable[[int, int], None] | None,
        step: BatchThreads,
    ) -> _Position:
        model, opt = self.model, self.optimizer
        if self.schedule is not None:
            self.schedule.apply(opt, epoch)
        pos = (
            self.position
            if self.position is not None and self.position.epoch == epoch
            else _Position(epoch)
        )
        self.position = None
        loader = self.loader(epoch)
        bar = (
            _bar(len(loader), f"epoch {epoch + 1}/{epochs}", pos.batches) if self.progress else None
        )
        model.train()
        loss_sum, correct, seen = pos.loss_sum, pos.correct, pos.seen
        n_train, world = len(self.train_set), self.world
        start = time.perf_counter()
        try:
            for b, (x, y) in enumerate(loader):
                if b < pos.batches:
                    continue  # resumed inside this epoch: these updates are in the checkpoint
                opt.zero_grad()
                batch_loss, batch_correct = 0.0, 0
                if len(y):  # (a rank's shard of a short last batch may be empty)
                    batch_loss, batch_correct = step(x, y)  # forward, backward (and update)
                # distributed: the whole batch's gradient and counts, the same on every rank
                n = min(self.batch_size, n_train - b * self.batch_size)
                batch_loss, batch_correct = world.reduce_batch(
                    opt.params, len(y), n, batch_loss, batch_correct
                )
                if not math.isfinite(batch_loss):  # before the update: the state stays as it was
                    raise DivergenceError(
                        f"training diverged in epoch {epoch + 1}, batch {b + 1} of "
                        f"{len(loader)}: the surrogate error is {batch_loss / n}"
                    )
                if step.optimizer is None:  # distributed: the update of the summed gradient
                    opt.step()
                loss_sum += batch_loss
                correct += batch_correct
                seen += n
                pos.batches = b + 1
                if on_batch is not None:
                    on_batch(epoch, b)
                if bar is not None:
                    bar.update(1)
                    if b % 10 == 0:
                        bar.set_postfix(
                            loss=f"{loss_sum / seen:.4f}",
                            acc=f"{correct / seen:.2%}",
                            refresh=False,
                        )
                if world.any(stop.requested):  # distributed: all ranks stop after this batch
                    break
        finally:
            if bar is not None:
                bar.close()
        pos.seconds += time.perf_counter() - start
        pos.loss_sum, pos.correct, pos.seen = loss_sum, correct, seen
        return pos

    def _end_epoch(self, pos: _Position, epochs: int) -> None:
        self.position = pos
        self.check_finite()  # before evaluating a network that cannot be saved
        self.world.check_same(self.model, pos.epoch + 1)  # distributed: one model on all ranks
        evaluate = self.world.evaluate  # distributed: each rank scores some of the batches
        train_eval = evaluate(self.model, self.train_eval_set, EVAL_BATCH)
        test_eval = (
            evaluate(self.model, self.test_set, EVAL_BATCH) if self.test_set is not None else None
        )
        entry = {
            "epoch": pos.epoch + 1,
            "lr": self.optimizer.lr,
            "train_loss": train_eval.loss,
            "train_accuracy": train_eval.accuracy,
            "test_loss": test_eval.loss if test_eval else None,
            "test_accuracy": test_eval.accuracy if test_eval else None,
            "batch_loss": pos.loss_sum / max(pos.seen, 1),
            "batch_accuracy": pos.correct / max(pos.seen, 1),
            "seconds": pos.seconds,
            "samples": pos.seen,
            "samples_per_second": pos.seen / pos.seconds if pos.seconds > 0 else 0.0,
        }
        self.history.append(entry)
        self.epoch = pos.epoch + 1
        self.position = None
        if self.checkpoint_path is not None:
            self.save()
        if self.log is not None:
            self.log(format_epoch(entry, epochs))
        if self.live is not None:
            self.live.update(self.history)


def format_epoch(h: dict[str, Any], epochs: int) -> str:
    """One line per epoch: surrogate and actual error on train and test data."""
    width = len(str(epochs))
    line = (
        f"epoch {h['epoch']:>{width}}/{epochs}  lr {h['lr']:.4g}  "
        f"train: loss {h['train_loss']:.4f} error {100 * (1 - h['train_accuracy']):5.2f}%"
    )
    if h.get("test_loss") is not None:
        line += f"  test: loss {h['test_loss']:.4f} error {100 * (1 - h['test_accuracy']):5.2f}%"
    return line + f"  ({h['seconds']:.1f} s, {h['samples_per_second']:,.0f} samples/s)"


def _bar(total: int, desc: str, initial: int) -> Any:
    try:
        from tqdm.auto import tqdm  # a widget bar in a notebook, text in a terminal
    except ImportError:
        return None
    return tqdm(
        total=total, initial=initial, desc=desc, unit="batch", leave=False, dynamic_ncols=True
    )
