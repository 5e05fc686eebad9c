"""Nothing lost, nothing silently wrong: runs, checkpoints and files (issue 9, items 13, 15-22).

--overwrite keeps the old run until the new one has a checkpoint; the resume hint is a working
command; resuming on other data is refused; divergence stops with the last finite checkpoint
and valid JSON; everything that can fail fails before the first epoch, naming the target path;
SIGTERM saves like Ctrl-C; killed writes leave recognisable files that the next run removes;
a core-only install names the extra to install; damaged or crafted files are clear errors.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from chainrule import models, optim
from chainrule.cli import main
from chainrule.data import Dataset, load_digits
from chainrule.train import (
    CheckpointError,
    TrainConfig,
    Trainer,
    load_checkpoint,
    load_model,
    run_training,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
QUIET = ["--no-progress", "--no-plots"]


def _strict_json(text: str):
    """json.loads that refuses the non-standard NaN / Infinity tokens."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _idx(path: Path, array: np.ndarray) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return path


def _fake_mnist(folder: Path, shift: int = 0) -> Path:
    """MNIST's four files with 96 / 48 digits scaled up to 28 x 28; ``shift`` rolls the labels."""
    folder.mkdir(parents=True, exist_ok=True)
    train, test = load_digits()
    for prefix, d, n in (("train", train, 96), ("t10k", test, 48)):
        small = (d.images[:n, 0] * 255).round().astype(np.uint8)
        big = np.zeros((n, 28, 28), np.uint8)
        big[:, 2:26, 2:26] = small.repeat(3, axis=1).repeat(3, axis=2)
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", big)
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.roll(d.labels[:n], shift))
    return folder


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    return _fake_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test here may download: a missing MNIST file must stay an error."""
    monkeypatch.setattr("chainrule.data.mnist.MNIST_MIRRORS", ())


@pytest.fixture(scope="module")
def small():
    train, test = load_digits()
    return train.subset(slice(0, 300)), test.subset(slice(0, 100))


def _train(out: Path, *extra: str) -> int:
    return main(["train", "--epochs", "2", "--hidden", "8", "--out", str(out), *QUIET, *extra])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- 15: --overwrite


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A finished 2-epoch run with all its files (copy it before changing it)."""
    out = tmp_path_factory.mktemp("old") / "run"
    assert (
        main(["train", "--epochs", "2", "--hidden", "8", "--out", str(out), "--no-progress"]) == 0
    )
    return out


@pytest.mark.parametrize(
    "bad",
    [
        ["--epochs", "0"],  # invalid arguments
        ["--dataset", "mnist", "--no-download", "--data-dir", "EMPTY"],  # data that are missing
    ],
    ids=["epochs-0", "missing-data"],
)
def test_a_failing_overwrite_leaves_the_old_run_intact(old_run, tmp_path, capsys, bad):
    out = Path(shutil.copytree(old_run, tmp_path / "run"))
    before = _files(out)
    (tmp_path / "empty").mkdir()
    bad = [str(tmp_path / "empty") if a == "EMPTY" else a for a in bad]
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--overwrite", "--no-progress", *bad]) == 1
    assert "error" in capsys.readouterr().err
    assert _files(out) == before  # checkpoint, metrics.json and plots: untouched
    assert load_checkpoint(out).epoch == 2


def test_overwrite_replaces_the_old_run_once_its_first_checkpoint_is_written(old_run, tmp_path):
    out = Path(shutil.copytree(old_run, tmp_path / "run"))
    assert (out / "curves.png").exists()
    assert _train(out, "--overwrite", "--epochs", "1", "--hidden", "4") == 0
    ckpt = load_checkpoint(out)
    assert ckpt.epoch == 1 and ckpt.architecture["hidden"] == 4
    # the old run's plots described another network: gone, not left beside the new checkpoint
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "metrics.json"]


# ----------------------------------------------------------------------------- 16: resume


