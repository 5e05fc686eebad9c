"""mkdocs hook: the pages generated at every build, so that the site never goes stale.

* ``index.md`` and ``guide/*.md``: the README, its introduction and one page per ``##`` section
  (links into the repository become plain paths: the site holds the documentation only);
* ``rules.md``: the table of derivative rules, read from ``chainrule.RULES`` and
  ``chainrule.COMPOSITES``: name, formula, what the backward rule reads from the forward pass;
* ``notebooks.md``: the notebooks in ``notebooks/`` with their titles and introductions;
* ``api/*.md``: one page per public module, rendered by mkdocstrings from the docstrings.

mkdocs.yml's ``nav`` lists these pages; ``mkdocs build --strict`` fails on any broken link.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parents[1]

#: the API reference: page name -> (module, what it is)
API = {
    "chainrule": ("chainrule", "Tensors, derivatives, the rule functions, checks, graphs"),
    "rules": ("chainrule.rules", "The table of derivative rules, one function per layer"),
    "nn": ("chainrule.nn", "Layers: parameters plus a forward made of rules"),
    "optim": ("chainrule.optim", "Optimisers and learning-rate schedules"),
    "models": ("chainrule.models", "The lecture's MLP and LeNet-5"),
    "data": ("chainrule.data", "MNIST, the 8x8 digits, the mini-batch loader"),
    "train": ("chainrule.train", "The training loop, evaluation, checkpoints, PyTorch interop"),
    "optimize": ("chainrule.optimize", "Least squares, descent, critical points, constraints"),
    "approx": ("chainrule.approx", "Universal approximation, constructively"),
    "display": ("chainrule.display", "Jupyter display: SVG graphs, HTML checks, live curves"),
    "graph": ("chainrule.graph", "Forward and backward graphs as Graphviz DOT"),
}


def _slug(title: str) -> str:
    """The page name of a README section: its first word (``training``, ``speed``)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-").split("-")[0]


def readme_sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(introduction, [(title, body)]) of the README, split at its ``##`` headings."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    intro, rest = parts[0], parts[1:]
    return intro, [(rest[i].strip(), rest[i + 1]) for i in range(0, len(rest), 2)]


def _links(markdown: str, depth: int) -> str:
    """Rewrite the README's links for a page ``depth`` folders below the site's root."""
    up = "../" * depth

    def fix(m: re.Match[str]) -> str:
        bang, text, target = m.group(1), m.group(2), m.group(3)
        if re.match(r"[a-z]+://|#|mailto:", target):
            return m.group(0)
        if target.startswith("docs/"):  # a picture of the docs folder: on the site too
            return f"{bang}[{text}]({up}{target[len('docs/') :]})"
        if target.startswith("notebooks/"):
            return f"[{text}]({up}notebooks.md)"
        return f"{text} (`{target}`)"  # a file of the repository, not of the site

    # outside fenced code only: code keeps its brackets as they are
    pieces = re.split(r"(^```.*?^```)", markdown, flags=re.M | re.S)
    return "".join(
        p if p.startswith("```") else re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", fix, p)
        for p in pieces
    )


def guide_pages(readme: str) -> dict[str, str]:
    """index.md and one guide/<first word>.md per ``##`` section of the README."""
    intro, sections = readme_sections(readme)
    paths = [f"guide/{_slug(title)}.md" for title, _ in sections]
    toc = "\n".join(
        f"- [{title}]({path})" for (title, _), path in zip(sections, paths, strict=True)
    )
    pages = {
        "index.md": _links(intro, 0)
        + "\n## The guide\n\nThe README, one page per section:\n\n"
        + toc
        + "\n\nAlso: [the notebooks](notebooks.md), [the table of rules](rules.md) and the "
        "[API reference](api/chainrule.md).\n"
    }
    for (title, body), path in zip(sections, paths, strict=True):
        pages[path] = f"# {title}\n{_links(body, 1)}"
    return pages


def _cell(text: str) -> str:
    """A formula as a table cell: in a code span, so that ``a*b`` or ``x_1`` stay as written."""
    text = text.replace("\n", " ").replace("|", "\\|")
    return f"`{text}`" if text else ""


def _reads(name: str, rule: Any) -> dict[str, tuple[str, ...]]:
    """What each input's vjp of ``rule`` reads from the forward pass: the entry's ``reads``."""
    if rule.reads is None:
        raise RuntimeError(f"docs/hooks.py: the rule {name!r} does not say what it reads")
    return rule.reads


def rules_page() -> str:
    """The table of rules from the registry: name, formula, what each backward reads."""
    import chainrule

    lines = [
        "# The table of rules",
        "",
        "Generated from `chainrule.RULES` (the primitives) and `chainrule.COMPOSITES` (layers "
        "built from them) when the site is built. *Reads* is what each input's vector-Jacobian "
        "product reads from the forward pass (`out`: the result, `saved`: what the forward set "
        "aside); every other forward value could be freed. `chainrule gradcheck` checks every "
        "entry against central differences.",
        "",
        "| rule | formula | reads for backward | saves |",
        "|---|---|---|---|",
    ]
    for name, rule in chainrule.RULES.items():
        reads = "; ".join(
            f"de/d{arg}: {', '.join(w) if w else 'nothing'}"
            for arg, w in _reads(name, rule).items()
        )
        saves = "yes" if getattr(rule, "saves", False) else ""
        lines.append(f"| `{name}` | {_cell(rule.formula)} | {reads} | {saves} |")
    lines += ["", "## Composite layers", "", "| layer | formula |", "|---|---|"]
    for name, fn in chainrule.COMPOSITES.items():
        lines.append(f"| `{name}` | {_cell(getattr(fn, 'formula', '') or '')} |")
    return "\n".join(lines) + "\n"


def notebooks_page() -> str:
    """The notebooks of notebooks/ with the title and introduction of each."""
    lines = [
        "# The lecture as notebooks",
        "",
        "`notebooks/` in the repository holds one notebook per section of the lecture, each "
        "runnable top to bottom on a CPU in under a minute (the test suite runs them all). "
        'Open them with `pip install -e ".[notebook]" jupyterlab`, then `jupyter lab notebooks/`.',
        "",
    ]
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        first = "".join(cells[0]["source"]) if cells else path.stem
        title, _, rest = first.partition("\n")
        lines += [f"## {title.lstrip('# ').strip()}", "", f"`notebooks/{path.name}`", "", rest, ""]
    return "\n".join(lines)


def api_pages() -> dict[str, str]:
    """One page per public module: mkdocstrings renders it from the docstrings."""
    return {
        f"api/{page}.md": f"# `{module}`\n\n{what}.\n\n::: {module}\n"
        "    options:\n      show_root_heading: false\n      show_root_toc_entry: false\n"
        for page, (module, what) in API.items()
    }


def pages() -> dict[str, str]:
    """Every generated page, by its path in the site."""
    return {
        **guide_pages((REPO / "README.md").read_text()),
        "rules.md": rules_page(),
        "notebooks.md": notebooks_page(),
        **api_pages(),
    }


def on_files(files: Files, config: Any) -> Files:
    for path, content in pages().items():
        files.append(File.generated(config, path, content=content))
    return files
