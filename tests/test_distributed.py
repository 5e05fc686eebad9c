"""Data-parallel training over MPI (``mpiexec -n 2``) against one process, faults, threads.

Tests that take the ``mpiexec`` fixture launch real MPI jobs (MPICH from the ``[mpi]`` extra)
and skip when it is not installed; the others run everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from _emulate import emulated_shards

from chainrule import models, tensor
from chainrule.cli import main
from chainrule.data import DataLoader, load_digits
from chainrule.train import TrainConfig, distributed, evaluate, load_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
# a small digits run: 3 epochs of the default recipe (batch 32, lr 0.3, momentum 0.9, cosine)
SMALL = ("--epochs", "3", "--hidden", "32")
# long enough to be interrupted after its first epoch line (about 0.2 s per epoch here)
LONG = ("--epochs", "12", "--hidden", "32")


def _env(**extra: str) -> dict[str, str]:
    """This environment without BLAS thread settings or an enclosing MPI launch."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in THREAD_VARIABLES and not k.startswith(("PMI_", "OMPI_", "MPI_"))
    }
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    env.update(extra)
    return env


def _train_cmd(mpiexec: str, out: Path, *args: str, ranks: int = 2) -> list[str]:
    return [
        mpiexec,
        "-n",
        str(ranks),
        sys.executable,
        "-m",
        "chainrule",
        "train",
        "--dataset",
        "digits",
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
        *args,
    ]


def _mpi_train(
    mpiexec: str, out: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        _train_cmd(mpiexec, out, *args), env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _one_process(out: Path, *args: str) -> None:
    argv = ["train", "--dataset", "digits", "--out", str(out), "--no-progress", "--no-plots"]
    assert main([*argv, *args]) == 0


def _weights(folder: Path) -> dict[str, np.ndarray]:
    return load_checkpoint(folder).model_state


def _rank_pid(tag: str, rank: int, deadline: float) -> int:
    """The pid of rank ``rank`` of the job whose environment holds CHAINRULE_TEST_RUN=tag."""
    want = {f"CHAINRULE_TEST_RUN={tag}".encode(), f"PMI_RANK={rank}".encode()}
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                env = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if want <= env:
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"rank {rank} of the test job was not found")


