"""Modules: parameters plus a forward made of rule-table operations.

Linear   y = x H^T + h         H: out x in, h: out   (the lecture's H x + h, for a batch)
Conv2d   y = conv2d(x, W) + b  W: O x C x Fr x Fc    (im2col + one matrix product)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import backend as B
from .. import rules
from ..engine import Tensor
from .init import INITS, Generator, generator, pytorch_uniform


class Parameter(Tensor):
    """A Tensor that a Module trains: a leaf that requires grad."""

    __slots__ = ()

    def __init__(self, data: Any, name: str | None = None) -> None:
        super().__init__(data, requires_grad=True, name=name)


def _weight_and_bias(
    rng: Generator | int | None,
    shape: tuple[int, ...],
    fan_in: int,
    init: str,
    bias: bool,
    dtype: Any,
) -> tuple[Parameter, Parameter | None]:
    """The weight drawn by ``init``, then the bias (PyTorch's uniform draw; zero for other inits).

    The bias is drawn even when it is zeroed, so every init consumes the generator alike.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {sorted(INITS)}")
    g = generator(rng)
    weight = Parameter(INITS[init](g, shape, dtype=dtype))
    b = Parameter(pytorch_uniform(g, shape[:1], fan_in=fan_in, dtype=dtype)) if bias else None
    if b is not None and init != "pytorch":
        b.data[...] = 0
    return weight, b


class Module:
    """Base class: finds Parameters and sub-Modules among its attributes, in definition order."""

    training = True

    def __call__(self, x: Any) -> Tensor:
        return self.forward(x)

    def forward(self, x: Any) -> Tensor:
        raise NotImplementedError

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        yield self
        for value in vars(self).values():
            if isinstance(value, Module):
                yield from value.modules()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> dict[str, Any]:
        """Parameter arrays by dotted name (e.g. ``layers.0.weight``)."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy arrays into the parameters; names and shapes must match exactly."""
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(
                f"state dict does not fit the model: missing {missing}, unexpected {unexpected}"
            )
        for name, p in own.items():
            value = B.xp.asarray(state[name])
            if tuple(value.shape) != p.shape:
                raise ValueError(
                    f"state dict: {name} has shape {value.shape}, the model expects {p.shape}"
                )
            p.data = B.xp.asarray(value, dtype=p.dtype, copy=True)

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        inner = "\n".join(f"  ({k}): " + repr(v).replace("\n", "\n  ") for k, v in children)
        return f"{type(self).__name__}(\n{inner}\n)"


class Linear(Module):
    """y = x H^T + h: x (N, in) -> y (N, out); weight H (out, in), bias h (out,)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        init: str = "pytorch",
        rng: Generator | int | None = None,
        dtype: Any = "float32",
    ) -> None:
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"Linear needs positive sizes, got in={in_features}, out={out_features}"
            )
        self.weight, self.bias = _weight_and_bias(
            rng, (out_features, in_features), in_features, init, bias, dtype
        )
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: Any) -> Tensor:
        return rules.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """x (N, C, H, W) -> (N, O, Ho, Wo); weight (O, C, Fr, Fc), bias (O,)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        *,
        init: str = "pytorch",
        rng: Generator | int | None = None,
        dtype: Any = "float32",
    ) -> None:
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if in_channels <= 0 or out_channels <= 0 or min(k) <= 0:
            raise ValueError(
                f"Conv2d needs positive sizes, got {in_channels}->{out_channels}, kernel {k}"
            )
        self.weight, self.bias = _weight_and_bias(
            rng, (out_channels, in_channels, *k), in_channels * k[0] * k[1], init, bias, dtype
        )
        self.stride, self.padding, self.kernel_size = stride, padding, k

    def forward(self, x: Any) -> Tensor:
        return rules.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        o, c = self.weight.shape[:2]
        k, s, p = self.kernel_size, self.stride, self.padding
        return f"{c}, {o}, kernel_size={k}, stride={s}, padding={p}"


class MaxPool2d(Module):
    """(N, C, H, W) -> (N, C, H', W'): the maximum of each window (stride: kernel_size)."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: Any) -> Tensor:
        return rules.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class AvgPool2d(MaxPool2d):
    """(N, C, H, W) -> (N, C, H', W'): the mean of each window (stride: kernel_size)."""

    def forward(self, x: Any) -> Tensor:
        return rules.avg_pool2d(x, self.kernel_size, self.stride)


class ReLU(Module):
    """max(0, x) elementwise; its derivative at 0 is ``grad_at_zero`` (0, as PyTorch)."""

    def __init__(self, grad_at_zero: float = 0.0) -> None:
        self.grad_at_zero = grad_at_zero

    def forward(self, x: Any) -> Tensor:
        if self.grad_at_zero:
            return rules.relu(x, grad_at_zero=self.grad_at_zero)
        return rules.relu(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise, any shape."""

    def forward(self, x: Any) -> Tensor:
        return rules.sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise, any shape."""

    def forward(self, x: Any) -> Tensor:
        return rules.tanh(x)


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 d2 ...)."""

    def forward(self, x: Any) -> Tensor:
        return rules.reshape(x, shape=(x.shape[0], -1))


def _pool_first(layer: Module, following: Module) -> bool:
    """Whether ``following(layer(x))`` may run as ``layer(following(x))``: ReLU, then max-pool.

    ReLU is monotone, so max_window ReLU(x) = ReLU(max_window x), and the pool then runs on
    the full-size input while the ReLU and its mask run on the pooled (4x smaller) array.
    With ``grad_at_zero=0`` the gradients agree too: a window whose maximum m is > 0 sends its
    gradient to its first maximum in both orders (the positive entries keep their order and
    the others become 0 < m); a window with m <= 0 gets gradient 0 in both (ReLU's derivative
    is 0 at every entry <= 0). With grad_at_zero > 0 they differ (the plain order sends it to
    the window's first entry, when that entry is 0), so the lecture's order is kept.
    (Average pooling does not commute with ReLU: only exactly these two types qualify.)
    """
    return (
        type(layer) is ReLU and not layer.grad_at_zero and type(following) is MaxPool2d
    )


def _run_order(layers: list[Module]) -> list[Module]:
    """The layers in the order :class:`Sequential` runs them: each ReLU followed by a max-pool
    runs after the pool instead (:func:`_pool_first`: the same numbers)."""
    order, i = [], 0
    while i < len(layers):
        if i + 1 < len(layers) and _pool_first(layers[i], layers[i + 1]):
            order += [layers[i + 1], layers[i]]
            i += 2
        else:
            order.append(layers[i])
            i += 1
    return order


class Sequential(Module):
    """Layers applied one after the other; indexable, iterable, ``len()``."""

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is a {type(layer).__name__}, not a Module")
        self.layers = list(layers)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def modules(self) -> Iterator[Module]:
        yield self
        for layer in self.layers:
            yield from layer.modules()

    def forward(self, x: Any) -> Tensor:
        for layer in _run_order(self.layers):
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = "\n".join(
            f"  ({i}): " + repr(v).replace("\n", "\n  ") for i, v in enumerate(self.layers)
        )
        return f"Sequential(\n{inner}\n)"
