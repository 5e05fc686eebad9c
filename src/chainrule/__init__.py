"""chainrule: the lecture "Calculus" for xNNs as verified, fast NumPy software.

    import chainrule as cr
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    e = (x * x).sum()
    e.backward()            # x.grad == 2 x
    cr.grad(lambda x: (x * x).sum())([1.0, 2.0])
    cr.jacobian(f)(x)       # denominator layout: x.shape + y.shape (K x M)

Operations come from one table of derivative rules (:mod:`chainrule.rules`); every rule is
checked against central differences by ``chainrule gradcheck``.

The package loads lazily (PEP 562): ``import chainrule`` (and ``chainrule.cli``, whose
``--help`` needs argparse alone) imports neither NumPy nor the rule table; the first use of
a name (``cr.tensor``, ``cr.relu``, ``cr.nn``) loads the core: the engine, the table, the
functional transforms.
"""

from __future__ import annotations

import importlib

# _launch first, before NumPy loads its BLAS: a rank of `mpiexec -n N` (N > 1) gets one thread
from . import _launch  # noqa: F401

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (~10 ms)
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

#: the names of the core, by the module that defines them
_CORE: dict[str, tuple[str, ...]] = {
    ".engine": (
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
    ),
    ".backend": ("set_backend", "get_backend", "use_backend"),
    ".functional": (
        "derivative",
        "grad",
        "value_and_grad",
        "jacobian",
        "hessian",
        "directional_derivative",
        "linearize",
        "jvp",
        "vjp",
    ),
    ".check": ("check_grad", "GradCheckReport", "gradcheck"),
    ".graph": ("to_dot",),
}

_SUBPACKAGES = {
    "rules",
    "engine",
    "backend",
    "functional",
    "check",
    "graph",
    "models",
    "nn",
    "optim",
    "train",
    "data",
    "optimize",
    "approx",
    "display",
}


def _load_core() -> dict[str, Any]:
    """Import the engine, the rule table and the core's modules; bind their names here."""
    names: dict[str, Any] = {}
    rules = importlib.import_module(".rules", __name__)
    for module, defined in _CORE.items():
        m = importlib.import_module(module, __name__)
        names.update((name, getattr(m, name)) for name in defined)
    # every entry of the table: chainrule.relu, chainrule.conv2d, ...
    table = [name for name in rules.TABLE if not name.startswith("_")]
    names.update((name, getattr(rules, name)) for name in rules.__all__)
    names["abs"] = rules.absolute  # chainrule.abs reads like the lecture
    names["__all__"] = [name for defined in _CORE.values() for name in defined] + ["abs", *table]
    globals().update(names)
    return names


def __getattr__(name: str) -> Any:  # PEP 562: names load when first used
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name.startswith("__") and name != "__all__":  # e.g. __path__ probes: not ours
        raise AttributeError(f"module 'chainrule' has no attribute {name!r}")
    names = _load_core()
    if name in names:
        return names[name]
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_load_core()) | _SUBPACKAGES)
