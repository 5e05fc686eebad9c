"""Checkpoints: a trained network as a safetensors file (arrays plus text metadata, never pickle).

Layout of ``checkpoint.safetensors``::

    tensors   model.<name>            the parameters, e.g. model.1.weight = H0 (800 x 784)
              optimizer.<state>.<i>   the optimiser's state for parameter i (momentum v, Adam m, v)
              optimizer.steps         number of updates so far, shape (1,)
    metadata  format                  "chainrule-checkpoint/1"
              architecture            JSON: {"name": "mlp", "input_shape": [1, 28, 28], ...}
              hyperparameters         JSON: optimiser, lr, momentum, schedule, batch size, seed, ...
              epoch                   completed epochs
              progress                JSON: position inside an interrupted epoch (or null)
              optimizer               JSON: {"name": "sgd", "state_names": ["velocity"]}
              history                 JSON: the per-epoch metrics so far

The file is written to a temporary file beside its destination and moved into place with
``os.replace``, so an interrupted write never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "load_model"]

FORMAT = "chainrule-checkpoint/1"
_JSON_KEYS = ("architecture", "hyperparameters", "progress", "optimizer", "history")


class CheckpointError(ValueError):
    """A checkpoint file is missing, not a safetensors file, or not a chainrule checkpoint."""


@dataclass
class Checkpoint:
    """What a checkpoint file holds (see the module docstring for the layout)."""

    architecture: dict[str, Any]
    hyperparameters: dict[str, Any]
    epoch: int
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any = None,
    *,
    architecture: dict[str, Any],
    hyperparameters: dict[str, Any] | None = None,
    epoch: int = 0,
    progress: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Write model (and optimiser) state with its description to ``path``, atomically."""
    from safetensors.numpy import save

    tensors = {f"model.{k}": np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    opt_meta: dict[str, Any] = {}
    if optimizer is not None:
        tensors.update(
            {f"optimizer.{k}": np.ascontiguousarray(v) for k, v in optimizer.state_dict().items()}
        )
        opt_meta = {"name": optimizer.name, "state_names": list(optimizer.state_names)}
    metadata = {
        "format": FORMAT,
        "epoch": str(int(epoch)),
        "architecture": json.dumps(architecture),
        "hyperparameters": json.dumps(hyperparameters or {}),
        "progress": json.dumps(progress),
        "optimizer": json.dumps(opt_meta),
        "history": json.dumps(history or []),
    }
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for anything else."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoint.safetensors"
        if not candidate.is_file():
            raise CheckpointError(f"{path} is a folder without a checkpoint.safetensors")
        path = candidate
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({type(e).__name__}: {e})"
        ) from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a chainrule checkpoint "
            f"(metadata format {metadata.get('format')!r}, expected {FORMAT!r})"
        )
    try:
        parsed = {k: json.loads(metadata[k]) for k in _JSON_KEYS}
        epoch = int(metadata["epoch"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({e})") from None
    model_state = {k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")}
    opt_state = {k[len("optimizer.") :]: v for k, v in arrays.items() if k.startswith("optimizer.")}
    if not model_state:
        raise CheckpointError(f"{path}: the checkpoint holds no model parameters")
    return Checkpoint(
        architecture=parsed["architecture"],
        hyperparameters=parsed["hyperparameters"],
        epoch=epoch,
        model_state=model_state,
        optimizer_state=opt_state,
        optimizer=parsed["optimizer"],
        progress=parsed["progress"],
        history=parsed["history"],
        path=path,
    )


def restore_model(ckpt: Checkpoint) -> Any:
    """The network of a loaded checkpoint, with its trained parameters."""
    from ..models import build

    try:
        model = build(ckpt.architecture)
        model.load_state_dict(ckpt.model_state)
    except (KeyError, ValueError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise CheckpointError(
            f"{ckpt.path}: the parameters do not fit the architecture: {msg}"
        ) from None
    return model


def load_model(path: str | os.PathLike[str]) -> tuple[Any, Checkpoint]:
    """(model in eval mode, checkpoint) from a checkpoint file (or a run folder holding one)."""
    ckpt = load_checkpoint(path)
    return restore_model(ckpt).eval(), ckpt
