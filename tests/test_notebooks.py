"""The lecture's notebooks: each runs top to bottom without an error, and none carries outputs."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL = "chainrule-tests"
SECTIONS = ("derivatives", "backpropagation", "optimization", "training", "approximation")


def test_there_is_one_notebook_per_lecture_section():
    names = [p.stem for p in NOTEBOOKS]
    assert [n.split("_", 1)[1] for n in names] == list(SECTIONS), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_carry_no_outputs(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: clear them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} was executed"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} keeps widget state"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A Jupyter kernel spec for this very interpreter (not whatever 'python3' is installed)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    return root


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, kernel_dir, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    # the kernel imports this checkout's chainrule, whichever way it is installed
    src = str(REPO / "src")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "data"))  # no full MNIST: its cell says so
    nb = nbformat.read(path, as_version=4)
    # one more cell, the test's own: the kernel's CPU time (wall time depends on the machine's load)
    nb.cells.append(nbformat.v4.new_code_cell("import time; print(time.process_time())"))
    client = NotebookClient(
        nb, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    wall = time.perf_counter() - start
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    cpu = float(nb.cells.pop().outputs[0].text)
    assert cpu < 60, (
        f"{path.name} took {cpu:.0f} s of CPU ({wall:.0f} s); it must take under a minute"
    )
    shown = {
        key for cell in nb.cells for out in cell.get("outputs", []) for key in out.get("data", {})
    }
    if path.stem.endswith(("derivatives", "backpropagation")):
        assert "text/html" in shown  # check_grad reports and the rule table as HTML tables
    if path.stem.endswith("backpropagation"):
        assert "image/svg+xml" in shown or "dot" not in _programs()  # SVG when Graphviz is here
    if path.stem.endswith(("optimization", "approximation", "training")):
        assert "image/png" in shown  # the returned Figures (and the live curves) shown inline


def _programs() -> set[str]:
    import shutil

    return {"dot"} if shutil.which("dot") else set()
