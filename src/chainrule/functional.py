"""The lecture's "Derivatives" section as functions of functions.

Layout: for f: R^K -> R^M the Jacobian in *denominator layout* is the K x M matrix
J[k, m] = d f_m / d x_k (for tensors: ``x.shape + y.shape``). The gradient of a scalar
function is the K-vector J (shape of x). The numerator layout (what PyTorch and JAX return)
is the transpose, ``y.shape + x.shape``.

    directional derivative   D_u f(x) = grad f(x)^T u
    linear approximation     f(x) ~ f(a) + J(a)^T (x - a)
    Hessian                  H[i, j] = d^2 f / dx_i dx_j           (x.shape + x.shape)
    jvp(f, x, v)             J^T v   (how f moves when x moves along v; shape of y)
    vjp(f, x)(u)             J u     (back propagation of u = de/dy; shape of x)

All functions accept NumPy arrays, Python numbers and Tensors. Called from the outside they
return NumPy arrays; called on Tensors that are being differentiated (a function inside
``grad``, ``hessian``, ...) they return Tensors that stay in the graph, so the functions
compose: ``grad(grad(f))``, ``jacobian(grad(f))``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

from . import backend as B
from . import rules as _rules  # noqa: F401  (the table: Tensor's operators, RULES)
from .engine import GraphError, Tensor, autograd_grad

__all__ = [
    "derivative",
    "grad",
    "value_and_grad",
    "jacobian",
    "hessian",
    "directional_derivative",
    "linearize",
    "jvp",
    "vjp",
]


def _traced(x: Any) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


class _Inside:
    """Counts the functions being differentiated that are running right now.

    A derivative taken inside such a function (``grad(lambda y: grad(f)(2.0, y))``) may
    depend on the outer variable through a closure or an argument it does not differentiate,
    so it is built as a differentiable graph (create_graph) and returned as a Tensor.
    """

    depth = 0

    def __enter__(self) -> None:
        _Inside.depth += 1

    def __exit__(self, *exc: object) -> None:
        _Inside.depth -= 1


def _nested(*xs: Any) -> bool:
    return _Inside.depth > 0 or any(_traced(x) for x in xs)


def _enter(x: Any) -> Tensor:
    """A fresh variable to differentiate with respect to, still connected to an outer graph."""
    if _traced(x):
        return x * 1.0  # a new node: inner derivatives stop here, outer ones flow through it
    if isinstance(x, Tensor):
        data = x.data
    else:
        data = B.xp.asarray(x)
    if not B.xp.isdtype(data.dtype, ("real floating", "integral", "bool")):
        raise TypeError(
            f"can only differentiate with respect to real numbers (a number, an array or a "
            f"Tensor), got an input of dtype {data.dtype}"
        )
    if not B.xp.isdtype(data.dtype, "real floating"):
        data = B.xp.astype(data, B.xp.float64)
    return Tensor(data, requires_grad=True)


def _call(f: Callable, args: Sequence[Any], name: str) -> Tensor:
    with _Inside():
        out = f(*args)
    if not isinstance(out, Tensor):
        if isinstance(out, numbers.Number) or B.is_array(out):
            out = Tensor(out)  # a constant function: its derivative is 0
        else:
            raise TypeError(f"{name}: the function must return a Tensor, got {type(out).__name__}")
    return out


def _finish(g: Any, nested: bool, like: Any) -> Any:
    if nested:
        return g
    g = g.data if isinstance(g, Tensor) else g
    if isinstance(like, numbers.Number) and not isinstance(like, bool):
        return float(g) if g.ndim == 0 else g
    return g


def _grads(out: Tensor, xs: Sequence[Tensor], nested: bool, seed: Any = None, retain: bool = False):
    if not out.requires_grad:  # f does not depend on its inputs
        zeros = [B.xp.zeros_like(x.data) for x in xs]
        return tuple(Tensor(z) for z in zeros) if nested else tuple(zeros)
    return autograd_grad(
        out, list(xs), grad_outputs=seed, create_graph=nested, retain_graph=retain or nested
    )


def _argnums(argnums: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"{name}: argnums {argnums!r} out of range for {n} argument(s)")
    return tuple(i % n for i in nums)


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """(f(*args), grad f(*args)) for a scalar-valued f; the gradient has the shape of the input."""

    def run(*args: Any) -> tuple[Any, Any]:
        if not args:
            raise TypeError("grad: the function needs at least one argument to differentiate")
        nums = _argnums(argnums, len(args), "grad")
        nested = _nested(*args)
        inner = list(args)
        for i in nums:
            inner[i] = _enter(args[i])
        out = _call(f, inner, "grad")
        if out.size != 1:
            raise GraphError(
                f"grad needs a scalar-valued function, but f returned shape {out.shape}; "
                "use jacobian() for vector-valued functions"
            )
        gs = _grads(out, [inner[i] for i in nums], nested)
        gs = tuple(_finish(g, nested, args[i]) for g, i in zip(gs, nums, strict=True))
        value = out if nested else (out.item() if out.data.ndim == 0 else out.data)
        return value, (gs[0] if isinstance(argnums, int) else gs)

    return run


def grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """grad f: the function returning de/dx (shape of x) for a scalar-valued f(x, ...).

    ``argnums`` picks the argument(s) to differentiate; a tuple gives a tuple of gradients.
    """
    vg = value_and_grad(f, argnums)

    def run(*args: Any) -> Any:
        return vg(*args)[1]

    run.__name__ = f"grad_{getattr(f, '__name__', 'f')}"
    return run


def derivative(f: Callable) -> Callable:
    """f' for a scalar function of one scalar variable: derivative(f)(x) -> float."""
    g = grad(f)

    def run(x: Any) -> Any:
        shape = tuple(getattr(_data(x), "shape", ()))
        if not _traced(x) and shape != ():
            raise ValueError(
                f"derivative() is for f: R -> R; got an input of shape {shape}, use grad()"
            )
        return g(x)

    return run


