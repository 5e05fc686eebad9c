"""Seeing the graph: Graphviz DOT text of the forward graph and of the backward graph."""

from __future__ import annotations

from .tensor import Tensor


def to_dot(root: Tensor) -> str:
    """DOT text of the forward graph that made ``root`` and of its reversed (backward) graph."""
    raise NotImplementedError("to_dot is being written")