def test_the_resume_hint_is_a_complete_command_that_works(
    tmp_path, fake_mnist, monkeypatch, capsys
):
    import chainrule.train

    real = chainrule.train.run_training
    calls = []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:

            def ctrl_c(epoch, batch):
                if (epoch, batch) == (0, 2):
                    signal.raise_signal(signal.SIGINT)

            kwargs["on_batch"] = ctrl_c
        return real(*args, **kwargs)

    monkeypatch.setattr(chainrule.train, "run_training", interrupted_once)
    out = tmp_path / "my run"  # a space: the hint must quote it
    argv = ["train", "--dataset", "mnist", "--data-dir", str(fake_mnist), "--no-download"]
    argv += ["--model", "mlp", "--hidden", "8", "--batch-size", "16", "--epochs", "2"]
    assert main([*argv, "--out", str(out), *QUIET]) == 130
    text = capsys.readouterr().out
    hint = text.split("Continue with: ", 1)[1].strip()
    parts = shlex.split(hint)
    assert parts[:2] == ["chainrule", "train"] and "--resume" in parts
    for flag, value in (("--data-dir", str(fake_mnist)), ("--model", "mlp"), ("--out", str(out))):
        assert parts[parts.index(flag) + 1] == value, hint
    assert "--no-download" in parts and "--dataset" in parts
    assert load_checkpoint(out).progress["batches"] == 3
    assert main(parts[1:]) == 0  # the hint, run as printed, finishes the run
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(out).epoch == 2


