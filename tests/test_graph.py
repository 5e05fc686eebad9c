"""Seeing the graph: the DOT text of the forward graph and of the reversed (backward) graph."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

import chainrule as cr
from chainrule import GraphError, backend, graph
from chainrule.engine import RULES
from chainrule.graph import to_dot, write_graphs
from chainrule.models import lecture_network
from chainrule.rules import SAMPLES

NODE = re.compile(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$")


def parse(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Nodes {id: label} and edges [(src, dst, attributes)] of the DOT text chainrule writes."""
    nodes, edges = {}, []
    for line in text.splitlines():
        if m := NODE.match(line):
            nodes[m.group(1)] = m.group(2)
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2), m.group(3) or ""))
    return nodes, edges


def solid(edges):
    return [(a, b) for a, b, attrs in edges if "dashed" not in attrs]


def dashed(edges):
    return [(a, b) for a, b, attrs in edges if "dashed" in attrs]


def kind(node_id: str) -> str:
    return re.match(r"[a-z]+", node_id).group(0)


# ----------------------------------------------------------------------------- structure


def test_small_graph_counts_nodes_and_edges():
    x = cr.tensor(np.ones(3), requires_grad=True, name="x")
    w = cr.tensor(np.full(3, 2.0), requires_grad=True, name="w")
    y = (x * w).sum()
    nodes, edges = parse(to_dot(y))
    kinds = [kind(n) for n in nodes]
    # forward: x, w, x*w, y and two operations; backward: four gradients, two derivative nodes
    assert kinds.count("f") == 4 and kinds.count("op") == 2
    assert kinds.count("g") == 4 and kinds.count("d") == 2
    fwd = [(a, b) for a, b in solid(edges) if kind(a) in ("f", "op")]
    bwd = [(a, b) for a, b in solid(edges) if kind(a) in ("g", "d")]
    assert len(fwd) == 5 and len(bwd) == 5
    # d(x*w)/dx reads w and d(x*w)/dw reads x: both are marked; sum reads nothing
    assert sorted(dashed(edges)) == [("f0", "d0"), ("f1", "d0")]
    assert "multiply' (vjp)" in nodes["d0"] and cr.multiply.formula in nodes["d0"]
    assert "sum' (vjp)" in nodes["d1"]
    assert nodes["g3"].startswith("de/d") and "= 1" in nodes["g3"]  # the seed de/de = 1


def reversed_arrows_hold(text: str) -> int:
    """Every forward path input -> op -> output has output-gradient -> d(op) -> input-gradient."""
    nodes, edges = parse(text)
    arrows = set(solid(edges))
    checked = 0
    for src, op in arrows:
        if kind(src) != "f" or kind(op) != "op":
            continue
        k = op[2:]
        (out,) = [b for a, b in arrows if a == op and kind(b) == "f"]
        assert (f"g{out[1:]}", f"d{k}") in arrows, f"no reversed arrow into d{k}"
        if f"g{src[1:]}" in nodes:  # the input requires grad: it receives de/d(input)
            assert (f"d{k}", f"g{src[1:]}") in arrows
            checked += 1
        else:
            assert not any(a == f"d{k}" and b == f"g{src[1:]}" for a, b in arrows)
    return checked


def test_backward_graph_is_the_forward_graph_with_arrows_reversed():
    e = lecture_network()
    assert reversed_arrows_hold(to_dot(e)) == 9  # x0 is data: 9 of the 10 tensor inputs need grad
    x = cr.tensor(np.random.default_rng(0).standard_normal((2, 1, 6, 6)), requires_grad=True)
    w = cr.tensor(np.ones((2, 1, 3, 3)), requires_grad=True)
    y = cr.max_pool2d(cr.relu(cr.conv2d(x, w, padding=1)), 2).sum()
    assert reversed_arrows_hold(to_dot(y)) == 5  # conv2d (x and w), relu, max_pool2d, sum


