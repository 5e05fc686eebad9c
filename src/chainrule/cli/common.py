"""What the subcommands share: their one-line help, argument types, messages (argparse only)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

#: each subcommand's one-line help, in the order of the lecture (``chainrule --help`` lists them
#: without importing the subcommands' modules)
SUMMARIES = {
    "gradcheck": "check every derivative rule against central differences",
    "graph": "draw the forward and backward graph of a small network (Graphviz DOT, SVG)",
    "optimize": "minimise a typed function by gradient descent (constraints: log barrier)",
    "critical": "find and classify the critical points of a typed function",
    "train": "train the MLP or the CNN on the 8x8 digits (offline) or MNIST",
    "evaluate": "evaluate a trained checkpoint on its dataset's test (or train) split",
    "predict": "classify digit images (PNG or MNIST IDX) with a trained checkpoint",
    "export": "write a checkpoint's parameters as a PyTorch state_dict (safetensors)",
    "import": "turn a PyTorch state_dict (safetensors) of the mlp or LeNet-5 into a checkpoint",
    "approx": "build the universal-approximation network for f and measure its error",
}


def count(text: str) -> int:
    """An argparse type: an integer such as 100000 or 1e5 (its range is checked by the library)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer such as 1000 or 1e6, got {text!r}")
    return int(value)


def flag_names(message: str, names: Sequence[str]) -> str:
    """A library message with its keywords (max_neurons) written as the options (--max-neurons)."""
    for name in names:
        flag = f"--{name.replace('_', '-')}"
        message = message.replace(f"raise {name}", f"raise {flag}")
        if message.startswith(f"{name} "):
            message = flag + message[len(name) :]
    return message


def add_vars(p: argparse.ArgumentParser) -> None:
    """``--vars NAME ...``: the variables of the typed expression and their order."""
    p.add_argument(
        "--vars",
        nargs="+",
        metavar="NAME",
        help="the variables and their order (default: the names used, x, y, z first)",
    )


def pairs(values: Sequence[float], names: Sequence[str], flag: str) -> list[tuple[float, float]]:
    """One (LO, HI) per variable: ``LO HI`` given once (for every variable) or once per variable."""
    n = len(names)
    if len(values) == 2:
        return [(values[0], values[1])] * n
    if len(values) == 2 * n:
        return list(zip(values[::2], values[1::2], strict=True))
    raise ValueError(
        f"{flag} needs one pair LO HI (for every variable) or one pair per variable: got "
        f"{len(values)} numbers for {n} variable(s) ({', '.join(names)})"
    )


class RegistryChoice(argparse.Action):
    """An option whose choices are the names of a library registry, read when they are needed.

    ``add_argument("--optimizer", action=RegistryChoice, registry=("chainrule.optim",
    "OPTIMIZERS"))``: a new entry of the registry is a new choice, checked as argparse checks
    ``choices``, but the library is imported only when a value is checked (or ``choices``
    is read), so ``--help`` stays free of NumPy. ``choices`` is a property, not an instance
    attribute, which keeps argparse's help formatting (it reads the instance's attributes)
    from listing it; give the option a metavar and name the choices in its help.
    """

    def __init__(self, option_strings: list[str], dest: str, registry: tuple[str, str], **kw):
        self.registry = registry
        super().__init__(option_strings, dest, **kw)

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        import importlib

        module, name = self.registry
        return list(getattr(importlib.import_module(module), name))

    @choices.setter
    def choices(self, value: object) -> None:  # argparse's ``choices=None``: the registry wins
        pass

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        setattr(namespace, self.dest, values)