def test_resume_on_other_training_data_is_a_clear_error(tmp_path, fake_mnist, capsys):
    other = _fake_mnist(tmp_path / "other", shift=1)  # same count and shape, other labels
    out = tmp_path / "run"
    argv = ["train", "--dataset", "mnist", "--no-download", "--out", str(out), *QUIET]
    assert main([*argv, "--data-dir", str(fake_mnist), "--epochs", "1", "--hidden", "8"]) == 0
    saved = load_checkpoint(out)
    assert saved.data["count"] == 96 and saved.data["image_shape"] == [1, 28, 28]
    before = (out / "checkpoint.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--data-dir", str(other), "--epochs", "2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "trained on other data" in err and len(err.strip().splitlines()) == 1
    assert (out / "checkpoint.safetensors").read_bytes() == before


def test_fingerprint_sees_the_labels_and_the_images(small):
    train = small[0]
    f = train.fingerprint()
    assert f == Dataset(train.images.copy(), train.labels.copy(), "copy").fingerprint()
    labels = train.labels.copy()
    labels[5] = (labels[5] + 1) % 10
    assert Dataset(train.images, labels).fingerprint()["labels_sha256"] != f["labels_sha256"]
    images = train.images.copy()
    images[0, 0, 3, 3] = 1 - images[0, 0, 3, 3]  # the first image is always in the sample
    assert (
        Dataset(images, train.labels).fingerprint()["images_sample_sha256"]
        != (f["images_sample_sha256"])
    )
    assert train.subset(slice(0, 299)).fingerprint()["count"] == 299


# ----------------------------------------------------------------------------- 17: divergence


def _poisoning(monkeypatch, when):
    """Patch models.build to remember the network; on_batch that puts a NaN into it at ``when``."""
    built = []
    real = models.build

    def remember(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(models, "build", remember)

    def poison(epoch, batch):
        if (epoch, batch) == when:
            built[-1].parameters()[0].data[0, 0] = np.nan

    return poison


@pytest.mark.parametrize("batch, caught_by", [(2, "surrogate error is nan"), (9, "parameters")])
def test_divergence_stops_keeps_the_last_finite_checkpoint_and_valid_json(
    tmp_path, small, monkeypatch, batch, caught_by
):
    from chainrule.train.loop import DivergenceError

    # 300 samples / batch 32 = 10 batches: batch 9 is the last, so only the parameter check
    # before the epoch's checkpoint can see its NaN
    poison = _poisoning(monkeypatch, (1, batch))
    cfg = TrainConfig(dataset="digits", epochs=3, hidden=8)
    with pytest.raises(DivergenceError, match=caught_by) as info:
        run_training(
            cfg, tmp_path, progress=False, plots=False, log=None, data=small, on_batch=poison
        )
    assert "after epoch 1" in str(info.value)  # where the last finite state is
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.epoch == 1 and ckpt.progress is None
    assert all(np.isfinite(v).all() for v in ckpt.model_state.values())
    m = _strict_json((tmp_path / "metrics.json").read_text())
    assert m["completed"] is False and "diverged" in m["diverged"] and len(m["history"]) == 1


def test_divergence_on_the_command_line_is_one_line_and_a_non_zero_exit(tmp_path, capsys):
    code = _train(tmp_path, "--lr", "1e20", "--schedule", "constant", "--momentum", "0")
    err = capsys.readouterr().err
    assert code == 1 and "diverged" in err and "--lr" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "checkpoint.safetensors").exists()  # it never had a finite epoch
    _strict_json((tmp_path / "metrics.json").read_text())


def test_metrics_json_has_no_bare_nan(tmp_path, small):
    from chainrule.train.metrics import strict_json

    text = strict_json({"loss": float("nan"), "h": [np.float32("inf"), 1.5], "n": 3})
    assert _strict_json(text) == {"loss": None, "h": [None, 1.5], "n": 3}


def _huge_weights(tmp_path: Path, small) -> Path:
    """A checkpoint of finite but absurd weights: its scores overflow, its loss is NaN."""
    model = models.mlp((1, 8, 8), hidden=8, rng=0)
    for p in model.parameters():
        p.data[...] = 3e38
    path = tmp_path / "huge.safetensors"
    save_checkpoint(
        path,
        model,
        architecture=models.architecture("mlp", (1, 8, 8), hidden=8),
        hyperparameters={"dataset": "digits"},
    )
    return path


def test_evaluate_json_is_standard_json_when_the_loss_is_not_finite(tmp_path, small, capsys):
    path = _huge_weights(tmp_path, small)
    with np.errstate(all="ignore"):
        assert main(["evaluate", str(path), "--json"]) == 0
    j = _strict_json(capsys.readouterr().out)
    assert j["loss"] is None and j["samples"] == 359


# ----------------------------------------------------------------------------- 18: fail early


def test_an_unwritable_out_fails_before_the_first_epoch_naming_it(tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    out = tmp_path / "file" / "run"
    assert _train(out) == 1
    captured = capsys.readouterr()
    assert "epoch 1" not in captured.out and "training mlp" not in captured.out
    assert str(out) in captured.err and ".chainrule-partial" not in captured.err


def test_a_full_disk_fails_before_the_first_epoch_naming_the_folder(tmp_path, monkeypatch, capsys):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "run"
    assert _train(out) == 1
    captured = capsys.readouterr()
    assert "epoch 1" not in captured.out
    assert "No space left on device" in captured.err and str(out) in captured.err
    assert ".chainrule-partial" not in captured.err and ".tmp" not in captured.err
    assert list(out.iterdir()) == []  # the probe file is gone too


def test_too_little_free_space_fails_before_the_first_epoch(tmp_path, monkeypatch, capsys):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")(10**9, 10**9 - 1000, 1000)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    assert _train(tmp_path / "run") == 1
    captured = capsys.readouterr()
    assert "epoch 1" not in captured.out
    assert "No space left on device" in captured.err and str(tmp_path / "run") in captured.err


def test_write_errors_name_the_target_never_the_temporary_file(tmp_path, monkeypatch):
    from chainrule.atomic import atomic_write_bytes

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "checkpoint.safetensors"
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, b"data")
    assert info.value.errno == errno.ENOSPC
    assert str(target) in str(info.value) and "partial" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def _counting():
    batches = []
    return batches, lambda epoch, batch: batches.append((epoch, batch))


def test_train_and_test_images_of_other_shapes_fail_before_the_first_epoch(tmp_path, small):
    train, test = small
    wide = Dataset(np.zeros((4, 1, 8, 9), np.float32), np.zeros(4, np.int64), "wide-test")
    batches, count = _counting()
    with pytest.raises(ValueError, match=r"test images \(wide-test\) \(1, 8, 9\)"):
        run_training(
            TrainConfig(epochs=1, hidden=8), tmp_path, progress=False, plots=False, log=None,
            data=(train, wide), on_batch=count,
        )  # fmt: skip
    assert batches == [] and not (tmp_path / "checkpoint.safetensors").exists()


def test_test_data_with_other_classes_fail_before_the_first_epoch(tmp_path, small):
    train, test = small
    other = Dataset(test.images, test.labels, "test-12", classes=12)
    batches, count = _counting()
    with pytest.raises(ValueError, match="12"):
        run_training(
            TrainConfig(epochs=1, hidden=8), tmp_path, progress=False, plots=False, log=None,
            data=(train, other), on_batch=count,
        )  # fmt: skip
    assert batches == []


def test_a_network_that_does_not_fit_the_data_fails_before_the_first_epoch(tmp_path, small):
    train, test = small
    cfg = TrainConfig(epochs=1, hidden=8)
    run_training(cfg, tmp_path, progress=False, plots=False, log=None, data=small)
    twelve = [Dataset(d.images, d.labels, d.name, classes=12) for d in (train, test)]
    batches, count = _counting()
    with pytest.raises(ValueError, match="10 classes"):
        run_training(
            TrainConfig(epochs=2), tmp_path, resume=True, progress=False, plots=False, log=None,
            data=tuple(twelve), on_batch=count,
        )  # fmt: skip
    assert batches == [] and load_checkpoint(tmp_path).epoch == 1


# ----------------------------------------------------------------------------- 13: memory


def test_a_network_too_large_for_memory_is_refused_before_allocating(tmp_path, monkeypatch, capsys):
    from chainrule.train import run

    assert run.available_memory() > 0  # read from this machine
    monkeypatch.setattr(run, "available_memory", lambda: 16 * 2**30)  # any machine
    assert _train(tmp_path / "run", "--hidden", "100000000") == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "MemoryError" not in err
    assert "7,500,000,010 parameters" in err and "16.0 GiB (the memory available now)" in err
    assert "--max-memory" in err and "--hidden" in err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_max_memory_sets_the_limit(tmp_path, capsys):
    assert _train(tmp_path / "run", "--max-memory", "0.000001") == 1
    err = capsys.readouterr().err
    assert "0.0 GiB (the limit given)" in err and "--max-memory" in err
    assert _train(tmp_path / "run", "--max-memory", "0") == 1
    assert "must be a positive" in capsys.readouterr().err


def test_parameter_shapes_are_those_of_the_built_network():
    for arch in (
        models.architecture("mlp", (1, 8, 8), 10, 32),
        models.architecture("mlp", (3, 5, 7), 4, 3),
        models.architecture("cnn", (1, 28, 28), 10),
        models.architecture("cnn", (2, 13, 17), 7),
    ):
        built = {k: v.shape for k, v in models.build(arch).state_dict().items()}
        assert models.parameter_shapes(arch) == built


# ----------------------------------------------------------------------------- 19: SIGTERM


def test_sigterm_in_the_loop_saves_at_the_current_batch(tmp_path, small):
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))  # never kill pytest
    try:
        model = models.mlp((1, 8, 8), hidden=8, rng=0)
        trainer = Trainer(
            model, optim.SGD(model.parameters(), lr=0.1), *small, batch_size=32,
            checkpoint_path=tmp_path / "c.safetensors", progress=False, log=None,
            architecture=models.architecture("mlp", (1, 8, 8), hidden=8),
        )  # fmt: skip

        def term(epoch, batch):
            if (epoch, batch) == (1, 4):
                signal.raise_signal(signal.SIGTERM)

        result = trainer.fit(3, on_batch=term)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == []  # the loop's handler took it
    assert result.interrupted and result.stop_signal == signal.SIGTERM
    ckpt = load_checkpoint(tmp_path / "c.safetensors")
    assert ckpt.epoch == 1 and ckpt.progress["batches"] == 5


