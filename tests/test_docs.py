"""The API reference site: its generated pages, the navigation, the docstrings it renders.

The strict build itself (``mkdocs build --strict``) runs in .ci/run after the tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

import chainrule

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", REPO / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load("hooks")
formulas = _load("formulas")


def _nav_pages() -> set[str]:
    text = (REPO / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:") :]
    return set(re.findall(r":\s*(\S+\.md)\s*$", nav, flags=re.M))


def test_every_generated_page_is_in_the_navigation_and_back():
    generated = set(hooks.pages())
    assert generated == _nav_pages()
    assert {f"api/{p}.md" for p in hooks.API} <= generated


def test_the_readme_sections_become_guide_pages():
    readme = (REPO / "README.md").read_text()
    pages = hooks.guide_pages(readme)
    titles = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert len(pages) == len(titles) + 1  # index.md: the introduction
    for title in titles:
        (page,) = [p for p, text in pages.items() if text.startswith(f"# {title}\n")]
        body = readme.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
        for code in re.findall(r"```[a-z]*\n(.*?)```", body, flags=re.S):
            assert code in pages[page]  # the README's text itself, never a copy kept by hand
    assert "pip install -e" in pages["index.md"]


def test_links_into_the_repository_are_rewritten_for_the_site():
    text = (
        "![g](docs/backward.png) see [bench](benchmarks/README.md), [web](https://x.org/a), "
        "[nb](notebooks/01_derivatives.ipynb), [here](#speed)\n```python\nf[0](x)\n```\n"
    )
    out = hooks._links(text, 1)
    assert "![g](../backward.png)" in out
    assert "bench (`benchmarks/README.md`)" in out
    assert "[web](https://x.org/a)" in out and "[here](#speed)" in out
    assert "[nb](../notebooks.md)" in out
    assert "f[0](x)" in out  # code is left alone


def test_rule_table_is_rendered_from_the_registry():
    page = hooks.rules_page()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", page, flags=re.M)}
    assert set(rows) == set(chainrule.RULES) | set(chainrule.COMPOSITES)
    for name, rule in chainrule.RULES.items():
        assert f"`{rule.formula}`" in rows[name].replace("\\|", "|"), name
    assert "de/da: b; de/db: a" in rows["multiply"]  # d(ab)/da reads b, d(ab)/db reads a
    assert rows["max_pool2d"].rstrip(" |").endswith("yes")  # it saves its argmax mask


def test_notebooks_page_lists_every_notebook():
    page = hooks.notebooks_page()
    for path in (REPO / "notebooks").glob("*.ipynb"):
        assert f"`notebooks/{path.name}`" in page


@pytest.mark.parametrize("page", sorted(hooks.API))
def test_every_public_function_and_class_has_a_docstring(page):
    module = importlib.import_module(hooks.API[page][0])
    names = getattr(module, "__all__", None)
    assert names, f"{module.__name__} needs an __all__ for its API page"
    missing = [
        n
        for n in names
        if (inspect.isclass(getattr(module, n)) or callable(getattr(module, n)))
        and not (inspect.getdoc(getattr(module, n)) or "").strip()
    ]
    assert not missing, f"{module.__name__}: no docstring for {missing}"


def test_formulas_keep_their_asterisks_on_the_site():
    e = formulas.escape_formulas
    assert e("d(a*b)/da = diag(b)") == r"d(a\*b)/da = diag(b)"
    assert e("``x**2`` and `a*b`, then c*d") == r"``x**2`` and `a*b`, then c\*d"
    assert e("text\n    code * stays\n```\na*b\n```") == "text\n    code * stays\n```\na*b\n```"


def test_site_output_is_kept_out_of_git():
    assert "site/" in (REPO / ".gitignore").read_text().split()
    assert "site_dir: site" in (REPO / "mkdocs.yml").read_text()
