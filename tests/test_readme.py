"""Every snippet of the README runs as written and prints what it says.

- The set-up: the virtual-environment line runs, and the test command is .ci/run's, verbatim.
- ```python blocks: all of them run, in order, the blocks of one ``## `` section in one namespace
  (they read as one session, as a notebook's cells do), in a scratch folder with MNIST in the
  default data folder. Each value a comment states is compared with an independent oracle
  (closed forms, central differences, PyTorch, NumPy).
- ```console blocks: each ``$ chainrule ...`` runs through the CLI's main() and prints the lines
  shown ("..." skips lines). Masked, because a machine changes them: times and throughputs;
  the rule errors of ``gradcheck`` (rounding; PASS and formula are compared); the losses of
  ``train``, which depend on the BLAS thread count (its accuracy must reach the README's claim).
- ```bash blocks: every ``chainrule`` command (also after ``mpiexec``) is parsed by the CLI's own
  parser. Run as written as well: the main job (``train --dataset digits``), ``graph``, and the
  commands on a trained run (evaluate, predict, export, import). Parsed only, because they train
  for minutes: the full-MNIST and the mpiexec training runs (tests/test_train.py and
  tests/test_distributed.py run them in small); their ``runs/mlp-mnist`` is stood in for by one
  epoch of the same 784-800-10 MLP on the 8,000 / 2,000 split. Not run here: pip, jupyter
  (tests/test_notebooks.py runs the notebooks) and mkdocs (.ci/run builds the site).
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import io
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BLOCK = re.compile(r"^```([a-z]*)\n(.*?)^```", re.S | re.M)
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def blocks(language: str) -> list[tuple[int, str, str]]:
    """(line number, ``## `` section, text) of the README's code blocks in ``language``."""
    found = []
    for m in BLOCK.finditer(README):
        if m.group(1) == language:
            before = README[: m.start()]
            sections = re.findall(r"^## (.+)$", before, re.M)
            found.append((before.count("\n") + 2, sections[-1] if sections else "", m.group(2)))
    return found


def _commands(text: str) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln.startswith("pip install")]


def test_ci_runs_exactly_the_readme_test_command():
    readme = _commands(README)
    ci = _commands((REPO / ".ci" / "run").read_text())
    assert len(readme) >= 2, "the README must start with the main-job and the test command"
    test_cmd = readme[1]
    assert "pytest" in test_cmd
    assert ci == [test_cmd]


