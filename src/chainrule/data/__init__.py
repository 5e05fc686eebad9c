"""Data for training: MNIST from IDX files (downloaded and verified when missing), the offline
8x8 digits, and the mini-batch loader.

Only NumPy is imported here; tqdm (progress bars) and scikit-learn (the 8x8 digits) are imported
inside the functions that use them.
"""

from chainrule.data.digits import load_digits
from chainrule.data.loader import DataLoader, Dataset
from chainrule.data.mnist import (
    MNIST_FILES,
    MNIST_MIRRORS,
    DataError,
    FileChecksum,
    MissingDataError,
    default_data_dir,
    load_mnist,
    read_idx,
)

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "DataError",
    "DataLoader",
    "Dataset",
    "FileChecksum",
    "MissingDataError",
    "default_data_dir",
    "load_digits",
    "load_mnist",
    "read_idx",
]
