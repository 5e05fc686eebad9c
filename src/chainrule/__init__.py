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

# _launch first, before NumPy loads its BLAS: a rank of `mpiexec -n N` (N > 1) gets one thread
from . import _launch  # noqa: F401, I001
from . import rules
from .backend import get_backend, set_backend, use_backend
from .check import GradCheckReport, check_grad, gradcheck
from .engine import (
    COMPOSITES,
    RULES,
    Composite,
    GraphError,
    Rule,
    ShapeError,
    Tensor,
    autograd_grad,
    composite,
    enable_grad,
    is_grad_enabled,
    no_grad,
    rule,
    tensor,
)
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
from .rules import *  # noqa: F403  (every entry of the table: chainrule.relu, chainrule.conv2d, ...)

abs = rules.absolute  # noqa: A001  (chainrule.abs reads like the lecture)

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
    "Rule",
    "rule",
    "Composite",
    "composite",
    "RULES",
    "COMPOSITES",
    "set_backend",
    "get_backend",
    "use_backend",
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
    "gradcheck",
    "to_dot",
    "abs",
    *(name for name in rules.TABLE if not name.startswith("_")),
]


_SUBPACKAGES = {"models", "nn", "optim", "train", "data", "optimize", "approx", "display"}


def __getattr__(name: str):  # PEP 562: cr.models, cr.nn, ... load when first used
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")
