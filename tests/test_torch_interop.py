"""PyTorch interop: exported checkpoints load into the README's PyTorch networks, and back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

import chainrule as cr
from chainrule import models, optim
from chainrule.cli import main
from chainrule.data import load_mnist
from chainrule.train import (
    CheckpointError,
    export_torch,
    import_torch,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from chainrule.train.pytorch import infer_architecture

REPO = Path(__file__).resolve().parents[1]
MARKER = "# chainrule's networks in PyTorch"


def readme_torch_networks() -> dict:
    """The README's PyTorch definitions of the mlp and LeNet-5, executed."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    found = [b for b in blocks if b.startswith(MARKER)]
    assert len(found) == 1, f"the README needs one python block starting with {MARKER!r}"
    namespace: dict = {}
    exec(compile(found[0], "README.md", "exec"), namespace)  # the README's own code, not input
    return namespace


def _torch_net(name: str):
    nets = readme_torch_networks()
    return nets["mlp"]() if name == "mlp" else nets["lenet5"]()


def _trained(name: str, data, steps: int = 30):
    """A chainrule network after a few SGD steps on real digits (optimiser state non-zero)."""
    arch = models.architecture(name, (1, 28, 28))
    model = models.build(arch, rng=0)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for i in range(steps):
        x, y = data.images[i * 64 : (i + 1) * 64], data.labels[i * 64 : (i + 1) * 64]
        e = cr.softmax_cross_entropy(model(x), y)
        opt.zero_grad()
        e.backward()
        opt.step()
    return model.eval(), opt, arch


def _logits(model, x) -> np.ndarray:
    with cr.no_grad():
        return model(x).data


def _torch_logits(net, x) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(mnist_dir, split="test", download=False)


