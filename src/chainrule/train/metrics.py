"""Evaluating a classifier: the surrogate error and the actual error.

For scores x (logits) of a sample with true class k*:

    surrogate error   e = -log softmax(x)(k*)     (cross-entropy: smooth, what training minimises)
    actual error      1[argmax_k x_k != k*]       (top-1: what we care about, not differentiable)

averaged over a dataset. Training lowers the surrogate error by gradient descent and hopes the
actual error follows; the lecture's "training vs standard optimization" point is that only the
actual error on *test* data tells whether it did. The confusion matrix C[i, j] counts samples
of true class i predicted as class j; its diagonal over its row sums is the per-class accuracy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Tensor, no_grad
from ..rules import softmax, softmax_cross_entropy

__all__ = [
    "Evaluation",
    "evaluate",
    "evaluation_from_scores",
    "predict_scores",
    "confusion_matrix",
    "per_class_accuracy",
    "finite_or_none",
    "strict_json",
]


def finite_or_none(value: Any) -> Any:
    """``value`` (dicts, lists, numbers) with every NaN or inf replaced by None."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def strict_json(value: Any) -> str:
    """Standard JSON (no bare NaN or Infinity tokens: they become null), indented."""
    return json.dumps(finite_or_none(value), indent=2, allow_nan=False)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """C (classes, classes) int64: C[i, j] = number of samples of class i predicted as j."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(
            f"confusion_matrix: labels {labels.shape} and predictions {predictions.shape} must "
            "be vectors of the same length"
        )
    for what, v in (("labels", labels), ("predictions", predictions)):
        if v.size and (v.min() < 0 or v.max() >= classes):
            raise ValueError(f"confusion_matrix: {what} must lie in 0..{classes - 1}")
    flat = np.bincount(labels * classes + predictions, minlength=classes * classes)
    return flat.reshape(classes, classes).astype(np.int64)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Diagonal over row sums (classes,); NaN for a class without samples."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)


@dataclass
class Evaluation:
    """The errors of a model on a dataset, with the predictions behind them."""

    loss: float  # surrogate error: mean cross-entropy
    accuracy: float  # 1 - actual error (top-1)
    predictions: np.ndarray  # (N,) int64, arg max of the scores
    labels: np.ndarray  # (N,) int64
    probabilities: np.ndarray  # (N, classes) float32, softmax of the scores
    confusion: np.ndarray  # (classes, classes) int64

    @property
    def error(self) -> float:
        """Actual error: the fraction of samples whose arg max is not the true class."""
        return 1.0 - self.accuracy

    @property
    def per_class_accuracy(self) -> np.ndarray:
        return per_class_accuracy(self.confusion)

    @property
    def misclassified(self) -> np.ndarray:
        """Indices (M,) of the samples predicted wrongly, most confident mistakes first."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        confidence = self.probabilities[wrong, self.predictions[wrong]]
        return wrong[np.argsort(-confidence, kind="stable")]

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers: loss, accuracy, error, per-class accuracy, confusion matrix."""
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "error": self.error,
            "per_class_accuracy": [
                None if np.isnan(a) else float(a) for a in self.per_class_accuracy
            ],
            "confusion_matrix": self.confusion.tolist(),
        }


def predict_scores(model: Any, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Scores (logits) (N, classes) float32 of ``images`` (N, C, H, W), no graph, in batches."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {images.shape}")
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    parts = []
    try:
        with no_grad():
            for start in range(0, len(images), batch_size):
                out = model(images[start : start + batch_size])
                parts.append(out.data if isinstance(out, Tensor) else np.asarray(out))
    finally:
        if was_training:
            model.train()
    if not parts:
        raise ValueError("predict_scores: no images")
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def evaluate(model: Any, dataset: Any, batch_size: int = 1000) -> Evaluation:
    """Surrogate error (mean cross-entropy), accuracy and confusion matrix on a Dataset."""
    if len(dataset.labels) == 0:
        raise ValueError(f"cannot evaluate on the empty dataset {getattr(dataset, 'name', '')!r}")
    return evaluation_from_scores(predict_scores(model, dataset.images, batch_size), dataset)


def evaluation_from_scores(scores: np.ndarray, dataset: Any) -> Evaluation:
    """The :class:`Evaluation` of scores (N, classes) for a Dataset's N labels."""
    # one memory layout (the model's may be samples-innermost), so that the softmax rounds
    # alike however the scores were put together
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    labels = np.asarray(dataset.labels)
    classes = getattr(dataset, "classes", None) or int(scores.shape[1])
    if scores.shape != (len(labels), classes):
        raise ValueError(
            f"the model gives scores of shape {scores.shape[1:]} per sample, the dataset has "
            f"{classes} classes"
        )
    predictions = scores.argmax(axis=1)
    probabilities = softmax(scores.astype(np.float32, copy=False), axis=1)  # the rule
    return Evaluation(
        loss=float(softmax_cross_entropy(scores, labels)),  # the rule, on arrays: no graph
        accuracy=float(np.mean(predictions == labels)),
        predictions=predictions.astype(np.int64),
        labels=labels.astype(np.int64),
        probabilities=probabilities,
        confusion=confusion_matrix(labels, predictions, classes),
    )
