"""scikit-learn's bundled 8 x 8 handwritten digits: a small MNIST that needs no network.

1,797 images with pixel counts 0..16 (each pixel sums a 4 x 4 block of a 32 x 32 bitmap),
scaled to x = p / 16 in [0, 1] and shaped (N, 1, 8, 8) float32, labels 0..9. The train/test
split is stratified: within each class a seeded permutation sends round(test_fraction * n_c)
samples to the test set, so both sets keep the class proportions and the split depends only
on ``seed``, not on the scikit-learn version.
"""

from __future__ import annotations

import numpy as np

from chainrule.data.loader import Dataset
from chainrule.extras import require


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, test) Datasets of 8x8 digits, images (N, 1, 8, 8) float32 in [0, 1]."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    datasets = require("sklearn.datasets", "the 8x8 digits (they ship with scikit-learn)")
    bunch = datasets.load_digits()
    pixels = np.asarray(bunch.images, dtype=np.float32)
    images = (pixels / np.float32(16.0)).reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)

    rng = np.random.default_rng(seed)
    test_parts = []
    for c in range(10):
        members = np.flatnonzero(labels == c)
        n_test = int(round(test_fraction * members.size))
        test_parts.append(rng.permutation(members)[:n_test])
    is_test = np.zeros(labels.size, dtype=bool)
    is_test[np.concatenate(test_parts)] = True
    train = Dataset(images[~is_test], labels[~is_test], "digits-train", 10)
    test = Dataset(images[is_test], labels[is_test], "digits-test", 10)
    return train, test
