"""Checking derivatives against their definition.

The derivative is the limit of a difference quotient; the central difference

    d e / d x_i  ~  (e(x + eps e_i) - e(x - eps e_i)) / (2 eps)

has error O(eps^2), so in float64 with eps ~ 1e-6 it agrees with an exact gradient to about
1e-9. A function with a non-scalar output y is checked through e = <r, y> for a fixed random
r, which tests the whole vector-Jacobian product at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy  # the definition of the derivative is checked in float64 NumPy

from . import rules as _rules  # noqa: F401  (the table: it fills RULES and COMPOSITES)
from .engine import COMPOSITES, RULES, Tensor, autograd_grad

xp = numpy

if TYPE_CHECKING:
    from .display import GradcheckTable

__all__ = ["check_grad", "GradCheckReport", "InputReport", "gradcheck"]


@dataclass
class InputReport:
    """How one input's analytic gradient compares with central differences."""

    index: int
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    worst: tuple[int, ...]
    analytic: float
    numeric: float
    ok: bool


@dataclass
class GradCheckReport:
    """Result of :func:`check_grad`: ``.ok`` and the errors of every differentiable input."""

    ok: bool
    inputs: list[InputReport] = field(default_factory=list)
    eps: float = 0.0
    rtol: float = 0.0
    atol: float = 0.0

    @property
    def max_abs_error(self) -> float:
        return max((r.max_abs_error for r in self.inputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.inputs), default=0.0)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = "PASS" if self.ok else "FAIL"
        lines = [
            f"{head}: analytic gradient vs central differences (eps={self.eps:g}), "
            f"passing when |analytic - numeric| <= {self.atol:g} + {self.rtol:g} |numeric|"
        ]
        for r in self.inputs:
            lines.append(
                f"  input {r.index} {r.shape}: max abs error {r.max_abs_error:.3g}, "
                f"max rel error {r.max_rel_error:.3g}; worst at {r.worst}: "
                f"analytic {r.analytic:.10g} vs numeric {r.numeric:.10g}"
                + ("" if r.ok else "  <-- mismatch")
            )
        if not self.inputs:
            lines.append("  (no floating-point input to check)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .display import report_html

        return report_html(self)


def _is_diff(a: Any) -> bool:
    arr = a.data if isinstance(a, Tensor) else a
    return isinstance(arr, (xp.ndarray, float)) and xp.issubdtype(
        xp.asarray(arr).dtype, xp.floating
    )


def check_grad(
    f: Callable,
    *inputs: Any,
    eps: float | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
) -> GradCheckReport:
    """Compare the analytic gradient of f with central differences at ``inputs`` (float64).

    Every floating-point input is checked; integer inputs (class labels) are passed through.
    Returns a :class:`GradCheckReport`; ``print(report)`` says where the worst error is.
    """
    if eps is None:
        eps = 1e-6
    if eps <= 0:
        raise ValueError(f"check_grad: eps must be > 0, got {eps}")
    args: list[Any] = []
    diff: list[int] = []
    for i, a in enumerate(inputs):
        if _is_diff(a):
            arr = xp.array(a.data if isinstance(a, Tensor) else a, dtype=xp.float64)
            if not xp.all(xp.isfinite(arr)):
                bad = tuple(int(j) for j in xp.argwhere(~xp.isfinite(arr))[0]) if arr.ndim else ()
                raise ValueError(
                    f"check_grad: input {i} has a non-finite value (first at index {bad})"
                )
            args.append(arr)
            diff.append(i)
        else:
            args.append(a.data if isinstance(a, Tensor) else a)

    def evaluate(values: list[Any]) -> tuple[Tensor, list[Any]]:
        ts = [Tensor(v, requires_grad=True) if i in diff else v for i, v in enumerate(values)]
        out = f(*ts)
        if not isinstance(out, Tensor):
            raise TypeError(f"check_grad: f must return a Tensor, got {type(out).__name__}")
        return out, ts

    out, ts = evaluate(args)
    if not xp.all(xp.isfinite(out.data)):
        raise ValueError("check_grad: f returned a non-finite value at these inputs")
    rng = xp.random.default_rng(seed)
    r = rng.standard_normal(out.shape) if out.ndim else xp.array(1.0)
    analytic = {i: xp.zeros_like(args[i]) for i in diff}
    if out.requires_grad and diff:
        grads = autograd_grad(out, [ts[i] for i in diff], grad_outputs=r.astype(out.dtype))
        for i, g in zip(diff, grads, strict=True):
            analytic[i] = xp.asarray(g, dtype=xp.float64)

    def e(values: list[Any]) -> float:
        # inputs are Tensors that require grad, as for the analytic side: f may differentiate
        # internally (a second-order check), which needs them traced
        return float(xp.sum(evaluate(values)[0].data * r))

    reports = []
    for i in diff:
        x = args[i]
        numeric = xp.zeros_like(x)
        flat = x.reshape(-1)
        nflat = numeric.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            up = e(args)
            flat[j] = old - eps
            down = e(args)
            flat[j] = old
            nflat[j] = (up - down) / (2 * eps)
        a = analytic[i]
        if a.shape != x.shape:
            raise ValueError(
                f"check_grad: gradient of input {i} has shape {a.shape}, input has {x.shape}"
            )
        err = xp.abs(a - numeric)
        rel = err / xp.maximum(xp.abs(numeric), 1e-12)
        ok = bool(xp.all(err <= atol + rtol * xp.abs(numeric)))
        if x.size:
            w = int(xp.argmax(err - (atol + rtol * xp.abs(numeric))))
            worst = tuple(int(k) for k in xp.unravel_index(w, x.shape))
            rep = InputReport(
                i,
                x.shape,
                float(err.max()),
                float(rel.max()),
                worst,
                float(a.reshape(-1)[w]),
                float(nflat[w]),
                ok,
            )
        else:
            rep = InputReport(i, x.shape, 0.0, 0.0, (), 0.0, 0.0, True)
        reports.append(rep)
    return GradCheckReport(all(rp.ok for rp in reports), reports, eps, rtol, atol)


# ----------------------------------------------------------------------------- the whole table


@dataclass
class TableRow:
    """One line of the derivative table: a rule, its formula and how its checks went."""

    name: str
    formula: str
    max_abs_error: float
    ok: bool
    order: int
    report: GradCheckReport | None = None


def table() -> dict[str, Any]:
    """Every entry of the derivative table: the primitives, then the composites."""
    return {**RULES, **COMPOSITES}


def _as_single_output(fn: Callable, params: dict[str, Any]) -> Callable:
    def f(*args: Any) -> Tensor:
        out = fn(*args, **params)
        if isinstance(out, list):  # split: check all pieces at once
            out = RULES["concat"](*[RULES["reshape"](o, shape=(-1,)) for o in out])
        return out

    return f


def _second_order(f: Callable, n_args: int, diff: list[int], seed: int) -> Callable:
    """x -> sum_i <d<r, f(x)>/dx_i, s_i>: its gradient exercises the vjps' own derivatives."""
    def h(*args: Any) -> Tensor:
        out = f(*args)
        rng = xp.random.default_rng(seed)
        r = rng.standard_normal(out.shape)
        ins = [args[i] for i in diff if isinstance(args[i], Tensor) and args[i].requires_grad]
        if not out.requires_grad or not ins:
            return Tensor(0.0)
        gs = autograd_grad(out, ins, grad_outputs=Tensor(r), create_graph=True)
        total: Any = Tensor(0.0)
        for g in gs:
            s = rng.standard_normal(g.shape)
            total = total + (g * s).sum()
        return total

    return h


def check_rule(name: str, order: int = 1, seed: int = 0) -> TableRow:
    """Check one table entry at its sample inputs (``order=2``: its vjps' derivatives too)."""
    fn = table()[name]
    if fn.samples is None:
        raise KeyError(f"rule {name!r} has no sample inputs: give it {name}.defsamples(...)")
    worst: GradCheckReport | None = None
    ok = True
    err = 0.0
    for args, params in fn.samples(xp.random.default_rng(seed)):
        f = _as_single_output(fn, params)
        if order == 2:
            diff = [i for i, a in enumerate(args) if _is_diff(a)]
            f = _second_order(f, len(args), diff, seed)
        rep = check_grad(
            f, *args, rtol=1e-5 if order == 1 else 1e-4, atol=1e-7 if order == 1 else 1e-6
        )
        ok = ok and rep.ok
        if worst is None or rep.max_abs_error > worst.max_abs_error or not rep.ok:
            worst = rep
        err = max(err, rep.max_abs_error)
    formula = getattr(fn, "formula", "")
    return TableRow(name, formula, err, ok, order, worst)


def check_table(order: int = 1, names: list[str] | None = None) -> list[TableRow]:
    """Check every entry of the derivative table against central differences."""
    return [check_rule(n, order) for n in (names or list(table()))]


def gradcheck(names: list[str] | None = None, orders: tuple[int, ...] = (1, 2)) -> GradcheckTable:
    """The table of rules checked at ``orders``, as ``chainrule gradcheck`` prints it.

    Returns a :class:`chainrule.display.GradcheckTable` (a list of ``(name, formula, {order:
    TableRow})``; ``.ok``, ``.failed``); a notebook shows it as an HTML table.
    """
    from .display import GradcheckTable

    known = table()
    names = list(known) if names is None else list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not orders or any(o not in (1, 2) for o in orders):
        raise ValueError(f"orders must be 1 and/or 2, got {orders}")
    rows = []
    for name in names:
        checks = {o: check_rule(name, o) for o in orders}
        rows.append((name, checks[orders[0]].formula, checks))
    return GradcheckTable(rows, orders)
