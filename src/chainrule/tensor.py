"""Tensor and the backward walk: reverse-mode automatic differentiation.

Forward: each primitive of the rule table (:mod:`chainrule.rules`) applied to Tensors records
a node (rule, inputs, parameters) on its output, an arrow from each input to the output.

Backward: the backward graph is the forward graph with every arrow reversed. Walking it in
reverse topological order (an explicit stack, no recursion), each node receives de/d(out),
and its rule's vector-Jacobian products send de/d(input) = d(out)/d(input) de/d(out) to its
inputs (denominator layout). Two things happen here, once, for every rule:

* the split rule: a tensor that fans out to several consumers receives the sum of their
  gradients;
* un-broadcasting: a gradient that came back with a broadcast shape is summed down to the
  input's shape.

Gradients are NumPy arrays in the fast first-order path. With ``create_graph=True`` the
vector-Jacobian products are themselves run on Tensors, so the gradient is differentiable
again (gradients of gradients, exact Hessians).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from .backend import xp

__all__ = [
    "Tensor",
    "tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "Rule",
    "rule",
    "RULES",
    "autograd_grad",
    "ShapeError",
    "GraphError",
]


class ShapeError(ValueError):
    """An operation got operands whose shapes do not fit; the message names op and shapes."""


class GraphError(RuntimeError):
    """The graph cannot be differentiated as asked (freed graph, non-scalar output, ...)."""


# ----------------------------------------------------------------------------- grad mode


class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    """True when operations on Tensors that require grad are being recorded."""
    return _GradMode.enabled


class no_grad:
    """Context manager (and decorator) in which no graph is recorded: evaluation, updates."""

    _value = False

    def __enter__(self) -> None:
        self._prev = _GradMode.enabled
        _GradMode.enabled = self._value

    def __exit__(self, *exc: object) -> None:
        _GradMode.enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__():
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = fn.__doc__
        return wrapper


class enable_grad(no_grad):
    """Context manager that records the graph again inside a ``no_grad`` block."""

    _value = True


# ----------------------------------------------------------------------------- rules

RULES: dict[str, Rule] = {}


class Rule:
    """A primitive: its forward on arrays and one vector-Jacobian product per input.

    ``vjps[i](g, out, *inputs, **params)`` returns de/d(input_i) given g = de/d(out), in the
    shape of ``out`` or broadcast-compatible with input_i (the engine un-broadcasts).
    Called with at least one Tensor the rule returns a Tensor (recording a node when any
    input requires grad); called with arrays or numbers only it returns a plain array, which
    is how the same vector-Jacobian products serve both the fast path (arrays) and
    ``create_graph`` (Tensors).
    """

    def __init__(self, forward: Callable, saves: bool = False) -> None:
        self.name = forward.__name__
        self.forward = forward
        self.__wrapped__ = forward
        self.__doc__ = forward.__doc__
        self.formula = (forward.__doc__ or "").strip().splitlines()[0] if forward.__doc__ else ""
        self.vjps: tuple[Callable, ...] = ()
        self.vjp_all: Callable | None = None
        self.saves = saves
        self.prepare: Callable | None = None

    def defvjp(self, *vjps: Callable) -> Rule:
        """Set the vector-Jacobian products, one per differentiable input, in argument order."""
        self.vjps = vjps
        return self

    def defvjp_all(self, fn: Callable) -> Rule:
        """Set one function returning the tuple of all input gradients (variadic rules).

        A variadic rule takes its inputs as separate arguments or as one list or tuple
        (``concat([a, b], axis=1)``, NumPy's and PyTorch's way).
        """
        self.vjp_all = fn
        return self

    def defparams(self, fn: Callable) -> Rule:
        """Set ``fn(*inputs, **params) -> params``: checks and normalises the parameters once.

        It runs before the forward and its result is what the node records, so the forward
        and every vjp see the same canonical parameters (e.g. axes made non-negative).
        """
        self.prepare = fn
        return self

    def __repr__(self) -> str:
        return f"<rule {self.name}: {self.formula}>"

    def __call__(self, *args: Any, **params: Any) -> Any:
        if self.vjp_all is not None and args and isinstance(args[0], (list, tuple)):
            if len(args) > 1:
                raise TypeError(
                    f"{self.name}: give the inputs as one list ({self.name}([a, b], axis=...)) "
                    f"or as separate arguments, not both"
                )
            args = tuple(args[0])
        datas = []
        any_tensor = False
        traced = False
        for a in args:
            if isinstance(a, Tensor):
                any_tensor = True
                datas.append(a.data)
                if a.requires_grad:
                    traced = True
            else:
                datas.append(a)
        if not any_tensor and not all(type(d) is xp.ndarray for d in datas):
            datas = _numbers_as_arrays(datas)
        if self.prepare is not None:
            params = self.prepare(*datas, **params)
        if not any_tensor:
            out = self.forward(*datas, **params)
            return out[0] if self.saves else out
        out = self.forward(*datas, **params)
        saved = None
        if self.saves:
            out, saved = out
        t = Tensor.__new__(Tensor)
        t.data = out if type(out) is xp.ndarray else xp.asarray(out)  # a ufunc's 0-d result
        t.grad = None
        t.name = None
        t._retain = False
        if traced and _GradMode.enabled:
            t.requires_grad = True
            t._ctx = (self, args, params, saved)
        else:
            t.requires_grad = False
            t._ctx = None
        return t


def _numbers_as_arrays(datas: list[Any]) -> list[Any]:
    """Python and NumPy numbers as 0-d arrays, so every forward can use array methods.

    A NumPy scalar keeps its dtype; Python numbers become arrays only when no array is among
    the inputs (next to an array they stay "weak", as NumPy promotes them).
    """
    if all(isinstance(d, numbers.Number) for d in datas):
        return [xp.asarray(d) for d in datas]
    return [xp.asarray(d) if isinstance(d, xp.generic) else d for d in datas]


def rule(fn: Callable | None = None, *, saves: bool = False) -> Any:
    """Decorator: make ``fn`` (forward on arrays, formula on the docstring's first line) a rule.

    With ``saves=True`` the forward returns ``(out, saved)`` and the vector-Jacobian products
    receive ``saved=`` (e.g. the argmax of a max).
    """

    def make(f: Callable) -> Rule:
        r = Rule(f, saves=saves)
        RULES[r.name] = r
        return r

    return make(fn) if fn is not None else make


# ----------------------------------------------------------------------------- Tensor

_FREED = ("freed",)


def _as_array(data: Any, dtype: Any = None) -> Any:
    if isinstance(data, Tensor):
        data = data.data
    arr = xp.asarray(data, dtype=dtype)
    if arr.dtype == object:
        raise TypeError(f"cannot make a Tensor from {type(data).__name__}: not numeric")
    return arr


class Tensor:
    """An array that remembers how it was made, so that derivatives can flow back through it.

    ``data``: the NumPy array. ``grad``: de/d(this tensor) in the shape of ``data`` after a
    backward pass reached it (``None`` before; leaves accumulate across passes, as in
    PyTorch). ``requires_grad``: whether operations on it are recorded.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "name", "_retain", "__weakref__")
    __array_ufunc__ = None  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(
        self, data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None
    ):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._ctx: Any = None  # (rule, args, params, saved) of the op that made it
        self.name = name
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- basic properties --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user (not by an operation)."""
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = repr(self.data).replace("array(", "tensor(", 1)
        if self.requires_grad:
            body = body[:-1] + ", requires_grad=True)"
        return body

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return self.data if dtype is None else self.data.astype(dtype)

    __hash__ = object.__hash__

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Mark this leaf as a variable to differentiate with respect to (in place)."""
        if flag and not xp.issubdtype(self.data.dtype, xp.inexact):
            raise TypeError(
                f"only floating-point tensors can require grad, got dtype {self.data.dtype}; "
                "convert first, e.g. tensor(x, dtype='float64')"
            )
        self.requires_grad = flag
        return self

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this intermediate tensor after backward (leaves always keep it)."""
        self._retain = True
        return self

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def numpy(self) -> Any:
        """The underlying array (no copy)."""
        return self.data

    def detach(self) -> Tensor:
        """The same values, cut off from the graph (shares memory)."""
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t.requires_grad, t._ctx, t.name, t._retain = (
            self.data,
            None,
            False,
            None,
            None,
            False,
        )
        return t

    def astype(self, dtype: Any) -> Tensor:
        """A copy converted to ``dtype`` (differentiable for floating dtypes)."""
        from . import rules

        return rules.cast(self, dtype=xp.dtype(dtype))

    def zero_grad(self) -> None:
        self.grad = None

    # -- backward ----------------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Back propagation: add de/d(leaf) to ``.grad`` of every leaf this tensor depends on.

        ``grad`` is de/d(this tensor), needed unless the tensor holds one element. The graph
        is freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise GraphError(
                "backward() on a tensor that does not require grad: no input of the computation "
                "was created with requires_grad=True (or it ran under no_grad)"
            )
        seed = _seed(self, grad)
        _backprop([self], [seed], create_graph=False, retain_graph=retain_graph, accumulate=True)

    # -- operators (the rule table does the work) -------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _r.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _r.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _r.subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _r.subtract(other, self)

    def __mul__(self, other: Any) -> Tensor:
        if isinstance(other, numbers.Number):
            return _r.scale(self, alpha=other)
        return _r.multiply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        if isinstance(other, numbers.Number):
            return _r.scale(self, alpha=other)
        return _r.multiply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        if isinstance(other, (int, float)) and other != 0:
            return _r.scale(self, alpha=1.0 / other)
        return _r.divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _r.divide(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _r.power(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _r.power(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _r.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _r.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _r.negative(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _r.absolute(self)

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return _r.getitem(self, index=index)

    # comparisons give plain boolean arrays: they have no derivative
    def __lt__(self, other: Any) -> Any:
        return self.data < _data(other)

    def __le__(self, other: Any) -> Any:
        return self.data <= _data(other)

    def __gt__(self, other: Any) -> Any:
        return self.data > _data(other)

    def __ge__(self, other: Any) -> Any:
        return self.data >= _data(other)

    # -- methods -----------------------------------------------------------------------
    @property
    def T(self) -> Tensor:
        return _r.transpose(self)

    def transpose(self, *axes: Any) -> Tensor:
        """Permute the axes (reversed when none are given)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _r.transpose(self, axes=tuple(axes) if axes else None)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _r.reshape(self, shape=shape)

    def flatten(self, start_dim: int = 0) -> Tensor:
        """Merge the axes from ``start_dim`` on into one."""
        return self.reshape(*self.shape[:start_dim], -1)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _r.sum(self, axis=_axis(axis), keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _r.mean(self, axis=_axis(axis), keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _r.max(self, axis=axis, keepdims=keepdims)

    def exp(self) -> Tensor:
        return _r.exp(self)

    def log(self) -> Tensor:
        return _r.log(self)

    def sqrt(self) -> Tensor:
        return _r.sqrt(self)

    def relu(self) -> Tensor:
        return _r.relu(self)

    def sigmoid(self) -> Tensor:
        return _r.sigmoid(self)

    def tanh(self) -> Tensor:
        return _r.tanh(self)


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def tensor(
    data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None
) -> Tensor:
    """A new leaf Tensor holding ``data`` (array-like) as a NumPy array of ``dtype``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, name=name)


# ----------------------------------------------------------------------------- backward walk


def _seed(out: Tensor, grad: Any) -> Any:
    if grad is None:
        if out.data.size != 1:
            raise GraphError(
                f"backward() needs grad= for a non-scalar output of shape {out.shape}: "
                "pass de/d(output) of that shape, or reduce the output to a scalar first"
            )
        return xp.ones_like(out.data)
    g = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=out.dtype)
    if g.shape != out.shape:
        raise ShapeError(
            f"backward(): grad has shape {g.shape} but the output has shape {out.shape}"
        )
    return g


def topological_order(
    roots: Sequence[Tensor], stop: AbstractSet[int] = frozenset()
) -> list[Tensor]:
    """Tensors that require grad and lead to ``roots``, each after all of its inputs.

    The walk does not go past tensors whose id is in ``stop``.
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in roots]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is not None and ctx is not _FREED and id(t) not in stop:
            for a in ctx[1]:
                if isinstance(a, Tensor) and a.requires_grad and id(a) not in seen:
                    stack.append((a, False))
    return order


def sum_to_shape(g: Any, shape: tuple[int, ...]) -> Any:
    """Un-broadcast: sum ``g`` over the axes that broadcasting added or stretched."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead > 0 and g.shape[lead:] == shape:  # only leading axes added (a bias over a batch)
        return g.sum(axis=tuple(range(lead)))  # a fresh array: no reshape, no copy later
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if lead or g.shape != shape:
        g = g.reshape(shape)
    return g


def _backprop(
    roots: Sequence[Tensor],
    seeds: Sequence[Any],
    create_graph: bool,
    retain_graph: bool,
    accumulate: bool,
    wanted: Iterable[Tensor] = (),
) -> dict[int, Any]:
    """Walk the reversed graph from ``roots``; return the gradients of ``wanted`` by id.

    With ``accumulate`` the leaves' (and retained tensors') ``.grad`` receive their gradient.
    """
    wanted_ids = {id(w) for w in wanted}
    grads: dict[int, Any] = {}
    for r, s in zip(roots, seeds, strict=True):
        grads[id(r)] = grads[id(r)] + s if id(r) in grads else s
    result: dict[int, Any] = {}
    owned: set[int] = set()  # ids of arrays already stored as some leaf's .grad in this pass
    prev = _GradMode.enabled
    _GradMode.enabled = create_graph
    try:
        stop = wanted_ids if not accumulate else frozenset()
        for t in reversed(topological_order(roots, stop)):
            key = id(t)
            g = grads.pop(key, None)
            if g is None:
                continue
            if key in wanted_ids:
                result[key] = g
                if not accumulate:
                    continue  # the walk stops at the inputs asked for
            ctx = t._ctx
            if ctx is None or t._retain:
                if accumulate:
                    _store_grad(t, g, owned)
                if ctx is None:
                    continue
            if ctx is _FREED:
                raise GraphError(
                    "backward through a graph that was already freed: the first backward() "
                    "released the saved tensors. Call backward(retain_graph=True) the first "
                    "time, or recompute the forward pass"
                )
            r, args, params, saved = ctx
            if r.saves:
                params = dict(params, saved=saved)
            if create_graph:
                ins, out = args, t
            else:
                ins = tuple(a.data if isinstance(a, Tensor) else a for a in args)
                out = t.data
            if r.vjp_all is not None:
                all_g = r.vjp_all(g, out, *ins, **params)
            else:
                all_g = None
            for i, a in enumerate(args):
                if not (isinstance(a, Tensor) and a.requires_grad):
                    continue
                if all_g is not None:
                    gi = all_g[i]
                elif i < len(r.vjps):
                    gi = r.vjps[i](g, out, *ins, **params)
                else:
                    raise NotImplementedError(
                        f"rule {r.name!r} has no vector-Jacobian product for input {i}: "
                        f"give it one with {r.name}.defvjp(...), or do not differentiate "
                        f"with respect to that input"
                    )
                if gi is None:
                    continue
                if gi.shape != a.data.shape:
                    gi = _unbroadcast(r, i, gi, a.data.shape)
                if not create_graph and gi.dtype != a.data.dtype:
                    gi = gi.astype(a.data.dtype)
                k = id(a)
                prev_g = grads.get(k)
                grads[k] = gi if prev_g is None else prev_g + gi  # the split rule
            if not retain_graph:
                t._ctx = _FREED
    finally:
        _GradMode.enabled = prev
    return result


def _unbroadcast(r: Rule, i: int, g: Any, shape: tuple[int, ...]) -> Any:
    """Sum a broadcast gradient down to its input's shape; any other mismatch is a bug."""
    try:
        fits = xp.broadcast_shapes(g.shape, shape) == tuple(g.shape)
    except ValueError:
        fits = False
    if not fits:
        raise GraphError(
            f"rule {r.name!r}: the vjp for input {i} returned a gradient of shape "
            f"{tuple(g.shape)}, but the input has shape {tuple(shape)} (and the gradient is "
            "not a broadcast of it): the rule's derivative is wrong"
        )
    return sum_to_shape(g, shape)


