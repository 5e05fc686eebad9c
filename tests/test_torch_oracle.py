"""An independent oracle: the same functions through PyTorch (CPU, float64).

Values and gradients of every entry of the derivative table, Jacobians (chainrule's
denominator layout transposed to PyTorch's numerator layout), Hessians, jvp and vjp.
A table entry without a PyTorch comparison here, and without a documented reason in
EXCLUSIONS, fails ``test_every_rule_has_an_oracle``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch  # the oracle: installed by the test extras; missing it must fail, not skip

F = torch.nn.functional

import chainrule as cr  # noqa: E402
from chainrule import rules  # noqa: E402
from chainrule.check import table  # noqa: E402

torch.set_num_threads(1)
RNG = np.random.default_rng(20240601)


def n(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def pos(*shape: int) -> np.ndarray:
    return RNG.uniform(0.5, 2.0, size=shape)


def batch_first(cols):
    """unfold's windows C x Fr x Fc x Ho x Wo x N -> N x C x Fr x Fc x Ho x Wo (PyTorch's order)."""
    return rules.transpose(cols, axes=(5, 0, 1, 2, 3, 4))


def batch_last(cols):
    """The inverse of :func:`batch_first`: the layout of unfold's windows, for fold."""
    return rules.transpose(cols, axes=(1, 2, 3, 4, 5, 0))


def with_ties(*shape: int) -> np.ndarray:
    """Values from a small set, so that maxima tie often."""
    return RNG.integers(0, 3, size=shape).astype(np.float64)


@dataclass
class Case:
    ours: Callable[..., Any]
    theirs: Callable[..., Any]
    args: tuple[Any, ...]
    diff: tuple[int, ...] | None = None  # inputs to differentiate; default: float arrays
    tol: dict = field(default_factory=lambda: {"rtol": 1e-10, "atol": 1e-12})


def _flat_cr(out: Any) -> Any:
    return cr.concat(*[o.reshape(-1) for o in out]) if isinstance(out, (list, tuple)) else out


def _flat_torch(out: Any) -> Any:
    return torch.cat([o.reshape(-1) for o in out]) if isinstance(out, (list, tuple)) else out