def test_sigterm_on_the_command_line_saves_and_exits_143(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC), MPLBACKEND="Agg")
    env.pop("PYTHONUNBUFFERED", None)
    cmd = [sys.executable, "-m", "chainrule", "train", "--epochs", "100000", "--hidden", "16"]
    cmd += ["--out", str(tmp_path), *QUIET]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:  # wait until training is under way
            if line.startswith("epoch"):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in out and "--resume" in out and "Traceback" not in err
    assert load_checkpoint(tmp_path).epoch >= 1
    assert _strict_json((tmp_path / "metrics.json").read_text())["completed"] is False


def test_a_killed_write_leaves_a_recognisable_file_that_the_next_run_removes(tmp_path, capsys):
    out = tmp_path / "run"
    code = (
        "import os, signal, sys\n"
        "from chainrule.atomic import atomic_write_bytes\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write\n"
        "atomic_write_bytes(sys.argv[1], b'half a checkpoint')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        [sys.executable, "-c", code, str(out / "checkpoint.safetensors")], env=env
    )
    assert done.returncode == -signal.SIGKILL
    (left,) = out.iterdir()
    assert left.name.startswith(".chainrule-partial-") and "checkpoint.safetensors" in left.name
    assert _train(out, "--epochs", "1") == 0
    assert not left.exists() and f"removed {left}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "metrics.json"]


