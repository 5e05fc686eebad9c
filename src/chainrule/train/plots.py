"""PNG plots of a training run: error curves, confusion matrix, misclassified digits.

matplotlib is imported inside the functions (it is an optional extra) and used through its
object interface (``Figure`` with the Agg canvas), so no window or global pyplot state is
involved. Each PNG is written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..extras import require

__all__ = ["plot_curves", "plot_confusion", "plot_misclassified"]


def _figure(width: float, height: float) -> Any:
    figure = require("matplotlib.figure", "plotting", extra="train")
    return figure.Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue())


def plot_curves(
    history: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Surrogate error (cross-entropy) and accuracy per epoch, train and test, in one PNG."""
    if not history:
        raise ValueError("plot_curves: the history is empty (no epoch finished)")
    epochs = [h["epoch"] for h in history]
    fig = _figure(10, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    styles = {
        "train": dict(color="tab:blue", marker="o"),
        "test": dict(color="tab:orange", marker="s"),
    }
    for split, style in styles.items():
        if all(h.get(f"{split}_loss") is not None for h in history):
            loss = [h[f"{split}_loss"] for h in history]
            ax_loss.plot(epochs, loss, label=split, markersize=3, **style)
        if all(h.get(f"{split}_accuracy") is not None for h in history):
            acc = [100 * h[f"{split}_accuracy"] for h in history]
            ax_acc.plot(epochs, acc, label=split, markersize=3, **style)
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (log scale)", title="surrogate error")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy = 1 - actual error")
    if all(h.get("test_accuracy") is not None for h in history):
        best = max(history, key=lambda h: h["test_accuracy"])
        ax_acc.plot(
            best["epoch"],
            100 * best["test_accuracy"],
            "*",
            color="tab:red",
            markersize=12,
            label=f"best test {100 * best['test_accuracy']:.2f}% (epoch {best['epoch']})",
        )
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend()
        if len(epochs) < 15:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(
    confusion: np.ndarray, path: str | os.PathLike[str], title: str = "confusion matrix (test)"
) -> Path:
    """Confusion matrix: counts in the cells, colour = share of the true class (row)."""
    confusion = np.asarray(confusion)
    k = confusion.shape[0]
    rows = np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    share = confusion / rows
    fig = _figure(6.2, 5.4)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            n = int(confusion[i, j])
            if n:
                ax.text(
                    j,
                    i,
                    str(n),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class")
    acc = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"{title}: accuracy {100 * acc:.2f}%")
    fig.colorbar(im, ax=ax, label="share of the true class", shrink=0.85)
    return _save(fig, path)


def plot_misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    confidence: np.ndarray,
    path: str | os.PathLike[str],
    max_images: int = 24,
) -> Path:
    """Grid of misclassified images (N, 1, H, W) with true class, prediction and its probability."""
    n = min(len(images), max_images)
    cols = 8 if n > 8 else max(n, 1)
    rows = max(1, -(-n // cols))
    fig = _figure(1.3 * cols + 0.2, 1.55 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for i in range(n):
        ax = axes[i]
        ax.imshow(
            images[i].reshape(images[i].shape[-2:]),
            cmap="gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        ax.set_title(
            f"true {labels[i]} -> {predictions[i]}\np = {confidence[i]:.2f}",
            fontsize=8,
            color="tab:red",
        )
    if n == 0:
        axes[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    fig.suptitle(
        f"misclassified test images ({n} of {len(images)}, most confident mistakes first)"
        if n
        else "misclassified test images"
    )
    return _save(fig, path)
