"""chainrule.approx.grid: the shared base of the approximation package, and no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import chainrule.approx as approx
from chainrule.approx import grid

PACKAGE = Path(approx.__file__).parent


def _imports(path: Path) -> set[str]:
    """The approx modules that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import ...
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x
                found.update(a.name for a in node.names)
            elif node.module and node.module.startswith("chainrule.approx."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("chainrule.approx."):
                    found.add(a.name.split(".")[2])
    return found


def test_the_approx_modules_import_each_other_without_a_circle():
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert graph["grid"] == set(), "grid is the base: it imports no other approx module"
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            circle = " -> ".join((*path[path.index(module) :], module))
            pytest.fail(f"import circle in chainrule.approx: {circle}")
        if module in done:
            return
        for other in sorted(graph.get(module, ())):
            visit(other, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
    assert "simplex" in graph["construct"] and "grid" in graph["simplex"]  # the walk saw them


def test_grid_nodes_have_steps_no_larger_than_d_and_include_both_ends():
    (x,) = grid.grid_nodes(((0.0, 1.0),), (0.3,))
    np.testing.assert_allclose(x, [0.0, 0.25, 0.5, 0.75, 1.0])
    points = grid.grid_points((np.array([0.0, 1.0]), np.array([2.0, 3.0, 4.0])))
    assert points.shape == (6, 2) and points[1].tolist() == [0.0, 3.0]  # 'ij' order


def test_budget_is_checked_before_sampling():
    calls = []
    with pytest.raises(grid.BudgetError, match="max_neurons = 10"):
        grid.sample_grid(
            lambda x: calls.append(x) or x[:, 0], ((0.0, 1.0),) * 2, (0.1, 0.1), "f", 10, 10**6
        )
    assert calls == []