def _store_grad(t: Tensor, g: Any, owned: set[int]) -> None:
    if isinstance(g, Tensor):
        g = g.data
    if type(g) is not xp.ndarray:
        g = xp.asarray(g)  # a ufunc's 0-d result is a NumPy scalar: .grad is always an array
    if t.grad is None:
        # a gradient array may be shared (add passes g to both inputs; a view of the seed):
        # give each tensor its own so an in-place change of one .grad cannot reach another
        if id(g) in owned or g.base is not None:
            g = g.copy(order="K")  # keeps the memory layout: a straight copy
        owned.add(id(g))
        t.grad = g
    else:
        t.grad = t.grad + g


def autograd_grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
    allow_unused: bool = True,
) -> tuple[Any, ...]:
    """de/d(inputs) for e = sum_i <grad_outputs_i, outputs_i>, without touching ``.grad``.

    Returns NumPy arrays, or Tensors when ``create_graph`` (then differentiable again).
    An input that the outputs do not depend on gets zeros.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outs)
    elif isinstance(grad_outputs, Tensor) or not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    for o in outs:
        if not isinstance(o, Tensor) or not o.requires_grad:
            raise GraphError("the output does not depend on any input that requires grad")
    seeds = []
    for o, go in zip(outs, grad_outputs, strict=True):
        if create_graph and isinstance(go, Tensor):
            seeds.append(go)
        else:
            s = _seed(o, go)
            seeds.append(Tensor(s) if create_graph else s)
    if retain_graph is None:
        retain_graph = create_graph
    res = _backprop(outs, seeds, create_graph, retain_graph, accumulate=False, wanted=ins)
    grads = []
    for x in ins:
        g = res.get(id(x))
        if g is None:
            if not allow_unused:
                raise GraphError("an input is not used by the outputs")
            z = xp.zeros_like(x.data)
            g = Tensor(z) if create_graph else z
        elif create_graph and not isinstance(g, Tensor):
            g = Tensor(g)
        elif not create_graph and type(g) is not xp.ndarray:
            g = xp.asarray(g)
        grads.append(g)
    return tuple(grads)


from . import rules as _r  # noqa: E402  (the table imports Tensor; operators need the table)
