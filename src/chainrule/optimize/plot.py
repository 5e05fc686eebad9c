"""Pictures for f: R^2 -> R: contour lines, the descent path, the classified critical points.

The level sets {(x, y) : f(x, y) = c} are drawn for levels c at evenly spaced quantiles of f
over the picture, so that a function with a steep valley (Rosenbrock) shows as many contour
lines near its minimum as on its walls. Gradient descent crosses the contour lines at right
angles (grad f is normal to the level set). Constraint boundaries f_c(x) = b_c are dashed, and
the infeasible side is hatched.

matplotlib is an optional extra (``pip install chainrule[plot]``), imported only here; the
figure is a ``matplotlib.figure.Figure`` (no pyplot state) and a file is written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..engine import Tensor, no_grad
from .critical import CriticalPoint
from .objective import as_bounds
from .result import OptimizeResult

__all__ = ["contour_plot", "default_bounds", "save_png"]

MARKERS = {  # kind: (marker, colour)
    "minimum": ("o", "#2ca02c"),
    "maximum": ("^", "#d62728"),
    "saddle": ("X", "#ff7f0e"),
    "degenerate": ("s", "#7f7f7f"),
}


def _grid_values(f: Callable[[Any], Any], X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """f on the grid: all at once if f maps a (2, N) batch to N values, else point by point."""
    points = np.stack([X.ravel(), Y.ravel()])
    with no_grad(), np.errstate(all="ignore"):
        try:
            out = f(Tensor(points))
            batch = np.asarray(out.data if isinstance(out, Tensor) else out, dtype=float)
        except Exception:  # f does not take a batch (e.g. it checks the shape): point by point
            batch = None
        if batch is not None and batch.shape == (points.shape[1],):
            probe = np.linspace(0, points.shape[1] - 1, 5).astype(int)
            single = [_value(f, points[:, i]) for i in probe]
            if np.allclose(batch[probe], single, equal_nan=True):
                return batch.reshape(X.shape)
        return np.array([_value(f, p) for p in points.T]).reshape(X.shape)


def _value(f: Callable[[Any], Any], p: np.ndarray) -> float:
    out = f(Tensor(p))
    return float(np.asarray(out.data if isinstance(out, Tensor) else out).reshape(()))


def default_bounds(
    path: np.ndarray | None = None, points: Sequence[CriticalPoint] = ()
) -> np.ndarray:
    """The picture's box (2, 2): the path and the points, plus a margin ([-2, 2]^2 if none)."""
    xs = [p.x.reshape(-1) for p in points]
    if path is not None:
        xs.extend(path)
    if not xs:
        return np.array([[-2.0, 2.0], [-2.0, 2.0]])
    arr = np.array(xs)
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    margin = np.maximum(0.15 * (hi - lo), 0.5)
    return np.stack([lo - margin, hi + margin], axis=1)


