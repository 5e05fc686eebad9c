"""PyTorch interop: chainrule's networks as PyTorch ``state_dict`` files (safetensors), both ways.

chainrule's ``mlp`` and ``cnn`` are ``Sequential`` stacks whose parameters are named as PyTorch's
``torch.nn.Sequential`` of the same layers names them (``1.weight`` is H0 of the MLP, ``0.weight``
the first convolution of LeNet-5) and stored in the same layout: Linear weights out x in,
Conv2d weights out x in x rows x columns. So a ``state_dict`` needs no transposes, only the
right keys:

    export_torch("runs/mlp-mnist", "mlp.safetensors")    # parameters only, PyTorch's keys
    # in PyTorch:  net.load_state_dict(safetensors.torch.load_file("mlp.safetensors"))
    model, arch = import_torch("mlp.safetensors")        # and back (architecture inferred)

The PyTorch definitions of both networks are in the README ("PyTorch interop"); the tests
load exported files into them and compare the logits on real MNIST images.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, restore_model, save_checkpoint

__all__ = ["export_torch", "import_torch", "infer_architecture", "torch_state_dict"]

#: metadata key under which an exported file keeps chainrule's architecture (JSON)
ARCHITECTURE_KEY = "chainrule.architecture"

# the parameter names of chainrule's networks, as PyTorch's nn.Sequential of the same layers
_MLP_KEYS = ("1.weight", "1.bias", "3.weight", "3.bias")
_CNN_KEYS = tuple(f"{i}.{p}" for i in (0, 3, 7, 9, 11) for p in ("weight", "bias"))


def torch_state_dict(model: Any) -> dict[str, np.ndarray]:
    """The model's parameters under PyTorch's ``state_dict`` names, as contiguous arrays."""
    return {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}


def _source(source: Any) -> tuple[Any, dict[str, Any] | None]:
    """(model, architecture or None) from a checkpoint path, a Checkpoint or a model."""
    if isinstance(source, (str, os.PathLike)):
        source = load_checkpoint(source)
    if isinstance(source, Checkpoint):
        return restore_model(source), source.architecture
    if hasattr(source, "state_dict") and hasattr(source, "named_parameters"):
        return source, None
    raise TypeError(
        f"export_torch needs a checkpoint path, a Checkpoint or a chainrule model, "
        f"got {type(source).__name__}"
    )


def export_torch(
    source: Any, path: str | os.PathLike[str], architecture: dict[str, Any] | None = None
) -> Path:
    """Write ``source``'s parameters as a PyTorch ``state_dict`` safetensors file; its path.

    ``source``: a checkpoint file or run folder, a loaded Checkpoint, or a chainrule model
    (then pass ``architecture`` to keep it in the file). Only the parameters go in (no
    optimiser state); the architecture goes into the file's metadata, where
    ``torch.nn.Module.load_state_dict`` ignores it and :func:`import_torch` reads it.
    The file is written atomically.
    """
    from safetensors.numpy import save

    model, arch = _source(source)
    arch = architecture if architecture is not None else arch
    metadata = {"format": "pt"}  # what safetensors.torch.save_file writes
    if arch is not None:
        metadata[ARCHITECTURE_KEY] = json.dumps(arch)
    return atomic_write_bytes(path, save(torch_state_dict(model), metadata=metadata))


def _square_image(features: int, channels: int = 1) -> list[int]:
    side = math.isqrt(features // channels) if features % channels == 0 else 0
    if side * side * channels != features:
        raise ValueError(
            f"cannot tell the image size from {features} input features: pass the architecture "
            "(architecture={'name': 'mlp', 'input_shape': [C, H, W], ...} or --input-shape C H W)"
        )
    return [channels, side, side]


def infer_architecture(
    state: dict[str, np.ndarray], input_shape: list[int] | None = None
) -> dict[str, Any]:
    """chainrule's architecture dict that a PyTorch ``state_dict`` of the mlp or cnn fits.

    The MLP's input image is taken as 1 x s x s (s^2 = its input features) unless
    ``input_shape`` is given; LeNet-5's from its first convolution and first linear layer.
    """
    keys = set(state)
    if keys == set(_MLP_KEYS):
        hidden, features = state["1.weight"].shape
        shape = list(input_shape) if input_shape else _square_image(int(features))
        return {
            "name": "mlp",
            "input_shape": [int(n) for n in shape],
            "classes": int(state["3.weight"].shape[0]),
            "hidden": int(hidden),
        }
    if keys == set(_CNN_KEYS):
        channels = int(state["0.weight"].shape[1])
        if input_shape:
            shape = [int(n) for n in input_shape]
        else:
            side = _square_image(int(state["7.weight"].shape[1]), 16)[1]  # 16 x s x s features
            shape = [channels, 4 * side + 8, 4 * side + 8]  # 28 for s = 5: pools undo / 2 twice
        return {"name": "cnn", "input_shape": shape, "classes": int(state["11.weight"].shape[0])}
    raise ValueError(
        "these parameters are not one of chainrule's networks: the mlp has "
        f"{', '.join(_MLP_KEYS)}; the cnn (LeNet-5) has {', '.join(_CNN_KEYS)}; the file has "
        f"{', '.join(sorted(keys)) or 'no tensors'}"
    )


def _read_torch_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types (damaged header, bfloat16)
        raise CheckpointError(
            f"{path} is not a safetensors file NumPy can read ({type(e).__name__}: {e}); save "
            "the state_dict with safetensors.torch.save_file after model.float()"
        ) from None
    if metadata.get("format") == "chainrule-checkpoint/1":
        raise CheckpointError(
            f"{path} is a chainrule checkpoint, not a PyTorch state_dict: load it with "
            "chainrule.train.load_model"
        )
    for k, v in state.items():
        if not np.issubdtype(v.dtype, np.floating):
            raise CheckpointError(f"{path}: parameter {k} is {v.dtype}, not floating point")
    return state, metadata


def import_torch(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    architecture: dict[str, Any] | None = None,
    input_shape: list[int] | None = None,
    overwrite: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """(chainrule model in eval mode, architecture) from a PyTorch ``state_dict`` safetensors file.

    The architecture is ``architecture`` if given, else the one an exported file carries,
    else inferred from the parameter names and shapes (``input_shape`` for an MLP whose
    input is not a square image). With ``out`` (a file, or a folder that receives
    checkpoint.safetensors) the model is also saved as a chainrule checkpoint, which
    ``chainrule evaluate`` and ``predict`` read; an existing one is kept unless ``overwrite``.
    """
    from ..models import build

    path = Path(path)
    state, metadata = _read_torch_file(path)
    if architecture is None and ARCHITECTURE_KEY in metadata and input_shape is None:
        architecture = json.loads(metadata[ARCHITECTURE_KEY])
    arch = architecture if architecture is not None else infer_architecture(state, input_shape)
    target = None
    if out is not None:
        target = Path(out)
        if target.is_dir() or not target.suffix:
            target = target / "checkpoint.safetensors"
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists: choose another output or allow overwriting")
    try:
        model = build(arch)
        model.load_state_dict({k: v.astype(np.float32) for k, v in state.items()})
    except (KeyError, ValueError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise CheckpointError(f"{path}: the parameters do not fit {arch}: {msg}") from None
    if target is not None:
        dataset = {(1, 28, 28): "mnist", (1, 8, 8): "digits"}.get(tuple(arch["input_shape"]))
        save_checkpoint(
            target,
            model,
            architecture=arch,
            hyperparameters={
                "imported_from": str(path),
                **({"dataset": dataset} if dataset else {}),
            },
        )
    return model.eval(), arch
