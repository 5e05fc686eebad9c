"""A helper shared by the tests of data-parallel training (ranks and threads), not a test file.

The arithmetic that both ways of splitting a batch claim, done by one process: each shard's
gradient times |B_k|/|B|, summed in float32, one update per batch, on the offline digits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chainrule import models, softmax_cross_entropy
from chainrule.data import DataLoader, load_digits
from chainrule.train import TrainConfig, epoch_seed


def emulated_shards(cfg: TrainConfig, shards: Callable[[int], int]) -> dict[str, np.ndarray]:
    """The MLP's final weights when every batch of n samples is cut into ``shards(n)`` contiguous
    slices (slice k: k n // K to (k + 1) n // K) whose gradients are weighted and summed."""
    cfg = cfg.resolved()
    train, _ = load_digits(test_fraction=0.2, seed=0)
    model = models.build(models.architecture("mlp", (1, 8, 8), 10, cfg.hidden), rng=cfg.seed)
    opt, schedule = cfg.make_optimizer(model.parameters()), cfg.make_schedule()
    for epoch in range(cfg.epochs):
        opt.lr = schedule(epoch)
        for x, y in DataLoader(train, cfg.batch_size, seed=epoch_seed(cfg.seed, epoch)):
            n, k = len(y), shards(len(y))
            total = [np.zeros(p.shape, p.dtype) for p in opt.params]
            for r in range(k):
                part = slice(r * n // k, (r + 1) * n // k)
                opt.zero_grad()
                softmax_cross_entropy(model(x[part]), y[part]).backward()
                for t, p in zip(total, opt.params, strict=True):
                    t += np.multiply(p.grad, (part.stop - part.start) / n)
            for t, p in zip(total, opt.params, strict=True):
                p.grad = t
            opt.step()
    return model.state_dict()
