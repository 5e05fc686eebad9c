"""griffe extension for the API reference: docstrings keep their formulas as written.

chainrule's docstrings are plain text with formulas such as ``d(a*b)/da = diag(b)`` or
``x_{t+1} = x_t - alpha grad f``; read as Markdown, a pair of ``*`` would turn into italics and
the formula would be shown wrong. Outside code (backtick spans, indented blocks, fences)
every ``*`` is escaped, so the page shows exactly the docstring's text.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def escape_formulas(text: str) -> str:
    """``text`` with each ``*`` outside code escaped for Markdown."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or line.startswith("    ") or line.lstrip().startswith("```"):
            out.append(line)
            continue
        pieces = _CODE_SPAN.split(line)
        # split keeps (ticks, code) groups: every third piece is text outside code
        out.append(
            "".join(
                p.replace("*", r"\*") if i % 3 == 0 else (p if i % 3 == 1 else p + pieces[i - 1])
                for i, p in enumerate(pieces)
            )
        )
    return "\n".join(out)


class EscapeFormulas(griffe.Extension):
    """Escape Markdown emphasis characters in every docstring (see the module docstring)."""

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = escape_formulas(obj.docstring.value)
