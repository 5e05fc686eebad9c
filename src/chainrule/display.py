"""How chainrule's results show themselves in Jupyter (and as text everywhere else).

* :class:`DotGraph` - what :func:`chainrule.to_dot` returns: the DOT text itself (a ``str``),
  drawn as SVG in a notebook when Graphviz's ``dot`` is on the PATH, and shown as its plain
  DOT text when it is not (Graphviz is never required).
* :func:`report_html`, :class:`GradcheckTable` - a gradient check and the table of rules as
  HTML tables, PASS in green and FAIL in red (``_repr_html_``); ``str()`` gives the text.
* :func:`figure` - a matplotlib Figure that draws itself as PNG in a notebook, returned by the
  plotting functions of :mod:`chainrule.approx` and :mod:`chainrule.optimize`.
* :class:`LiveCurves` - the training curves, redrawn in place after every epoch in a notebook.

Nothing here imports IPython or matplotlib until a picture is asked for.
"""

from __future__ import annotations

import functools
import html
import io
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "DotGraph",
    "GradcheckTable",
    "LiveCurves",
    "figure",
    "in_notebook",
    "report_html",
]

PASS_STYLE = "color:#1a7f37;font-weight:bold"  # green
FAIL_STYLE = "color:#cf222e;font-weight:bold"  # red


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where rich output and live curves can be shown)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


# ----------------------------------------------------------------------------- graphs


class DotGraph(str):
    """Graphviz DOT text that draws itself: SVG in Jupyter when ``dot`` is installed.

    It *is* the text (a ``str``: print it, write it, compare it); ``.svg()`` runs
    ``dot -Tsvg`` on it. Without Graphviz a notebook shows the DOT text as it is.
    """

    __slots__ = ()

    def svg(self, dot: str | None = None, timeout: float = 60) -> str:
        """The SVG that Graphviz draws from this text (RuntimeError when ``dot`` is missing)."""
        exe = dot or shutil.which("dot")
        if exe is None:
            raise RuntimeError(
                "the Graphviz program 'dot' was not found; install graphviz to draw the graph"
            )
        proc = subprocess.run(
            [exe, "-Tsvg"], input=self.encode(), capture_output=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"dot -Tsvg failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode()

    def _repr_svg_(self) -> str | None:
        if shutil.which("dot") is None:
            return None
        try:
            return self.svg()
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            return None  # a broken Graphviz install: the notebook shows the text instead

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {"text/plain": str(self)}
        svg = self._repr_svg_()
        if svg is not None:
            bundle["image/svg+xml"] = svg
        return bundle

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))  # the DOT text as it reads, not a quoted string full of \n


# ----------------------------------------------------------------------------- gradient checks


def _verdict(ok: bool) -> str:
    return f'<td style="{PASS_STYLE if ok else FAIL_STYLE}">{"PASS" if ok else "FAIL"}</td>'


def report_html(report: Any) -> str:
    """A :class:`chainrule.GradCheckReport` as an HTML table: one row per checked input."""
    head = (
        f'<p><span style="{PASS_STYLE if report.ok else FAIL_STYLE}">'
        f"{'PASS' if report.ok else 'FAIL'}</span>: analytic gradient vs central differences "
        f"(eps = {report.eps:g}); passing when |analytic - numeric| &le; {report.atol:g} + "
        f"{report.rtol:g} |numeric|</p>"
    )
    rows = [
        "<tr><th>input</th><th>shape</th><th>max abs error</th><th>max rel error</th>"
        "<th>worst at</th><th>analytic</th><th>numeric</th><th>result</th></tr>"
    ]
    for r in report.inputs:
        rows.append(
            f"<tr><td>{r.index}</td><td>{html.escape(str(r.shape))}</td>"
            f"<td>{r.max_abs_error:.3g}</td><td>{r.max_rel_error:.3g}</td>"
            f"<td>{html.escape(str(r.worst))}</td><td>{r.analytic:.10g}</td>"
            f"<td>{r.numeric:.10g}</td>{_verdict(r.ok)}</tr>"
        )
    if not report.inputs:
        rows.append('<tr><td colspan="8">no floating-point input to check</td></tr>')
    return head + "<table>" + "".join(rows) + "</table>"