def _stack_last(cols: list[Tensor]) -> Tensor:
    from .engine import RULES  # the table's stack (loaded with this module)

    return RULES["stack"](cols, axis=-1)


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def jacobian(f: Callable, layout: str = "denominator") -> Callable:
    """The Jacobian of f at x: ``x.shape + y.shape`` (denominator) or ``y.shape + x.shape``.

    For f: R^K -> R^M the denominator layout gives K x M: column m is grad f_m(x).
    """
    if layout not in ("denominator", "numerator"):
        raise ValueError(f"jacobian: layout must be 'denominator' or 'numerator', got {layout!r}")

    def run(x: Any) -> Any:
        nested = _nested(x)
        xin = _enter(x)
        y = _call(f, [xin], "jacobian")
        ysize = y.size
        if not y.requires_grad:
            zero = B.xp.zeros(xin.shape + y.shape, dtype=xin.dtype)
            jac: Any = Tensor(zero) if nested else zero
        else:
            flat = B.xp.eye(ysize, dtype=y.dtype)
            cols = []
            for m in range(ysize):
                (gx,) = autograd_grad(
                    y,
                    [xin],
                    grad_outputs=B.xp.reshape(flat[m, ...], y.shape),
                    create_graph=nested,
                    retain_graph=True,
                )
                cols.append(gx)
            if nested:
                jac = _stack_last(cols).reshape(xin.shape + y.shape)
            else:
                jac = B.xp.reshape(B.xp.stack(cols, axis=-1), xin.shape + y.shape)
        if layout == "numerator":
            k = xin.ndim
            axes = tuple(range(k, k + y.ndim)) + tuple(range(k))
            jac = B.xp.permute_dims(jac, axes) if not nested else jac.transpose(*axes)
        return jac

    return run


def hessian(f: Callable) -> Callable:
    """The Hessian of a scalar-valued f at x: d^2 f / dx_i dx_j, shape ``x.shape + x.shape``."""
    jg = jacobian(grad(f))

    def run(x: Any) -> Any:
        return jg(x)

    return run