def test_every_derivative_node_shows_its_rules_formula():
    e = lecture_network()
    nodes, _ = parse(to_dot(e))
    ops = {k: v for k, v in nodes.items() if kind(k) == "op"}
    assert sorted(v.split("\\n")[0] for v in ops.values()) == sorted(
        ["matmul", "add", "relu", "matmul", "add", "softmax_cross_entropy"]
    )
    for op_id, label in ops.items():
        rule = RULES[label.split("\\n")[0]]
        d = nodes["d" + op_id[2:]]
        formula = rule.formula.replace("\\", "\\\\").replace('"', '\\"')
        assert d == f"{rule.name}' (vjp)\\n{formula}"


def test_lecture_network_names_and_roles():
    nodes, edges = parse(to_dot(lecture_network()))
    labels = {v.split("\\n")[0]: v for k, v in nodes.items() if kind(k) == "f"}
    assert set(labels) == {"x0", "x1", "x2", "x3", "x4", "x5", "H0", "h1", "H3", "h4", "e"}
    assert labels["H0"].endswith("4x3 float64\\nvariable")
    assert labels["x0"].endswith("input (no grad)")
    assert labels["e"].endswith("output")
    grads = {v.split("\\n")[0] for k, v in nodes.items() if kind(k) == "g"}
    assert "de/dx0" not in grads and {"de/dH0", "de/dh1", "de/dx5"} <= grads
    # de/dH0 = G x0^T needs x0 but not H0; ReLU's derivative reads its input x2
    by_label = {v.split("\\n")[0]: k for k, v in nodes.items() if kind(k) == "f"}
    reads = dashed(edges)
    assert (by_label["x0"], "d0") in reads and (by_label["H0"], "d0") not in reads
    assert any(a == by_label["x2"] for a, _ in reads)
    # the softmax cross-entropy keeps its probabilities p for p - onehot
    assert any(kind(a) == "s" for a, _ in reads)


def test_names_mapping_and_parameters():
    layer = cr.nn.Linear(3, 2, rng=0)
    x = cr.tensor(np.ones((4, 3), dtype=np.float32), name="batch")
    e = cr.mse(layer(x), np.zeros((4, 2), dtype=np.float32))
    nodes, _ = parse(to_dot(e, names=layer.named_parameters()))
    labels = [v for k, v in nodes.items() if kind(k) == "f"]
    assert any(v.startswith("weight\\n2x3 float32\\nparameter") for v in labels)
    assert any(v.startswith("bias\\n2 float32\\nparameter") for v in labels)
    assert any(v.startswith("batch\\n4x3 float32\\ninput") for v in labels)


def test_fan_out_shows_the_split_rule():
    x = cr.tensor([1.0, 2.0], requires_grad=True, name="x")
    y = (x * x + cr.sin(x)).sum()
    nodes, edges = parse(to_dot(y))
    gx = [v for k, v in nodes.items() if v.startswith("de/dx\\n")]
    assert gx == ["de/dx\\n2\\nsum of 3 (split rule)"]  # a, b of x*x and sin


def test_constants_and_numbers_are_shown():
    x = cr.tensor(np.ones((2, 3)), requires_grad=True)
    y = (x**3 * np.arange(3.0)).sum(axis=1).max()
    nodes, edges = parse(to_dot(y))
    ops = [v for k, v in nodes.items() if kind(k) == "op"]
    assert "power\\np=3" in ops and "sum\\naxis=1\\nkeepdims=False" in ops
    assert any(kind(k) == "c" for k in nodes)  # the array constant
    assert any(kind(k) == "s" and "saved" in v for k, v in nodes.items())  # max's argmax mask


def test_forward_and_backward_alone():
    e = lecture_network()
    fwd_nodes, fwd_edges = parse(to_dot(e, which="forward"))
    assert fwd_nodes and all(kind(k) in ("f", "op", "c", "s") for k in fwd_nodes)
    bwd_text = to_dot(e, which="backward")
    bwd_nodes, bwd_edges = parse(bwd_text)
    assert {kind(k) for k in bwd_nodes} >= {"g", "d"}
    # every value a derivative node reads is drawn there as a dashed stand-in
    for src, _ in dashed(bwd_edges):
        assert src in bwd_nodes and bwd_nodes[src].startswith("forward: ")
    assert "cluster" not in bwd_text and "cluster_forward" in to_dot(e)


