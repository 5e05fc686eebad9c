"""A whole training run from a few settings: data, model, optimiser, loop, outputs.

``run_training(TrainConfig(model="mlp", dataset="digits"), out_dir)`` loads the data, builds the
network and the optimiser, trains with a progress bar (resuming from ``out_dir``'s checkpoint
when asked), and leaves in ``out_dir``:

    checkpoint.safetensors   parameters + optimiser state + description (rewritten every epoch)
    metrics.json             per-epoch history, final test accuracy, per-class accuracy,
                             confusion matrix, train_seconds, samples_per_second
    curves.png               surrogate error and accuracy per epoch (train and test)
    confusion.png            confusion matrix on the test set
    misclassified.png        the test images the network gets wrong, most confident first

Under ``mpiexec -n N`` (:mod:`chainrule.train.distributed`) every rank runs this function: rank
0 reads the data and the checkpoint and shares them, all ranks train on their shards of every
batch, and rank 0 alone checks the output folder, prints, and writes the files above.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from .. import models
from ..atomic import PARTIAL_PREFIX, atomic_write_bytes, naming_target, remove_stale_partials
from ..data import Dataset
from ..extras import require
from ..optim import OPTIMIZERS, Optimizer, Schedule, make_optimizer, make_schedule
from . import distributed
from .checkpoint import CheckpointError, check_fits, load_checkpoint
from .loop import DivergenceError, FitResult, Trainer, say
from .metrics import Evaluation, predict_scores, strict_json
from .threads import default_batch_threads

__all__ = [
    "TrainConfig",
    "TrainResult",
    "run_training",
    "load_dataset",
    "load_split",
    "split_test_set",
    "DATASETS",
]

DATASETS = ("digits", "mnist")

#: How run_training's own error messages name the options: its keywords, or the flags of
#: ``chainrule train``.
Spelling = Literal["python", "cli"]

CHECKPOINT = "checkpoint.safetensors"
#: the run's other files; ``overwrite`` removes the old run's once the new one has a checkpoint
RUN_OUTPUTS = ("metrics.json", "curves.png", "confusion.png", "misclassified.png")
GIB = 1 << 30

# the settings the lecture's example uses, per dataset (the mlp's recipe; see the README).
# MNIST: random shifts of up to 1 pixel take the MLP from 98.45% to 99.00% test accuracy.
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {
        "epochs": 30,
        "batch_size": 32,
        "lr": 0.3,
        "schedule": "cosine",
        "weight_decay": 0.0,
        "shift": 0,
    },
    "mnist": {
        "epochs": 20,
        "batch_size": 64,
        "lr": 0.1,
        "schedule": "cosine",
        "weight_decay": 0.0,
        "shift": 1,
    },
}
# LeNet-5 is less tolerant of a large first step than the MLP; with weight decay and shifts of
# up to 2 pixels it reaches 99.58% on MNIST (99.12% without either)
MODEL_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("cnn", "mnist"): {"lr": 0.05, "weight_decay": 5e-4, "shift": 2}
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint as hyper-parameters)."""

    model: str = "mlp"
    dataset: str = "digits"
    epochs: int | None = None  # None: the dataset's default
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = None  # None: the dataset's default
    schedule: str | None = None  # constant, step or cosine; None: the dataset's default
    step_size: int = 10  # step schedule: epochs between decays
    gamma: float = 0.1  # step schedule: decay factor
    min_lr: float = 0.0  # cosine schedule: final learning rate
    hidden: int = 800
    seed: int = 0
    shift: int | None = None  # random shifts of training images, pixels; None: the default
    # train on this many images of the dataset's TEST set and test on the others (for a machine
    # holding only the test files); split_seed seeds the permutation that draws them
    split_test: int | None = None
    split_seed: int = 0

    def resolved(self) -> TrainConfig:
        """A copy with the dataset's defaults filled in, validated."""
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        if self.model not in models.MODELS:
            raise ValueError(
                f"unknown model {self.model!r}; choose from {', '.join(models.MODELS)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}"
            )
        values = asdict(self)
        for k, v in {
            **DEFAULTS[self.dataset],
            **MODEL_DEFAULTS.get((self.model, self.dataset), {}),
        }.items():
            if values[k] is None:
                values[k] = v
        cfg = TrainConfig(**values)
        for name in ("epochs", "batch_size", "hidden", "step_size"):
            v = getattr(cfg, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {v}")
        shift = cfg.shift
        if shift is None or isinstance(shift, bool) or int(shift) != shift or shift < 0:
            raise ValueError(f"shift must be a whole number of pixels >= 0, got {shift}")
        cfg.shift = int(shift)
        n, seed = cfg.split_test, cfg.split_seed
        if n is not None and (isinstance(n, bool) or int(n) != n or n < 1):
            raise ValueError(f"split_test must be a whole number >= 1, got {n}")
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"split_seed must be a whole number >= 0, got {seed}")
        return cfg

    def hyperparameters(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_hyperparameters(cls, hp: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        # checkpoints from before augmentation existed trained without shifts
        return cls(**{"shift": 0, **{k: v for k, v in hp.items() if k in known}})

    def make_optimizer(self, params: Any) -> Optimizer:
        assert self.lr is not None and self.weight_decay is not None, "call resolved() first"
        return make_optimizer(
            self.optimizer,
            params,
            self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
        )

    def make_schedule(self) -> Schedule:
        spec: dict[str, Any] = {"schedule": self.schedule, "lr": self.lr}
        if self.schedule == "step":
            spec.update(step_size=self.step_size, gamma=self.gamma)
        elif self.schedule == "cosine":
            spec.update(epochs=self.epochs, min_lr=self.min_lr)
        return make_schedule(spec)


@dataclass
class TrainResult:
    """The outcome of :func:`run_training`."""

    config: TrainConfig
    fit: FitResult
    out_dir: Path
    test: Evaluation | None  # final evaluation on the test set (None when interrupted)
    files: dict[str, Path]

    @property
    def test_accuracy(self) -> float | None:
        return self.test.accuracy if self.test is not None else None


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = True,
) -> tuple[Dataset, Dataset]:
    """(train, test) of ``digits`` (offline, scikit-learn) or ``mnist`` (IDX files)."""
    from ..data import load_digits, load_mnist

    if name == "digits":
        return load_digits(test_fraction=0.2, seed=0)  # a fixed split: comparable test sets
    if name == "mnist":
        return load_mnist(data_dir, download=download)
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def split_test_set(
    test: Dataset, n_train: int, seed: int = 0, spelling: Spelling = "python"
) -> tuple[Dataset, Dataset]:
    """(train, held out): ``n_train`` images of the test set ``test`` and the others.

    The images are drawn by a permutation seeded by ``seed``, ``test.split(n_train, seed=seed)``:
    ``order = numpy.random.default_rng(seed).permutation(len(test))``, train on
    ``order[:n_train]``, test on ``order[n_train:]``. For a machine that holds only a dataset's
    test files: MNIST's 10,000 test images split 8,000 / 2,000 is the README's table.
    """
    flag = "--split-test" if spelling == "cli" else "split_test ="
    if not 1 <= n_train < len(test):
        raise ValueError(
            f"{flag} {n_train}: {test.name} has {len(test):,} images; train on "
            f"1 to {len(test) - 1:,} of them so that some are left to test on"
        )
    return test.split(int(n_train), seed=int(seed))


def load_split(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    split_test: int | None = None,
    split_seed: int = 0,
) -> Dataset:
    """One split (``train`` or ``test``) of a dataset; MNIST reads only that split's files.

    ``split_test``: the data of a run trained on part of the test set (see
    :func:`split_test_set`): ``train`` is that part, ``test`` the images held out.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if split_test is not None:
        test = load_split(name, "test", data_dir, download)
        train, held_out = split_test_set(test, split_test, split_seed)
        return train if split == "train" else held_out
    if name == "mnist":
        from ..data import load_mnist

        return load_mnist(
            data_dir,
            download=download,
            split="train" if split == "train" else "test",
        )
    train, test = load_dataset(name, data_dir, download)
    return train if split == "train" else test


def run_training(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    plots: bool = True,
    log: Callable[[str], None] | None = say,
    data: tuple[Dataset, Dataset] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    spelling: Spelling = "python",
    live_plot: bool | None = None,
    memory_limit: float | None = None,
    world: distributed.World | None = None,
    batch_threads: int | None = 1,
) -> TrainResult:
    """Train as ``config`` says, writing checkpoint, metrics.json and plots into ``out_dir``.

    With ``resume`` the hyper-parameters come from ``out_dir``'s checkpoint (only ``epochs``
    may grow), and the training data must be those it was trained on (its fingerprint).
    ``overwrite`` starts afresh in a folder holding a run: the old run's files stay untouched
    until the new run has validated everything and written its first checkpoint. ``data``
    overrides the dataset loading (train, test). ``memory_limit`` (bytes; default: the memory
    available now) bounds the parameters, gradients and optimiser state. ``spelling="cli"``:
    this function's own error messages name the command line's flags instead of the
    keywords (a missing MNIST file raises :class:`chainrule.data.MissingDataError`, which
    the caller words). ``live_plot``: curves redrawn after each epoch (None: in a Jupyter
    notebook only). The process's allocator is left as it is: ``chainrule train`` calls
    :func:`chainrule.backend.tune_allocator` first.
    ``world``: the ranks (default :func:`distributed.world`: MPI's under mpiexec, else this
    process alone). ``batch_threads``: split every mini-batch (or rank's shard) over this many
    threads with one BLAS thread each (:mod:`chainrule.train.threads`; the same gradients up to
    the order of float sums); 1: the whole batch in one thread, BLAS as it is set; None: as
    many threads as BLAS has for the CNN (measured faster: convolution's non-product work
    then runs on every core too) and 1 for the MLP (one large product: BLAS's threads win).

    Everything that can be checked is checked before the first epoch: the settings, the
    extras needed, the data (train and test images alike), that the network fits the data
    and memory, and that ``out_dir`` can be written (a probe file). Raises
    :class:`DivergenceError` (after writing metrics.json) when the loss or a parameter
    becomes NaN or inf; the checkpoint on disk then holds the last finite state.
    """
    world = distributed.world() if world is None else world  # distributed: from here on
    root = world.is_root  # distributed: rank 0 alone reads and writes files
    if not root:
        log = None
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    cli = spelling == "cli"
    ckpt = None
    if resume and overwrite:
        raise ValueError("resume and overwrite contradict each other")
    if resume:
        if root:
            if not ckpt_path.is_file():
                raise CheckpointError(f"cannot resume: no checkpoint at {ckpt_path}")
            ckpt = load_checkpoint(ckpt_path)
            check_fits(ckpt)  # before a network of the stored architecture is built
        ckpt = world.broadcast_checkpoint(ckpt)
        saved = TrainConfig.from_hyperparameters(ckpt.hyperparameters)
        config = TrainConfig(**{**asdict(saved), "epochs": config.epochs or saved.epochs})
    elif root and ckpt_path.exists() and not overwrite:
        raise FileExistsError(
            f"{ckpt_path} exists: pass --resume to continue that run, or choose another --out"
        )
    cfg = config.resolved()
    if batch_threads is None:
        batch_threads = default_batch_threads(cfg.model, distributed.blas_threads())
    assert cfg.epochs is not None and cfg.batch_size is not None and cfg.shift is not None
    if cfg.batch_size < world.size:
        raise ValueError(
            f"batch size {cfg.batch_size} is smaller than the {world.size} ranks: every rank "
            f"needs a share of each batch; pass --batch-size {world.size} or more, or fewer ranks"
        )
    require("safetensors", "writing checkpoints")
    if data is None and cfg.dataset == "digits":
        require("sklearn", "the 8x8 digits (they ship with scikit-learn)")
    if plots:
        require("matplotlib", "plotting", "train", "(or pass --no-plots)" if cli else "")
    if root:
        _probe_folder(out)
        for stale in remove_stale_partials(out):
            if log is not None:
                log(f"removed {stale}, left by an earlier write that was killed")
    if log is not None and ckpt is not None:
        for note in ckpt.notes:
            log(f"note: {note}")
        if ckpt.data is None:
            log(f"note: {ckpt_path} does not record its training data: cannot check they match")
    if (
        ckpt is not None
        and cfg.schedule == "cosine"
        and ckpt.hyperparameters.get("epochs") != cfg.epochs
    ):
        if log is not None:
            log(
                f"note: the cosine schedule is laid out again over {cfg.epochs} epochs (it was "
                f"{ckpt.hyperparameters.get('epochs')}); the remaining epochs follow the new curve"
            )
    if data is not None and cfg.split_test is not None:
        raise ValueError(
            "split_test splits the dataset's test set; data= is used as given (split it "
            "with Dataset.split instead)"
        )
    if data is None and root:
        if cfg.split_test is not None:
            test_files = load_split(cfg.dataset, "test", data_dir, download)
            data = split_test_set(test_files, cfg.split_test, cfg.split_seed, spelling)
        else:
            data = load_dataset(cfg.dataset, data_dir, download)
    # distributed: rank 0 read the files, the others receive the arrays
    train_set, test_set = _shared(world, data)
    _check_splits(train_set, test_set)
    arch = (
        ckpt.architecture
        if ckpt is not None
        else models.architecture(cfg.model, train_set.image_shape, train_set.classes, cfg.hidden)
    )
    if tuple(arch["input_shape"]) != train_set.image_shape:
        raise ValueError(
            f"the network takes images of shape {tuple(arch['input_shape'])}, the "
            f"{cfg.dataset} data has {train_set.image_shape}"
        )
    if arch["classes"] != train_set.classes:
        raise ValueError(
            f"the network has {arch['classes']} classes, the {cfg.dataset} data has "
            f"{train_set.classes}"
        )
    need = _check_memory(arch, cfg, memory_limit, cli)
    if root:
        _check_space(out, need)
    model = models.build(arch, rng=cfg.seed)
    _check_model_fits(model, arch, train_set)
    optimizer = cfg.make_optimizer(model.parameters())
    trainer = Trainer(
        model,
        optimizer,
        train_set,
        test_set,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        schedule=cfg.make_schedule(),
        architecture=arch,
        hyperparameters=cfg.hyperparameters(),
        checkpoint_path=ckpt_path,
        progress=progress,
        log=log,
        live_plot=live_plot,
        world=world,
        shift=cfg.shift,
        batch_threads=batch_threads,
    )
    if ckpt is not None:
        trainer.restore(ckpt)
        if log is not None:
            where = f"after epoch {ckpt.epoch}" + (
                f" and {ckpt.progress['batches']} batches of the next" if ckpt.progress else ""
            )
            log(f"resuming {ckpt_path} {where} (training for {cfg.epochs} epochs)")
    elif log is not None:
        log(
            f"training {cfg.model} ({model.num_parameters():,} parameters) on {cfg.dataset}"
            + (
                f" (its test set split, seed {cfg.split_seed})"
                if cfg.split_test is not None
                else ""
            )
            + ": "
            f"{len(train_set):,} train / {len(test_set):,} test images, {cfg.epochs} epochs, "
            f"batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr}"
            + (f" momentum {cfg.momentum}" if getattr(optimizer, "momentum", 0) else "")
            + (f" weight decay {cfg.weight_decay:g}" if cfg.weight_decay else "")
            + (f", {cfg.schedule} schedule" if cfg.schedule != "constant" else "")
            + (f", random shifts of up to {cfg.shift} px" if cfg.shift else "")
            + (f"; {world.size} ranks, each with a share of every batch" if world.size > 1 else "")
        )
    world.broadcast_state(model, optimizer)  # distributed: rank 0's parameters and state

    saved_epochs: list[int] = []  # the epoch of each checkpoint this run writes

    def after_save(path: Path) -> None:
        if not saved_epochs and overwrite:  # the new run has its checkpoint: the old run goes
            for name in RUN_OUTPUTS:
                (out / name).unlink(missing_ok=True)
        saved_epochs.append(trainer.epoch)

    trainer.after_save = after_save
    started = time.perf_counter()
    seconds_before = _train_seconds(ckpt)
    try:
        fit = trainer.fit(cfg.epochs, on_batch=on_batch)
    except DivergenceError as e:
        if saved_epochs:
            kept = f"{ckpt_path} keeps the last finite state (after epoch {saved_epochs[-1]})"
        elif ckpt is not None:
            kept = f"{ckpt_path} is left as it was (after epoch {ckpt.epoch})"
        elif ckpt_path.exists():
            kept = f"the earlier run in {out} is left as it was"
        else:
            kept = "no checkpoint was written"
        message = f"{e}; {kept}. A smaller learning rate ({'--lr' if cli else 'lr='}) may help"
        if root and (saved_epochs or not ckpt_path.exists() or ckpt is not None):  # not the old
            fit = trainer.result(interrupted=True)
            metrics = _metrics(cfg, arch, model, fit, None, time.perf_counter() - started)
            metrics["diverged"] = message
            atomic_write_bytes(out / "metrics.json", strict_json(metrics).encode())
        raise DivergenceError(message) from None
    files: dict[str, Path] = {}
    if fit.checkpoint is not None:
        files["checkpoint"] = fit.checkpoint
    test = None if fit.interrupted else world.evaluate(model, test_set)
    if root:  # distributed: rank 0 alone writes
        metrics = _metrics(cfg, arch, model, fit, test, time.perf_counter() - started)
        metrics["world_size"] = world.size
        metrics["blas_threads"] = distributed.blas_threads()
        metrics["batch_threads"] = trainer.batch_threads
        metrics["communication"] = world.communication(fit.train_seconds - seconds_before)
        files["metrics"] = atomic_write_bytes(out / "metrics.json", strict_json(metrics).encode())
        if plots and test is not None and fit.history:
            files.update(_plots(out, cfg, fit, test, test_set))
    world.barrier()  # distributed: no rank leaves before rank 0 has written everything
    return TrainResult(cfg, fit, out, test, files)


def _shared(
    world: distributed.World, data: tuple[Dataset, Dataset] | None
) -> tuple[Dataset, Dataset]:
    """(train, test) as rank 0 holds them, on every rank (one rank: ``data`` itself)."""
    train, test = data if data is not None else (None, None)
    return world.broadcast_dataset(train), world.broadcast_dataset(test)


def _train_seconds(ckpt: Any) -> float:
    """The training seconds a checkpoint already holds (those of earlier sessions)."""
    if ckpt is None:
        return 0.0
    done = sum(h.get("seconds", 0.0) for h in ckpt.history)
    return done + (ckpt.progress or {}).get("seconds", 0.0)


def available_memory() -> int | None:
    """Bytes a new allocation can have now: Linux's MemAvailable, within a cgroup's limit."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's limit (cgroup v2)
        root = Path("/sys/fs/cgroup")
        limit = (root / "memory.max").read_text().strip()
        if limit.isdigit():
            found.append(int(limit) - int((root / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def training_memory(arch: dict[str, Any], optimizer: str) -> int:
    """Bytes for the parameters, their gradients and the optimiser's state (float32 each), and
    the float64 draw that initialises the largest tensor (by arithmetic: nothing allocated)."""
    sizes = [math.prod(s) for s in models.parameter_shapes(arch).values()]
    states = len(OPTIMIZERS[optimizer].state_names)
    return 4 * sum(sizes) * (2 + states) + 8 * max(sizes)


def _check_memory(arch: dict[str, Any], cfg: TrainConfig, limit: float | None, cli: bool) -> int:
    """Refuse a network that does not fit the memory limit; return the checkpoint's bytes."""
    need = training_memory(arch, cfg.optimizer)
    params = sum(math.prod(s) for s in models.parameter_shapes(arch).values())
    if limit is None:
        limit, what = available_memory(), "the memory available now"
    else:
        what = "the limit given"
    if limit is not None and need > limit:
        width = f" of hidden width {arch['hidden']:,}" if arch["name"] == "mlp" else ""
        smaller = "--hidden" if cli else "hidden="
        raise ValueError(
            f"the {arch['name']}{width} has {params:,} parameters: training needs about "
            f"{need / GIB:,.1f} GiB for them, their gradients and the optimizer state, more than "
            f"{limit / GIB:,.1f} GiB ({what}). Choose a smaller {smaller}, or raise the limit "
            f"with {'--max-memory GIB' if cli else 'memory_limit= (bytes)'}"
        )
    states = len(OPTIMIZERS[cfg.optimizer].state_names)
    return 4 * params * (1 + states)


def _probe_folder(out: Path) -> None:
    """Create ``out`` and write, then delete, a probe file in it: unwritable fails now."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=f"{PARTIAL_PREFIX}{os.getpid()}-probe-")
        try:
            os.write(fd, b"chainrule checks that this folder can be written\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise naming_target(e, out, "write into the output folder") from e


def _check_space(out: Path, checkpoint_bytes: int) -> None:
    """Refuse when ``out``'s disk cannot take a checkpoint (and the run's other files)."""
    need = checkpoint_bytes + (1 << 20)
    free = shutil.disk_usage(out).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"cannot write into the output folder {out}: No space left on device ({free:,} "
            f"bytes free, a checkpoint needs about {need:,})",
        )


def _check_splits(train_set: Dataset, test_set: Dataset) -> None:
    if test_set.image_shape != train_set.image_shape:
        raise ValueError(
            f"the training images ({train_set.name}) have shape {train_set.image_shape}, the "
            f"test images ({test_set.name}) {test_set.image_shape}: they must be alike"
        )
    if test_set.classes != train_set.classes:
        raise ValueError(
            f"the training data ({train_set.name}) have {train_set.classes} classes, the test "
            f"data ({test_set.name}) {test_set.classes}: they must be alike"
        )


def _check_model_fits(model: Any, arch: dict[str, Any], train_set: Dataset) -> None:
    """One forward pass on two training images: a network that does not fit fails now."""
    try:
        scores = predict_scores(model, train_set.images[:2])
    except (ValueError, TypeError, IndexError) as e:
        raise ValueError(
            f"the {arch['name']} does not fit images of shape {train_set.image_shape}: {e}"
        ) from None
    if scores.shape[1:] != (train_set.classes,):
        raise ValueError(
            f"the {arch['name']} gives {scores.shape[1:]} scores per image, the data have "
            f"{train_set.classes} classes"
        )


def _metrics(
    cfg: TrainConfig,
    arch: dict[str, Any],
    model: Any,
    fit: FitResult,
    test: Evaluation | None,
    wall: float,
) -> dict[str, Any]:
    m: dict[str, Any] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "completed": not fit.interrupted,
        "epochs": fit.epochs_done,
        "architecture": arch,
        "parameters": model.num_parameters(),
        "hyperparameters": cfg.hyperparameters(),
        "history": fit.history,
        "train_seconds": fit.train_seconds,
        "samples_per_second": fit.samples_per_second,
        "wall_seconds": wall,
    }
    if test is not None:
        s = test.summary()
        m.update(
            test_accuracy=s["accuracy"],
            test_error=s["error"],
            test_loss=s["loss"],
            per_class_accuracy=s["per_class_accuracy"],
            confusion_matrix=s["confusion_matrix"],
        )
    return m


def _plots(
    out: Path, cfg: TrainConfig, fit: FitResult, test: Evaluation, test_set: Dataset
) -> dict[str, Path]:
    from .plots import plot_confusion, plot_curves, plot_misclassified

    title = f"{cfg.model} on {cfg.dataset}"
    wrong = test.misclassified
    return {
        "curves": plot_curves(fit.history, out / "curves.png", title=title),
        "confusion": plot_confusion(
            test.confusion, out / "confusion.png", title=f"{title}, test set"
        ),
        "misclassified": plot_misclassified(
            test_set.images[wrong],
            test.labels[wrong],
            test.predictions[wrong],
            test.probabilities[wrong, test.predictions[wrong]],
            out / "misclassified.png",
        ),
    }
