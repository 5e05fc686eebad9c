"""Training end to end: the loop, evaluation, checkpoints, plots, and whole runs.

    from chainrule.train import TrainConfig, run_training
    result = run_training(TrainConfig(model="mlp", dataset="digits"), "runs/digits")
    result.test_accuracy            # ~0.98; runs/digits holds checkpoint, metrics, plots

Lower level: :class:`Trainer` (the loop with resume and Ctrl-C), :func:`evaluate`
(surrogate and actual error, confusion matrix), :func:`save_checkpoint` /
:func:`load_checkpoint` / :func:`load_model` (safetensors); :func:`export_torch` /
:func:`import_torch` (PyTorch ``state_dict`` files); :mod:`.distributed` for data-parallel
training under ``mpiexec -n N``; :class:`BatchThreads` (:mod:`.threads`) for mini-batches split
over the threads of one process.
"""

from . import distributed, threads
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_model,
    restore_model,
    save_checkpoint,
)
from .loop import FitResult, Trainer, epoch_seed, format_epoch
from .metrics import Evaluation, confusion_matrix, evaluate, per_class_accuracy, predict_scores
from .pytorch import export_torch, import_torch
from .run import (
    DATASETS,
    TrainConfig,
    TrainResult,
    load_dataset,
    load_split,
    run_training,
    split_test_set,
)
from .threads import BatchThreads

__all__ = [
    "distributed",
    "threads",
    "BatchThreads",
    "Trainer",
    "FitResult",
    "epoch_seed",
    "format_epoch",
    "Evaluation",
    "evaluate",
    "predict_scores",
    "confusion_matrix",
    "per_class_accuracy",
    "Checkpoint",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "restore_model",
    "export_torch",
    "import_torch",
    "TrainConfig",
    "TrainResult",
    "run_training",
    "load_dataset",
    "load_split",
    "split_test_set",
    "DATASETS",
]