def test_stale_partials_of_running_processes_are_kept(tmp_path):
    from chainrule.atomic import remove_stale_partials

    mine = tmp_path / f".chainrule-partial-{os.getpid()}-x-abc"  # this process: not writing now
    parent = tmp_path / f".chainrule-partial-{os.getppid()}-x-abc"  # alive: maybe writing
    other = tmp_path / "notes.txt"
    for p in (mine, parent, other):
        p.write_text("x")
    assert remove_stale_partials(tmp_path) == [mine]
    assert parent.exists() and other.exists()


# ----------------------------------------------------------------------------- 20: extras

BLOCKER = """
import contextlib, io, json, sys
from importlib.abc import MetaPathFinder

BLOCKED = set()

class CoreOnly(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, CoreOnly())
from chainrule.cli import main

results = []
for argv, blocked in json.loads(sys.argv[1]):
    BLOCKED.clear()
    BLOCKED.update(blocked)
    for name in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
        del sys.modules[name]  # imported by an earlier command: gone, as if never installed
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def test_a_core_only_install_names_the_extra_for_every_command(tmp_path, fake_mnist):
    run = tmp_path / "run"
    assert _train(run, "--epochs", "1") == 0  # here, with the extras
    png = tmp_path / "digit.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    every = ["tqdm", "safetensors", "matplotlib", "sklearn", "PIL"]
    mnist = ["train", "--dataset", "mnist", "--data-dir", str(fake_mnist), "--no-download"]
    commands = {  # name: (argv, the modules missing)
        "train digits": (["train", "--out", str(tmp_path / "a"), "--no-progress"], ["sklearn"]),
        "train mnist": ([*mnist, "--out", str(tmp_path / "b"), *QUIET], every),
        "train plots": ([*mnist, "--out", str(tmp_path / "c"), "--no-progress"], ["matplotlib"]),
        "evaluate": (["evaluate", str(run)], every),
        "predict": (["predict", str(run), str(png)], ["PIL"]),
        "export": (["export", str(run), "--torch", "e.safetensors"], every),
        "import": (["import", "m.safetensors", "--out", "imported"], every),
        "optimize --plot": (
            ["optimize", "x**2 + y**2", "--x0", "1", "1", "--plot", "o.png"],
            ["matplotlib"],
        ),
        "approx --plot": (
            ["approx", "sin(x)", "--domain", "0", "1", "--d", "0.5", "--plot", "a.png"],
            ["matplotlib"],
        ),
    }
    (tmp_path / "m.safetensors").write_bytes(b"")  # import reads it: the extra comes first
    env = dict(os.environ, PYTHONPATH=str(SRC), MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, json.dumps(list(commands.values()))],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = dict(zip(commands, json.loads(done.stdout), strict=True))
    for name, (code, err) in results.items():
        assert code == 1, (name, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, err)
        assert re.search(r"""pip install ["']chainrule\[(train|plot)\]""", err), (name, err)
    assert "scikit-learn" in results["train digits"][1]
    assert "safetensors" in results["train mnist"][1] and "safetensors" in results["evaluate"][1]
    assert "matplotlib" in results["train plots"][1] and "--no-plots" in results["train plots"][1]
    assert "Pillow" in results["predict"][1]
    for folder in "abc":  # nothing trained before the missing extra was named
        assert not (tmp_path / folder / "checkpoint.safetensors").exists()


# ----------------------------------------------------------------------------- 21: damaged files


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    assert _train(out, "--epochs", "1") == 0
    return out / "checkpoint.safetensors"


