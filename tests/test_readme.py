"""The README's set-up commands and .ci/run stay in step."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln.startswith("pip install")]


def test_ci_runs_exactly_the_readme_test_command():
    readme = _commands((REPO / "README.md").read_text())
    ci = _commands((REPO / ".ci" / "run").read_text())
    assert len(readme) >= 2, "the README must start with the main-job and the test command"
    test_cmd = readme[1]
    assert "pytest" in test_cmd
    assert ci == [test_cmd]
