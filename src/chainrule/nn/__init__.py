"""Layers of the lecture's networks: each holds parameters and calls the rule table.

There is no second, hand-written backward here: a layer's derivative is the engine's,
assembled from the rules of :mod:`chainrule.rules`.
"""

from .init import he_normal, he_uniform, pytorch_uniform, xavier_normal, xavier_uniform
from .modules import (
    AvgPool2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)

__all__ = [
    "Module",
    "Parameter",
    "Linear",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Flatten",
    "Sequential",
    "he_normal",
    "he_uniform",
    "xavier_normal",
    "xavier_uniform",
    "pytorch_uniform",
]