@pytest.mark.mnist
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_export_loads_into_pytorch_and_logits_agree_on_real_mnist(tmp_path, mnist, name, capsys):
    model, opt, arch = _trained(name, mnist)
    ckpt = save_checkpoint(tmp_path / "checkpoint.safetensors", model, opt, architecture=arch)
    assert load_checkpoint(ckpt).optimizer_state  # momentum tensors that the export leaves out
    out = tmp_path / f"{name}.safetensors"
    assert main(["export", str(tmp_path), "--torch", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out

    state = load_file(str(out))
    net = _torch_net(name)
    assert sorted(state) == sorted(net.state_dict())  # no model. prefix, no optimizer.* tensors
    net.load_state_dict(state)  # strict: every key and every shape
    x = mnist.images[4000:5000]  # real images the network was not trained on
    ours, theirs = _logits(model, x), _torch_logits(net, x)
    assert np.abs(ours - theirs).max() <= 1e-5, np.abs(ours - theirs).max()
    assert (ours.argmax(1) == theirs.argmax(1)).all()
    # the weights are trained ones (well above chance on held-out digits), not an initialisation
    assert (ours.argmax(1) == mnist.labels[4000:5000]).mean() > 0.25

    lib = export_torch(model, tmp_path / "from-model.safetensors")  # a model, no checkpoint
    for k, v in load_file(str(lib)).items():
        np.testing.assert_array_equal(v.numpy(), state[k].numpy())


@pytest.mark.mnist
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_pytorch_state_dict_imports_as_a_checkpoint(tmp_path, mnist, mnist_dir, name, capsys):
    torch.manual_seed(0)
    net = _torch_net(name)
    path = tmp_path / "torch.safetensors"
    save_file(net.state_dict(), str(path))  # a plain PyTorch file: no chainrule metadata
    assert main(["import", str(path), "--out", str(tmp_path / "run")]) == 0
    assert f"{name} (" in capsys.readouterr().out

    model, ckpt = load_model(tmp_path / "run")
    assert ckpt.architecture == models.architecture(name, (1, 28, 28))
    assert ckpt.hyperparameters["dataset"] == "mnist"
    x = mnist.images[:1000]
    assert np.abs(_logits(model, x) - _torch_logits(net, x)).max() <= 1e-5

    lib, arch = import_torch(path)  # the library call, without writing a checkpoint
    np.testing.assert_array_equal(_logits(lib, x), _logits(model, x))
    assert arch == ckpt.architecture
    if name == "cnn":
        return  # evaluating LeNet-5 on all 10,000 images adds seconds and nothing new
    # the imported checkpoint is a complete chainrule run: evaluate reads it
    args = ["evaluate", str(tmp_path / "run"), "--data-dir", str(mnist_dir), "--no-download"]
    assert main(args) == 0
    assert "accuracy" in capsys.readouterr().out


def test_round_trip_keeps_the_parameters_and_the_architecture(tmp_path):
    arch = models.architecture("mlp", (1, 8, 8), hidden=16)
    model = models.build(arch, rng=3)
    out = export_torch(model, tmp_path / "m.safetensors", architecture=arch)
    back, got = import_torch(out)
    assert got == arch
    for (ka, va), (kb, vb) in zip(
        model.state_dict().items(), back.state_dict().items(), strict=True
    ):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    # without the metadata the shapes tell the same architecture (64 features: 8 x 8 images)
    save_file(
        {k: torch.from_numpy(v) for k, v in model.state_dict().items()}, str(tmp_path / "p.st")
    )
    assert import_torch(tmp_path / "p.st")[1] == arch


def test_architecture_is_inferred_from_the_shapes():
    mlp = {k: v.numpy() for k, v in readme_torch_networks()["mlp"]().state_dict().items()}
    assert infer_architecture(mlp) == models.architecture("mlp", (1, 28, 28))
    lenet = {k: v.numpy() for k, v in readme_torch_networks()["lenet5"]().state_dict().items()}
    assert infer_architecture(lenet) == models.architecture("cnn", (1, 28, 28))
    odd = {**mlp, "1.weight": np.zeros((800, 300), np.float32)}
    with pytest.raises(ValueError, match="cannot tell the image size from 300"):
        infer_architecture(odd)
    assert infer_architecture(odd, [3, 10, 10])["input_shape"] == [3, 10, 10]
    with pytest.raises(ValueError, match="not one of chainrule's networks.*fc.weight"):
        infer_architecture({"fc.weight": np.zeros((2, 2))})


def test_bad_files_are_clear_errors(tmp_path, capsys):
    arch = models.architecture("mlp", (1, 8, 8), hidden=16)
    model = models.build(arch, rng=0)
    ckpt = save_checkpoint(tmp_path / "checkpoint.safetensors", model, architecture=arch)
    with pytest.raises(CheckpointError, match="is a chainrule checkpoint"):
        import_torch(ckpt)
    with pytest.raises(CheckpointError, match="does not exist"):
        import_torch(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        import_torch(tmp_path / "junk.safetensors")
    state = {k: v.copy() for k, v in model.state_dict().items()}
    save_numpy({**state, "1.bias": np.zeros(16, np.int64)}, str(tmp_path / "int.safetensors"))
    with pytest.raises(CheckpointError, match="1.bias is int64, not floating point"):
        import_torch(tmp_path / "int.safetensors")
    wrong = {**state, "3.weight": np.zeros((10, 17), np.float32)}
    save_numpy(wrong, str(tmp_path / "shape.safetensors"))
    with pytest.raises(CheckpointError, match="do not fit"):
        import_torch(tmp_path / "shape.safetensors", architecture=arch)

    # the CLI: one line per problem, nothing overwritten
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"keep me")
    assert main(["export", str(tmp_path), "--torch", str(out)]) == 1
    assert "exists: pass --force" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["export", str(tmp_path), "--torch", str(ckpt), "--force"]) == 1
    assert "is the checkpoint itself" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--torch", str(tmp_path / "m.pt")]) == 1
    assert "must end in .safetensors" in capsys.readouterr().err
    assert (
        main(["export", str(tmp_path / "nothing"), "--torch", str(tmp_path / "x.safetensors")]) == 1
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--torch", str(out), "--force"]) == 0
    capsys.readouterr()
    before = ckpt.read_bytes()
    assert main(["import", str(out), "--out", str(tmp_path)]) == 1
    assert "exists" in capsys.readouterr().err and ckpt.read_bytes() == before
