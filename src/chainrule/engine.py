"""The engine: Tensor, the rule registry and the backward walk (reverse-mode autodiff).

Forward: each rule of the table (:mod:`chainrule.rules`) applied to Tensors records a
:class:`Node` (rule, inputs, parameters, saved values) on its output: an arrow from each input
to the output.

Backward: the backward graph is the forward graph with every arrow reversed. Walking it in
reverse topological order (:func:`topological_order`, an explicit stack, no recursion), each
node receives de/d(out), and its rule's vector-Jacobian products send de/d(input) =
d(out)/d(input) de/d(out) to its inputs (denominator layout). Three things happen here, once,
for every rule:

* the split rule: a tensor that fans out to several consumers receives the sum of their
  gradients;
* un-broadcasting: a gradient that came back with a broadcast shape is summed down to the
  input's shape;
* the check: any other gradient shape is the rule's bug, a :class:`GraphError`.

Gradients are arrays in the first-order path (where the backend's fused vjps may stand in for
a rule's own, :data:`chainrule.backend.fast_vjps`). With ``create_graph=True`` the vjps run on
Tensors, so the gradient is differentiable again (gradients of gradients, exact Hessians).

The engine imports no rule: the operators of Tensor (``+ - * / @ **``, ``.T``, ``.sum``, ...)
are installed from the rule table's operator table by :func:`install_operators`.
"""

from __future__ import annotations

import inspect
import math
import numbers
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple

from . import backend as B

__all__ = [
    "Tensor",
    "tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "Rule",
    "rule",
    "Composite",
    "composite",
    "RULES",
    "COMPOSITES",
    "Node",
    "FREED",
    "topological_order",
    "backprop",
    "autograd_grad",
    "sum_to_shape",
    "broadcast_shapes",
    "install_operators",
    "ShapeError",
    "GraphError",
]


class ShapeError(ValueError):
    """An operation got operands whose shapes do not fit; the message names op and shapes."""


class GraphError(RuntimeError):
    """The graph cannot be differentiated as asked (freed graph, non-scalar output, ...)."""


# ----------------------------------------------------------------------------- grad mode