# each entry of the table: the cases that compare it with PyTorch
ORACLE: dict[str, list[Case]] = {
    # 1. elementwise
    "add": [
        Case(cr.add, torch.add, (n(3, 4), n(4))),
        Case(cr.add, torch.add, (n(2, 1, 3), n(4, 1))),
    ],
    "subtract": [Case(cr.subtract, torch.sub, (n(3, 4), n(3, 1)))],
    "negative": [Case(cr.negative, torch.neg, (n(5),))],
    "multiply": [
        Case(cr.multiply, torch.mul, (n(3, 4), n(3, 4))),
        Case(cr.multiply, torch.mul, (n(2, 3), n(3))),
    ],
    "scale": [
        Case(lambda x: rules.scale(x, alpha=2.5), lambda x: x * 2.5, (n(3, 2),)),
        Case(lambda x: 3 * x / 4.0, lambda x: 3 * x / 4.0, (n(4),)),
    ],
    "divide": [
        Case(cr.divide, torch.div, (n(3, 4), pos(3, 4))),
        Case(cr.divide, torch.div, (n(3), pos(1))),
        Case(lambda x: 2.0 / x, lambda x: 2.0 / x, (pos(5),)),
    ],
    "power": [
        Case(cr.power, torch.pow, (pos(3, 2), n(3, 2))),
        Case(lambda a: a**3, lambda a: a**3, (n(4),)),
        Case(lambda a: a**0.5, lambda a: a**0.5, (pos(4),)),
        Case(lambda p: 2.0**p, lambda p: 2.0**p, (n(3),)),
    ],
    "exp": [Case(cr.exp, torch.exp, (n(3, 2),))],
    "log": [Case(cr.log, torch.log, (pos(3, 2),))],
    "sqrt": [Case(cr.sqrt, torch.sqrt, (pos(4),))],
    # |x| at 0: both use sign(0) = 0
    "absolute": [Case(cr.absolute, torch.abs, (np.array([-1.5, -0.2, 0.0, 0.3, 2.0]),))],
    "sin": [Case(cr.sin, torch.sin, (n(5),))],
    "cos": [Case(cr.cos, torch.cos, (n(5),))],
    # 2. activations (sigmoid far out in both tails too)
    "sigmoid": [
        Case(cr.sigmoid, torch.sigmoid, (np.array([-40.0, -3.0, -0.1, 0.0, 0.5, 4.0, 40.0]),))
    ],
    "tanh": [Case(cr.tanh, torch.tanh, (n(3, 4),))],
    # ReLU at exactly 0: chainrule's default derivative 0 is PyTorch's convention
    "relu": [
        Case(cr.relu, torch.relu, (np.array([-2.0, -0.0, 0.0, 0.0, 1e-300, 3.0]),)),
        Case(cr.relu, torch.relu, (n(3, 4),)),
    ],
    # 3. matrix products: x^T a, A x, x^T A, A B, batched, broadcast batches
    "matmul": [
        Case(cr.matmul, torch.matmul, (n(4), n(4))),
        Case(cr.matmul, torch.matmul, (n(3, 4), n(4))),
        Case(cr.matmul, torch.matmul, (n(3), n(3, 4))),
        Case(cr.matmul, torch.matmul, (n(3, 4), n(4, 2))),
        Case(lambda a, b: a.T @ b, lambda a, b: a.T @ b, (n(4, 3), n(4, 2))),
        Case(cr.matmul, torch.matmul, (n(2, 3, 4), n(4, 2))),
        Case(cr.matmul, torch.matmul, (n(3), n(2, 3, 4))),
        Case(cr.matmul, torch.matmul, (n(2, 3, 4), n(4))),
        Case(cr.matmul, torch.matmul, (n(2, 3, 4), n(2, 4, 5))),
        Case(cr.matmul, torch.matmul, (n(2, 1, 3, 4), n(5, 4, 2))),
    ],
    "transpose": [
        Case(lambda x: x.T, lambda x: x.T, (n(3, 4),)),
        Case(
            lambda x: cr.transpose(x, axes=(1, 2, 0)), lambda x: x.permute(1, 2, 0), (n(2, 3, 4),)
        ),
    ],
    "linear": [
        Case(cr.linear, F.linear, (n(5, 3), n(4, 3), n(4))),
        Case(cr.linear, F.linear, (n(3), n(2, 3))),
        Case(cr.linear, F.linear, (n(2, 2, 3), n(4, 3), n(4))),
    ],
    "affine": [
        Case(cr.affine, lambda w, x, b: w @ x + b[:, None], (n(4, 3), n(3, 5), n(4))),
        Case(cr.affine, torch.matmul, (n(2, 3), n(3, 4))),
        Case(cr.affine, lambda w, x, b: w @ x + b[:, None], (n(4, 3), n(2, 3, 2), n(4))),
        Case(cr.affine, lambda w, x, b: w @ x + b[:, None], (n(2, 3), n(3, 40), n(2))),
    ],
    # 4. reductions and shapes
    "sum": [
        Case(lambda x: x.sum(), torch.sum, (n(3, 4),)),
        Case(lambda x: x.sum(axis=0), lambda x: x.sum(dim=0), (n(3, 4),)),
        Case(
            lambda x: x.sum(axis=(0, 2), keepdims=True),
            lambda x: x.sum(dim=(0, 2), keepdim=True),
            (n(2, 3, 4),),
        ),
    ],
    "mean": [
        Case(lambda x: x.mean(), torch.mean, (n(3, 4),)),
        Case(lambda x: x.mean(axis=1), lambda x: x.mean(dim=1), (n(3, 4),)),
        Case(
            lambda x: x.mean(axis=-1, keepdims=True),
            lambda x: x.mean(dim=-1, keepdim=True),
            (n(2, 3, 4),),
        ),
    ],
    # max with ties: the first maximum takes the gradient, as torch.max(x, dim) returns it
    # (torch.max(x) without dim and torch.amax share it equally among ties instead)
    "max": [
        Case(lambda x: x.max(axis=1), lambda x: torch.max(x, dim=1).values, (with_ties(5, 4),)),
        Case(
            lambda x: x.max(axis=0, keepdims=True),
            lambda x: torch.max(x, dim=0, keepdim=True).values,
            (with_ties(4, 6),),
        ),
        Case(
            lambda x: x.max(), lambda x: torch.max(x.reshape(-1), dim=0).values, (with_ties(3, 4),)
        ),
        Case(lambda x: x.max(axis=-1), lambda x: torch.max(x, dim=-1).values, (n(2, 3, 4),)),
    ],
    "broadcast_to": [
        Case(
            lambda x: cr.broadcast_to(x, shape=(2, 3, 4)),
            lambda x: torch.broadcast_to(x, (2, 3, 4)),
            (n(3, 1),),
        )
    ],
    "reshape": [
        Case(lambda x: x.reshape(2, 6), lambda x: x.reshape(2, 6), (n(3, 4),)),
        Case(lambda x: x.T.reshape(-1), lambda x: x.T.reshape(-1), (n(3, 4),)),
    ],
    "cast": [
        Case(
            lambda x: x.astype(np.float32),
            lambda x: x.float(),
            (n(3, 2),),
            tol={"rtol": 1e-6, "atol": 1e-7},
        )
    ],
    "getitem": [
        Case(lambda x: x[1:3, ::2], lambda x: x[1:3, ::2], (n(4, 5),)),
        Case(lambda x: x[2], lambda x: x[2], (n(4, 5),)),
        Case(
            lambda x: x[np.array([0, 2, 0, 0])], lambda x: x[torch.tensor([0, 2, 0, 0])], (n(4, 5),)
        ),
        Case(
            lambda x: x[np.array([1, 1, 3]), 1:],
            lambda x: x[torch.tensor([1, 1, 3]), 1:],
            (n(4, 5),),
        ),
        Case(
            lambda x: x[np.array([0, 1, 1]), np.array([4, 2, 2])],
            lambda x: x[torch.tensor([0, 1, 1]), torch.tensor([4, 2, 2])],
            (n(4, 5),),
        ),
        Case(lambda x: x[x.data > 0], lambda x: x[x > 0], (n(4, 5),)),
        Case(lambda x: x[..., None, -1], lambda x: x[..., None, -1], (n(2, 3, 4),)),
    ],
    "scatter": [
        Case(
            lambda g: rules.scatter(g, shape=(4, 3), index=(slice(1, 3),)),
            lambda g: torch.zeros(4, 3, dtype=g.dtype).slice_scatter(g, dim=0, start=1, end=3),
            (n(2, 3),),
        ),
        Case(
            lambda g: rules.scatter(g, shape=(4,), index=(np.array([0, 2, 0]),)),
            lambda g: torch.zeros(4, dtype=g.dtype).index_add(0, torch.tensor([0, 2, 0]), g),
            (n(3),),
        ),
    ],
    "concat": [
        Case(lambda a, b: cr.concat(a, b), lambda a, b: torch.cat([a, b]), (n(2, 3), n(1, 3))),
        Case(
            lambda a, b: cr.concat(a, b, axis=1),
            lambda a, b: torch.cat([a, b], dim=1),
            (n(2, 3), n(2, 2)),
        ),
    ],
    "stack": [
        Case(lambda a, b: cr.stack(a, b), lambda a, b: torch.stack([a, b]), (n(2, 3), n(2, 3))),
        Case(
            lambda a, b, c: cr.stack(a, b, c, axis=1),
            lambda a, b, c: torch.stack([a, b, c], dim=1),
            (n(3), n(3), n(3)),
        ),
    ],
    "split": [
        Case(lambda x: cr.split(x, 3), lambda x: torch.chunk(x, 3), (n(6, 2),)),
        Case(
            lambda x: cr.split(x, [2, 3], axis=1),
            lambda x: torch.split(x, [2, 3], dim=1),
            (n(2, 5),),
        ),
    ],
    # 5. convolution and pooling (PyTorch's layouts N x C x H x W, O x C x Fr x Fc)
    "unfold": [
        Case(
            lambda x: batch_first(rules.unfold(x, window=(3, 2))).reshape(2, 2 * 3 * 2, -1),
            lambda x: F.unfold(x, (3, 2)),
            (n(2, 2, 5, 4),),
        ),
        Case(
            lambda x: batch_first(rules.unfold(x, window=(3, 3), stride=2, padding=1)).reshape(
                1, 18, -1
            ),
            lambda x: F.unfold(x, 3, stride=2, padding=1),
            (n(1, 2, 5, 5),),
        ),
    ],
    "fold": [
        Case(
            lambda c: rules.fold(batch_last(c.reshape(2, 2, 3, 2, 3, 3)), x_shape=(2, 2, 5, 4)),
            lambda c: F.fold(c, (5, 4), (3, 2)),
            (n(2, 12, 9),),
        ),
        Case(
            lambda c: rules.fold(
                batch_last(c.reshape(1, 2, 3, 3, 3, 3)), x_shape=(1, 2, 5, 5), stride=2, padding=1
            ),
            lambda c: F.fold(c, (5, 5), 3, stride=2, padding=1),
            (n(1, 18, 9),),
        ),
    ],
    "conv2d": [
        Case(cr.conv2d, F.conv2d, (n(2, 3, 7, 6), n(4, 3, 3, 3), n(4))),
        Case(
            lambda x, w: cr.conv2d(x, w, stride=2, padding=1),
            lambda x, w: F.conv2d(x, w, stride=2, padding=1),
            (n(2, 2, 7, 7), n(3, 2, 3, 3)),
        ),
        Case(
            lambda x, w, b: cr.conv2d(x, w, b, padding=2),
            lambda x, w, b: F.conv2d(x, w, b, padding=2),
            (n(3, 1, 8, 8), n(2, 1, 5, 5), n(2)),
        ),
        Case(
            lambda x, w: cr.conv2d(x, w, stride=3),
            lambda x, w: F.conv2d(x, w, stride=3),
            (n(1, 2, 8, 9), n(2, 2, 2, 4)),
        ),
        Case(  # a kernel of more than 256 numbers: conv2d's single matrix product
            lambda x, w, b: cr.conv2d(x, w, b, stride=2, padding=1),
            lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
            (n(2, 4, 7, 6), n(12, 4, 3, 3), n(12)),
        ),
    ],
    "max_pool2d": [
        Case(lambda x: cr.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2), (n(2, 3, 6, 6),)),
        Case(
            lambda x: cr.max_pool2d(x, 3, stride=1),
            lambda x: F.max_pool2d(x, 3, stride=1),
            (n(1, 2, 5, 5),),
        ),
        Case(
            lambda x: cr.max_pool2d(x, 3, stride=2),
            lambda x: F.max_pool2d(x, 3, stride=2),
            (n(2, 1, 7, 7),),
        ),
        Case(lambda x: cr.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2), (n(1, 1, 5, 7),)),
        Case(
            lambda x: cr.max_pool2d(x, (2, 3), stride=1),
            lambda x: F.max_pool2d(x, (2, 3), stride=1),
            (n(1, 2, 4, 5),),
        ),
        # ties (ReLU zeros, repeated values), overlapping and not: the first maximum in each window
        Case(
            lambda x: cr.max_pool2d(x, 2),
            lambda x: F.max_pool2d(x, 2),
            (np.maximum(n(2, 2, 6, 6), 0),),
        ),
        Case(lambda x: cr.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2), (with_ties(2, 2, 6, 6),)),
        Case(
            lambda x: cr.max_pool2d(x, 3, stride=1),
            lambda x: F.max_pool2d(x, 3, stride=1),
            (with_ties(1, 2, 6, 6),),
        ),
    ],
    "avg_pool2d": [
        Case(lambda x: cr.avg_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2), (n(2, 2, 4, 4),)),
        Case(
            lambda x: cr.avg_pool2d(x, 3, stride=2),
            lambda x: F.avg_pool2d(x, 3, stride=2),
            (n(1, 1, 7, 7),),
        ),
        Case(
            lambda x: cr.avg_pool2d(x, 3, stride=1),
            lambda x: F.avg_pool2d(x, 3, stride=1),
            (n(1, 2, 5, 6),),
        ),
    ],
    # 6. softmax and errors
    "softmax": [
        Case(cr.softmax, lambda x: F.softmax(x, dim=-1), (n(3, 4),)),
        Case(lambda x: cr.softmax(x, axis=0), lambda x: F.softmax(x, dim=0), (n(3, 4),)),
    ],
    "log_softmax": [
        Case(cr.log_softmax, lambda x: F.log_softmax(x, dim=-1), (n(3, 4) * 5,)),
        Case(lambda x: cr.log_softmax(x, axis=0), lambda x: F.log_softmax(x, dim=0), (n(3, 4),)),
    ],
    # cross-entropy on probabilities: PyTorch's nll_loss of log p
    "cross_entropy": [
        Case(
            cr.cross_entropy,
            lambda p, k: F.nll_loss(torch.log(p), k),
            (RNG.dirichlet(np.ones(4), size=3), np.array([0, 3, 1])),
        ),
        Case(
            cr.cross_entropy,
            lambda p, k: -torch.log(p[k]),
            (RNG.dirichlet(np.ones(5)), np.array(2)),
        ),
    ],
    "mse": [
        Case(cr.mse, F.mse_loss, (n(3, 2), n(3, 2))),
        Case(
            lambda x, t: cr.mse(x, t, half=True), lambda x, t: 0.5 * F.mse_loss(x, t), (n(4), n(4))
        ),
    ],
    "softmax_cross_entropy": [
        Case(cr.softmax_cross_entropy, F.cross_entropy, (n(4, 5) * 3, np.array([0, 4, 2, 2]))),
        Case(
            cr.softmax_cross_entropy,
            lambda x, k: F.cross_entropy(x[None], k[None]),
            (n(3), np.array(1)),
        ),
        Case(
            cr.softmax_cross_entropy,
            F.cross_entropy,
            (np.array([[1000.0, 0.0, -1000.0]]), np.array([2])),
        ),
    ],
}