def contour_plot(
    f: Callable[[Any], Any],
    bounds: Sequence[tuple[float, float]] | None = None,
    path: np.ndarray | OptimizeResult | None = None,
    points: Sequence[CriticalPoint] = (),
    constraints: Sequence[tuple[Callable[[Any], Any], float]] = (),
    file: str | os.PathLike[str] | None = None,
    title: str | None = None,
    names: Sequence[str] = ("x", "y"),
    resolution: int = 200,
    levels: int = 30,
) -> Any:
    """A contour plot of f on the box ``bounds`` ((lo, hi) for x and y); the matplotlib Figure.

    ``path``: the iterates (T, 2) or an OptimizeResult (its history). ``points``: classified
    critical points, marked by kind. ``constraints``: pairs (f_c, b_c) whose boundary is drawn.
    ``file``: write a PNG there (atomically). Default bounds: the path and points plus margin.
    """
    try:
        from matplotlib import rc_context
        from matplotlib.colors import BoundaryNorm
        from matplotlib.lines import Line2D
        from matplotlib.patheffects import withStroke
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'chainrule[plot]'") from None
    if isinstance(path, OptimizeResult):
        path = path.path
    if path is not None:
        path = np.asarray(path, dtype=float)
        if path.ndim != 2 or path.shape[1] != 2:
            raise ValueError(
                f"a contour plot needs a function of 2 variables; the path has shape {path.shape}"
            )
    for p in points:
        if p.x.size != 2:
            raise ValueError(
                f"a contour plot needs a function of 2 variables; a point has {p.x.size}"
            )
    if len(names) != 2:
        raise ValueError(f"a contour plot needs 2 variable names, got {list(names)}")
    box = default_bounds(path, points) if bounds is None else as_bounds(bounds, 2)
    if not isinstance(resolution, int) or resolution < 10:
        raise ValueError(f"resolution must be an integer >= 10, got {resolution!r}")

    gx = np.linspace(box[0, 0], box[0, 1], resolution)
    gy = np.linspace(box[1, 0], box[1, 1], resolution)
    X, Y = np.meshgrid(gx, gy)
    Z = _grid_values(f, X, Y)
    finite = Z[np.isfinite(Z)]

    from ..display import figure

    fig = figure(figsize=(7, 6), dpi=110, layout="constrained")  # shows inline in a notebook
    ax = fig.add_subplot()
    handles: list[Any] = []
    if finite.size and finite.max() > finite.min():
        lv = np.unique(np.quantile(finite, np.linspace(0, 1, levels)))
        Zm = np.ma.masked_invalid(Z)
        # one colour per band: quantile levels are dense where f is flat, so a linear colour
        # scale would paint most bands the same
        norm = BoundaryNorm(lv, ncolors=256)
        filled = ax.contourf(X, Y, Zm, levels=lv, cmap="viridis", norm=norm, alpha=0.9)
        ax.contour(X, Y, Zm, levels=lv, colors="k", linewidths=0.4, alpha=0.5)
        bar = fig.colorbar(filled, ax=ax, format="%.3g")
        bar.set_label(f"f({names[0]}, {names[1]})")
    for i, (fc, bc) in enumerate(constraints):
        C = _grid_values(fc, X, Y)
        if np.isfinite(C).any() and np.nanmin(C) < bc < np.nanmax(C):
            ax.contour(X, Y, C, levels=[bc], colors="crimson", linewidths=1.8, linestyles="--")
            with rc_context({"hatch.color": "#222222", "hatch.linewidth": 0.6}):
                ax.contourf(X, Y, C, levels=[bc, np.inf], colors="none", hatches=["//"])
            if i == 0:
                handles.append(
                    Line2D(
                        [],
                        [],
                        color="crimson",
                        ls="--",
                        label="constraint boundary (infeasible side hatched)",
                    )
                )
    if path is not None:
        (line,) = ax.plot(
            path[:, 0],
            path[:, 1],
            "-",
            color="white",
            lw=1.4,
            label=f"path ({len(path) - 1} steps)",
            path_effects=[withStroke(linewidth=2.8, foreground="k")],
        )
        ax.plot(path[:, 0], path[:, 1], ".", color="white", ms=2.5)
        start = ax.plot(*path[0], "o", color="white", mec="k", ms=8, label="start x0")[0]
        end = ax.plot(*path[-1], "*", color="gold", mec="k", ms=11, zorder=6, label="end")[0]
        handles.extend([line, start, end])
    for kind, (marker, colour) in MARKERS.items():
        xs = np.array([p.x.reshape(-1) for p in points if p.kind == kind])
        if len(xs):
            handles.append(
                ax.scatter(
                    xs[:, 0],
                    xs[:, 1],
                    marker=marker,
                    s=170,
                    c=colour,
                    edgecolors="k",
                    linewidths=1.0,
                    zorder=5,
                    label=f"{kind} ({len(xs)})",
                )
            )
    ax.set_xlim(box[0])
    ax.set_ylim(box[1])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        ax.set_title(title)
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 4),
            fontsize=8,
            frameon=False,
        )
    if file is not None:
        save_png(fig, file)
    return fig


def save_png(fig: Any, file: str | os.PathLike[str]) -> None:
    """Write the figure as PNG: to a temporary file beside ``file``, then os.replace."""
    target = os.fspath(file)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise OSError(f"cannot write {target!r}: the folder {folder!r} does not exist")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(target, buf.getvalue())
