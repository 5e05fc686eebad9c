"""Rich display: graphs as SVG (with Graphviz) or text (without), checks as HTML, live curves."""

from __future__ import annotations

import os
import shutil
import stat
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.check import TableRow
from chainrule.cli import main
from chainrule.display import (
    FAIL_STYLE,
    PASS_STYLE,
    DotGraph,
    GradcheckTable,
    LiveCurves,
    figure,
    in_notebook,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _fake_dot(folder, body: str) -> None:
    """A program named ``dot`` in ``folder``: a Python script with the given body."""
    exe = folder / "dot"
    exe.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_to_dot_is_its_text_and_shows_as_text_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no 'dot' anywhere
    assert shutil.which("dot") is None
    e = cr.models.lecture_network()
    dot = cr.to_dot(e)
    assert isinstance(dot, DotGraph) and isinstance(dot, str)
    assert dot.startswith("digraph chainrule {") and '"x5' in dot
    assert dot._repr_svg_() is None
    assert dot._repr_mimebundle_() == {"text/plain": str(dot)}

    class Printer:  # IPython's pretty printer: the text goes out unquoted, newlines kept
        def __init__(self):
            self.out = []

        def text(self, t):
            self.out.append(t)

    p = Printer()
    dot._repr_pretty_(p, False)
    assert p.out == [str(dot)] and "\n" in p.out[0]
    with pytest.raises(RuntimeError, match="Graphviz program 'dot' was not found"):
        dot.svg()


def test_graph_shows_as_svg_when_dot_is_on_the_path(tmp_path, monkeypatch):
    seen = tmp_path / "input.dot"
    _fake_dot(
        tmp_path,
        f"data = sys.stdin.read()\nopen({str(seen)!r}, 'w').write(data)\n"
        "assert sys.argv[1:] == ['-Tsvg']\nprint('<svg>drawn</svg>')",
    )
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    dot = cr.to_dot(cr.models.lecture_network(), which="backward")
    bundle = dot._repr_mimebundle_()
    assert bundle["image/svg+xml"].strip() == "<svg>drawn</svg>"
    assert bundle["text/plain"] == str(dot)
    assert seen.read_text() == str(dot)  # Graphviz was given exactly the DOT text


def test_broken_graphviz_falls_back_to_text(tmp_path, monkeypatch):
    _fake_dot(tmp_path, "sys.stderr.write('syntax error in line 1')\nsys.exit(1)")
    monkeypatch.setenv("PATH", str(tmp_path))
    dot = cr.to_dot(cr.models.lecture_network())
    assert dot._repr_mimebundle_() == {"text/plain": str(dot)}
    with pytest.raises(RuntimeError, match="syntax error in line 1"):
        dot.svg()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_real_graphviz_draws_both_graphs():
    svg = cr.to_dot(cr.models.lecture_network())._repr_svg_()
    assert svg is not None and "<svg" in svg
    assert "forward graph" in svg and "backward graph" in svg and "x5" in svg


def test_check_grad_report_as_html_pass_and_fail():
    x = np.array([0.3, -1.2, 2.0])
    good = cr.check_grad(lambda t: cr.sin(t) * t, x)
    assert good.ok
    page = good._repr_html_()
    assert f'<span style="{PASS_STYLE}">PASS</span>' in page
    assert page.count("<tr>") == 2 and "(3,)" in page and FAIL_STYLE not in page
    # tolerances of zero: the rounding of central differences alone makes it fail
    bad = cr.check_grad(lambda t: cr.sin(t) * t, x, rtol=0.0, atol=0.0)
    assert not bad.ok
    page = bad._repr_html_()
    assert f'<span style="{FAIL_STYLE}">FAIL</span>' in page
    assert f'<td style="{FAIL_STYLE}">FAIL</td>' in page


def test_gradcheck_table_text_is_the_cli_output(capsys):
    table = cr.gradcheck(["add", "relu", "matmul"])
    assert table.ok and table.failed == [] and table.orders == (1, 2)
    assert [name for name, _, _ in table] == ["add", "relu", "matmul"]
    assert main(["gradcheck", "add", "relu", "matmul"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == str(table)
    assert repr(table) == "<GradcheckTable: 3 of 3 rules pass (orders 1, 2)>"
    page = table._repr_html_()
    assert page.count(f'<td style="{PASS_STYLE}">PASS</td>') == 3
    assert cr.RULES["matmul"].formula.split(",")[0] in page

    one = cr.gradcheck(["add"], orders=(1,))
    assert main(["gradcheck", "add", "--order", "1"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == str(one)


def test_gradcheck_table_colours_a_failing_rule_red():
    ok = TableRow("add", "d(a+b)/da = I", 1e-10, True, 1)
    bad = TableRow("wrong", "d f/dx = 2 <b>", 0.5, False, 1)
    table = GradcheckTable([("add", ok.formula, {1: ok}), ("wrong", bad.formula, {1: bad})], (1,))
    assert not table.ok and table.failed == ["wrong"]
    page = table._repr_html_()
    assert f'<td style="{FAIL_STYLE}">FAIL</td>' in page
    assert f'<td style="{FAIL_STYLE}">5.0e-01</td>' in page
    assert "2 &lt;b&gt;" in page  # formulas are escaped, not interpreted as HTML
    assert str(table).splitlines()[-1] == "1 of 2 rules pass"


def test_gradcheck_bad_arguments():
    with pytest.raises(ValueError, match="unknown rule"):
        cr.gradcheck(["nope"])
    with pytest.raises(ValueError, match="orders must be"):
        cr.gradcheck(["add"], orders=(3,))


def test_figures_display_as_png_without_pyplot():
    fig = figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    assert fig._repr_png_().startswith(PNG)
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)


def test_live_curves_redraw_in_place_at_most_every_interval():
    frames = []
    live = LiveCurves(every=3600, show=frames.append)  # a long interval: only the first and close
    history = []
    for epoch in range(1, 4):
        history.append(
            {
                "epoch": epoch,
                "train_loss": 1 / epoch,
                "train_accuracy": 0.5 + 0.1 * epoch,
                "test_loss": 1.2 / epoch,
                "test_accuracy": 0.4 + 0.1 * epoch,
            }
        )
        live.update(history)
    assert len(frames) == 1  # epoch 1 drawn at once, epochs 2-3 waiting for the interval
    live.close()
    assert len(frames) == 2 and all(f.startswith(PNG) for f in frames)
    live.close()
    assert len(frames) == 2  # nothing new to draw
    every = LiveCurves(every=0, show=frames.append)
    every.update(history[:1])
    every.update(history)
    assert every.frames == 2


def test_not_a_notebook_here():
    assert in_notebook() is False


# ----------------------------------------------------------------------------- training


def _digits_trainer(**kw):
    from chainrule import models, optim
    from chainrule.data import load_digits
    from chainrule.train import Trainer

    train, test = load_digits(test_fraction=0.2, seed=0)
    model = models.mlp((1, 8, 8), hidden=8, rng=0)
    return Trainer(
        model,
        optim.SGD(model.parameters(), lr=0.1),
        train.subset(slice(0, 128)),
        test.subset(slice(0, 64)),
        batch_size=32,
        progress=False,
        log=None,
        **kw,
    )


def test_training_redraws_the_live_curves_after_every_epoch():
    frames = []
    trainer = _digits_trainer(live_plot=LiveCurves(every=0, show=frames.append))
    trainer.fit(3)
    assert len(frames) == 3 and all(f.startswith(PNG) for f in frames)


def test_live_curves_are_on_in_a_notebook_and_off_elsewhere(monkeypatch):
    from chainrule.train import loop

    assert _digits_trainer().live is None  # a test process is no notebook
    with pytest.raises(ValueError, match="needs a Jupyter notebook"):
        _digits_trainer(live_plot=True)
    monkeypatch.setattr(loop, "in_notebook", lambda: True)
    assert isinstance(_digits_trainer().live, LiveCurves)
    assert _digits_trainer(live_plot=False).live is None


def test_progress_bars_come_from_tqdm_auto():
    import tqdm.auto

    from chainrule.train import loop

    bar = loop._bar(3, "epoch 1/1", 0)
    try:
        assert isinstance(bar, tqdm.auto.tqdm)  # widgets in a notebook, text in a terminal
    finally:
        bar.close()