# entries that PyTorch cannot check, each with the reason (none at present: every rule of
# the table has a PyTorch equivalent); an entry here must not also be in ORACLE
EXCLUSIONS: dict[str, str] = {}

CASES = [
    pytest.param(name, i, id=f"{name}-{i}")
    for name in sorted(ORACLE)
    for i in range(len(ORACLE[name]))
]


def test_every_rule_has_an_oracle():
    names = set(table())
    missing = sorted(names - set(ORACLE) - set(EXCLUSIONS))
    assert not missing, (
        f"rules with neither a PyTorch comparison nor a documented exclusion: {missing}"
    )
    assert not set(ORACLE) & set(EXCLUSIONS)
    assert all(isinstance(r, str) and r.strip() for r in EXCLUSIONS.values())
    assert not (set(ORACLE) | set(EXCLUSIONS)) - names, "oracle entries for rules that do not exist"


def _torch_arg(a: Any, requires_grad: bool) -> Any:
    if isinstance(a, np.ndarray):
        return torch.tensor(a, requires_grad=requires_grad)
    return a


@pytest.mark.parametrize(("name", "i"), CASES)
def test_value_and_gradient_match_pytorch(name, i):
    case = ORACLE[name][i]
    diff = case.diff
    if diff is None:
        diff = tuple(
            j for j, a in enumerate(case.args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
        )
    ours_in = [
        cr.tensor(a, requires_grad=True) if j in diff else a for j, a in enumerate(case.args)
    ]
    theirs_in = [_torch_arg(a, j in diff) for j, a in enumerate(case.args)]
    y = _flat_cr(case.ours(*ours_in))
    yt = _flat_torch(case.theirs(*theirs_in))
    assert y.shape == tuple(yt.shape), f"{name}: shape {y.shape} vs PyTorch {tuple(yt.shape)}"
    assert y.dtype == np.dtype(str(yt.dtype).removeprefix("torch.")), (
        f"{name}: dtype {y.dtype} vs {yt.dtype}"
    )
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **case.tol)
    # gradients of e = <r, y> for a random cotangent r: the whole vector-Jacobian product
    r = np.random.default_rng(i).standard_normal(y.shape).astype(y.dtype)
    ours_g = cr.autograd_grad(y, [ours_in[j] for j in diff], grad_outputs=r)
    theirs_g = torch.autograd.grad(
        yt, [theirs_in[j] for j in diff], grad_outputs=torch.from_numpy(r), allow_unused=True
    )
    for j, g, gt in zip(diff, ours_g, theirs_g, strict=True):
        gt = np.zeros_like(g) if gt is None else gt.numpy()
        assert g.shape == gt.shape and g.dtype == gt.dtype
        np.testing.assert_allclose(g, gt, **case.tol, err_msg=f"{name}: gradient of input {j}")


