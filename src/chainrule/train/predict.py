"""Classifying new images with a trained network.

Input convention (MNIST's): a grayscale image with a *white* (bright) digit on a *black*
(dark) background, pixel values x in [0, 1] (x = p / 255 for 8-bit files). A dark digit on
white paper must be inverted first (x <- 1 - x; ``invert=True``, the CLI's ``--invert``).

A PNG (or any image Pillow reads) is converted to grayscale ("L": 0.299 R + 0.587 G + 0.114 B)
and then prepared the way the training digits were (:func:`center_digit`; ``center=False``,
the CLI's ``--no-center``, only resizes the whole picture):

* MNIST (28 x 28): the digit was size-normalised to fit a 20 x 20 box, aspect ratio kept,
  anti-aliased, and placed in the 28 x 28 field with its centre of mass (sum_i i x_i / sum_i x_i
  per axis) at pixel (14, 14). So: the darkest gray level is taken as black (x <- x - min x),
  the image is cropped to the bounding box of the ink (x > 0.1), the crop is scaled so that
  its longer side is 20 pixels, and it is pasted into a black 28 x 28 image, shifted by whole
  pixels so that its centre of mass lands within half a pixel of (14, 14) (never pushing ink
  off the field). Other sizes H x W are treated the same way with the box and the centre
  scaled along: a box of 20/28 H x 20/28 W and the centre (H/2, W/2).
* scikit-learn's 8 x 8 digits (UCI optdigits): 32 x 32 bitmaps in which the digit fills the
  frame (its longer side, the height for every one of the 1,797 digits, spans it all) and
  its bounding box is centred, averaged over 4 x 4 blocks. So: crop as above, scale the
  longer side to 32, centre the bounding box in a black 32 x 32 image (an odd leftover pixel
  goes down / right), average 4 x 4 blocks.

Resizing uses area averaging when shrinking (anti-aliasing: each output pixel is the mean of
the input area it covers) and bilinear interpolation when growing. An IDX file (MNIST's
format, already prepared) is read with :func:`chainrule.data.read_idx` and only resized when
its images are not of the network's size.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import require
from ..rules import softmax
from .metrics import predict_scores


class _TooLarge(Exception):
    """An image whose header announces more than MAX_PIXELS pixels."""


__all__ = [
    "Prediction",
    "center_digit",
    "load_png",
    "load_idx_images",
    "classify",
    "is_idx",
]

#: The largest picture read (width x height): a file announcing more is refused before it is
#: decoded (a "decompression bomb": a few kilobytes that inflate to gigabytes). 50 million
#: pixels take ~0.5 GB on the way to a digit; a larger photo can be scaled down first.
MAX_PIXELS = 50_000_000
#: A pixel is ink when it is brighter than the darkest pixel by more than this.
INK_THRESHOLD = 0.1
#: MNIST: a 20 x 20 box for the digit in the 28 x 28 field.
MNIST_FIELD, MNIST_BOX = 28, 20
#: scikit-learn's 8 x 8 digits: a 32 x 32 bitmap (digit filling it, centred by its bounding
#: box) averaged over 4 x 4 blocks.
DIGITS_FIELD, DIGITS_BITMAP = (8, 8), (32, 32)


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


def center_digit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A white-on-black digit (H, W) in [0, 1] -> (h, w) float32, prepared like the training set.

    Crop to the ink, scale the longer side to the box keeping the aspect ratio and paste into
    a black image: MNIST (any size but 8 x 8): a box of 20/28 of ``size``, centre of mass at
    (h/2, w/2); the 8 x 8 digits: the whole 32 x 32 bitmap, bounding box centred, then 4 x 4
    blocks averaged. Raises ValueError on an image without ink (blank or uniform).
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"center_digit needs one grayscale image (H, W), got shape {img.shape}")
    h, w = size
    x = img - img.min()  # the darkest gray level is the black background
    ink = x > INK_THRESHOLD
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise ValueError(
            f"the image is blank: no pixel is brighter than the darkest one by more than "
            f"{INK_THRESHOLD} of the full scale, so there is no digit to centre"
        )
    crop = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    digits = tuple(size) == DIGITS_FIELD
    if digits:  # the whole 32 x 32 bitmap, later averaged over 4 x 4 blocks
        fh, fw = DIGITS_BITMAP
        box_h, box_w = float(fh), float(fw)
    else:
        fh, fw = h, w
        box_h, box_w = h * MNIST_BOX / MNIST_FIELD, w * MNIST_BOX / MNIST_FIELD
    scale = min(box_h / crop.shape[0], box_w / crop.shape[1])
    bh = min(fh, max(1, round(crop.shape[0] * scale)))
    bw = min(fw, max(1, round(crop.shape[1] * scale)))
    digit = _resize(crop, (bh, bw))
    if digits:  # bounding box centred; an odd leftover pixel goes down / right
        top, left = (fh - bh + 1) // 2, (fw - bw + 1) // 2
    else:  # whole-pixel shift putting the centre of mass at (h/2, w/2): MNIST's (14, 14)
        mass = float(digit.sum())
        cy = float(digit.sum(axis=1) @ np.arange(bh)) / mass
        cx = float(digit.sum(axis=0) @ np.arange(bw)) / mass
        top = min(max(round(fh / 2 - cy), 0), fh - bh)
        left = min(max(round(fw / 2 - cx), 0), fw - bw)
    out = np.zeros((fh, fw), np.float32)
    out[top : top + bh, left : left + bw] = digit
    return _resize(out, size) if digits else out


def load_png(
    path: str | os.PathLike[str],
    size: tuple[int, int],
    invert: bool = False,
    *,
    center: bool = True,
) -> np.ndarray:
    """One image file -> (1, 1, h, w) float32 in [0, 1], white digit on black expected.

    ``center`` (default): crop, scale and centre the digit as the training set's were
    (:func:`center_digit`); ``center=False``: resize the whole picture to ``size``.
    """
    pil = require("PIL.Image", "reading image files (Pillow comes with matplotlib)")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an image file")
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pil.DecompressionBombWarning)
            with pil.open(path) as im:
                w, h = im.size  # from the header: nothing decoded yet
                if w * h > MAX_PIXELS:
                    raise _TooLarge(f"{w:,} x {h:,} pixels")
                gray = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (_TooLarge, pil.DecompressionBombError, pil.DecompressionBombWarning) as e:
        raise ValueError(
            f"{path} is too large to read safely ({e}; the limit is {MAX_PIXELS:,} pixels): "
            "scale it down first, a digit needs only 28 x 28"
        ) from None
    except (pil.UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path} is not an image file Pillow can read ({e})") from None
    if center:
        try:
            x = center_digit(1.0 - gray if invert else gray, size)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        return x.reshape(1, 1, *size)
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