def _rewrite_metadata(path: Path, target: Path, **changes: str) -> Path:
    """A copy of a safetensors file with some metadata entries replaced (None: removed)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    for k, v in changes.items():
        if v is None:
            header["__metadata__"].pop(k)
        else:
            header["__metadata__"][k] = v
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    target.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    return target


def test_an_absurd_input_shape_is_refused_before_allocating(trained, tmp_path, capsys):
    model, ckpt = load_model(trained)
    arch = {**ckpt.architecture, "input_shape": [1, 1000000, 1000000]}  # crafted, checksum valid
    bad = save_checkpoint(tmp_path / "bad.safetensors", model, architecture=arch)
    with pytest.raises(CheckpointError, match="do not fit the architecture"):
        load_model(bad)  # building it would need 8 x 10^12 weights
    assert main(["evaluate", str(bad)]) == 1
    assert "do not fit" in capsys.readouterr().err


def test_a_flipped_bit_is_detected(trained, tmp_path, capsys):
    raw = bytearray(trained.read_bytes())
    raw[-5] ^= 0x10  # inside the last tensor's bytes
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(flipped)
    assert main(["predict", str(flipped), str(tmp_path)]) == 1
    assert "SHA-256" in capsys.readouterr().err
    meta = tmp_path / "meta.safetensors"  # a changed metadata entry is seen too
    _rewrite_metadata(trained, meta, epoch="7")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(meta)


def test_an_old_checkpoint_without_checksum_loads_with_a_note(trained, tmp_path, capsys):
    old = _rewrite_metadata(trained, tmp_path / "old.safetensors", sha256=None, data=None)
    ckpt = load_checkpoint(old)
    assert ckpt.data is None and len(ckpt.notes) == 1 and "no checksum" in ckpt.notes[0]
    assert main(["evaluate", str(old)]) == 0
    assert "note:" in capsys.readouterr().err
    assert load_checkpoint(trained).notes == []


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG announcing width x height gray pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4)  # four rows; the rest would inflate later
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat))
    return path


@pytest.mark.parametrize("size", [(30000, 30000), (10000, 8000)], ids=["900M", "80M"])
def test_predict_refuses_a_decompression_bomb(trained, tmp_path, capsys, size):
    bomb = _png_header(tmp_path / "bomb.png", *size)
    assert main(["predict", str(trained), str(bomb)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "too large" in err and "pixels" in err


def test_predict_on_a_folder_says_it_is_a_folder(trained, tmp_path, capsys):
    assert main(["predict", str(trained), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is a folder, not an image file" in err and "does not exist" not in err


def test_predict_and_evaluate_refuse_nan_weights(trained, tmp_path, capsys):
    model, ckpt = load_model(trained)
    model.parameters()[0].data[0, 0] = np.nan
    nan = tmp_path / "nan.safetensors"
    save_checkpoint(
        nan, model, architecture=ckpt.architecture, hyperparameters={"dataset": "digits"}
    )
    png = tmp_path / "d.png"
    from PIL import Image

    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(png)
    for argv in (["predict", str(nan), str(png)], ["evaluate", str(nan), "--json"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "NaN or inf" in err and "1.weight" in err, argv


# ----------------------------------------------------------------------------- 22: env, pipes


def test_chainrule_data_means_what_the_help_and_readme_say(tmp_path, monkeypatch, capsys):
    _fake_mnist(tmp_path / "data" / "mnist")
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "data"))
    argv = ["train", "--dataset", "mnist", "--no-download", "--epochs", "1", "--hidden", "8"]
    assert main([*argv, "--out", str(tmp_path / "run"), *QUIET]) == 0
    assert "96 train / 48 test images" in capsys.readouterr().out
    for command in ("train", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "$CHAINRULE_DATA/mnist when CHAINRULE_DATA is set" in text, command
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "`$CHAINRULE_DATA/mnist` when `CHAINRULE_DATA` is set" in readme


def test_a_closed_pipe_is_a_quiet_exit_with_one_line():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: `| dot` without Graphviz
    env = dict(os.environ, PYTHONPATH=str(SRC))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "chainrule", "graph", "--print"],
            stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "closed the pipe" in lines[0] and "Graphviz" in lines[0]


def test_graph_print_into_head(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        f"{shlex.quote(sys.executable)} -m chainrule graph --print | head -c 10",
        shell=True, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.stdout == "digraph ch" and "Traceback" not in done.stderr