def test_the_set_up_creates_a_virtual_environment_first(tmp_path):
    line = re.search(r"`(python3 -m venv [^`]*)`", README)
    assert line is not None, "the README must say how to create a virtual environment"
    assert line.start() < README.index("```bash"), "... before the first command"
    command = line.group(1).replace("-m venv ", "-m venv --without-pip ")  # pip: seconds more
    probe = 'python -c "import sys; print(sys.prefix)"'
    done = subprocess.run(
        ["bash", "-c", f"{command} && {probe}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == tmp_path / ".venv"  # activated: python is the venv's


# ------------------------------------------------------------------------- the scratch folder


@pytest.fixture(scope="module")
def work(tmp_path_factory, mnist_dir_or_none):
    """A scratch folder as the current directory, HOME beside it with MNIST's test files in the
    default data folder (~/.cache/chainrule/mnist), no downloads, the repository's docs/."""
    root = tmp_path_factory.mktemp("readme")
    home, cwd = root / "home", root / "work"
    cwd.mkdir()
    (cwd / "docs").symlink_to(REPO / "docs")  # the sample digits, as in a clone
    if mnist_dir_or_none is not None:
        data = home / ".cache" / "chainrule" / "mnist"
        data.mkdir(parents=True)
        for name in MNIST_TEST_FILES:
            (data / name).symlink_to(mnist_dir_or_none / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("CHAINRULE_DATA", raising=False)
        mp.delenv("XDG_CACHE_HOME", raising=False)
        mp.setenv("MPLBACKEND", "Agg")
        mp.setattr("chainrule.data.mnist.MNIST_MIRRORS", ())  # tests never download
        mp.chdir(cwd)
        yield cwd


@pytest.fixture(scope="module")
def mnist_dir_or_none():
    from conftest import _mnist_dir

    return _mnist_dir()


@pytest.fixture
def mnist_in_home(work, mnist_dir):  # mnist_dir skips (or fails under CI) without the files
    return work


_RAN: dict[str, tuple[int, str]] = {}


def cli(command: str) -> tuple[int, str]:
    """Run one ``chainrule ...`` line through main() (once per line); (exit code, stdout)."""
    from chainrule.cli import main

    if command not in _RAN:
        argv = [os.path.expanduser(w) for w in shlex.split(command, comments=True)]
        assert argv[0] == "chainrule", command
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(argv[1:])
        _RAN[command] = (code, out.getvalue())
    return _RAN[command]


def parses(argv: list[str]):
    """The CLI's own parser reads ``argv`` (SystemExit with argparse's message if not)."""
    from chainrule.cli import build_parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"chainrule {shlex.join(argv)}: {err.getvalue().strip()}")


# --------------------------------------------------------------------------- python snippets


def run_python(code: str, line: int, namespace: dict) -> dict[str, object]:
    """Run a README block statement by statement; the value of each expression statement,
    keyed by its source text (what a notebook cell would show)."""
    values: dict[str, object] = {}
    tree = ast.parse(code)
    sources = [ast.get_source_segment(code, stmt) or "" for stmt in tree.body]
    ast.increment_lineno(tree, line - 1)  # tracebacks point at the README's lines
    for stmt, source in zip(tree.body, sources, strict=True):
        if isinstance(stmt, ast.Expr):
            expression = compile(ast.Expression(stmt.value), "README.md", "eval")
            values[source] = eval(expression, namespace)  # the README's own code, not input
        else:
            exec(compile(ast.Module([stmt], []), "README.md", "exec"), namespace)
    return values


def run_section(title: str) -> tuple[dict, dict[str, object], str]:
    """Run every python block of one ``## `` section in one namespace: (namespace, values,
    what they printed)."""
    namespace: dict = {"__name__": "readme"}
    values: dict[str, object] = {}
    printed = io.StringIO()
    found = [(line, code) for line, section, code in blocks("python") if section == title]
    assert found, f"no python block in the README's section {title!r}"
    with contextlib.redirect_stdout(printed):
        for line, code in found:
            values.update(run_python(code, line, namespace))
    return namespace, values, printed.getvalue()


def value(values: dict[str, object], start: str) -> object:
    """The value of the one expression statement whose text starts with ``start``."""
    hits = [k for k in values if k.startswith(start)]
    assert len(hits) == 1, f"expected one README line starting with {start!r}, found {hits}"
    return values[hits[0]]


def claimed(pattern: str) -> str:
    """What the README says, read from it (one match of ``pattern``'s group 1)."""
    hits = re.findall(pattern, README)
    assert len(hits) == 1, f"expected one README match of {pattern!r}, found {hits}"
    return hits[0]


def central_jacobian(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Numerator layout J[m, k] = d f_m / d x_k by central differences, float64."""
    cols = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=1)


PYTHON_SECTIONS = sorted({section for _, section, _ in blocks("python")})
CHECKED_SECTIONS = {
    "Derivatives",
    "Development",
    "Optimization (`chainrule.optimize`)",
    "Training a network (the lecture's main job)",
    "Universal function approximation: the lecture's proof as a network",
}


def test_every_python_block_is_in_a_checked_section():
    assert set(PYTHON_SECTIONS) == CHECKED_SECTIONS, "a section's python blocks need a test here"


def test_derivatives_snippets(work):
    import torch

    ns, v, printed = run_section("Derivatives")
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(value(v, "cr.grad(lambda x: x @ A @ x)"), (A + A.T) @ [1, 1])
    np.testing.assert_allclose(value(v, "cr.grad(lambda x: x @ A @ x)"), [7, 13])
    np.testing.assert_allclose(
        value(v, "cr.derivative(lambda x: cr.sin(x) * x)"), math.sin(1) + math.cos(1)
    )
    x, u = np.array([0.5, 1.0, 2.0]), np.array([1.0, 0.0, 0.0])
    numerator = central_jacobian(lambda z: np.sin(z) * z[0], x)  # J[m, k] = d f_m / d x_k
    denominator = value(v, "cr.jacobian(f)(x)")
    np.testing.assert_allclose(denominator, numerator.T, atol=1e-8)  # K x M: x.shape + y.shape
    np.testing.assert_allclose(value(v, 'cr.jacobian(f, layout="numerator")'), numerator, atol=1e-8)
    np.testing.assert_allclose(value(v, "cr.hessian("), [[6, 0], [0, 12]])
    assert value(v, "cr.directional_derivative(") == pytest.approx(1.0)  # grad f(x)^T u
    np.testing.assert_allclose(value(v, "lin(np.array([0.1]))"), [1.1])
    np.testing.assert_allclose(ns["Jv"], numerator @ u, atol=1e-8)  # J^T u in the README's J
    np.testing.assert_allclose(value(v, "pullback(np.ones(3))"), numerator.T @ np.ones(3))
    assert value(v, "cr.derivative(cr.derivative(cr.sin))") == pytest.approx(-math.sin(0.3))

    # the Tensor block: e = sum(ReLU(x A - 1)^2) and de/dx, against PyTorch
    xt = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (torch.relu(xt @ torch.from_numpy(A) - 1) ** 2).sum().backward()
    np.testing.assert_allclose(ns["x"].grad, xt.grad.numpy())
    assert ns["x"].grad.shape == (2,)

    # the graph block prints two DOT texts: both graphs in clusters, then the named backward one
    both, backward = printed.split("digraph chainrule {")[1:]
    assert "cluster_forward" in both and "cluster_backward" in both and 'label="x5' in both
    assert "cluster_forward" not in backward
    for name, _ in ns["model"].named_parameters():
        assert f"de/d{name}" in backward  # names=model.named_parameters() labels the gradients


def test_optimization_snippets(work):
    ns, v, _ = run_section("Optimization (`chainrule.optimize`)")
    A, y = ns["A"], ns["y"]
    exact = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(value(v, "opt.lstsq(A, y).x"), exact, rtol=1e-10)
    np.testing.assert_allclose(value(v, "opt.least_squares_gd(A, y, tol=1e-8).x"), exact, atol=1e-6)

    x, iterations, converged = value(v, "r.x, r.iterations, r.converged")
    np.testing.assert_allclose(x, [1, 1], atol=1e-5)
    assert converged and iterations == int(claimed(r"# ~\[1, 1\], (\d+), True"))
    r = ns["r"]
    figure = value(v, 'opt.contour_plot(f, path=r, file="descent.png")')
    drawn = [ln.get_xydata() for ax in figure.axes for ln in ax.get_lines()]
    assert any(d.shape == r.path.shape and np.allclose(d, r.path) for d in drawn)  # r's path
    assert (work / "descent.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert value(v, "opt.classify(") == "saddle"
    # x^3 - 3x + y^2: grad (3x^2 - 3, 2y) = 0 at (+-1, 0); Hessian diag(6x, 2)
    found = {(round(float(p.x[0]), 6), round(float(p.x[1]), 6)): p.kind for p in
             value(v, "opt.critical_points(")}  # fmt: skip
    assert found == {(1.0, 0.0): "minimum", (-1.0, 0.0): "saddle"}
    evidence = value(v, "opt.is_convex(f,")
    assert not evidence  # Rosenbrock is not convex: the counterexample must be one
    c = evidence.counterexample
    rosen = lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2  # noqa: E731
    t, px, py = c["theta"], np.asarray(c["x"]), np.asarray(c["y"])
    assert rosen(t * px + (1 - t) * py) > t * rosen(px) + (1 - t) * rosen(py)
    cx, multipliers = value(v, 'c.x, c.info["multipliers"]')
    np.testing.assert_allclose(cx, [0.2, 0.4], atol=1e-5)  # a / |a|^2
    np.testing.assert_allclose(multipliers, [0.4], atol=1e-4)  # 2 / |a|^2


@pytest.mark.mnist
def test_training_snippets(mnist_in_home, trained_runs):
    import torch

    export = readme_bash("chainrule export runs/mlp-mnist")[0]
    assert cli(export)[0] == 0  # the README's bash block before the PyTorch code writes the file
    ns, v, printed = run_section("Training a network (the lecture's main job)")
    assert float(printed.split()[0]) == pytest.approx(0.97, abs=0.015)  # print(...accuracy) ~0.97

    from chainrule.data import load_mnist
    from chainrule.train import load_model

    images = load_mnist(split="test", download=False).images[:100]
    ours, _ = load_model(trained_runs["mnist"])
    from chainrule import no_grad

    with no_grad():
        expected = ours(images).numpy()
    np.testing.assert_allclose(ns["logits"].detach().numpy(), expected, atol=1e-4)
    assert isinstance(ns["net"], torch.nn.Sequential) and ns["arch"]["name"] == "mlp"
    with no_grad():
        back = ns["model"](images).numpy()
    np.testing.assert_allclose(back, expected, atol=1e-4)  # and back, the same network


def test_approximation_snippets(work):
    ns, v, printed = run_section(
        "Universal function approximation: the lecture's proof as a network"
    )
    x = np.linspace(-3, 3, 10**5)
    assert ns["y"].shape == (10**5, 1)
    assert np.abs(ns["y"][:, 0] - np.sin(3 * x)).max() <= 0.05**2 / 8 * 9  # d^2/8 max|f''|
    for words in ("width 121", "depth 3", "15,126 parameters", "max", "rms", "bound"):
        assert words in printed  # print(approx.error_report(net, f))
    assert value(v, "approx.partition_of_unity(bad)") == pytest.approx((0.0, 1.0))
    assert value(v, "approx.count_linear_regions(approx.sawtooth(10), (0, 1))") == 1024


# what a module of src/chainrule/rules/ imports, which the "Adding a rule" entry is written in
RULES_MODULE_IMPORTS = """\
from chainrule import backend as B
from chainrule.engine import rule
from chainrule.rules.activations import sigmoid
from chainrule.rules._common import n
"""


def test_the_adding_a_rule_entry_is_a_rule_that_passes_the_table_checks(tmp_path):
    """The Development section's entry, as the body of a rules/ module, in a process of its
    own (a new rule stays out of this process's table): gradcheck passes at orders 1 and 2."""
    found = [(line, t) for line, section, t in blocks("python") if section == "Development"]
    assert len(found) == 1, "one python block in Development: the new rule's entry"
    line, entry = found[0]
    name = re.search(r"@rule\([^)]*\)\ndef (\w+)\(", entry).group(1)
    check = f"""
import chainrule as cr
table = cr.gradcheck([{name!r}], orders=(1, 2))
print(table)
assert table.ok, "the README's new rule fails the table checks"
"""
    script = tmp_path / "entry.py"
    script.write_text(RULES_MODULE_IMPORTS + "\n" * (line - 5) + entry + check)  # README lines
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^{name} +\S+ +\S+ +PASS ", done.stdout, re.M), done.stdout


# --------------------------------------------------------------------------- console blocks


TIME = re.compile(r"\d[\d,]*(\.\d+)? (s|samples/s)\b")
NUMBER = re.compile(r"\d[\d,]*(\.\d+)?(e[+-]\d+)?")


def masked(command: str, line: str) -> str:
    """A printed line with what varies from machine to machine masked (see the module doc)."""
    words = command.split()
    if words[1] == "gradcheck" and re.match(r"\w+\s+\d\.\de[+-]\d\d\s", line):
        return NUMBER.sub("#", line, count=2)  # the two errors: rounding; name, PASS, formula stay
    if words[1] == "train" and (line.startswith("epoch") or line.startswith("test accuracy")):
        return NUMBER.sub("#", line)  # losses and errors depend on the BLAS thread count
    return TIME.sub("# \\2", line)


def shown_commands() -> list[tuple[int, str, list[str]]]:
    """(README line, command, the output lines shown) of every ``$ `` line of console blocks."""
    found = []
    for line, _, text in blocks("console"):
        current = None
        for i, row in enumerate(text.rstrip("\n").split("\n")):
            if row.startswith("$ "):
                current = (line + i, row[2:], [])
                found.append(current)
            else:
                assert current is not None, f"README.md:{line}: a console block starts with $"
                current[2].append(row)
    for _, _, out in found:
        while out and not out[-1]:
            out.pop()
    return found


def assert_shows(command: str, shown: list[str], printed: str) -> None:
    """``printed`` is ``shown``, where "..." stands for any lines; masks as masked()."""
    actual = [masked(command, ln) for ln in printed.rstrip("\n").split("\n")]
    want = [ln if ln == "..." else masked(command, ln) for ln in shown]
    pattern = "".join(r"(?:[^\n]*\n)*?" if ln == "..." else re.escape(ln) + r"\n" for ln in want)
    if re.fullmatch(pattern, "\n".join(actual) + "\n") is None:
        diff = difflib.unified_diff(want, actual, "the README shows", "it prints", lineterm="")
        pytest.fail(f"{command}:\n" + "\n".join(diff))


@pytest.mark.parametrize(
    "line, command, shown", shown_commands(), ids=[c for _, c, _ in shown_commands()]
)
def test_console_output_is_what_the_readme_shows(work, line, command, shown):
    code, printed = cli(command)
    assert code == 0, f"README.md:{line}: {command} exited with {code}"
    assert_shows(command, shown, printed)
    if command == "chainrule train --dataset digits":  # the main job's claim, read from it
        least = float(claimed(r"# main job .*>= (\d+)%\)"))
        assert float(re.search(r"test accuracy ([\d.]+)%", printed)[1]) >= least


def test_masking_still_sees_a_wrong_line():
    """The comparison fails when a line differs in what is not masked."""
    with pytest.raises(pytest.fail.Exception, match="the README shows"):
        assert_shows("chainrule critical x", ["a", "b"], "a\nc\n")
    with pytest.raises(pytest.fail.Exception, match="the README shows"):
        assert_shows("chainrule critical x", ["a"], "a\nb\n")  # prints more than shown
    assert_shows("chainrule critical x", ["a", "...", "d"], "a\nb\nc\nd\n")
    assert_shows(
        "chainrule train", ["epoch 1", "...", "epoch 3", "", "x"], "epoch 1\nepoch 2\nepoch 3\n\nx"
    )
    row = "relu                     1.0e-10    0.0e+00  PASS    d ReLU(x)/dx = diag(1[x > 0])"
    gc = "chainrule gradcheck"
    assert masked(gc, row) == masked(gc, row.replace("1.0", "3.1"))  # an error's digits
    assert masked(gc, row) != masked(gc, row.replace("PASS", "FAIL"))
    assert masked(gc, row) != masked(gc, row.replace("x > 0", "x >= 0"))  # the formula


# ------------------------------------------------------------------------------ bash blocks


def bash_commands() -> list[tuple[int, str]]:
    """(README line, command) of every bash line; heredoc bodies and comment lines left out."""
    found = []
    for line, _, text in blocks("bash"):
        heredoc = None
        for i, row in enumerate(text.split("\n")):
            if heredoc is not None:
                heredoc = None if row.strip() == heredoc else heredoc
                continue
            if not row.strip() or row.lstrip().startswith("#"):
                continue
            m = re.search(r"<<'?(\w+)'?", row)
            heredoc = m.group(1) if m else None
            found.append((line + i, row.strip()))
    return found


# each bash line that is not a chainrule command: why it is not run here
NOT_RUN = {
    "pip install": "the environment these tests run in; .ci/run runs the test command",
    "jupyter lab": "tests/test_notebooks.py executes every notebook",
    "mkdocs": ".ci/run builds the site (mkdocs build --strict)",
    "cat > hosts": "writes a host file for several machines",
    "mpiexec": 'an elided mpiexec line ("..."), with no chainrule command to parse',
}


def chainrule_argv(command: str) -> list[str] | None:
    """The argv after ``chainrule`` in a line (after ``... &&``, ``mpiexec ...``), or None."""
    for part in re.split(r"&&|\|", command):
        words = shlex.split(part, comments=True)
        for i, w in enumerate(words):
            if Path(w).name == "chainrule":
                return words[i + 1 :]
    return None


@pytest.mark.parametrize("line, command", bash_commands(), ids=[c for _, c in bash_commands()])
def test_every_bash_line_is_a_valid_command_or_says_why_not(line, command):
    argv = chainrule_argv(command)
    words = shlex.split(command, comments=True)
    if words[:2] == ["python", words[1]] and words[1].startswith("benchmarks/"):
        # a benchmark (minutes, not part of the tests): it exists and has the options used
        source = (REPO / words[1]).read_text()
        for flag in (w for w in words[2:] if w.startswith("--")):
            assert f'"{flag}"' in source, f"README.md:{line}: {words[1]} has no {flag}"
    elif argv is None:
        assert any(command.startswith(p) for p in NOT_RUN), (
            f"README.md:{line}: {command!r} is neither a chainrule command nor in NOT_RUN"
        )
    elif "..." not in argv:  # "mpiexec ... -iface eth0 ...": an elided command
        parses(argv)


def test_accuracy_recipes_train_as_their_rows_say():
    """The Accuracy table's commands resolve to the settings their rows state."""
    from chainrule.cli.train_cmd import _HYPER
    from chainrule.train import TrainConfig

    recipe = re.compile(r"^\|[^`]*\| `(chainrule train[^`]*)`: ([^|]*) \| [^|]*\|$")
    rows = [r for r in README.splitlines() if recipe.match(r)]
    assert len(rows) == len([r for r in README.splitlines() if r.startswith("| ") and
                             "`chainrule train " in r])  # fmt: skip
    assert len(rows) >= 5
    for row in rows:
        command, said = recipe.match(row).groups()
        args = parses(shlex.split(command)[1:])
        given = {k: getattr(args, k) for k in _HYPER if getattr(args, k) is not None}
        cfg = TrainConfig(dataset=args.dataset, **given).resolved()
        for pattern, actual in (
            (r"(\d+) epochs", cfg.epochs),
            (r"batch (\d+)", cfg.batch_size),
            (r"lr ([\d.]+)", cfg.lr),
            (r"momentum ([\d.]+)", cfg.momentum),
            (r"weight decay ([\d.e-]+)", cfg.weight_decay),
            (r"shifts of up to (\d+) px", cfg.shift),
        ):
            m = re.search(pattern, said)
            if m:
                assert float(m.group(1)) == actual, f"{command}: {pattern} in {said!r}"
        if "weight decay" not in said:
            assert cfg.weight_decay == 0, f"{command}: {said!r} has no weight decay"
        if "shifts of up to" not in said:
            assert cfg.shift == 0, f"{command}: {said!r} has no shifts"
        assert ("cosine" in said) == (cfg.schedule == "cosine"), row
        if "split 8,000 / 2,000" in row:
            assert (cfg.split_test, cfg.split_seed) == (8000, 0), row


@pytest.fixture(scope="module")
def trained_runs(work, mnist_dir_or_none):
    """runs/mlp-digits by the README's main job; runs/mlp-mnist stood in for (see the doc)."""
    code, _ = cli("chainrule train --dataset digits")
    assert code == 0
    runs = {"digits": work / "runs" / "mlp-digits"}
    if mnist_dir_or_none is not None:
        stand_in = "chainrule train --dataset mnist --split-test 8000 --epochs 1 --no-plots"
        assert cli(stand_in + " --no-progress --out runs/mlp-mnist")[0] == 0
        runs["mnist"] = work / "runs" / "mlp-mnist"
    return runs


def readme_bash(start: str) -> list[str]:
    """The lines of the README's one bash block whose first line starts with ``start``."""
    hits = [t for _, _, t in blocks("bash") if t.startswith(start)]
    assert len(hits) == 1, f"expected one bash block starting with {start!r}"
    return [ln for ln in hits[0].splitlines() if ln.strip()]


def test_the_graph_commands_run_as_written(work):
    first, second = readme_bash("chainrule graph --out graph")
    assert cli(first)[0] == 0
    for name in ("forward.dot", "backward.dot", "graph.dot"):
        assert (work / "graph" / name).read_text().startswith("digraph")
    code, dot_text = cli("chainrule graph --print")
    assert code == 0 and dot_text.startswith("digraph")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed: the pipe into it cannot run")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    bin_dir = work / "bin"  # `chainrule` as the installed script would be
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "chainrule"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m chainrule "$@"\n')
    script.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    done = subprocess.run(["bash", "-c", second], cwd=work, env=env, timeout=300)
    assert done.returncode == 0
    assert b"<svg" in (work / "graph.svg").read_bytes()


@pytest.mark.mnist
def test_the_commands_on_a_trained_run_run_as_written(mnist_in_home, trained_runs):
    evaluate, png, idx, paper = readme_bash("chainrule evaluate runs/mlp-digits")
    code, out = cli(evaluate)
    assert code == 0 and "accuracy" in out and "per-class accuracy" in out
    assert "confusion matrix" in out and "surrogate error" in out

    code, out = cli(png)  # the sample digit in the repository
    assert code == 0
    top3 = r"top 3: 7: [\d.]+, \d: [\d.]+, \d: [\d.]+"
    assert re.fullmatch(rf"seven\.png: 7 +\(p = [\d.]+; {top3}\)\n", out), out

    code, out = cli(idx)  # the MNIST test file in the default data folder: labels 7, 2, 1
    assert code == 0
    assert re.findall(r"t10k-images-idx3-ubyte\.gz\[(\d)\]: \d", out) == ["0", "1", "2"]

    code, out = cli(paper)  # dark ink on white paper, read with --invert
    assert code == 0 and re.match(r"seven-on-paper\.png: 7 ", out) and "note" not in out


def test_the_sample_digits_are_what_the_readme_says():
    from PIL import Image

    white = np.asarray(Image.open(REPO / "docs" / "seven.png").convert("L"), dtype=np.int64)
    paper = np.asarray(Image.open(REPO / "docs" / "seven-on-paper.png").convert("L"), np.int64)
    assert white.shape == (56, 48) == paper.shape  # 48 x 56 pixels
    assert np.median(white) < 10 and white.max() > 245  # white on black
    np.testing.assert_array_equal(paper, 255 - white)  # the same 7, dark on white
    assert claimed(r"`docs/seven\.png` \((a handwritten 7, white on black, 48×56 pixels)\)")


@pytest.mark.mnist
def test_the_pytorch_interop_commands_run_as_written(mnist_in_home, trained_runs):
    from safetensors.torch import save_file

    export, import_, evaluate = readme_bash("chainrule export runs/mlp-mnist")
    assert cli(export)[0] == 0
    # lenet5.safetensors is a PyTorch user's state_dict: the README's own LeNet-5 makes one
    definitions = [t for _, _, t in blocks("python") if "def lenet5(" in t]
    assert len(definitions) == 1
    namespace: dict = {}
    exec(compile(definitions[0], "README.md", "exec"), namespace)
    save_file(namespace["lenet5"]().state_dict(), "lenet5.safetensors")
    assert cli(import_)[0] == 0
    code, out = cli(evaluate)
    assert code == 0 and "lenet5" in out and "mnist test set, 10,000 images" in out