def test_leaf_alone_is_a_one_node_graph():
    x = cr.tensor([1.0], requires_grad=True, name="x")
    nodes, edges = parse(to_dot(x))
    assert set(nodes) == {"f0", "g0"} and edges == []


def test_deep_chain_needs_no_recursion():
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(3000):
        y = cr.sin(y)
    nodes, edges = parse(to_dot(y))
    assert sum(kind(k) == "op" for k in nodes) == 3000
    assert len(solid(edges)) == 2 * 3000 + 2 * 3000


# ----------------------------------------------------------------------------- errors and escaping


def test_freed_graph_is_a_clear_error():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (cr.exp(x) * 2).sum()
    assert to_dot(y)
    y.backward()
    with pytest.raises(GraphError, match=r"freed by backward\(\).*retain_graph=True"):
        to_dot(y)
    z = (cr.exp(x) * 2).sum()
    z.backward(retain_graph=True)
    assert "exp" in to_dot(z)


def test_bad_input_errors():
    with pytest.raises(TypeError, match="needs a Tensor"):
        to_dot(np.ones(3))
    with pytest.raises(GraphError, match="no graph"):
        to_dot(cr.tensor([1.0]) * 2)
    with pytest.raises(ValueError, match="which must be"):
        to_dot(lecture_network(), which="sideways")


def test_labels_are_escaped():
    x = cr.tensor([1.0], requires_grad=True, name='quote " back\\slash\nnew')
    text = to_dot((x * 2).sum())
    nodes, _ = parse(text)
    assert 'quote \\" back\\\\slash\\nnew\\n1 float64\\nvariable' in nodes.values()
    assert all(re.sub(r"\\.", "", line).count('"') % 2 == 0 for line in text.splitlines())


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_graphviz_accepts_the_text():
    x = cr.tensor([1.0], requires_grad=True, name='odd "name" \\ {x} <y> | z')
    texts = [to_dot((x * 2).sum())]
    texts += [to_dot(lecture_network(), which=w) for w in ("both", "forward", "backward")]
    for text in texts:
        proc = subprocess.run(
            ["dot", "-Tsvg"], input=text.encode(), capture_output=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr.decode()
        assert b"<svg" in proc.stdout


# ------------------------------------------------------------------------ the saved-values table


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_rule_says_what_its_backward_reads(name):
    rule = RULES[name]
    assert rule.reads is not None, f"{name}: give @rule(reads=...)"
    inputs = {n.split("[")[0] for n in graph._arg_names(rule, 8) if not n.startswith("arg")}
    assert set(rule.reads) <= inputs, f"{name}: reads names inputs it does not have"


def _nan_like(a):
    return np.full_like(a, np.nan)


def _is_float_array(a):
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


@pytest.mark.parametrize("name", sorted(RULES))
def test_backward_reads_only_what_the_table_says(name):
    """A vjp gives the same result when every forward value it does not list is NaN,
    and each listed float value changes the result when it is NaN (so none is listed idly)."""
    rule, table = RULES[name], RULES[name].reads
    used: set[str] = set()
    for args, params in SAMPLES[name](np.random.default_rng(0)):
        if rule.prepare is not None:
            params = rule.prepare(*args, **params)
        out = rule.forward(*args, **params)
        saved = None
        if rule.saves:
            out, saved = out
        names = graph._arg_names(rule, len(args))
        bases = [n.split("[")[0] for n in names]
        g = np.random.default_rng(1).standard_normal(np.shape(out))
        extra = {"saved": saved} if rule.saves else {}

        def plain(i, ins, out_v, saved_v, rule=rule, g=g, params=params, extra=extra):
            kw = dict(params, **({"saved": saved_v} if extra else {}))
            if rule.vjp_all is not None:
                return rule.vjp_all(g, out_v, *ins, **kw)[i]
            return rule.vjps[i](g, out_v, *ins, **kw)

        def fast(i, ins, out_v, saved_v, rule=rule, g=g, params=params, extra=extra):
            kw = dict(params, **({"saved": saved_v} if extra else {}))
            needs = tuple(j == i for j in range(len(ins)))
            return backend.fast_vjps[rule.name](g, out_v, *ins, needs=needs, **kw)[i]

        vjps = [plain]
        if rule.name in backend.fast_vjps:  # the backend's fused vjp reads only what is listed too
            kw = dict(params, **({"saved": saved} if extra else {}))
            needs = tuple(_is_float_array(a) for a in args)
            if backend.fast_vjps[rule.name](g, out, *args, needs=needs, **kw) is not NotImplemented:
                vjps.append(fast)
        for (i, a), vjp in ((ia, v) for v in vjps for ia in enumerate(args)):
            if not _is_float_array(a):
                continue
            listed = table[bases[i]]
            exact = np.asarray(vjp(i, args, out, saved))
            ins = [
                b if (bases[j] in listed or not _is_float_array(b)) else _nan_like(b)
                for j, b in enumerate(args)
            ]
            out_v = out if "out" in listed else _nan_like(np.asarray(out))
            saved_v = saved if "saved" in listed or not _is_float_array(saved) else _nan_like(saved)
            got = np.asarray(vjp(i, ins, out_v, saved_v))
            np.testing.assert_array_equal(
                got, exact, err_msg=f"{name}: vjp {i} reads an unlisted value"
            )
            for w in listed:  # each listed value matters
                ins2 = [
                    _nan_like(b) if bases[j] == w and _is_float_array(b) else b
                    for j, b in enumerate(args)
                ]
                out2 = _nan_like(np.asarray(out)) if w == "out" else out
                if w == "out" or any(
                    bases[j] == w and _is_float_array(b) for j, b in enumerate(args)
                ):
                    if not np.array_equal(
                        np.asarray(vjp(i, ins2, out2, saved)), exact, equal_nan=True
                    ):
                        used.add(w)
                else:
                    used.add(w)  # labels, masks and numbers cannot be NaN: trusted
    listed_all = {w for reads in table.values() for w in reads}
    assert listed_all <= used, f"{name}: listed but never needed: {listed_all - used}"


# ----------------------------------------------------------------------------- files and the CLI


def test_write_graphs_writes_dot_files(tmp_path):
    paths = write_graphs(lecture_network(), tmp_path / "out", svg=False)
    assert sorted(p.name for p in paths) == ["backward.dot", "forward.dot", "graph.dot"]
    assert all(p.read_text().startswith("digraph chainrule {") for p in paths)
    assert not list((tmp_path / "out").glob("*.part"))


def test_svg_required_without_graphviz_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="'dot' was not found"):
        write_graphs(lecture_network(), tmp_path, svg=True)
    paths = write_graphs(lecture_network(), tmp_path)  # svg=None: quietly only .dot
    assert {p.suffix for p in paths} == {".dot"}


