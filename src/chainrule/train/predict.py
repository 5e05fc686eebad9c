"""Classifying new images with a trained network.

Input convention (MNIST's): a grayscale image with a *white* (bright) digit on a *black*
(dark) background, pixel values x in [0, 1] (x = p / 255 for 8-bit files). A dark digit on
white paper must be inverted first (x <- 1 - x; ``invert=True``, the CLI's ``--invert``).

A PNG (or any image Pillow reads) is converted to grayscale ("L": 0.299 R + 0.587 G + 0.114 B)
and resized to the network's input size (28 x 28 for MNIST, 8 x 8 for the digits) with
area averaging when shrinking and bilinear interpolation when growing; an IDX file (MNIST's
format) is read with :func:`chainrule.data.read_idx` and resized the same way when its images
are not of the network's size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..rules import softmax
from .metrics import predict_scores

__all__ = ["Prediction", "load_png", "load_idx_images", "classify", "is_idx"]


@dataclass
class Prediction:
    """The network's answer for one image."""

    label: int
    probabilities: np.ndarray  # (classes,)

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.label])

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(int(i), float(self.probabilities[i])) for i in order]


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Grayscale image (H, W) in [0, 1] -> (h, w) float32 in [0, 1]."""
    if img.shape == size:
        return img.astype(np.float32)
    from PIL import Image

    h, w = size
    shrinking = img.shape[0] >= h and img.shape[1] >= w
    pil = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32))  # mode "F"
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    out = np.asarray(pil.resize((w, h), resample=resample), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def is_idx(path: str | os.PathLike[str]) -> bool:
    """True when the file starts like an IDX file (two zero bytes), gzipped or not."""
    p = Path(path)
    with p.open("rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        import gzip

        try:
            with gzip.open(p, "rb") as f:
                head = f.read(4)
        except (OSError, EOFError):
            return False
    return len(head) == 4 and head[0] == 0 and head[1] == 0


def load_png(
    path: str | os.PathLike[str], size: tuple[int, int], invert: bool = False
) -> np.ndarray:
    """One image file -> (1, 1, h, w) float32 in [0, 1], white digit on black expected."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:
        raise ImportError("reading PNG files needs Pillow (it comes with matplotlib)") from e
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            gray = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path} is not an image file Pillow can read ({e})") from None
    x = _resize(gray, size)
    if invert:
        x = 1.0 - x
    return x.reshape(1, 1, *size)


def load_idx_images(
    path: str | os.PathLike[str],
    size: tuple[int, int],
    indices: Sequence[int] = (0,),
    invert: bool = False,
) -> np.ndarray:
    """Images ``indices`` of an IDX image file -> (len(indices), 1, h, w) float32 in [0, 1]."""
    from ..data import read_idx

    arr = read_idx(path)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"{path}: an IDX image file holds (N, H, W) or (H, W), got shape {arr.shape}"
        )
    n = arr.shape[0]
    bad = [i for i in indices if not -n <= i < n]
    if bad:
        raise ValueError(f"{path} holds {n} images (indices 0..{n - 1}); got index {bad[0]}")
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    out = np.stack([_resize(arr[i].astype(np.float32) / scale, size) for i in indices])
    if out.min() < 0 or out.max() > 1:
        raise ValueError(f"{path}: pixel values must lie in [0, 1] (or be bytes 0..255)")
    if invert:
        out = 1.0 - out
    return out[:, None]


def classify(model: Any, images: np.ndarray) -> list[Prediction]:
    """The model's prediction for each image of ``images`` (N, C, H, W)."""
    probs = softmax(predict_scores(model, images).astype(np.float32, copy=False), axis=1)
    return [Prediction(int(p.argmax()), p) for p in probs]


def looks_inverted(images: np.ndarray) -> bool:
    """True when most pixels are bright: probably a dark digit on a light background."""
    return float(np.median(images)) > 0.5