class _GradMode(threading.local):
    """Whether the graph is recorded, per thread (PyTorch's semantics): one thread's backward
    pass or ``no_grad`` block never stops another thread's forward pass from recording."""

    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when operations on Tensors that require grad are being recorded."""
    return _grad_mode.enabled


class no_grad:
    """Context manager (and decorator) in which no graph is recorded: evaluation, updates."""

    _value = False

    def __enter__(self) -> None:
        self._prev = _grad_mode.enabled
        _grad_mode.enabled = self._value

    def __exit__(self, *exc: object) -> None:
        _grad_mode.enabled = self._prev

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


# ----------------------------------------------------------------------------- the registry

RULES: dict[str, Rule] = {}
COMPOSITES: dict[str, Composite] = {}


class Node(NamedTuple):
    """One recorded operation, kept on its output: what the backward pass needs of it."""

    rule: Rule
    inputs: tuple[Any, ...]  # Tensors, arrays or numbers, in the rule's argument order
    params: dict[str, Any]  # the keyword parameters, as the rule normalised them
    saved: Any  # what the forward set aside for the vjps (``saves=True``), else None


#: the node of a tensor whose graph a backward pass released
FREED: Any = object()


def _reads(spec: Mapping[str, str | Sequence[str]] | None) -> dict[str, tuple[str, ...]] | None:
    if spec is None:
        return None
    return {k: tuple(v.split()) if isinstance(v, str) else tuple(v) for k, v in spec.items()}


class Rule:
    """A primitive: its forward on arrays and one vector-Jacobian product per input.

    ``vjps[i](g, out, *inputs, **params)`` returns de/d(input_i) given g = de/d(out), in the
    shape of input_i or broadcast-compatible with it (the engine un-broadcasts). Called with at
    least one Tensor the rule returns a Tensor (recording a :class:`Node` when any input
    requires grad); called with arrays or numbers only it returns a plain array, which is how
    the same vjps serve both the first-order path (arrays) and ``create_graph`` (Tensors).

    One entry holds everything about the rule: ``formula`` (the docstring's first line),
    ``vjps``, ``reads`` (which forward values each input's vjp reads: argument names, ``out``
    and ``saved``; what :func:`chainrule.to_dot` marks as saved for backward), ``samples``
    (test inputs for the table checks) and ``prepare`` (parameter normalisation).
    """

    def __init__(
        self,
        forward: Callable,
        saves: bool = False,
        reads: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        self.name = forward.__name__
        self.forward = forward
        self.__wrapped__ = forward
        self.__doc__ = forward.__doc__
        self.formula = (forward.__doc__ or "").strip().splitlines()[0] if forward.__doc__ else ""
        self.vjps: tuple[Callable, ...] = ()
        self.vjp_all: Callable | None = None
        self.saves = saves
        self.reads = _reads(reads)
        self.prepare: Callable | None = None
        self.samples: Callable | None = None
        try:
            sig = list(inspect.signature(forward).parameters.values())
        except (TypeError, ValueError):  # pragma: no cover - a builtin as forward
            sig = []
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self._positional = [p.name for p in sig if p.kind in kinds]

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

    def defparams(self, fn: Callable) -> Callable:
        """Set ``fn(*inputs, **params) -> params``: checks and normalises the parameters once.

        It runs before the forward and its result is what the node records, so the forward
        and every vjp see the same canonical parameters (e.g. axes made non-negative).
        """
        self.prepare = fn
        return fn

    def defsamples(self, fn: Callable) -> Callable:
        """Set ``fn(rng) -> [(args, params), ...]``: inputs where the rule is checked."""
        self.samples = fn
        return fn

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
        array = B.array_type
        if not any_tensor and not all(type(d) is array for d in datas):
            datas = _numbers_as_arrays(datas)
        if self.prepare is not None:
            params = self.prepare(*datas, **params)
            # parameters given by position (max_pool2d(x, 2)) are recorded by name
            given = self._positional[: len(args)]
            if any(name in params for name in given):
                cut = next(i for i, name in enumerate(given) if name in params)
                args, datas = args[:cut], datas[:cut]
        out = self.forward(*datas, **params)
        if not any_tensor:
            return out[0] if self.saves else out
        saved = None
        if self.saves:
            out, saved = out
        t = Tensor.__new__(Tensor)
        t.data = out if type(out) is array else B.xp.asarray(out)  # a ufunc's 0-d result
        t.grad = None
        t.name = None
        t._retain = False
        if traced and _grad_mode.enabled:
            t.requires_grad = True
            t._node = Node(self, args, params, saved)
        else:
            t.requires_grad = False
            t._node = None
        return t


def _numbers_as_arrays(datas: list[Any]) -> list[Any]:
    """Python and NumPy numbers as 0-d arrays, so every forward can use array methods.

    A NumPy scalar keeps its dtype; Python numbers become arrays only when no array is among
    the inputs (next to an array they stay "weak", as the array API promotes them).
    """
    if all(isinstance(d, numbers.Number) for d in datas):
        return [B.xp.asarray(d) for d in datas]
    python = (bool, int, float, complex)
    return [
        B.xp.asarray(d) if isinstance(d, numbers.Number) and type(d) not in python else d
        for d in datas
    ]


def rule(
    fn: Callable | None = None,
    *,
    saves: bool = False,
    reads: Mapping[str, str | Sequence[str]] | None = None,
) -> Any:
    """Decorator: make ``fn`` (forward on arrays, formula on the docstring's first line) a rule.

    With ``saves=True`` the forward returns ``(out, saved)`` and the vector-Jacobian products
    receive ``saved=`` (e.g. the argmax of a max). ``reads`` maps each input to the forward
    values its vjp reads, e.g. ``{"a": "b", "b": "a"}`` for a product.
    """

    def make(f: Callable) -> Rule:
        r = Rule(f, saves=saves, reads=reads)
        RULES[r.name] = r
        return r

    return make(fn) if fn is not None else make


class Composite:
    """An operation built from rules, listed in the table with its derivative formula.

    Its derivative needs no vjp of its own: the engine chains its rules' vjps.
    """

    def __init__(self, fn: Callable, formula: str) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.formula = formula
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        self.samples: Callable | None = None

    def defsamples(self, fn: Callable) -> Callable:
        """Set ``fn(rng) -> [(args, params), ...]``: inputs where the operation is checked."""
        self.samples = fn
        return fn

    def __call__(self, *args: Any, **params: Any) -> Any:
        return self.fn(*args, **params)

    def __repr__(self) -> str:
        return f"<composite {self.name}: {self.formula}>"


def composite(formula: str) -> Callable[[Callable], Composite]:
    """Decorator: register an operation built from rules, with its derivative formula."""

    def register(fn: Callable) -> Composite:
        c = Composite(fn, formula)
        COMPOSITES[c.name] = c
        return c

    return register


# ----------------------------------------------------------------------------- Tensor


def _as_array(data: Any, dtype: Any = None) -> Any:
    if isinstance(data, Tensor):
        data = data.data
    try:
        arr = B.xp.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot make a Tensor from {type(data).__name__}: {e}") from None
    if str(getattr(arr, "dtype", "")) == "object":
        raise TypeError(f"cannot make a Tensor from {type(data).__name__}: not numeric")
    return arr


class Tensor:
    """An array that remembers how it was made, so that derivatives can flow back through it.

    ``data``: the array (NumPy's by default, see :mod:`chainrule.backend`). ``grad``:
    de/d(this tensor) in the shape of ``data`` after a backward pass reached it (``None``
    before; leaves accumulate across passes, as in PyTorch). ``requires_grad``: whether
    operations on it are recorded. Its operators come from the rule table
    (:func:`install_operators`).
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "name", "_retain", "__weakref__")
    __array_ufunc__ = None  # ndarray (op) Tensor defers to Tensor's reflected operator

    # installed from the rule table (install_operators); declared here for type checkers
    __add__: Callable[..., Tensor]
    __radd__: Callable[..., Tensor]
    __sub__: Callable[..., Tensor]
    __rsub__: Callable[..., Tensor]
    __mul__: Callable[..., Tensor]
    __rmul__: Callable[..., Tensor]
    __truediv__: Callable[..., Tensor]
    __rtruediv__: Callable[..., Tensor]
    __pow__: Callable[..., Tensor]
    __rpow__: Callable[..., Tensor]
    __matmul__: Callable[..., Tensor]
    __rmatmul__: Callable[..., Tensor]
    __neg__: Callable[..., Tensor]
    __abs__: Callable[..., Tensor]
    __getitem__: Callable[..., Tensor]
    T: Tensor
    transpose: Callable[..., Tensor]
    reshape: Callable[..., Tensor]
    flatten: Callable[..., Tensor]
    sum: Callable[..., Tensor]
    mean: Callable[..., Tensor]
    max: Callable[..., Tensor]
    astype: Callable[..., Tensor]
    exp: Callable[..., Tensor]
    log: Callable[..., Tensor]
    sqrt: Callable[..., Tensor]
    relu: Callable[..., Tensor]
    sigmoid: Callable[..., Tensor]
    tanh: Callable[..., Tensor]

    def __init__(
        self, data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None
    ):
        if not _operators_installed:
            _load_operators()
        self.data = _as_array(data, dtype)
        self.grad = None
        self._node: Any = None  # the Node of the operation that made it
        self.name = name
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- basic properties --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return math.prod(self.data.shape)

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user (not by an operation)."""
        return self._node is None

    @property
    def node(self) -> Node | None:
        """The operation that made this tensor (``None`` for a leaf)."""
        return None if self._node is FREED else self._node

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
        arr = B.to_numpy(self.data)  # NumPy asked for the values (from any backend)
        return arr if dtype is None else arr.astype(dtype)

    __hash__ = object.__hash__

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Mark this leaf as a variable to differentiate with respect to (in place)."""
        if flag and not B.xp.isdtype(self.data.dtype, "real floating"):
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
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return B.to_numpy(self.data).item()

    def numpy(self) -> Any:
        """The underlying array (no copy)."""
        return self.data

    def detach(self) -> Tensor:
        """The same values, cut off from the graph (shares memory)."""
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t.requires_grad, t._node, t.name, t._retain = (
            self.data,
            None,
            False,
            None,
            None,
            False,
        )
        return t

    def zero_grad(self) -> None:
        self.grad = None

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Back propagation: add de/d(leaf) to ``.grad`` of every leaf this tensor depends on.

        ``grad`` is de/d(this tensor), needed unless the tensor holds one element. The graph
        is freed afterwards unless ``retain_graph=True``.
        """
        backward_into(self, {}, grad, retain_graph)

    def __pos__(self) -> Tensor:
        return self

    # comparisons give plain boolean arrays: they have no derivative
    def __lt__(self, other: Any) -> Any:
        return self.data < _data(other)

    def __le__(self, other: Any) -> Any:
        return self.data <= _data(other)

    def __gt__(self, other: Any) -> Any:
        return self.data > _data(other)

    def __ge__(self, other: Any) -> Any:
        return self.data >= _data(other)


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def install_operators(table: Mapping[str, Any]) -> None:
    """Give Tensor its operators and methods (``__add__``, ``T``, ``sum``, ...) from ``table``.

    The rule table builds ``table`` (:data:`chainrule.rules.OPERATORS`): each entry is a
    function of the tensor (and the other operand), or a property.
    """
    global _operators_installed
    for name, fn in table.items():
        setattr(Tensor, name, fn)
    _operators_installed = True


_operators_installed = False


def _load_operators() -> None:
    """Import the rule table, which installs Tensor's operators (for a user's first Tensor).

    ``import chainrule`` loads lazily, so ``from chainrule.engine import tensor`` alone has not
    loaded the table; the import runs here, at run time, and the engine imports no rule.
    """
    import importlib

    importlib.import_module(f"{__package__}.rules")


def tensor(
    data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None
) -> Tensor:
    """A new leaf Tensor holding ``data`` (array-like) as an array of ``dtype``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, name=name)


