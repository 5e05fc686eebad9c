"""``chainrule train / evaluate / predict`` from the command line."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.data import load_digits
from chainrule.train import evaluate, load_checkpoint, load_model

SRC = Path(__file__).resolve().parents[1] / "src"
QUIET = ["--no-progress", "--no-plots"]


def _idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as a gzipped IDX file, MNIST's format."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return path


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    """A tiny MNIST folder (the four canonical file names): digits scaled up to 28 x 28."""
    folder = tmp_path_factory.mktemp("mnist")
    train, test = load_digits()
    for prefix, d, n in (("train", train, 96), ("t10k", test, 48)):
        small = (d.images[:n, 0] * 255).round().astype(np.uint8)
        big = np.zeros((n, 28, 28), np.uint8)
        big[:, 2:26, 2:26] = small.repeat(3, axis=1).repeat(3, axis=2)
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", big)
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", d.labels[:n])
    return folder


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A finished 3-epoch digits run (hidden 32): its folder."""
    out = tmp_path_factory.mktemp("run")
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--epochs",
                "3",
                "--hidden",
                "32",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    return out


def test_train_digits_prints_epochs_and_writes_outputs(digits_run, capsys):
    names = sorted(p.name for p in digits_run.iterdir())
    assert names == [
        "checkpoint.safetensors",
        "confusion.png",
        "curves.png",
        "metrics.json",
        "misclassified.png",
    ]
    m = json.loads((digits_run / "metrics.json").read_text())
    assert m["epochs"] == 3 and m["hyperparameters"]["hidden"] == 32
    assert m["test_accuracy"] > 0.8


def test_train_output_lines(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--epochs",
                "2",
                "--hidden",
                "8",
                "--out",
                str(tmp_path),
                "--no-progress",
                "--no-plots",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "training mlp" in out and "epoch 1/2" in out and "epoch 2/2" in out
    assert "test accuracy" in out and "samples/s" in out and "metrics.json" in out
    assert not (tmp_path / "curves.png").exists()


def test_train_command_tunes_the_allocator_first(tmp_path, monkeypatch, capsys):
    from chainrule import backend

    calls = []
    monkeypatch.setattr(backend, "tune_allocator", lambda *a, **k: calls.append(a) or True)
    argv = ["train", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path), "--no-progress"]
    assert main([*argv, "--no-plots"]) == 0
    assert calls == [()]


def test_existing_run_needs_resume_or_overwrite(digits_run, tmp_path, capsys):
    out = str(digits_run)
    assert main(["train", "--out", out, "--no-progress"]) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", out, "--resume", "--lr", "0.9", "--no-progress"]) == 1
    assert "--lr 0.9 (checkpoint: 0.3)" in capsys.readouterr().err
    assert main(["train", "--out", out, "--resume", "--dataset", "mnist", "--no-progress"]) == 1
    assert "trained on 'digits'" in capsys.readouterr().err
    assert main(["train", "--out", out, "--resume", "--overwrite"]) == 1
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_resume_extends_a_finished_run(tmp_path, capsys):
    args = [
        "train",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--no-plots",
        "--schedule",
        "constant",
    ]
    assert main(args) == 0
    first = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert (
        main(
            [
                "train",
                "--out",
                str(tmp_path),
                "--resume",
                "--epochs",
                "3",
                "--no-progress",
                "--no-plots",
                "--hidden",
                "8",
            ]
        )
        == 0
    )
    assert "resuming" in capsys.readouterr().out
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert len(m["history"]) == 3 and m["history"][:2] == first
    assert main(args[:-2] + ["--overwrite"]) == 0
    assert load_checkpoint(tmp_path).epoch == 2


