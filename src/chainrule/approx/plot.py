"""Pictures of the construction (matplotlib, imported only when a picture is drawn).

* ``plot_approximation``: K = 1 - f against the network; the scaled triangles
  (f(x_n) - f_min) tri_n that sum to it, with the lecture's "zooming in on one triangle";
  the error against its bound. K = 2 - heat maps of f, the network and the error.
* ``plot_methods``: K = 2 - f, the network and the error for the simplex and the pyramid
  method side by side (the pyramids leave holes at the cell centres).
* ``plot_convergence``: max error against d on log-log axes with the bound and slope 2.
* ``plot_depth``: the deep and the shallow network on x^2 (pieces and error).

Each returns the matplotlib Figure (a notebook shows it inline) and, given ``path``, also
writes the picture there atomically (a temporary file, then ``os.replace``); the format
follows the suffix (.png, .svg, .pdf, ...).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..nn import Linear, Module, Sequential
from .construct import construct
from .error import SweepResult, building_blocks, error_report
from .grid import parse_domain, sample
from .regions import evaluate

__all__ = [
    "plot_approximation",
    "plot_methods",
    "plot_convergence",
    "plot_depth",
]


def _figure(rows: int, cols: int, size: tuple[float, float]) -> Any:
    fig = _new_figure(size)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _new_figure(size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..display import figure

    fig = figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    """Write ``fig`` to ``path`` (when given) and return the figure."""
    if path is None:
        return fig
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        raise ValueError(
            f"cannot write a picture as {path.name!r}: use one of "
            + ", ".join("." + k for k in sorted(fig.canvas.get_supported_filetypes()))
        )
    if path.parent and not path.parent.exists():
        raise OSError(f"folder {str(path.parent)!r} does not exist")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120)
    atomic_write_bytes(path, buf.getvalue())
    return fig


def _title(net: Module, what: str) -> str:
    c = getattr(net, "construction", None)
    if c is None:
        return what
    return f"{what}  (method: {c.method}, d = {max(c.spacing):.3g})"


def plot_approximation(
    net: Module,
    f: Callable[[np.ndarray], Any],
    path: str | os.PathLike[str] | None = None,
    domain: Any = None,
    *,
    label: str = "f",
    output: int = 0,
) -> Any:
    """Draw f against the network (K = 1: with its triangles and error; K = 2: heat maps).

    Returns the Figure; ``path``: also write it there.
    """
    construction = getattr(net, "construction", None)
    if domain is None:
        if construction is None:
            raise ValueError(
                "plot_approximation needs the domain of a network that was not constructed"
            )
        domain = construction.domain
    box = parse_domain(domain)
    if len(box) == 1:
        return _plot_1d(net, f, box, path, label, output)
    if len(box) == 2:
        fig, axes = _figure(1, 3, (13, 4))
        _heat_row(axes[0], net, f, box, label, output)
        fig.suptitle(_title(net, f"{label} and the network"))
        return _save(fig, path)
    raise ValueError(f"pictures are drawn for K = 1 or 2 inputs, this domain has K = {len(box)}")


def _plot_1d(net: Module, f: Callable, box: Any, path: Any, label: str, output: int) -> Any:
    ((lo, hi),) = box
    x = np.linspace(lo, hi, 4001)[:, None]
    c = getattr(net, "construction", None)
    keep = np.ones(len(x), dtype=bool)
    for a, b in c.excluded if c is not None else ():  # f may be undefined at a jump
        keep &= ~((x[:, 0] > a) & (x[:, 0] < b))
    y = np.full(len(x), np.nan)  # nan: a gap in the curve
    y[keep] = sample(f, x[keep])[:, output]
    out = evaluate(net, x)[:, output]
    report = error_report(net, f, box)
    fig = _new_figure((11, 10.5))
    panels = fig.subplot_mosaic(
        [["top", "top"], ["middle", "zoom"], ["bottom", "bottom"]], width_ratios=[3, 1]
    )
    top, middle, zoom, bottom = (panels[k] for k in ("top", "middle", "zoom", "bottom"))

    top.plot(x[:, 0], y, color="black", lw=2.5, alpha=0.35, label=label)
    top.plot(x[:, 0], out, color="C0", lw=1.2, label="network")
    if c is not None:
        top.plot(c.nodes[0], c.values[:, output], "o", color="C0", ms=3, label="nodes (exact)")
    top.set_title(
        _title(
            net,
            f"{label} and the network: {report.depth} layers, "
            f"widths {' -> '.join(map(str, report.widths))}",
        )
    )
    top.legend(loc="best", fontsize=9)

    # the lecture's picture: layer 3 scales each triangle by f(x_n) - f_min and sums them
    last = net.layers[-1] if isinstance(net, Sequential) else None
    if isinstance(last, Linear) and isinstance(net, Sequential):
        blocks = building_blocks(net, x)
        scaled = blocks * last.weight.data[output]
        bias = float(last.bias.data[output]) if last.bias is not None else 0.0
        step = max(1, scaled.shape[1] // 150)  # draw at most ~150 triangles
        for j in range(0, scaled.shape[1], step):
            middle.plot(x[:, 0], scaled[:, j], lw=0.8, color=f"C{1 + j % 8}", alpha=0.7)
        middle.plot(x[:, 0], scaled.sum(axis=1), color="C0", lw=1.2, label="sum of triangles")
        middle.axhline(0, color="grey", lw=0.5)
        shown = "" if step == 1 else f", every {step}th drawn"
        middle.set_title(
            f"layer 3: sum of (f(x_n) - f_min) tri_n, then + f_min = {bias:.3g}{shown}", fontsize=10
        )
        middle.legend(loc="upper right", fontsize=9)
        if c is not None and len(c.nodes[0]) >= 5:
            _zoom(middle, zoom, x[:, 0], scaled, c.nodes[0], y - bias)
        else:
            zoom.set_visible(False)
    else:
        middle.set_visible(False)
        zoom.set_visible(False)

    err = np.abs(out - y)
    bottom.plot(x[:, 0], err, color="C3", lw=1, label="|network - f|")
    if report.bound is not None:
        bottom.axhline(
            report.bound,
            color="black",
            ls="--",
            lw=1,
            label=f"bound ({report.bound_kind}) {report.bound:.2e}",
        )
    if c is not None:
        for a, b in c.excluded:
            bottom.axvspan(a, b, color="grey", alpha=0.3, label="bridged jump (excluded)")
    bottom.set_title(f"error: max {report.max_error:.2e}, rms {report.rms_error:.2e}")
    bottom.set_xlabel("x")
    bottom.set_ylim(0, 1.4 * max(report.bound or 0.0, float(err.max()), 1e-300))
    bottom.legend(loc="upper center", fontsize=9, ncols=3)
    return _save(fig, path)


def _zoom(
    ax: Any, inset: Any, x: np.ndarray, scaled: np.ndarray, nodes: np.ndarray, shifted: np.ndarray
) -> None:
    """The lecture's zoom on one triangle in the middle: its neighbours, their sum, f - f_min."""
    m = len(nodes) // 2
    a, b = nodes[m - 2], nodes[m + 2]
    inside = (x >= a) & (x <= b)
    for j in range(m - 2, m + 3):
        inset.plot(
            x[inside], scaled[inside, j], lw=2 if j == m else 0.8, color="C3" if j == m else "grey"
        )
    inset.plot(x[inside], scaled[inside].sum(axis=1), color="C0", lw=1.2, label="sum")
    inset.plot(x[inside], shifted[inside], color="black", lw=2.5, alpha=0.3, label="f - f_min")
    inset.set_title(f"zoom: the triangle at x = {nodes[m]:.3g}", fontsize=10)
    inset.legend(fontsize=8, loc="best")
    ax.indicate_inset_zoom(inset, edgecolor="grey")


