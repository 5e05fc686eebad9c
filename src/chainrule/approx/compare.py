"""Constructed against trained: the same architecture, weights set by the proof or learned.

The construction sets every weight from f at the grid nodes. Training starts the same
layer sizes from random weights and minimises the mean squared error on samples of f,

    e = (1/N) sum_n |net(x_n) - f(x_n)|^2,     h <- h - alpha de/dh   (SGD / Adam)

on inputs scaled to [-1, 1] and targets scaled to mean 0, variance 1 (the usual conditioning);
the scalings are folded into the first and last layers afterwards, so the trained network
takes x and returns f(x) like the constructed one and both are measured on the same grid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn import Linear, ReLU, Sequential
from .construct import construct
from .error import ErrorReport, _grid_sizes, error_report
from .grid import ConstructedNetwork, parse_domain, sample

__all__ = ["Comparison", "compare_trained", "trained_like"]

#: the learning rate (before the cosine decay) and settings each optimiser trains with here
RECIPES: dict[str, dict[str, Any]] = {"sgd": {"lr": 0.05, "momentum": 0.9}, "adam": {"lr": 3e-3}}


@dataclass(frozen=True, eq=False)
class Comparison:
    """Error reports of the constructed and the trained network, and how training went."""

    constructed: ErrorReport
    trained: ErrorReport
    network: Sequential  # the trained network (takes x, returns f(x))
    losses: np.ndarray  # training loss per step (on the scaled targets)
    optimizer: str
    steps: int
    samples: int
    seconds: float

    def table(self) -> str:
        c, t = self.constructed, self.trained
        return "\n".join(
            [
                "| network | parameters | max error | rms error |",
                "|---|---|---|---|",
                f"| constructed | {c.parameters:,} | {c.max_error:.2e} | {c.rms_error:.2e} |",
                f"| trained ({self.optimizer}, {self.steps} steps, {self.samples:,} samples, "
                f"{self.seconds:.1f} s) | {t.parameters:,} | {t.max_error:.2e} "
                f"| {t.rms_error:.2e} |",
            ]
        )

    def __str__(self) -> str:
        return self.table()


def trained_like(
    net: ConstructedNetwork, rng: np.random.Generator, dtype: Any = np.float32
) -> Sequential:
    """A network of the same layer sizes as ``net``, randomly initialised (PyTorch's default)."""
    widths = net.widths
    layers: list[Any] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [Linear(a, b, rng=rng, dtype=dtype), ReLU()]
    return Sequential(*layers[:-1])


def compare_trained(
    f: Callable[[np.ndarray], Any],
    domain: Any,
    d: float | Sequence[float],
    *,
    method: str = "simplex",
    optimizer: str = "adam",
    steps: int = 2000,
    lr: float | None = None,
    batch_size: int = 256,
    samples: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Comparison:
    """Construct the network for f, train one of the same widths from samples, measure both.

    ``optimizer``: a name in ``chainrule.optim.OPTIMIZERS``, "adam" or "sgd" (momentum 0.9);
    ``lr`` defaults to 3e-3 (Adam) / 0.05 (SGD) (:data:`RECIPES`), decayed by a cosine
    schedule over ``steps`` minibatches of ``batch_size`` drawn from ``samples`` uniform points
    (default: 8 per hidden neuron, at least 2,048).
    """
    import chainrule as cr
    from chainrule import optim

    if optimizer not in optim.OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {optimizer!r}; choose from {', '.join(optim.OPTIMIZERS)}"
        )
    settings = dict(RECIPES.get(optimizer, {}))
    default_lr = settings.pop("lr", None)
    base_lr = lr or default_lr
    if base_lr is None:
        raise ValueError(f"compare_trained has no default lr for {optimizer!r}: pass lr")
    if int(steps) != steps or steps < 1 or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            f"steps and batch_size must be positive integers, got {steps}, {batch_size}"
        )
    box = parse_domain(domain)
    constructed = construct(f, box, d, method=method)
    points = _grid_sizes(constructed, box, None)
    rng = np.random.default_rng(seed)
    lo, hi = np.array(box).T
    n = samples if samples is not None else max(2048, 8 * sum(constructed.widths[1:-1]))
    x = rng.uniform(lo, hi, size=(n, len(box)))
    y = sample(f, x)
    centre, radius = (lo + hi) / 2, (hi - lo) / 2
    mean, scale = y.mean(axis=0), y.std(axis=0)
    scale[scale == 0] = 1.0
    inputs = ((x - centre) / radius).astype(np.float32)
    targets = ((y - mean) / scale).astype(np.float32)

    net = trained_like(constructed, rng)
    opt = optim.make_optimizer(optimizer, net.parameters(), base_lr, **settings)
    schedule = optim.CosineLR(opt.lr, steps)
    losses = np.empty(steps)
    bar = range(steps)
    if progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc=f"training ({optimizer})", unit="step", leave=False)
    start = time.perf_counter()
    for step in bar:
        schedule.apply(opt, step)  # cosine decay over the steps
        idx = rng.integers(0, n, size=batch_size)
        loss = cr.mse(net(inputs[idx]), targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[step] = float(loss.data)
    seconds = time.perf_counter() - start
    if not np.isfinite(losses[-1]):
        raise RuntimeError(f"training diverged (loss {losses[-1]}); try a smaller lr")

    # fold the scalings in: net(u) with u = (x - c)/r, and y = scale * net + mean
    first, last = net.layers[0], net.layers[-1]
    assert isinstance(first, Linear) and isinstance(last, Linear)
    assert first.bias is not None and last.bias is not None
    w = first.weight.data / radius.astype(np.float32)
    first.bias.data = (first.bias.data - w @ centre.astype(np.float32)).astype(np.float32)
    first.weight.data = w.astype(np.float32)
    last.weight.data = (last.weight.data * scale[:, None]).astype(np.float32)
    last.bias.data = (last.bias.data * scale + mean).astype(np.float32)

    spacing = constructed.construction.spacing
    return Comparison(
        constructed=error_report(constructed, f, points=points),
        trained=error_report(net, f, box, points=points, d=spacing),
        network=net,
        losses=losses,
        optimizer=optimizer,
        steps=int(steps),
        samples=int(n),
        seconds=seconds,
    )