# ----------------------------------------------------------------------------- the walk


def topological_order(
    roots: Sequence[Tensor], stop: AbstractSet[int] = frozenset(), constants: bool = False
) -> list[Tensor]:
    """The tensors that ``roots`` were computed from, each after all of its inputs.

    Only tensors that require grad, unless ``constants``; the walk does not go past tensors
    whose id is in ``stop``, nor past a node freed by a backward pass (:data:`FREED`). An
    explicit stack, no recursion: a chain of a million operations is fine.
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        node = t._node
        if node is not None and node is not FREED and id(t) not in stop:
            for a in reversed(node.inputs):
                if isinstance(a, Tensor) and (constants or a.requires_grad) and id(a) not in seen:
                    stack.append((a, False))
    return order


# ----------------------------------------------------------------------------- backward


def _seed(out: Tensor, grad: Any) -> Any:
    if grad is None:
        if out.size != 1:
            raise GraphError(
                f"backward() needs grad= for a non-scalar output of shape {out.shape}: "
                "pass de/d(output) of that shape, or reduce the output to a scalar first"
            )
        data = out.data
        if data.ndim == 0:  # a loss: one C-level call (ones_like is Python, and cold each step)
            return B.xp.asarray(1, dtype=data.dtype)
        return B.xp.ones_like(data)
    g = grad.data if isinstance(grad, Tensor) else B.xp.asarray(grad, dtype=out.dtype)
    if tuple(g.shape) != out.shape:
        raise ShapeError(
            f"backward(): grad has shape {tuple(g.shape)} but the output has shape {out.shape}"
        )
    return g


def sum_to_shape(g: Any, shape: tuple[int, ...]) -> Any:
    """Un-broadcast: sum ``g`` (an array or a Tensor) over the axes broadcasting added or stretched.

    The sums are the table's ``sum`` and ``reshape``, so under ``create_graph`` they are
    differentiable too.
    """
    if tuple(g.shape) == shape:
        return g
    total, reshape = RULES["sum"], RULES["reshape"]
    lead = g.ndim - len(shape)
    if lead > 0 and tuple(g.shape[lead:]) == shape:  # only leading axes added (a bias)
        return total(g, axis=tuple(range(lead)))  # a fresh array: no reshape, no copy later
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1
    )
    if axes:
        g = total(g, axis=axes, keepdims=True)
    if lead or tuple(g.shape) != shape:
        g = reshape(g, shape=shape)
    return g


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape the given shapes broadcast to, or None when they do not broadcast."""
    n = max(len(s) for s in shapes)
    out = []
    for i in range(n):
        sizes = {s[i - n + len(s)] for s in shapes if i - n + len(s) >= 0} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _unbroadcast(r: Rule, i: int, g: Any, shape: tuple[int, ...]) -> Any:
    """Sum a broadcast gradient down to its input's shape; any other mismatch is a bug."""
    if broadcast_shapes(tuple(g.shape), shape) != tuple(g.shape):
        raise GraphError(
            f"rule {r.name!r}: the vjp for input {i} returned a gradient of shape "
            f"{tuple(g.shape)}, but the input has shape {tuple(shape)} (and the gradient is "
            "not a broadcast of it): the rule's derivative is wrong"
        )
    return sum_to_shape(g, shape)