def _grid2(box: Any, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (a, b), (c, d) = box
    g1, g2 = np.meshgrid(np.linspace(a, b, m), np.linspace(c, d, m), indexing="ij")
    return g1, g2, np.stack([g1.ravel(), g2.ravel()], axis=1)


def _heat_row(
    row: Sequence[Any], net: Module, f: Callable, box: Any, label: str, output: int
) -> None:
    c = getattr(net, "construction", None)
    cells = max(len(g) - 1 for g in c.nodes) if c is not None else 40
    g1, g2, x = _grid2(box, cells * max(2, 240 // cells) + 1)  # whole cells: no moire
    y = sample(f, x)[:, output].reshape(g1.shape)
    out = evaluate(net, x)[:, output].reshape(g1.shape)
    extent = (box[0][0], box[0][1], box[1][0], box[1][1])
    lo, hi = float(min(y.min(), out.min())), float(max(y.max(), out.max()))
    method = getattr(getattr(net, "construction", None), "method", "network")
    for ax, data, name, cmap in (
        (row[0], y, label, "viridis"),
        (row[1], out, f"network ({method})", "viridis"),
        (row[2], np.abs(out - y), f"|error| ({method}), max {np.abs(out - y).max():.2e}", "magma"),
    ):
        limits = {"vmin": lo, "vmax": hi} if cmap == "viridis" else {}
        image = ax.imshow(data.T, origin="lower", extent=extent, aspect="auto", cmap=cmap, **limits)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.figure.colorbar(image, ax=ax, shrink=0.85)


def plot_methods(
    f: Callable[[np.ndarray], Any],
    domain: Any,
    d: float,
    path: str | os.PathLike[str] | None = None,
    *,
    label: str = "f",
) -> Any:
    """K = 2: heat maps of f, the network and the error, simplex (top) and pyramid (bottom).

    Returns the Figure; ``path``: also write it there.
    """
    box = parse_domain(domain)
    if len(box) != 2:
        raise ValueError(f"plot_methods draws K = 2 inputs, this domain has K = {len(box)}")
    fig, axes = _figure(2, 3, (13, 8))
    for row, method in zip(axes, ("simplex", "pyramid"), strict=True):
        _heat_row(row, construct(f, box, d, method=method), f, box, label, 0)
    fig.suptitle(
        f"{label} on a grid with d = {d:g}: simplex hats (top) against the lecture's "
        "pyramids (bottom)"
    )
    return _save(fig, path)


def plot_convergence(
    result: SweepResult, path: str | os.PathLike[str] | None = None, *, label: str = "f"
) -> Any:
    """Max and RMS error against d (log-log) with the bound and a slope-2 reference.

    Returns the Figure; ``path``: also write it there.
    """
    fig, axes = _figure(1, 1, (7, 5))
    ax = axes[0, 0]
    ds = np.array(result.ds)
    ax.loglog(ds, [r.max_error for r in result.reports], "o-", label="max error")
    ax.loglog(ds, [r.rms_error for r in result.reports], "s-", label="rms error", alpha=0.7)
    bounds = [r.bound for r in result.reports]
    if all(b is not None for b in bounds):
        ax.loglog(ds, bounds, "k--", label="bound")
    first = result.reports[0].max_error
    ax.loglog(ds, first / 2 * (ds / ds[0]) ** 2, ":", color="grey", label="slope 2 (shifted)")
    order = result.order
    said = "exact" if np.isnan(order) else f"{order:.2f}"
    ax.set_title(
        f"{label}: error against d (method {result.reports[0].method}), observed order {said}"
    )
    ax.set_xlabel("d")
    ax.set_ylabel("error")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_depth(depths: Sequence[int], path: str | os.PathLike[str] | None = None) -> Any:
    """The deep (Yarotsky) and shallow networks on x^2: the functions and error vs neurons.

    Returns the Figure; ``path``: also write it there.
    """
    from .depth import deep_square, depth_demo, shallow

    rows = depth_demo(depths)
    fig, axes = _figure(1, 2, (12, 4.5))
    left, right = axes[0]
    x = np.linspace(0, 1, 2001)[:, None]
    m = rows[min(2, len(rows) - 1)].depth
    left.plot(x[:, 0], x[:, 0] ** 2, color="black", lw=2, alpha=0.3, label="x^2")
    left.plot(x[:, 0], evaluate(deep_square(m), x)[:, 0], label=f"deep: {m} layers x 3")
    left.plot(
        x[:, 0],
        evaluate(shallow(lambda t: t[:, 0] ** 2, (0, 1), 3 * m), x)[:, 0],
        label=f"shallow: 1 layer x {3 * m}",
    )
    left.set_title("same neurons, deep vs shallow")
    left.legend()
    neurons = [r.neurons for r in rows]
    right.semilogy(neurons, [r.deep_error for r in rows], "o-", label="deep (pieces 2^L)")
    right.semilogy(
        neurons, [r.shallow_error for r in rows], "s-", label="shallow (pieces <= n + 1)"
    )
    right.set_xlabel("hidden neurons")
    right.set_ylabel("max error on x^2")
    right.set_title("error against neurons")
    right.legend()
    right.grid(True, which="both", alpha=0.3)
    return _save(fig, path)
