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
              data                    JSON: fingerprint of the training data (count, shape,
                                      SHA-256 of the labels and of a sample of images)
              sha256                  SHA-256 over every tensor (name, dtype, shape, bytes)
                                      and every other metadata entry

The file is written to a temporary file beside its destination and moved into place with
``os.replace``, so an interrupted write never leaves a half-written checkpoint behind. Loading
verifies ``sha256`` (a flipped bit is an error; a checkpoint written before it was
stored loads with a note) and checks the tensors' shapes against the architecture before any
network is built, so a crafted ``input_shape`` cannot make it allocate.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..extras import require

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "require_finite",
]

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
    data: dict[str, Any] | None = None  # fingerprint of the training data (None: older file)
    notes: list[str] = field(default_factory=list)  # e.g. "no checksum to verify"


def checksum(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """SHA-256 over every tensor (by name: name, dtype, shape, bytes), then every metadata
    entry but ``sha256`` itself (by key: key, value)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.data)  # C-contiguous: the bytes as stored
    for key in sorted(metadata):
        if key != "sha256":
            h.update(f"{key}\0{metadata[key]}\0".encode())
    return h.hexdigest()


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
    data: dict[str, Any] | None = None,
) -> Path:
    """Write model (and optimiser) state with its description to ``path``, atomically.

    ``data``: the training data's fingerprint (:meth:`Dataset.fingerprint`), checked on resume.
    """
    save = require("safetensors.numpy", "writing checkpoints").save

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
        "data": json.dumps(data),
    }
    metadata["sha256"] = checksum(tensors, metadata)
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for anything else."""
    safe_open = require("safetensors", "reading checkpoints").safe_open
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
        data = json.loads(metadata.get("data", "null"))
        epoch = int(metadata["epoch"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({e})") from None
    notes = []
    stored = metadata.get("sha256")
    if stored is None:
        notes.append(
            f"{path} has no checksum (written by an older chainrule): its tensors cannot be "
            "verified; the next save adds one"
        )
    elif checksum(arrays, metadata) != stored:
        raise CheckpointError(
            f"{path} is damaged: the SHA-256 of its tensors and metadata does not match the one "
            "stored in it (a changed or flipped byte); use another copy or train again"
        )
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
        data=data,
        notes=notes,
    )


def check_fits(ckpt: Checkpoint) -> None:
    """Raise CheckpointError unless the tensors have exactly the architecture's names and shapes.

    Pure arithmetic on the metadata (:func:`chainrule.models.parameter_shapes`): a crafted or
    damaged architecture (say an absurd ``input_shape``) is refused before anything is built.
    """
    from ..models import parameter_shapes

    try:
        want = parameter_shapes(ckpt.architecture)
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path}: bad architecture in the metadata: {e}") from None
    have = {k: tuple(v.shape) for k, v in ckpt.model_state.items()}
    if want != have:
        wrong = [
            f"{k}: architecture {want.get(k)}, tensor {have.get(k)}"
            for k in sorted(set(want) | set(have))
            if want.get(k) != have.get(k)
        ]
        raise CheckpointError(
            f"{ckpt.path}: the parameters do not fit the architecture "
            f"{json.dumps(ckpt.architecture)}: "
            + "; ".join(wrong[:3])
            + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else "")
        )


def require_finite(ckpt: Checkpoint) -> None:
    """Raise CheckpointError when a parameter holds NaN or inf (a diverged or damaged run)."""
    bad = [k for k, v in ckpt.model_state.items() if not np.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"{ckpt.path}: the parameters {', '.join(bad)} hold NaN or inf values (a diverged "
            "run?), so the network cannot classify anything; train again, e.g. with a smaller "
            "learning rate"
        )


def restore_model(ckpt: Checkpoint) -> Any:
    """The network of a loaded checkpoint, with its trained parameters."""
    from ..models import build

    check_fits(ckpt)
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
