"""Shared fixtures.

The real MNIST files: tests marked ``mnist`` read them from ``$CHAINRULE_MNIST_DIR`` or from
``../shared/data/mnist`` beside the checkout. They skip cleanly when neither exists (a user's
clone); ``.ci/run`` sets ``CHAINRULE_REQUIRE_MNIST=1`` so that there a missing folder fails.

MPI: tests that take the ``mpiexec`` fixture run ``mpiexec -n 2 ...``; they skip when mpi4py or
MPICH's mpiexec is not installed (``pip install -e ".[mpi]"``), and fail instead under
``CHAINRULE_REQUIRE_MPI=1`` (``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MNIST_TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def _mnist_dir() -> Path | None:
    candidates = []
    if os.environ.get("CHAINRULE_MNIST_DIR"):
        candidates.append(Path(os.environ["CHAINRULE_MNIST_DIR"]))
    candidates.append(REPO.parent / "shared" / "data" / "mnist")
    for c in candidates:
        if all((c / f).is_file() for f in MNIST_TEST_FILES):
            return c
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder holding the real MNIST test-set files; skips (or fails under CI) when absent."""
    found = _mnist_dir()
    if found is None:
        msg = (
            "real MNIST files not found: set CHAINRULE_MNIST_DIR to a folder holding "
            + ", ".join(MNIST_TEST_FILES)
        )
        if os.environ.get("CHAINRULE_REQUIRE_MNIST") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return found


@pytest.fixture(scope="session")
def mpiexec() -> str:
    """The mpiexec beside this Python (the mpich wheel's), or on PATH; skips when missing."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.is_file() else shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401  (imported only: MPI itself starts in the launched ranks)
    except ImportError:
        found = None
    if found is None:
        msg = "mpi4py or mpiexec not installed: pip install -e '.[mpi]' (mpi4py and mpich)"
        if os.environ.get("CHAINRULE_REQUIRE_MPI") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return found


@pytest.fixture(scope="session")
def mnist_train_dir(mnist_dir: Path) -> Path:
    """The same folder when it also holds the 60,000 training images (plain or gzipped)."""
    missing = [
        f
        for f in MNIST_TRAIN_FILES
        if not any((mnist_dir / (f + s)).is_file() for s in ("", ".gz"))
    ]
    if missing:
        msg = f"{mnist_dir} lacks the MNIST training files {', '.join(missing)} (or their .gz)"
        if os.environ.get("CHAINRULE_REQUIRE_MNIST") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return mnist_dir


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
