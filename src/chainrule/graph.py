"""Seeing the graph: Graphviz DOT text of the forward graph and of the backward graph.

Forward graph: the tensors (shape, dtype, name) and the operations that made them, an arrow
from each input of an operation to the operation and from the operation to its output.

Backward graph: back propagation walks the forward graph with every arrow reversed. Each
operation is replaced by its derivative node, labelled with the rule's formula: it receives
de/d(output) and sends de/d(input) = d(output)/d(input) de/d(output) to each input that
requires grad. A tensor used by several operations receives the sum of their gradients (the
split rule). Dashed arrows mark what a derivative node reads from the forward pass: the
inputs, the output or the saved values (an argmax, softmax probabilities) its
vector-Jacobian product needs; every other forward value could be freed.

    import chainrule as cr
    e = cr.models.lecture_network()      # x5 = H3 ReLU(H0 x0 + h1) + h4, softmax cross-entropy
    print(cr.to_dot(e))                  # both graphs, one DOT text (two clusters)
    cr.graph.write_graphs(e, "graph")    # forward.dot, backward.dot, graph.dot (+ .svg with dot)
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy  # only to print small arrays in the labels

from . import backend as B
from .atomic import atomic_write_bytes
from .display import DotGraph
from .engine import FREED, GraphError, Rule, Tensor, topological_order

__all__ = ["to_dot", "write_graphs", "render_svg"]


def _reads(rule: Rule, arg_names: list[str], needed: list[str]) -> list[str]:
    """What the vjps for the inputs ``needed`` read (the entry's ``reads``; else everything)."""
    table = rule.reads
    if table is None:
        return arg_names + ["out"] + (["saved"] if rule.saves else [])
    out: list[str] = []
    for name in needed:
        base = name.split("[")[0]  # xs[1] -> xs
        for w in table.get(base, ()):
            if w not in out:
                out.append(w)
    return out


# ----------------------------------------------------------------------------- the walk


@dataclass
class _Op:
    """One recorded operation: the rule, its arguments (named) and where its output is."""

    rule: Rule
    out: Tensor
    args: list[tuple[str, Any]]
    params: dict[str, Any]
    saved: Any


@dataclass
class _Graph:
    tensors: list[Tensor] = field(default_factory=list)  # inputs before the outputs they make
    ops: dict[int, _Op] = field(default_factory=dict)  # by id of the output tensor


def _arg_names(rule: Rule, n: int) -> list[str]:
    try:
        params = list(inspect.signature(rule.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names: list[str] = []
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}[{i}]" for i in range(n - len(names))]
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return (names + [f"arg{i}" for i in range(len(names), n)])[:n]


def _walk(root: Tensor) -> _Graph:
    """Every tensor that ``root`` was computed from (the engine's walk), with its operation."""
    if not isinstance(root, Tensor):
        raise TypeError(f"to_dot needs a Tensor, got {type(root).__name__}")
    if root._node is None and not root.requires_grad:
        raise GraphError(
            "to_dot: this tensor has no graph: none of the inputs it was computed from requires "
            "grad (or it was computed under no_grad); create the variables with requires_grad=True"
        )
    g = _Graph(tensors=topological_order([root], constants=True))
    for t in g.tensors:
        node = t._node
        if node is FREED:
            raise GraphError(
                "to_dot: the graph was freed by backward(): draw it before calling backward(), "
                "or call backward(retain_graph=True)"
            )
        if node is not None:
            names = _arg_names(node.rule, len(node.inputs))
            g.ops[id(t)] = _Op(
                node.rule, t, list(zip(names, node.inputs, strict=True)), dict(node.params),
                node.saved,
            )
    return g


# ----------------------------------------------------------------------------- labels


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks."""
    lines = str(text).split("\n")
    esc = [
        "".join(ch if ch >= " " else " " for ch in line).replace("\\", "\\\\").replace('"', '\\"')
        for line in lines
    ]
    return '"' + "\\n".join(esc) + '"'


def _node(node_id: str, lines: list[str], **attrs: str) -> str:
    """One DOT node statement: a label of one or more lines, then the attributes."""
    label = _quote("\n".join(lines))
    extra = "".join(f", {k}={v}" for k, v in attrs.items())
    return f"{node_id} [label={label}{extra}];"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _short(value: Any, limit: int = 24) -> str:
    if isinstance(value, Tensor):
        value = value.data
    if B.is_array(value):
        if value.size <= 4:
            text = numpy.array2string(numpy.asarray(value), separator=",", precision=4)
            return text.replace("\n", "")
        return f"array {_shape_text(value.shape)} {value.dtype}"
    if isinstance(value, tuple):
        text = (
            "("
            + ", ".join(_short(v, limit) for v in value)
            + ("," if len(value) == 1 else "")
            + ")"
        )
    elif isinstance(value, slice):
        parts = [("" if v is None else str(v)) for v in (value.start, value.stop, value.step)]
        text = ":".join(parts[:2] if value.step is None else parts)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tensor_lines(t: Tensor, name: str, root: Tensor, is_param: bool) -> list[str]:
    if t is root:
        role = "output"
    elif t._node is not None:
        role = ""
    elif is_param:
        role = "parameter"
    elif t.requires_grad:
        role = "variable"
    else:
        role = "input (no grad)"
    lines = [name, f"{_shape_text(t.shape)} {t.dtype}"]
    return lines + [role] if role else lines


# ----------------------------------------------------------------------------- DOT


def _names(
    g: _Graph, names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None
) -> dict[int, str]:
    given: dict[int, str] = {}
    if names is not None:
        pairs = names.items() if isinstance(names, Mapping) else names
        for n, t in pairs:
            given[id(t)] = str(n)
    out = {}
    for i, t in enumerate(g.tensors):
        out[id(t)] = given.get(id(t)) or t.name or f"t{i}"
    return out


def to_dot(
    root: Tensor,
    names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    which: str = "both",
) -> DotGraph:
    """DOT text of the forward graph that made ``root`` and of its reversed (backward) graph.

    ``names`` maps names to tensors (e.g. ``model.named_parameters()``); otherwise a tensor's
    ``.name`` or ``t<i>`` is shown. ``which``: ``"both"`` (one digraph, two clusters),
    ``"forward"`` or ``"backward"``. Raises GraphError on a graph freed by ``backward()``.
    The result is a ``str`` that a Jupyter notebook draws as SVG when Graphviz is installed.
    """
    if which not in ("both", "forward", "backward"):
        raise ValueError(f"to_dot: which must be 'both', 'forward' or 'backward', got {which!r}")
    g = _walk(root)
    label = _names(g, names)
    params = _param_ids(g)
    fid = {id(t): f"f{i}" for i, t in enumerate(g.tensors)}
    gid = {id(t): f"g{i}" for i, t in enumerate(g.tensors) if t.requires_grad}

    fwd_nodes: list[str] = []
    fwd_edges: list[str] = []
    bwd_nodes: list[str] = []
    bwd_edges: list[str] = []
    reads: list[tuple[str, str, str]] = []  # (forward node, derivative node, what it is)
    saved_nodes: dict[str, str] = {}  # forward node id -> its label line, for "backward" alone

    for t in g.tensors:
        lines = _tensor_lines(t, label[id(t)], root, id(t) in params)
        style = "filled" if t.requires_grad and t._node is None else "solid"
        fwd_nodes.append(
            _node(fid[id(t)], lines, shape="box", style=style, fillcolor="lightyellow")
        )
    const = 0
    fan_in: dict[int, int] = {}
    ordered = [(id(t), g.ops[id(t)]) for t in g.tensors if id(t) in g.ops]  # inputs first
    for k, (tid, op) in enumerate(ordered):
        o, d = f"op{k}", f"d{k}"
        shown = [f"{n}={_short(v)}" for n, v in op.params.items()]
        inputs: list[tuple[str, str, Any]] = []  # (arg name, forward node, value)
        for name, a in op.args:
            if isinstance(a, Tensor):
                inputs.append((name, fid[id(a)], a))
            elif B.is_array(a):
                c = f"c{const}"
                const += 1
                fwd_nodes.append(_node(c, [name, _short(a)], shape="note"))
                inputs.append((name, c, a))
            elif a is not None:
                shown.append(f"{name}={_short(a)}")
        fwd_nodes.append(_node(o, [op.rule.name, *shown], shape="ellipse"))
        multi = len(inputs) > 1
        for name, node, _ in inputs:
            fwd_edges.append(f"{node} -> {o}" + (f" [label={_quote(name)}];" if multi else ";"))
        fwd_edges.append(f"{o} -> {fid[tid]};")

        # the derivative node: de/d(out) in, de/d(input) out to each input that requires grad
        bwd_nodes.append(
            _node(d, [f"{op.rule.name}' (vjp)", op.rule.formula], shape="box", style="rounded")
        )
        bwd_edges.append(f"{gid[tid]} -> {d};")
        for name, _, a in inputs:
            if isinstance(a, Tensor) and a.requires_grad:
                bwd_edges.append(
                    f"{d} -> {gid[id(a)]}" + (f" [label={_quote(name)}];" if multi else ";")
                )
                fan_in[id(a)] = fan_in.get(id(a), 0) + 1

        # what the vjps of the inputs that need a gradient read from the forward pass
        needed = [name for name, _, a in inputs if isinstance(a, Tensor) and a.requires_grad]
        by_name = {name: (node, a) for name, node, a in inputs}
        for w in _reads(op.rule, list(by_name), needed):
            if w == "out":
                reads.append((fid[tid], d, "out"))
                saved_nodes[fid[tid]] = label[tid]
            elif w == "saved":
                s = f"s{k}"
                fwd_nodes.append(_node(s, ["saved", _short(op.saved)], shape="box", style="dashed"))
                fwd_edges.append(f"{o} -> {s} [style=dashed];")
                reads.append((s, d, "saved"))
                saved_nodes[s] = "saved " + _short(op.saved)
            else:
                for name, (node, a) in by_name.items():
                    if name == w or name.startswith(w + "["):
                        reads.append((node, d, name))
                        saved_nodes[node] = (
                            label[id(a)] if isinstance(a, Tensor) else f"{name} {_short(a)}"
                        )

    for t in g.tensors:
        if not t.requires_grad:
            continue
        n = label[id(t)]
        lines = [f"de/d{n}", _shape_text(t.shape)]
        if t is root:
            lines[0] += " = 1" if t.data.size == 1 else " (given)"
        if fan_in.get(id(t), 0) > 1:
            lines.append(f"sum of {fan_in[id(t)]} (split rule)")
        bwd_nodes.append(
            _node(gid[id(t)], lines, shape="box", style="filled", fillcolor="lightblue")
        )

    read_edges = [
        f"{src} -> {dst} [style=dashed, color=gray40, arrowhead=empty, label={_quote(what)}];"
        for src, dst, what in reads
    ]
    return DotGraph(
        _assemble(which, fwd_nodes, fwd_edges, bwd_nodes, bwd_edges, read_edges, saved_nodes)
    )


def _param_ids(g: _Graph) -> set[int]:
    try:
        from .nn import Parameter
    except ImportError:  # pragma: no cover - nn is part of the package
        return set()
    return {id(t) for t in g.tensors if isinstance(t, Parameter)}


def _assemble(
    which: str,
    fwd_nodes: list[str],
    fwd_edges: list[str],
    bwd_nodes: list[str],
    bwd_edges: list[str],
    read_edges: list[str],
    saved_nodes: dict[str, str],
) -> str:
    head = [
        "digraph chainrule {",
        '  graph [rankdir=TB, fontname="Helvetica"];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]

    def block(lines: list[str], indent: str = "  ") -> list[str]:
        return [indent + line for line in lines]

    if which == "forward":
        body = ['  label="forward graph";', *block(fwd_nodes), *block(fwd_edges)]
    elif which == "backward":
        # the forward values the derivative nodes read, drawn as dashed stand-ins
        stand_ins = [
            _node(node, ["forward: " + text], shape="box", style="dashed")
            for node, text in saved_nodes.items()
        ]
        body = [
            '  label="backward graph: arrows reversed, dashed = read from the forward pass";',
            *block(bwd_nodes),
            *block(stand_ins),
            *block(bwd_edges),
            *block(read_edges),
        ]
    else:
        body = [
            "  subgraph cluster_forward {",
            '    label="forward graph";',
            *block(fwd_nodes, "    "),
            *block(fwd_edges, "    "),
            "  }",
            "  subgraph cluster_backward {",
            '    label="backward graph (arrows reversed)";',
            *block(bwd_nodes, "    "),
            *block(bwd_edges, "    "),
            "  }",
            *block(read_edges),
        ]
    return "\n".join(head + body + ["}"]) + "\n"


# ----------------------------------------------------------------------------- files


def render_svg(dot_text: str, path: str | os.PathLike, dot: str | None = None) -> Path:
    """Run Graphviz ``dot -Tsvg`` on ``dot_text`` and write the SVG to ``path`` (atomically)."""
    exe = dot or shutil.which("dot")
    if exe is None:
        raise RuntimeError(
            "the Graphviz program 'dot' was not found; install graphviz to get SVG files"
        )
    proc = subprocess.run([exe, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"dot -Tsvg failed: {proc.stderr.decode(errors='replace').strip()}")
    out = Path(path)
    atomic_write_bytes(out, proc.stdout)
    return out


def write_graphs(
    root: Tensor,
    out_dir: str | os.PathLike,
    names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    svg: bool | None = None,
) -> list[Path]:
    """Write forward.dot, backward.dot and graph.dot (both) into ``out_dir``; return the paths.

    ``svg=None`` also writes an .svg beside each when Graphviz's ``dot`` is installed;
    ``svg=True`` requires it (RuntimeError otherwise), ``svg=False`` never runs it.
    """
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"output folder {folder} exists and is not a folder")
    texts = {w: to_dot(root, names, which=w) for w in ("forward", "backward", "both")}
    want_svg = shutil.which("dot") is not None if svg is None else svg
    written = []
    for which, text in texts.items():
        stem = "graph" if which == "both" else which
        dot_path = folder / f"{stem}.dot"
        atomic_write_bytes(dot_path, text.encode())
        written.append(dot_path)
        if want_svg:
            written.append(render_svg(text, folder / f"{stem}.svg"))
    return written
