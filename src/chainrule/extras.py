"""The optional dependencies (`pip install "chainrule[train]"`): one clear line when one is missing.

The core install needs NumPy only. Training, checkpoints, the 8x8 digits, plots and reading
PNG files need extras; :func:`require` imports one and, when it is missing, raises a
``ModuleNotFoundError`` whose message names the pip command, and :func:`missing_extra` finds
that message for the command line (``chainrule ...: error: ...``, never a traceback).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "require", "missing_extra"]

#: top-level module -> (the package pip installs, the chainrule extra that brings it)
EXTRAS: dict[str, tuple[str, str]] = {
    "safetensors": ("safetensors", "train"),
    "sklearn": ("scikit-learn", "train"),
    "tqdm": ("tqdm", "train"),
    "matplotlib": ("matplotlib", "plot"),
    "PIL": ("Pillow", "train"),
}


def install_hint(module: str, extra: str | None = None) -> str:
    """``pip install "chainrule[train]"`` for the extra that brings ``module``."""
    top = module.split(".")[0]
    extra = extra or EXTRAS.get(top, (top, "train"))[1]
    return f'pip install "chainrule[{extra}]"'


def require(module: str, purpose: str, extra: str | None = None, also: str = "") -> ModuleType:
    """Import ``module``; when it is missing say what needs it and how to install it.

    ``purpose``: what needs it ("writing checkpoints"); ``also``: another way out
    ("or pass --no-plots").
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        package = EXTRAS.get(top, (top, ""))[0]
        raise ModuleNotFoundError(
            f"{purpose} needs {package}, which is not installed: {install_hint(module, extra)}"
            + (f" {also}" if also else ""),
            name=top,
        ) from e


def missing_extra(e: BaseException) -> str | None:
    """One line for an ImportError of an optional module (``e`` or one of its causes), else None.

    The outermost message that names a pip command wins (the library's own wording).
    """
    chain: list[BaseException] = []
    seen: BaseException | None = e
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    missing = [
        (s.name or "").split(".")[0]
        for s in chain
        if isinstance(s, ImportError) and (s.name or "").split(".")[0] in EXTRAS
    ]
    if not missing:
        return None
    for s in chain:
        if isinstance(s, ImportError) and "pip install" in str(s):
            return str(s)
    package = EXTRAS[missing[0]][0]
    return f"this needs {package}, which is not installed: {install_hint(missing[0])}"