def _start_and_wait_for_epoch_1(mpiexec: str, out: Path, tag: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        _train_cmd(mpiexec, out, *LONG),
        env=_env(CHAINRULE_TEST_RUN=tag),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.split()[:2] == ["epoch", "1/12"]:
            return proc
    proc.wait(10)
    raise AssertionError(f"the run ended before its first epoch line (exit {proc.returncode})")


# -- the gradient sum --
WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from chainrule import models, tensor
    from chainrule.data import load_digits
    from chainrule.train import evaluate
    from chainrule.train.distributed import allreduce_gradients, world

    w = world()
    assert w.size == 2, w
    rng = np.random.default_rng(w.rank)
    shapes = [(3, 4), (5,), (2, 3, 2), (7,)]
    params = [tensor(np.zeros(s, np.float32), requires_grad=True) for s in shapes]
    grads = {
        0: rng.standard_normal((4, 3)).astype(np.float32).T,  # a transposed (strided) gradient
        1: rng.standard_normal(5).astype(np.float32),
        2: rng.standard_normal((2, 3, 2)).astype(np.float32),
    }
    if w.rank == 1:
        del grads[2]  # no gradient on this rank: counts as zeros
    for i, g in grads.items():  # parameter 3 has a gradient on no rank
        params[i].grad = g.copy()
    seconds = allreduce_gradients(params)
    out = {f"given{i}": np.ascontiguousarray(g) for i, g in grads.items()}
    out.update({f"mean{i}": p.grad for i, p in enumerate(params) if p.grad is not None})
    out["none3"] = np.array(params[3].grad is None)
    out["seconds"] = np.array(seconds)
    for i, p in enumerate(params):
        p.grad = grads[i].copy() if i in grads else None
    out["extras"] = w.allreduce_gradients(params, 0.25, (w.rank + 1.5, 2.0))
    out.update({f"quarter{i}": p.grad for i, p in enumerate(params) if p.grad is not None})

    train, test = load_digits()
    model = models.build(models.architecture("mlp", (1, 8, 8), 10, 16), rng=3)
    mine, alone = w.evaluate(model, train, 100), evaluate(model, train, 100)
    for name in ("loss", "accuracy", "predictions", "probabilities", "confusion"):
        out[f"eval_{name}"] = np.array(
            np.array_equal(getattr(mine, name), getattr(alone, name))
        )
    np.savez(sys.argv[1] + f"/rank{w.rank}.npz", **out)
    """
)


def test_allreduce_gradients_is_the_numpy_sum_over_ranks(mpiexec, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    res = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, str(script), str(tmp_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    r0, r1 = (np.load(tmp_path / f"rank{r}.npz") for r in (0, 1))
    f64 = np.float64
    zeros2 = np.zeros((2, 3, 2), np.float32)
    for scale, key in ((0.5, "mean"), (0.25, "quarter")):
        for i in range(3):
            g0 = r0[f"given{i}"].astype(f64)
            g1 = r1[f"given{i}"].astype(f64) if f"given{i}" in r1 else zeros2.astype(f64)
            # scale * g is exact for these scales, so the float32 sum is the rounded exact sum
            expected = (scale * g0 + scale * g1).astype(np.float32)
            for r in (r0, r1):
                np.testing.assert_array_equal(r[f"{key}{i}"], expected)
        for r in (r0, r1):
            assert f"{key}3" not in r.files  # no rank had a gradient: still None
    assert bool(r0["none3"]) and bool(r1["none3"])
    np.testing.assert_array_equal(r0["extras"], [1.5 + 2.5, 4.0])
    np.testing.assert_array_equal(r1["extras"], [1.5 + 2.5, 4.0])
    assert float(r0["seconds"]) > 0
    for name in ("loss", "accuracy", "predictions", "probabilities", "confusion"):
        assert bool(r0[f"eval_{name}"]) and bool(r1[f"eval_{name}"]), name


def test_one_process_world_changes_nothing():
    w = distributed.LOCAL
    assert (w.rank, w.size, w.is_root, w.shard) == (0, 1, True, (0, 1))
    p = tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    g = np.arange(6, dtype=np.float32).reshape(2, 3)
    p.grad = g
    assert w.reduce_batch([p], 5, 5, 1.25, 3) == (1.25, 3)
    assert p.grad is g  # untouched
    w.allreduce_gradients([p])  # the average over one rank: the gradient itself
    np.testing.assert_array_equal(p.grad, g)
    assert w.any(True) and not w.any(False)
    train, _ = load_digits()
    model = models.build(models.architecture("mlp", (1, 8, 8), 10, 16), rng=0)
    a, b = w.evaluate(model, train, 100), evaluate(model, train, 100)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)


def test_under_mpiexec_without_mpi4py_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails as if not installed
    monkeypatch.setattr(distributed, "_WORLD", None)
    with pytest.raises(
        RuntimeError, match=r"mpi4py is not installed: pip install 'chainrule\[mpi\]'"
    ):
        distributed.world()


def test_batch_of_a_two_rank_run_is_the_one_process_batch_split_in_two():
    train, _ = load_digits()
    whole = DataLoader(train, 7, seed=3)
    halves = [DataLoader(train, 7, seed=3, shard=(r, 2)) for r in (0, 1)]
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *halves, strict=True):
        np.testing.assert_array_equal(np.concatenate([x0, x1]), x)
        np.testing.assert_array_equal(np.concatenate([y0, y1]), y)
        assert len(y0) == len(y) // 2
    with pytest.raises(ValueError, match="shard must be"):
        DataLoader(train, 7, shard=(2, 2))


# -- threads --
def _blas_threads_at_start(**env: str) -> list[str]:
    code = (
        "import os, chainrule; from chainrule.train.distributed import blas_threads; "
        "print(os.environ.get('OPENBLAS_NUM_THREADS'), blas_threads())"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=_env(**env), capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_a_rank_of_a_multi_process_launch_starts_with_one_blas_thread():
    assert _blas_threads_at_start(PMI_SIZE="2") == ["1", "1"]
    assert _blas_threads_at_start(OMPI_COMM_WORLD_SIZE="4") == ["1", "1"]
    assert _blas_threads_at_start(PMI_SIZE="2", OPENBLAS_NUM_THREADS="2")[0] == "2"  # the user's
    assert _blas_threads_at_start(PMI_SIZE="1")[0] == "None"  # alone: BLAS's own default
    assert _blas_threads_at_start()[0] == "None"


def test_threads_flag_sets_the_blas_threads(tmp_path):
    _one_process(tmp_path, "--epochs", "1", "--hidden", "8", "--threads", "1")
    assert json.loads((tmp_path / "metrics.json").read_text())["blas_threads"] == 1
    with pytest.raises(ValueError, match="--threads must be a whole number >= 1"):
        distributed.set_blas_threads(0)


# -- mpiexec -n 2 chainrule train --
def _emulated_two_ranks(epochs: int, hidden: int) -> dict[str, np.ndarray]:
    """One process doing the arithmetic of two ranks (what distributed.py says it computes):
    every batch in two halves, a short last one too."""
    return emulated_shards(TrainConfig(dataset="digits", epochs=epochs, hidden=hidden), lambda n: 2)


def test_two_ranks_follow_the_one_process_trajectory(mpiexec, tmp_path):
    _one_process(tmp_path / "one", *SMALL)
    res = _mpi_train(mpiexec, tmp_path / "two", *SMALL)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("test accuracy") == 1  # rank 0 alone prints
    assert "2 ranks" in res.stdout
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for name, a in one.items():
        rel = np.max(np.abs(two[name] - a)) / np.max(np.abs(a))
        assert rel < 1e-5, (name, rel)
    h1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    h2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    for key in ("train_accuracy", "test_accuracy", "batch_accuracy"):
        assert [h[key] for h in h1["history"]] == [h[key] for h in h2["history"]], key
    assert h1["test_accuracy"] == h2["test_accuracy"]
    assert h1["world_size"] == 1 and h2["world_size"] == 2
    assert h2["blas_threads"] == 1  # one BLAS thread per rank by default
    comm = h2["communication"]
    assert comm["allreduce_calls"] == 3 * 45  # 1438 samples / batch 32: 45 updates per epoch
    assert 0 < comm["allreduce_seconds_per_step"] < 1
    assert comm["gradient_buffer_bytes"] == 4 * (2410 + 4 + 2)  # one float32 buffer
    # the 2-rank run is exactly the arithmetic it claims: halves, weighted, summed
    for name, a in _emulated_two_ranks(3, 32).items():
        np.testing.assert_array_equal(two[name], a, err_msg=name)


def test_a_batch_smaller_than_the_ranks_is_refused(mpiexec, tmp_path):
    res = _mpi_train(mpiexec, tmp_path, "--batch-size", "1", timeout=30)
    assert res.returncode != 0
    assert "batch size 1 is smaller than the 2 ranks" in res.stderr
    assert not (tmp_path / "checkpoint.safetensors").exists()


def test_an_error_on_rank_0_alone_ends_every_rank(mpiexec, tmp_path):
    start = time.monotonic()
    res = _mpi_train(mpiexec, tmp_path / "none", "--resume", timeout=30)  # no checkpoint
    assert res.returncode != 0
    assert "(rank 0 of 2): error: checkpoint" in res.stderr and "does not exist" in res.stderr
    assert time.monotonic() - start < 20  # rank 1 was waiting for rank 0: aborted, no hang


def test_ctrl_c_on_one_rank_stops_both_and_resume_continues_exactly(mpiexec, tmp_path):
    tag = uuid.uuid4().hex
    proc = _start_and_wait_for_epoch_1(mpiexec, tmp_path / "part", tag)
    os.kill(_rank_pid(tag, 1, time.monotonic() + 10), signal.SIGINT)  # rank 1, not rank 0
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, rest
    assert "interrupted (SIGINT) after" in rest  # rank 0 names the signal rank 1 received
    assert "Continue with: mpiexec -n 2 chainrule train" in rest
    ckpt = load_checkpoint(tmp_path / "part")
    assert 1 <= ckpt.epoch < 12
    metrics = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert metrics["completed"] is False

    resumed = _mpi_train(mpiexec, tmp_path / "part", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout
    metrics = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert metrics["completed"] and [h["epoch"] for h in metrics["history"]] == list(range(1, 13))
    # exactly the updates of an uninterrupted two-rank run (test above: the emulation is one)
    resumed_weights = _weights(tmp_path / "part")
    for name, a in _emulated_two_ranks(12, 32).items():
        np.testing.assert_array_equal(resumed_weights[name], a, err_msg=name)


def test_sigterm_on_one_rank_stops_both_after_a_saved_checkpoint(mpiexec, tmp_path):
    tag = uuid.uuid4().hex
    proc = _start_and_wait_for_epoch_1(mpiexec, tmp_path, tag)
    os.kill(_rank_pid(tag, 1, time.monotonic() + 10), signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, rest
    assert "interrupted (SIGTERM) after" in rest and "BAD TERMINATION" not in rest
    ckpt = load_checkpoint(tmp_path)
    assert 1 <= ckpt.epoch < 12
    assert json.loads((tmp_path / "metrics.json").read_text())["completed"] is False


def test_a_killed_rank_ends_the_job_within_seconds(mpiexec, tmp_path):
    tag = uuid.uuid4().hex
    proc = _start_and_wait_for_epoch_1(mpiexec, tmp_path, tag)
    os.kill(_rank_pid(tag, 1, time.monotonic() + 10), signal.SIGKILL)
    start = time.monotonic()
    try:
        rest, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("rank 0 hung after rank 1 died") from None
    assert time.monotonic() - start < 10
    assert proc.returncode != 0
    assert "BAD TERMINATION" in rest  # mpiexec's own abort of the remaining rank
    ckpt = load_checkpoint(tmp_path)  # the last consistent checkpoint is still readable
    assert ckpt.epoch >= 1
