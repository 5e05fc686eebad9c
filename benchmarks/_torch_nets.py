"""The lecture's networks in PyTorch, for the benchmarks that run the same recipe in both.

The same layers, in the same order, as ``chainrule.models.mlp`` and ``chainrule.models.cnn``
(the README's PyTorch definitions; tests/test_models.py keeps its own copy as an oracle).
"""

from __future__ import annotations

from typing import Any


def mlp(tnn: Any, hidden: int = 800) -> Any:
    """784-hidden-10 with ReLU: x5 = H3 ReLU(H0 x0 + h1) + h4."""
    return tnn.Sequential(
        tnn.Flatten(), tnn.Linear(784, hidden), tnn.ReLU(), tnn.Linear(hidden, 10)
    )


def lenet(tnn: Any) -> Any:
    """LeNet-5: conv-ReLU-pool twice, then 120-84-10."""
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120),
        tnn.ReLU(),
        tnn.Linear(120, 84),
        tnn.ReLU(),
        tnn.Linear(84, 10),
    )
