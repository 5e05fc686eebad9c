"""The lecture's MLP and LeNet-5: architecture, shapes, description round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainrule import models


def _torch_twin(name: str) -> torch.nn.Sequential:
    tnn = torch.nn
    if name == "mlp":
        return tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 800), tnn.ReLU(), tnn.Linear(800, 10))
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120),
        tnn.ReLU(),
        tnn.Linear(120, 84),
        tnn.ReLU(),
        tnn.Linear(84, 10),
    )


@pytest.mark.parametrize("name, count", [("mlp", 784 * 800 + 800 + 800 * 10 + 10), ("cnn", 61_706)])
def test_models_are_the_specified_networks(name, count):
    """Same parameter names and shapes as the PyTorch definition, same scores."""
    model = models.build(models.architecture(name, (1, 28, 28)), rng=0)
    assert model.num_parameters() == count
    twin = _torch_twin(name)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    scores = model(x).data
    assert scores.shape == (3, 10) and scores.dtype == np.float32
    np.testing.assert_allclose(
        scores, twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5
    )


def test_mlp_hidden_width_and_input_size_follow_the_arguments():
    m = models.mlp((1, 8, 8), hidden=32, classes=10, rng=0)
    assert m[1].weight.shape == (32, 64) and m[3].weight.shape == (10, 32)
    assert m(np.zeros((2, 1, 8, 8), dtype=np.float32)).shape == (2, 10)


def test_architecture_round_trip_rebuilds_the_same_model_from_the_seed():
    arch = models.architecture("mlp", (1, 8, 8), hidden=16)
    assert arch == {"name": "mlp", "input_shape": [1, 8, 8], "classes": 10, "hidden": 16}
    a, b = models.build(arch, rng=4), models.build(arch, rng=4)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    assert "hidden" not in models.architecture("cnn", (1, 28, 28))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: models.cnn((1, 8, 8)), "mlp for the 8 x 8 digits"),
        (lambda: models.mlp(hidden=0), "hidden"),
        (lambda: models.mlp((28, 28)), "input_shape"),
        (lambda: models.mlp(classes=1), "classes"),
        (lambda: models.architecture("resnet", (1, 28, 28)), "unknown model"),
        (
            lambda: models.build({"name": "resnet", "input_shape": [1, 2, 2], "classes": 2}),
            "unknown model",
        ),
        (lambda: models.build({"hidden": 3}), "architecture must be"),
    ],
)
def test_bad_model_descriptions_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