def _input_grads(
    node: Node, out: Tensor, g: Any, create_graph: bool, sinks: Mapping[int, Any] | None = None
) -> list[tuple[int, Any]]:
    """(position, de/d(input)) for each input of ``node`` that requires grad.

    A backend vjp marked ``defers`` is told which inputs are leaves with a destination in
    ``sinks`` (``defer=``): it may return their gradient as a deferred product.
    """
    r, args, params = node.rule, node.inputs, node.params
    if r.saves:
        params = dict(params, saved=node.saved)
    needs = tuple([isinstance(a, Tensor) and a.requires_grad for a in args])
    if create_graph:
        ins: tuple[Any, ...] = args
        o: Any = out
    else:
        ins = tuple([a.data if isinstance(a, Tensor) else a for a in args])
        o = out.data
    all_g: Any = None
    fast = None if create_graph else B.fast_vjps.get(r.name)
    if fast is not None:
        fast_params = params
        if sinks and getattr(fast, "defers", False):
            defer = [needs[i] and a._node is None and id(a) in sinks for i, a in enumerate(args)]
            if any(defer):
                fast_params = dict(params, defer=tuple(defer))
        all_g = fast(g, o, *ins, needs=needs, **fast_params)
        if all_g is NotImplemented:
            all_g = None
    if all_g is None and r.vjp_all is not None:
        all_g = r.vjp_all(g, o, *ins, **params)
    grads = []
    for i, a in enumerate(args):
        if not needs[i]:
            continue
        if all_g is not None:
            gi = all_g[i]
        elif i < len(r.vjps):
            gi = r.vjps[i](g, o, *ins, **params)
        else:
            raise NotImplementedError(
                f"rule {r.name!r} has no vector-Jacobian product for input {i}: give it one "
                f"with {r.name}.defvjp(...), or do not differentiate with respect to that input"
            )
        if gi is None:
            continue
        data = a.data
        if gi.shape != data.shape:
            gi = _unbroadcast(r, i, gi, tuple(data.shape))
        if not create_graph and gi.dtype is not data.dtype and gi.dtype != data.dtype:
            gi = B.xp.astype(gi, data.dtype)
        grads.append((i, gi))
    return grads