def directional_derivative(f: Callable, x: Any, u: Any, normalize: bool = False) -> Any:
    """D_u f(x) = grad f(x)^T u for scalar f (``normalize=True`` uses u / |u|)."""
    g = grad(f)(x)
    g = B.xp.asarray(g)
    u = B.xp.asarray(_data(u), dtype=B.xp.float64)
    if tuple(u.shape) != tuple(g.shape):
        raise ValueError(
            f"directional_derivative: direction has shape {tuple(u.shape)}, x has "
            f"{tuple(g.shape)}"
        )
    if normalize:
        n = float(B.xp.sqrt(B.xp.sum(u * u)))
        if n == 0:
            raise ValueError("directional_derivative: cannot normalize the zero direction")
        u = u / n
    return float(B.xp.sum(g * u))


class Linearization:
    """x -> f(a) + J(a)^T (x - a): the first-order Taylor approximation of f around a."""

    def __init__(self, f: Callable, a: Any) -> None:
        self.a = B.xp.asarray(_data(a), dtype=B.xp.float64)
        self.value = _values(f, self.a)
        self.jacobian = jacobian(f)(self.a)  # a.shape + y.shape (denominator layout)

    def __call__(self, x: Any) -> Any:
        dx = B.xp.asarray(_data(x), dtype=B.xp.float64) - self.a
        k = self.a.ndim
        axes = (tuple(range(k)), tuple(range(k)))
        return self.value + B.xp.tensordot(dx, self.jacobian, axes=axes)

    def __repr__(self) -> str:
        return f"Linearization(a={self.a!r}, f(a)={self.value!r})"


def _values(f: Callable, x: Any) -> Any:
    out = f(Tensor(x))
    return out.data if isinstance(out, Tensor) else B.xp.asarray(out)


def linearize(f: Callable, a: Any) -> Linearization:
    """The linear approximation of f around a: a callable x -> f(a) + J(a)^T (x - a)."""
    return Linearization(f, a)


def vjp(f: Callable, x: Any) -> tuple[Any, Callable]:
    """(f(x), u -> J u): back propagation of u = de/dy (shape of y) to de/dx (shape of x)."""
    nested = _nested(x)
    xin = _enter(x)
    y = _call(f, [xin], "vjp")

    def pullback(u: Any) -> Any:
        u_arr = u if (nested and isinstance(u, Tensor)) else B.xp.asarray(_data(u), dtype=y.dtype)
        if tuple(u_arr.shape) != y.shape:
            raise ValueError(
                f"vjp: cotangent has shape {tuple(u_arr.shape)}, the output has {y.shape}"
            )
        (g,) = _grads(y, [xin], nested, seed=u_arr, retain=True)
        return _finish(g, nested, x)

    return (y if nested else y.data), pullback


def jvp(f: Callable, x: Any, v: Any) -> tuple[Any, Any]:
    """(f(x), J^T v): the change of f(x) along the direction v (shape of y).

    Computed as the transpose of the vjp (a vjp of a vjp), so no forward mode is needed.
    """
    nested = _nested(x, v)
    xin = _enter(x)
    y = _call(f, [xin], "jvp")
    v = v if (nested and isinstance(v, Tensor)) else B.xp.asarray(_data(v), dtype=xin.dtype)
    if tuple(v.shape) != xin.shape:
        raise ValueError(f"jvp: tangent has shape {tuple(v.shape)}, x has {xin.shape}")
    zero = B.xp.zeros(y.shape, dtype=y.dtype)
    if y.requires_grad:
        u = Tensor(zero, requires_grad=True)
        (ju,) = autograd_grad(y, [xin], grad_outputs=u, create_graph=True)  # J u, linear in u
        if ju.requires_grad:
            (jtv,) = autograd_grad(ju, [u], grad_outputs=v, create_graph=nested)
            return (y, jtv) if nested else (y.data, jtv)
    return (y, Tensor(zero)) if nested else (y.data, zero)