class GradcheckTable(list):
    """The derivative table, checked: a list of rows ``(name, formula, {order: TableRow})``.

    ``str()`` is the text of ``chainrule gradcheck``; a notebook shows an HTML table with
    PASS/FAIL coloured. ``.ok`` is True when every rule passes at every order.
    """

    def __init__(self, rows: Iterable[tuple[str, str, dict[int, Any]]], orders: Sequence[int]):
        super().__init__(rows)
        self.orders = tuple(orders)

    @property
    def ok(self) -> bool:
        return all(r.ok for _, _, checks in self for r in checks.values())

    @property
    def failed(self) -> list[str]:
        """Names of the rules that fail at some order."""
        return [name for name, _, checks in self if not all(r.ok for r in checks.values())]

    def _summary(self) -> str:
        n = len(self)
        orders = ", ".join(map(str, self.orders))
        return f"{n - len(self.failed)} of {n} rules pass" + (
            f" (orders {orders})" if len(self.orders) > 1 else ""
        )

    def __str__(self) -> str:
        width = max([len("rule"), *(len(name) for name, _, _ in self)])
        header = (
            f"{'rule':<{width}}  "
            + "  ".join(f"{'order ' + str(o):>9}" for o in self.orders)
            + "  result  formula"
        )
        lines = [header, "-" * len(header)]
        for name, formula, checks in self:
            ok = all(r.ok for r in checks.values())
            errs = "  ".join(f"{checks[o].max_abs_error:9.1e}" for o in self.orders)
            lines.append(f"{name:<{width}}  {errs}  {'PASS' if ok else 'FAIL':<6}  {formula}")
        return "\n".join(lines + ["", self._summary()])

    def __repr__(self) -> str:
        return f"<GradcheckTable: {self._summary()}>"

    def _repr_html_(self) -> str:
        cols = "".join(f"<th>order {o}: max abs error</th>" for o in self.orders)
        rows = [f"<tr><th>rule</th>{cols}<th>result</th><th>formula</th></tr>"]
        for name, formula, checks in self:
            ok = all(r.ok for r in checks.values())
            errs = "".join(
                (f'<td style="{FAIL_STYLE}">' if not checks[o].ok else "<td>")
                + f"{checks[o].max_abs_error:.1e}</td>"
                for o in self.orders
            )
            rows.append(
                f"<tr><td><code>{html.escape(name)}</code></td>{errs}{_verdict(ok)}"
                f'<td style="text-align:left">{html.escape(formula)}</td></tr>'
            )
        style = PASS_STYLE if self.ok else FAIL_STYLE
        return (
            "<table>"
            + "".join(rows)
            + f'</table><p style="{style}">{html.escape(self._summary())}</p>'
        )


# ----------------------------------------------------------------------------- figures


@functools.cache
def _figure_class() -> type:
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        """A matplotlib Figure that a notebook shows as PNG, with or without pyplot."""

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png")
            return buf.getvalue()

    NotebookFigure.__module__ = __name__
    NotebookFigure.__qualname__ = "NotebookFigure"
    return NotebookFigure


def figure(**kwargs: Any) -> Any:
    """A new matplotlib ``Figure(**kwargs)`` (no pyplot, no window) that displays inline."""
    try:
        cls = _figure_class()
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'chainrule[plot]'") from None
    return cls(**kwargs)


# ----------------------------------------------------------------------------- live curves


class LiveCurves:
    """Training curves redrawn in one notebook output after each epoch.

    ``update(history)`` draws the surrogate error (cross-entropy) and the accuracy per epoch,
    train and test, at most every ``every`` seconds (and always for the last epoch, via
    ``close()``). ``show`` receives the PNG bytes; by default they go to an IPython display
    that is replaced in place.
    """

    def __init__(self, every: float = 1.0, show: Callable[[bytes], None] | None = None) -> None:
        self.every = float(every)
        self._show = show
        self._handle: Any = None
        self._last = -float("inf")
        self._pending: list[dict[str, Any]] | None = None
        self.frames = 0

    def update(self, history: Sequence[dict[str, Any]]) -> None:
        """Redraw the curves for ``history`` (the per-epoch entries so far)."""
        self._pending = list(history)
        if time.perf_counter() - self._last >= self.every:
            self._draw()

    def close(self) -> None:
        """Draw the last state if it was not drawn yet."""
        if self._pending is not None:
            self._draw()

    def _draw(self) -> None:
        history, self._pending = self._pending, None
        if not history:
            return
        png = curves_png(history)
        if self._show is not None:
            self._show(png)
        else:
            from IPython.display import Image, display

            if self._handle is None:
                self._handle = display(Image(data=png), display_id=True)
            else:
                self._handle.update(Image(data=png))
        self.frames += 1
        self._last = time.perf_counter()


def curves_png(history: Sequence[dict[str, Any]]) -> bytes:
    """PNG of the cross-entropy and the accuracy per epoch (train and, when known, test)."""
    fig = figure(figsize=(9, 3.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
        if all(h.get(f"{split}_loss") is not None for h in history):
            ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], ".-", color=colour)
            ax_acc.plot(
                epochs,
                [100 * h[f"{split}_accuracy"] for h in history],
                ".-",
                color=colour,
                label=split,
            )
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="surrogate error", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy = 1 - actual error")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
