"""The package's shape: no import cycles, NumPy only in the backend, derived export lists."""

from __future__ import annotations

import ast
from pathlib import Path

import chainrule as cr

SRC = Path(cr.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The chainrule modules that ``path`` imports at module level (not inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("chainrule")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("chainrule"):
                continue
            for a in node.names:  # `from . import rules` imports the submodule rules
                sub = f"{mod}.{a.name}"
                found.add(
                    sub
                    if (SRC.parent / sub.replace(".", "/")).exists()
                    or (SRC.parent / (sub.replace(".", "/") + ".py")).exists()
                    else mod
                )
    return found - {name}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for dep in _imports(path):
            while dep and dep not in modules:  # `from pkg import name` of a non-module name
                dep = dep.rpartition(".")[0]
            if dep and dep != name:
                deps.add(dep)
        graph[name] = deps
    return graph


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports, or None. A submodule importing its own package is not counted: the
    package's __init__ imports the submodule, so that edge is the package's own."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if d in _parents(m):
                continue
            if state.get(d) == 1:
                return path[path.index(d) :] + [d]
            if state.get(d) is None and (cycle := visit(d)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_import_graph_has_no_cycles():
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_planted_cycle():
    graph = _graph()
    graph["chainrule.engine"] = graph["chainrule.engine"] | {"chainrule.rules.shapes"}
    assert find_cycle(graph) is not None  # engine -> rules.shapes -> engine


def test_the_engine_and_the_rule_table_do_not_import_numpy():
    """Arrays reach the engine, the rules, functional, nn's layers and the optimisers through
    the active backend namespace (chainrule.backend) only."""
    checked = [
        SRC / "engine.py",
        SRC / "functional.py",
        SRC / "nn" / "modules.py",
        *sorted((SRC / "rules").glob("*.py")),
        *sorted((SRC / "optim").glob("*.py")),
    ]
    offenders = []
    for path in checked:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "numpy" or n.startswith("numpy.") for n in names):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders, f"NumPy imported outside the backend: {offenders}"


def test_export_lists_are_the_table():
    """chainrule's and chainrule.rules' export lists come from the table, not from a hand list."""
    from chainrule import rules

    assert set(rules.TABLE) == set(cr.RULES) | set(cr.COMPOSITES)
    for name in rules.TABLE:
        assert name in cr.__all__ and getattr(cr, name) is rules.TABLE[name]
        assert getattr(rules, name) is rules.TABLE[name]
    sections = [name for mod in rules.SECTIONS for name in mod.__all__]
    assert sorted(sections) == sorted(rules.TABLE), "every entry belongs to one lecture section"
    for mod in rules.SECTIONS:  # and is listed where it is defined
        for name in mod.__all__:
            assert getattr(mod, name).__wrapped__.__module__ == mod.__name__, name


def test_every_entry_is_in_one_place():
    """Each entry carries its formula, its vjps (or is a composite), what they read, samples."""
    from chainrule import rules

    for name, entry in rules.TABLE.items():
        assert entry.formula, name
        assert entry.samples is not None, f"{name}: no samples (give it {name}.defsamples)"
        if name in cr.RULES:
            assert entry.vjps or entry.vjp_all, f"{name}: no vjp"
            assert entry.reads is not None, f"{name}: no reads"