_FREED_MESSAGE = (
    "backward through a graph that was already freed: the first backward() released the saved "
    "tensors. Call backward(retain_graph=True) the first time, or recompute the forward pass"
)


def backprop(
    roots: Sequence[Tensor],
    seeds: Sequence[Any],
    create_graph: bool = False,
    retain_graph: bool = False,
    accumulate: bool = True,
    wanted: Iterable[Tensor] = (),
    sinks: Mapping[int, Callable[[Any], None]] | None = None,
) -> dict[int, Any]:
    """Walk the reversed graph from ``roots``; return the gradients of ``wanted`` by id.

    ``seeds[i]`` is de/d(roots[i]). With ``accumulate`` the leaves' (and retained tensors')
    ``.grad`` receive their gradient; without, the walk stops at the ``wanted`` tensors.
    ``sinks``: for a leaf whose id is a key, ``sinks[id](de/dleaf)`` is called instead of
    adding to ``.grad`` (once, with the sum of all the leaf's paths), and a backend vjp may hand
    it the gradient as a deferred product that the sink computes (``SGD.backward_step``).
    """
    wanted_ids = {id(w) for w in wanted}
    grads: dict[int, Any] = {}
    for r, s in zip(roots, seeds, strict=True):
        grads[id(r)] = grads[id(r)] + s if id(r) in grads else s
    result: dict[int, Any] = {}
    owned: set[int] = set()  # ids of arrays already stored as some leaf's .grad in this pass
    prev = _grad_mode.enabled
    _grad_mode.enabled = create_graph
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
            node = t._node
            if node is None or t._retain:
                if accumulate:
                    sink = sinks.get(key) if sinks and node is None else None
                    if sink is not None:
                        sink(g)
                    else:
                        _store_grad(t, g, owned)
                if node is None:
                    continue
            if node is FREED:
                raise GraphError(_FREED_MESSAGE)
            for i, gi in _input_grads(node, t, g, create_graph, sinks):
                k = id(node.inputs[i])
                prev_g = grads.get(k)
                grads[k] = gi if prev_g is None else prev_g + gi  # the split rule
            if not retain_graph:
                t._node = FREED
    finally:
        _grad_mode.enabled = prev
    return result


