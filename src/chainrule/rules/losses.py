"""6. Softmax and the errors: the last layer and the error e that back propagation starts from."""

from __future__ import annotations

import math

from .. import backend as B
from ..engine import ShapeError, rule
from ._common import data, ints, n, one_axis_params, shape
from .elementwise import exp, negative, scale
from .shapes import getitem, scatter, sum


@rule(reads={"x": "out"})
def softmax(x, axis=-1):
    """d softmax(x)/dx = diag(p) - p p^T,  p = softmax(x)"""
    e = B.xp.exp(x - B.xp.max(x, axis=axis, keepdims=True))
    return e / B.xp.sum(e, axis=axis, keepdims=True)


softmax.defvjp(lambda g, out, x, axis=-1: out * (g - sum(g * out, axis=axis, keepdims=True)))
softmax.defparams(one_axis_params("softmax"))
softmax.defsamples(lambda r: [((n(r, 3, 4),), {}), ((n(r, 3, 4),), {"axis": 0})])


@rule(reads={"x": "out"})
def log_softmax(x, axis=-1):
    """d log softmax(x)/dx = I - 1 p^T,  p = softmax(x)"""
    z = x - B.xp.max(x, axis=axis, keepdims=True)
    return z - B.xp.log(B.xp.sum(B.xp.exp(z), axis=axis, keepdims=True))


log_softmax.defvjp(lambda g, out, x, axis=-1: g - exp(out) * sum(g, axis=axis, keepdims=True))
log_softmax.defparams(one_axis_params("log_softmax"))
log_softmax.defsamples(lambda r: [((n(r, 3, 4),), {}), ((n(r, 2, 3),), {"axis": -2})])


def _check_labels(op, scores, labels):
    s = shape(scores)
    if B.kernels.labels_fit(labels, s):  # the usual case: integer labels in range, as given
        return labels
    xp = B.xp
    labels = xp.asarray(data(labels))
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"{op}: labels must be integer class indices, got dtype {labels.dtype}")
    if len(s) == 1:
        want: tuple[int, ...] = ()
    elif len(s) == 2:
        want = (s[0],)
    else:
        raise ShapeError(f"{op}: scores must be M (one sample) or N x M (a batch), got shape {s}")
    if tuple(labels.shape) != want:
        raise ShapeError(
            f"{op}: scores of shape {s} need labels of shape {want}, got {tuple(labels.shape)}"
        )
    if not B.kernels.labels_below(labels, s[-1]):
        raise ValueError(
            f"{op}: labels must lie in [0, {s[-1]}), "
            f"got values from {int(xp.min(labels))} to {int(xp.max(labels))}"
        )
    return labels


def _label_index(labels):
    """The index of each sample's true class: (rows, labels) for a batch."""
    if labels.ndim == 1:
        return (B.xp.arange(labels.shape[0]), labels)
    return (labels,)


def _batch(labels):
    return labels.shape[0] if labels.ndim == 1 else 1


@rule(reads={"p": "p labels"})
def cross_entropy(p, labels):
    """e = -log p(k*):  de/dp = -1/p(k*) at the true class k*, 0 elsewhere (mean over a batch)"""
    labels = _check_labels("cross_entropy", p, labels)
    picked = B.kernels.getitem(p, _label_index(labels))
    return -B.xp.mean(B.xp.log(picked)) if p.ndim == 2 else -B.xp.log(picked)


def _cross_entropy_vjp(g, out, p, labels):
    labels = B.xp.asarray(data(labels))
    idx = _label_index(labels)
    picked = getitem(p, index=idx)
    return scatter(negative(g / scale(picked, alpha=_batch(labels))), shape=shape(p), index=idx)


cross_entropy.defvjp(_cross_entropy_vjp)
cross_entropy.defsamples(
    lambda r: [
        ((r.dirichlet([1.0] * 4, size=3), ints(0, 3, 1)), {}),
        ((r.dirichlet([1.0] * 5), ints(2)), {}),
    ]
)


@rule(reads={"x": "x target", "target": "x target"})
def mse(x, target, half=False):
    """e = (1/K) |x - x*|^2:  de/dx = (2/K)(x - x*)   (half=True: e/2, de/dx = (1/K)(x - x*))"""
    if shape(x) != shape(target):
        raise ShapeError(
            f"mse: prediction shape {shape(x)} differs from target shape {shape(target)}"
        )
    d = x - target
    e = B.kernels.mean(d * d)  # mean(d^2)
    return e / 2 if half else e


def _mse_vjp_x(g, out, x, target, half=False):
    return scale(g * (x - target), alpha=(1.0 if half else 2.0) / math.prod(shape(x)))


mse.defvjp(
    _mse_vjp_x, lambda g, out, x, target, half=False: negative(_mse_vjp_x(g, out, x, target, half))
)
mse.defsamples(lambda r: [((n(r, 3, 2), n(r, 3, 2)), {}), ((n(r, 4), n(r, 4)), {"half": True})])


@rule(saves=True, reads={"logits": "logits labels saved"})
def softmax_cross_entropy(logits, labels):
    """e = -log softmax(x)(k*):  de/dx = p - onehot(k*)   (mean over a batch, log-sum-exp stable)"""
    labels = _check_labels("softmax_cross_entropy", logits, labels)
    return B.kernels.softmax_cross_entropy(logits, _label_index(labels))


def _sce_vjp(g, out, logits, labels, saved=None):
    labels = B.xp.asarray(data(labels))
    idx = _label_index(labels)
    ones = B.xp.ones(labels.shape, dtype=data(logits).dtype)
    onehot = scatter(ones, shape=shape(logits), index=idx)
    return (softmax(logits, axis=-1) - onehot) * scale(g, alpha=1.0 / _batch(labels))


softmax_cross_entropy.defvjp(_sce_vjp)
softmax_cross_entropy.defsamples(
    lambda r: [
        ((n(r, 4, 5) * 2, ints(0, 4, 2, 2)), {}),
        ((n(r, 3), ints(1)), {}),
    ]
)

__all__ = [  # this section's entries (tests/test_layout.py checks them against the table)
    "softmax",
    "log_softmax",
    "cross_entropy",
    "mse",
    "softmax_cross_entropy",
]