def test_output_folder_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        write_graphs(lecture_network(), f, svg=False)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_svg_written_when_graphviz_is_installed(tmp_path):
    paths = write_graphs(lecture_network(), tmp_path)
    svgs = [p for p in paths if p.suffix == ".svg"]
    assert len(svgs) == 3 and all(b"<svg" in p.read_bytes() for p in svgs)


def test_cli_graph(tmp_path, capsys):
    from chainrule.cli import main

    assert main(["graph", "--out", str(tmp_path / "g"), "--no-svg"]) == 0
    out = capsys.readouterr().out
    assert "forward.dot" in out and "backward.dot" in out
    assert (tmp_path / "g" / "graph.dot").read_text().count("subgraph cluster_") == 2
    assert main(["graph", "--print", "--sizes", "2,3,2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("digraph chainrule {") and "2x3 float64" in printed
    (tmp_path / "file").write_text("")
    assert main(["graph", "--out", str(tmp_path / "file"), "--no-svg"]) == 1
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["graph", "--sizes", "1,2"])


def test_cli_graph_debug_shows_the_traceback_instead_of_one_line(tmp_path, capsys):
    from chainrule.cli import main

    assert main(["graph", "--print", "--debug"]) == 0  # accepted, changes nothing
    assert capsys.readouterr().out.startswith("digraph chainrule {")
    (tmp_path / "file").write_text("")
    bad = ["graph", "--out", str(tmp_path / "file"), "--no-svg"]
    assert main(bad) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule graph: error: ") and err.count("\n") == 1
    with pytest.raises(NotADirectoryError, match="not a folder"):
        main([*bad, "--debug"])
