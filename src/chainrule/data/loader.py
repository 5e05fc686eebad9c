"""Datasets held in memory and the mini-batches that stochastic gradient descent walks through.

A :class:`Dataset` is a pair ``(X, y)``: images ``X`` of shape (N, 1, H, W), float32 in [0, 1],
and integer class labels ``y`` of shape (N,). A :class:`DataLoader` cuts one epoch into
mini-batches ``(X_B, y_B)`` of ``batch_size`` samples: with ``shuffle`` it draws a fresh
permutation of ``0..N-1`` from a seeded ``numpy.random.Generator`` at every ``iter()``, so each
epoch visits every sample exactly once, in a different order, and the whole sequence of epochs
is reproducible from the seed.

``shard=(r, R)`` yields only the r-th of R contiguous slices of every mini-batch (sample
``r*B//R .. (r+1)*B//R - 1`` of a batch of B), for data-parallel training: the R shards of a
batch together are exactly the batch that ``shard=(0, 1)`` yields, in the same order.

Augmentation: with ``shift=s`` every image of an epoch is moved by its own random offset
(dy, dx), each uniform in -s..s whole pixels, the pixels that move out dropped and those that
come in zero (background). The offsets are drawn from the same seeded generator, for the whole
epoch at ``iter()`` (after the permutation), so an epoch's batches depend on the seed and the
epoch only, also when a resumed run skips the batches it already trained on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Images (N, 1, H, W) float32 in [0, 1] with labels (N,) int64 in ``0..classes-1``."""

    images: np.ndarray
    labels: np.ndarray
    name: str = "dataset"
    classes: int = 10

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.ndim != 4:
            raise ValueError(
                f"Dataset {self.name!r}: images must have shape (N, C, H, W), got {images.shape}"
            )
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(
                f"Dataset {self.name!r}: images must be floats in [0, 1], got dtype "
                f"{images.dtype} (divide integer pixels by their maximum first)"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"Dataset {self.name!r}: labels must have shape ({images.shape[0]},) to match "
                f"images {images.shape}, got {labels.shape}"
            )
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"Dataset {self.name!r}: labels must be integers, got {labels.dtype}")
        if self.classes < 1:
            raise ValueError(f"Dataset {self.name!r}: classes must be >= 1, got {self.classes}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.classes):
            raise ValueError(
                f"Dataset {self.name!r}: labels must lie in 0..{self.classes - 1}, "
                f"found {labels.min()}..{labels.max()}"
            )
        if images.size and (images.min() < 0.0 or images.max() > 1.0):
            raise ValueError(
                f"Dataset {self.name!r}: image values must lie in [0, 1], "
                f"found {images.min()}..{images.max()}"
            )
        object.__setattr__(self, "images", np.ascontiguousarray(images, dtype=np.float32))
        object.__setattr__(self, "labels", np.ascontiguousarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
            f"classes={self.classes})"
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one image."""
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def fingerprint(self, sample: int = 64) -> dict[str, Any]:
        """What identifies these data cheaply: count, image shape, classes, SHA-256 of all labels
        and of ``sample`` images spread evenly over the set (JSON-ready; stored in checkpoints)."""
        n = len(self)
        pick = np.unique(np.linspace(0, n - 1, min(sample, n)).round().astype(np.intp))
        return {
            "count": n,
            "image_shape": list(self.image_shape),
            "classes": int(self.classes),
            "labels_sha256": hashlib.sha256(self.labels.tobytes()).hexdigest(),
            "images_sample_sha256": hashlib.sha256(self.images[pick].tobytes()).hexdigest(),
        }

    def subset(self, indices: Any) -> Dataset:
        """The samples at ``indices`` (a slice, an integer index array or a boolean mask (N,))."""
        if isinstance(indices, (int, np.integer)):
            raise TypeError(
                "Dataset.subset takes a slice or an index array; for one sample use "
                "dataset.images[i], dataset.labels[i]"
            )
        if not isinstance(indices, slice):
            indices = np.asarray(indices)
            if indices.dtype != bool and not np.issubdtype(indices.dtype, np.integer):
                if indices.size:
                    raise TypeError(
                        f"Dataset.subset: indices must be integers or booleans, got {indices.dtype}"
                    )
                indices = indices.astype(np.intp)
        return Dataset(self.images[indices], self.labels[indices], self.name, self.classes)

    __getitem__ = subset

    def split(self, n_first: int, *, seed: int | None = None) -> tuple[Dataset, Dataset]:
        """The first ``n_first`` samples and the rest (after a seeded permutation if ``seed``)."""
        n = len(self)
        if isinstance(n_first, bool) or not isinstance(n_first, (int, np.integer)):
            raise TypeError(f"Dataset.split: n_first must be an int, got {type(n_first).__name__}")
        if not 0 <= n_first <= n:
            raise ValueError(f"Dataset.split: n_first must lie in 0..{n}, got {n_first}")
        if seed is None:
            return self.subset(slice(0, n_first)), self.subset(slice(n_first, n))
        order = np.random.default_rng(seed).permutation(n)
        return self.subset(order[:n_first]), self.subset(order[n_first:])


def shift_images(images: np.ndarray, offsets: np.ndarray, max_shift: int) -> np.ndarray:
    """Each image moved by its offset, zero-filled: (N, C, H, W), (N, 2) ints -> (N, C, H, W).

    ``out[n, c, y, x] = images[n, c, y - dy_n, x - dx_n]`` (0 where that pixel lies outside),
    with ``offsets[n] = (dy_n, dx_n)``, each in ``-max_shift..max_shift``.
    """
    n, c, h, w = images.shape
    s = int(max_shift)
    padded = np.zeros((n, c, h + 2 * s, w + 2 * s), dtype=images.dtype)
    padded[:, :, s : s + h, s : s + w] = images
    # window (i, j) of the padded image is the image shifted by (s - i, s - j)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
    return windows[np.arange(n), :, s - offsets[:, 0], s - offsets[:, 1]]


class DataLoader:
    """Iterates mini-batches ``(images (B, C, H, W) float32, labels (B,) int64)`` of a Dataset.

    ``shift``: move each image by a random offset of up to ``shift`` pixels along each axis
    (augmentation of training data; see the module docstring).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int | None = 0,
        drop_last: bool = False,
        shard: tuple[int, int] = (0, 1),
        shift: int = 0,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError(f"DataLoader needs a Dataset, got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        if drop_last and 0 < len(dataset) < batch_size:
            raise ValueError(
                f"batch_size {batch_size} is larger than the {len(dataset)} samples of "
                f"{dataset.name!r}: with drop_last=True no batch would ever be produced"
            )
        rank, ranks = shard
        if not (isinstance(ranks, (int, np.integer)) and ranks >= 1 and 0 <= rank < ranks):
            raise ValueError(f"shard must be (rank, ranks) with 0 <= rank < ranks, got {shard}")
        self.shard = (int(rank), int(ranks))
        if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or shift < 0:
            raise ValueError(f"shift must be a whole number of pixels >= 0, got {shift!r}")
        if shift and shift >= min(dataset.image_shape[1:]):
            raise ValueError(
                f"shift {shift} would move whole images of {dataset.image_shape[1]} x "
                f"{dataset.image_shape[2]} pixels out of view; use a shift below the image size"
            )
        self.dataset = dataset
        self.shift = int(shift)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.drop_last = bool(drop_last)
        # One generator for the loader's lifetime: epoch k's order depends on (seed, k) only.
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        offsets = self._rng.integers(-self.shift, self.shift + 1, (n, 2)) if self.shift else None
        images, labels = self.dataset.images, self.dataset.labels
        rank, ranks = self.shard
        for b in range(len(self)):
            part = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = order[part]
            shifts = offsets[part] if offsets is not None else None
            if ranks > 1:  # this rank's contiguous slice of the batch (and of its shifts)
                mine = slice(rank * len(idx) // ranks, (rank + 1) * len(idx) // ranks)
                idx = idx[mine]
                shifts = shifts[mine] if shifts is not None else None
            if shifts is not None:  # a fresh contiguous array, as the gather below
                yield shift_images(images[idx], shifts, self.shift), labels[idx]
            else:
                # One fancy-indexing gather per batch: a fresh contiguous copy, never a view.
                yield images[idx], labels[idx]

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}"
            + (f", shift={self.shift}" if self.shift else "")
            + ")"
        )
