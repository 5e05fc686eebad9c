"""chainrule: the lecture "Calculus" for xNNs as verified, fast NumPy software.

    import chainrule as cr
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    e = (x * x).sum()
    e.backward()            # x.grad == 2 x
    cr.grad(lambda x: (x * x).sum())([1.0, 2.0])
    cr.jacobian(f)(x)       # denominator layout: x.shape + y.shape (K x M)

Operations come from one table of derivative rules (:mod:`chainrule.rules`); every rule is
checked against central differences by ``chainrule gradcheck``.
"""

from .check import GradCheckReport, check_grad
from .functional import (
    derivative,
    directional_derivative,
    grad,
    hessian,
    jacobian,
    jvp,
    linearize,
    value_and_grad,
    vjp,
)
from .graph import to_dot
from .rules import (
    COMPOSITES,
    absolute,
    add,
    affine,
    avg_pool2d,
    broadcast_to,
    cast,
    concat,
    conv2d,
    cos,
    cross_entropy,
    divide,
    exp,
    linear,
    log,
    log_softmax,
    matmul,
    max,
    max_pool2d,
    mean,
    mse,
    multiply,
    negative,
    power,
    relu,
    reshape,
    sigmoid,
    sin,
    softmax,
    softmax_cross_entropy,
    split,
    sqrt,
    stack,
    subtract,
    sum,
    tanh,
    transpose,
)
from .tensor import (
    RULES,
    GraphError,
    ShapeError,
    Tensor,
    autograd_grad,
    enable_grad,
    is_grad_enabled,
    no_grad,
    tensor,
)

abs = absolute  # noqa: A001  (chainrule.abs reads like the lecture)

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "autograd_grad",
    "GraphError",
    "ShapeError",
    "RULES",
    "COMPOSITES",
    "derivative",
    "grad",
    "value_and_grad",
    "jacobian",
    "hessian",
    "directional_derivative",
    "linearize",
    "jvp",
    "vjp",
    "check_grad",
    "GradCheckReport",
    "to_dot",
    "add",
    "subtract",
    "negative",
    "multiply",
    "divide",
    "power",
    "exp",
    "log",
    "sqrt",
    "abs",
    "absolute",
    "sin",
    "cos",
    "sigmoid",
    "tanh",
    "relu",
    "matmul",
    "transpose",
    "linear",
    "affine",
    "sum",
    "mean",
    "max",
    "reshape",
    "broadcast_to",
    "cast",
    "concat",
    "stack",
    "split",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "mse",
    "softmax_cross_entropy",
]