def test_relu_derivative_at_zero_is_pytorchs_and_selectable():
    x = np.array([-1.0, 0.0, 2.0])
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).sum().backward()
    xc = cr.tensor(x, requires_grad=True)
    cr.relu(xc).sum().backward()
    np.testing.assert_array_equal(xc.grad, xt.grad.numpy())  # 0 at 0, as PyTorch
    xc2 = cr.tensor(x, requires_grad=True)
    cr.relu(xc2, grad_at_zero=1.0).sum().backward()
    np.testing.assert_array_equal(xc2.grad, [0.0, 1.0, 1.0])  # the other subgradient


def test_max_pool2d_float32_matches_pytorch_on_relu_ties():
    """Training data: float32, ReLU outputs (zeros everywhere: ties), the LeNet sizes."""
    x = np.maximum(RNG.standard_normal((8, 6, 28, 28)), 0).astype(np.float32)
    g = RNG.standard_normal((8, 6, 14, 14)).astype(np.float32)
    xc = cr.tensor(x, requires_grad=True)
    y = cr.max_pool2d(xc, 2)
    y.backward(g)
    xt = torch.from_numpy(x).requires_grad_()
    yt = F.max_pool2d(xt, 2)
    yt.backward(torch.from_numpy(g))
    assert y.dtype == np.float32 and xc.grad.dtype == np.float32
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    np.testing.assert_array_equal(xc.grad, xt.grad.numpy())