def test_evaluate_prints_accuracy_per_class_and_surrogate_error(digits_run, capsys):
    assert main(["evaluate", str(digits_run)]) == 0
    out = capsys.readouterr().out
    m = json.loads((digits_run / "metrics.json").read_text())
    assert f"{100 * m['test_accuracy']:6.2f}%" in out
    assert "surrogate error" in out and "per-class accuracy" in out and "confusion matrix" in out
    assert (
        main(["evaluate", str(digits_run / "checkpoint.safetensors"), "--json", "--split", "train"])
        == 0
    )
    j = json.loads(capsys.readouterr().out)
    assert j["split"] == "train" and j["samples"] == 1438 and len(j["per_class_accuracy"]) == 10


def test_evaluate_bad_checkpoint_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"garbage!" * 4)
    assert main(["evaluate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule evaluate: error:") and "not a readable safetensors" in err
    assert len(err.strip().splitlines()) == 1


def _png(path: Path, image: np.ndarray, scale: int = 10) -> Path:
    from PIL import Image

    big = np.kron(image, np.ones((scale, scale)))
    Image.fromarray((big * 255).round().astype(np.uint8)).save(path)
    return path


def test_predict_png_white_on_black_and_inverted(digits_run, tmp_path, capsys):
    model, _ = load_model(digits_run)
    test = load_digits()[1]
    ev = evaluate(model, test)
    i = int(np.flatnonzero((ev.predictions == ev.labels) & (ev.probabilities.max(1) > 0.9))[0])
    digit = int(ev.predictions[i])
    img = test.images[i, 0]
    assert main(["predict", str(digits_run), str(_png(tmp_path / "d.png", img))]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"d.png: {digit} ") and "top 3" in out and "note" not in out
    assert (
        main(["predict", str(digits_run), str(_png(tmp_path / "inv.png", 1 - img)), "--invert"])
        == 0
    )
    assert capsys.readouterr().out.startswith(f"inv.png: {digit} ")
    assert main(["predict", str(digits_run), str(tmp_path / "inv.png")]) == 0
    assert "--invert" in capsys.readouterr().out  # a bright image gets a hint


def test_predict_idx_images_by_index(digits_run, fake_mnist, capsys):
    images = fake_mnist / "t10k-images-idx3-ubyte.gz"
    assert main(["predict", str(digits_run), str(images), "--index", "0", "5", "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("t10k-images-idx3-ubyte.gz[0]: ")
    assert "[5]:" in lines[1] and "top 2" in lines[1]
    assert main(["predict", str(digits_run), str(images), "--index", "48"]) == 1
    assert "holds 48 images" in capsys.readouterr().err


def test_predict_bad_inputs_are_clear_errors(digits_run, tmp_path, capsys):
    assert main(["predict", str(digits_run), str(tmp_path / "missing.png")]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not an image at all")
    assert main(["predict", str(digits_run), str(tmp_path / "notes.txt")]) == 1
    assert "not an image file" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_train_and_evaluate_on_mnist_files(fake_mnist, tmp_path, model, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                model,
                "--dataset",
                "mnist",
                "--data-dir",
                str(fake_mnist),
                "--no-download",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--batch-size",
                "16",
                "--out",
                str(out),
                "--no-progress",
                "--no-plots",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert f"training {model}" in text and "96 train / 48 test images" in text
    ckpt = load_checkpoint(out)
    assert ckpt.architecture["input_shape"] == [1, 28, 28] and ckpt.architecture["name"] == model
    if model == "cnn":
        assert ckpt.hyperparameters["lr"] == 0.05
    assert main(["evaluate", str(out), "--data-dir", str(fake_mnist), "--no-download"]) == 0
    assert "mnist test set, 48 images" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", str(out), "--data-dir", str(empty), "--no-download"]) == 1
    err = capsys.readouterr().err  # evaluate speaks the command line's language too
    assert "pass --data-dir DIR to another folder" in err and "data_dir=" not in err


@pytest.fixture(scope="module")
def mnist_test_files_only(fake_mnist, tmp_path_factory):
    """A folder with MNIST's two test-set files and nothing else (48 digits)."""
    folder = tmp_path_factory.mktemp("t10k-only")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes((fake_mnist / name).read_bytes())
    return folder


def test_split_test_trains_on_part_of_the_test_set_and_evaluates_on_the_rest(
    mnist_test_files_only, tmp_path, capsys
):
    from chainrule.data import load_mnist

    data = ["--dataset", "mnist", "--data-dir", str(mnist_test_files_only), "--no-download"]
    out = tmp_path / "run"
    argv = ["train", *data, "--split-test", "32", "--split-seed", "3", "--hidden", "16"]
    assert main([*argv, "--epochs", "1", "--out", str(out), "--no-progress", "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "on mnist (its test set split, seed 3): 32 train / 16 test images" in text
    test = load_mnist(mnist_test_files_only, split="test", download=False)
    order = np.random.default_rng(3).permutation(48)  # the draw the README describes
    train, held_out = test.subset(order[:32]), test.subset(order[32:])
    ckpt = load_checkpoint(out)
    assert ckpt.data == train.fingerprint()  # trained on exactly those 32 images
    assert (ckpt.hyperparameters["split_test"], ckpt.hyperparameters["split_seed"]) == (32, 3)

    model, _ = load_model(out)
    for split, part, n in (("test", held_out, 16), ("train", train, 32)):
        assert main(["evaluate", str(out), *data[2:], "--split", split, "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["samples"] == n and summary["split_test"] == 32
        assert summary["accuracy"] == evaluate(model, part).accuracy
    assert main(["evaluate", str(out), *data[2:]]) == 0
    assert "the images the --split-test 32 run held out, seed 3), 16 images" in (
        capsys.readouterr().out
    )
    # resuming keeps the split (the checkpoint's training data are checked on resume)
    assert main(["train", *data, "--epochs", "2", "--resume", "--out", str(out), *QUIET]) == 0
    assert load_checkpoint(out).epoch == 2 and load_checkpoint(out).data == train.fingerprint()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split-test", "48"], "--split-test 48: mnist-test has 48 images; train on 1 to 47"),
        (["--split-test", "0"], "split_test must be a whole number >= 1, got 0"),
        (["--split-seed", "1"], "--split-seed S draws the images of --split-test N: pass both"),
    ],
)
def test_split_test_bad_values_are_one_line_before_any_work(
    mnist_test_files_only, tmp_path, capsys, extra, message
):
    data = ["--dataset", "mnist", "--data-dir", str(mnist_test_files_only), "--no-download"]
    assert main(["train", *data, *extra, "--out", str(tmp_path / "run"), *QUIET]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


def test_missing_mnist_files_are_a_clear_error(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--dataset",
                "mnist",
                "--data-dir",
                str(tmp_path),
                "--no-download",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "missing" in err and "train-images-idx3-ubyte.gz" in err


def test_missing_mnist_message_speaks_the_command_lines_language(tmp_path, capsys):
    argv = ["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-download"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chainrule train: error: MNIST files missing")
    assert "pass --data-dir DIR to another folder" in err and "drop --no-download" in err
    assert "data_dir=" not in err and "download=True" not in err  # the library's wording


def test_ctrl_c_in_the_cli_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC), MPLBACKEND="Agg")
    env.pop("PYTHONUNBUFFERED", None)  # epoch lines must arrive through a pipe on their own
    cmd = [
        sys.executable,
        "-m",
        "chainrule",
        "train",
        "--epochs",
        "100000",
        "--hidden",
        "16",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--no-plots",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:  # wait until training is under way
            if line.startswith("epoch"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in out and "--resume" in out and "Traceback" not in err
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.epoch >= 1 and ckpt.hyperparameters["epochs"] == 100000
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["completed"] is False


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--model",
        "--dataset",
        "--data-dir",
        "--epochs",
        "--batch-size",
        "--lr",
        "--momentum",
        "--hidden",
        "--seed",
        "--out",
        "--resume",
        "--schedule",
        "--optimizer",
        "--weight-decay",
        "--shift",
    ):
        assert flag in out