def backward_into(
    out: Tensor,
    sinks: Mapping[int, Callable[[Any], None]],
    grad: Any = None,
    retain_graph: bool = False,
) -> None:
    """``out.backward(grad, retain_graph)``, except that a leaf whose id is a key of ``sinks``
    hands its gradient to ``sinks[id(leaf)]`` instead of adding it to ``.grad``: an array, or a
    backend deferred product (see :func:`backprop`)."""
    if not out.requires_grad:
        raise GraphError(
            "backward() on a tensor that does not require grad: no input of the computation "
            "was created with requires_grad=True (or it ran under no_grad)"
        )
    seed = _seed(out, grad)
    backprop([out], [seed], retain_graph=retain_graph, sinks=sinks or None)


def _store_grad(t: Tensor, g: Any, owned: set[int]) -> None:
    if isinstance(g, Tensor):
        g = g.data
    if type(g) is not B.array_type:
        g = B.xp.asarray(g)  # a ufunc's 0-d result is a NumPy scalar: .grad is always an array
    if t.grad is None:
        # a gradient array may be shared (add passes g to both inputs; a view of the seed):
        # give each tensor its own so an in-place change of one .grad cannot reach another
        if id(g) in owned or B.kernels.is_view(g):
            g = B.kernels.copy(g)
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

    Returns arrays, or Tensors when ``create_graph`` (then differentiable again). An input
    that the outputs do not depend on gets zeros.
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
    res = backprop(outs, seeds, create_graph, retain_graph, accumulate=False, wanted=ins)
    grads = []
    for x in ins:
        g = res.get(id(x))
        if g is None:
            if not allow_unused:
                raise GraphError("an input is not used by the outputs")
            z = B.xp.zeros_like(x.data)
            g = Tensor(z) if create_graph else z
        elif create_graph and not isinstance(g, Tensor):
            g = Tensor(g)
        elif not create_graph and type(g) is not B.array_type:
            g = B.xp.asarray(g)
        grads.append(g)
    return tuple(grads)