def test_conv2d_float32_matches_pytorch_at_training_sizes():
    x = RNG.standard_normal((16, 6, 14, 14)).astype(np.float32)
    w = (RNG.standard_normal((16, 6, 5, 5)) * 0.2).astype(np.float32)
    b = RNG.standard_normal(16).astype(np.float32)
    g = RNG.standard_normal((16, 16, 10, 10)).astype(np.float32)
    ts = [cr.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = cr.conv2d(*ts)
    y.backward(g)
    tt = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
    yt = F.conv2d(*tt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    for a, at in zip(ts, tt, strict=True):
        assert a.grad.dtype == np.float32
        np.testing.assert_allclose(a.grad, at.grad.numpy(), rtol=1e-4, atol=1e-3)


# ----------------------------------------------------------------------------- Jacobians, Hessians


A = n(2, 4)
M = n(3, 3)

# (chainrule function, PyTorch function, input)
VECTOR_FUNCTIONS = [
    (lambda x: cr.sin(x) * x[0], lambda x: torch.sin(x) * x[0], n(3)),
    (lambda x: A @ cr.tanh(x), lambda x: torch.from_numpy(A) @ torch.tanh(x), n(4)),
    (cr.softmax, lambda x: F.softmax(x, dim=-1), n(5)),
    (lambda X: X @ X.T, lambda X: X @ X.T, n(2, 3)),  # rank 2 -> rank 2: shape 2x3x2x2
    (lambda x: cr.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2), n(1, 1, 4, 4)),
]


@pytest.mark.parametrize("k", range(len(VECTOR_FUNCTIONS)))
def test_jacobian_is_pytorchs_transposed(k):
    ours, theirs, x = VECTOR_FUNCTIONS[k]
    jt = torch.autograd.functional.jacobian(theirs, torch.tensor(x)).numpy()  # y.shape + x.shape
    j_den = cr.jacobian(ours)(x)  # x.shape + y.shape
    j_num = cr.jacobian(ours, layout="numerator")(x)
    ky = jt.ndim - x.ndim
    assert j_den.shape == x.shape + jt.shape[:ky]
    perm = tuple(range(x.ndim, x.ndim + ky)) + tuple(range(x.ndim))  # denominator -> numerator
    np.testing.assert_allclose(j_den.transpose(perm), jt, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(j_num, jt, rtol=1e-10, atol=1e-12)


def _hessian_cases():
    X, K = n(4, 3), n(2, 1, 3, 3)
    return [
        (lambda x: x @ M @ x, lambda x: x @ torch.from_numpy(M) @ x, n(3)),
        (
            lambda x: (cr.sin(x) * cr.exp(x)).sum(),
            lambda x: (torch.sin(x) * torch.exp(x)).sum(),
            n(4),
        ),
        (lambda x: cr.log(cr.exp(x).sum()), lambda x: torch.logsumexp(x, 0), n(5)),
        (
            lambda x: (cr.sigmoid(x) ** 2).sum() + cr.tanh(x).sum() ** 2,
            lambda x: (torch.sigmoid(x) ** 2).sum() + torch.tanh(x).sum() ** 2,
            n(3),
        ),
        (
            lambda x: cr.softmax_cross_entropy(x.reshape(2, 3), np.array([0, 2])),
            lambda x: F.cross_entropy(x.reshape(2, 3), torch.tensor([0, 2])),
            n(6),
        ),
        # a one-layer network's error as a function of its weight matrix: Hessian 3x2x3x2
        (
            lambda W: cr.softmax_cross_entropy(cr.tanh(X @ W), np.array([0, 1, 1, 0])),
            lambda W: F.cross_entropy(
                torch.tanh(torch.from_numpy(X) @ W), torch.tensor([0, 1, 1, 0])
            ),
            n(3, 2),
        ),
        # through the pooling and the convolution (second derivatives of the layers' vjps)
        (
            lambda x: (cr.max_pool2d(x, 3, stride=1) ** 3).sum(),
            lambda x: (F.max_pool2d(x, 3, stride=1) ** 3).sum(),
            n(1, 1, 4, 4),
        ),
        (
            lambda x: (cr.conv2d(x, K, padding=1) ** 2).sum(),
            lambda x: (F.conv2d(x, torch.from_numpy(K), padding=1) ** 2).sum(),
            n(1, 1, 4, 3),
        ),
        (
            lambda x: cr.mse(cr.sqrt(x) * x, np.ones(3)),
            lambda x: F.mse_loss(torch.sqrt(x) * x, torch.ones(3, dtype=torch.float64)),
            pos(3),
        ),
    ]


HESSIAN_CASES = _hessian_cases()


@pytest.mark.parametrize("k", range(len(HESSIAN_CASES)))
def test_hessian_matches_pytorch(k):
    ours, theirs, x = HESSIAN_CASES[k]
    h = cr.hessian(ours)(x)
    ht = torch.autograd.functional.hessian(theirs, torch.tensor(x)).numpy()
    assert h.shape == x.shape + x.shape == ht.shape
    np.testing.assert_allclose(h, ht, rtol=1e-9, atol=1e-11)
    flat = h.reshape(x.size, x.size)
    np.testing.assert_allclose(flat, flat.T, rtol=1e-9, atol=1e-11)  # symmetric


@pytest.mark.parametrize("k", range(len(VECTOR_FUNCTIONS)))
def test_jvp_and_vjp_match_pytorch(k):
    ours, theirs, x = VECTOR_FUNCTIONS[k]
    rng = np.random.default_rng(k)
    v = rng.standard_normal(x.shape)
    y, jv = cr.jvp(ours, x, v)
    yt, jvt = torch.autograd.functional.jvp(theirs, torch.tensor(x), torch.tensor(v))
    np.testing.assert_allclose(y, yt.numpy(), rtol=1e-12)
    np.testing.assert_allclose(jv, jvt.numpy(), rtol=1e-10, atol=1e-12)
    u = rng.standard_normal(yt.shape)
    y2, pullback = cr.vjp(ours, x)
    _, ju_t = torch.autograd.functional.vjp(theirs, torch.tensor(x), torch.tensor(u))
    np.testing.assert_allclose(pullback(u), ju_t.numpy(), rtol=1e-10, atol=1e-12)
