"""Preparing a picture as the training digits were: crop to the ink, scale, centre."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chainrule import models
from chainrule.cli import main
from chainrule.data import load_digits, read_idx
from chainrule.train import load_model, save_checkpoint
from chainrule.train.predict import INK_THRESHOLD, center_digit, classify, load_png

MNIST = (28, 28)
DIGITS = (8, 8)


def save_png(path: Path, image: np.ndarray) -> Path:
    """Gray levels in [0, 1] as an 8-bit grayscale PNG."""
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def as_saved(image: np.ndarray) -> np.ndarray:
    """What an 8-bit PNG of ``image`` reads back as."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.float32) / 255


def seven(h: int, w: int) -> np.ndarray:
    """A hand-made '7' of h x w pixels: a bar on top, a diagonal stroke down to the left."""
    img = np.zeros((h, w), np.float32)
    t = max(1, min(h, w) // 6)
    img[:t] = 1.0
    for r in range(h):
        c = round((w - t) * (1 - r / max(h - 1, 1)))
        img[r, c : c + t] = 1.0
    return img


def on_canvas(digit: np.ndarray, shape=(240, 320), at=(150, 20)) -> np.ndarray:
    canvas = np.zeros(shape, np.float32)
    canvas[at[0] : at[0] + digit.shape[0], at[1] : at[1] + digit.shape[1]] = digit
    return canvas


def mass_centre(img: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(img.shape)
    return float((rows * img).sum() / img.sum()), float((cols * img).sum() / img.sum())


def ink_box(img: np.ndarray) -> tuple[int, int]:
    """(height, width) of the bounding box of the non-zero pixels."""
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def corner(img: np.ndarray) -> tuple[int, int]:
    """(row, column) of the top-left corner of the bounding box of the non-zero pixels."""
    return int(np.flatnonzero(img.any(axis=1))[0]), int(np.flatnonzero(img.any(axis=0))[0])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# ------------------------------------------------------------------------------- MNIST's way


@pytest.mark.parametrize("height", [12, 36, 150], ids=["grown", "shrunk", "shrunk-a-lot"])
def test_small_off_centre_digit_comes_out_20_pixels_and_centred_by_mass(tmp_path, height):
    canvas = on_canvas(seven(height, height * 2 // 3), shape=(400, 500), at=(230, 15))
    x = load_png(save_png(tmp_path / "seven.png", canvas), MNIST)
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    img = x[0, 0]
    assert 0 <= img.min() and img.max() <= 1
    assert max(ink_box(img)) == 20
    cy, cx = mass_centre(img)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert correlation(img, center_digit(as_saved(canvas), MNIST)) > 0.999  # the same thing


@pytest.mark.parametrize("shape, box", [((90, 30), (20, 7)), ((30, 90), (7, 20))])
def test_aspect_ratio_is_kept(tmp_path, shape, box):
    bar = np.ones(shape, np.float32)  # 3 : 1, so 20 x 6.67 -> 20 x 7 pixels
    img = load_png(save_png(tmp_path / "bar.png", on_canvas(bar)), MNIST)[0, 0]
    assert ink_box(img) == box
    assert np.allclose(img[img > 0], 1.0)  # a solid bar scales to a solid bar


def test_other_sizes_scale_the_box_and_the_centre_along():
    img = center_digit(on_canvas(seven(60, 40)), (56, 42))
    assert max(ink_box(img)) == 40  # 20/28 of 56
    cy, cx = mass_centre(img)
    assert abs(cy - 28) <= 0.5 and abs(cx - 21) <= 0.5


def test_no_center_restores_the_plain_resize(tmp_path, capsys):
    canvas = on_canvas(seven(40, 30))
    path = save_png(tmp_path / "seven.png", canvas)
    plain = Image.fromarray(as_saved(canvas)).resize((28, 28), Image.Resampling.BOX)
    expected = np.clip(np.asarray(plain, np.float32), 0, 1)
    np.testing.assert_allclose(load_png(path, MNIST, center=False)[0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(
        load_png(path, MNIST, invert=True, center=False)[0, 0], 1 - expected, atol=1e-6
    )
    cy, cx = mass_centre(expected)
    assert cy > 16 and cx < 6  # where the digit was drawn: not centred


def test_invert_comes_before_the_centring(tmp_path):
    canvas = on_canvas(seven(40, 30))
    white_on_black = load_png(save_png(tmp_path / "a.png", canvas), MNIST)
    dark_on_white = load_png(save_png(tmp_path / "b.png", 1 - canvas), MNIST, invert=True)
    np.testing.assert_allclose(dark_on_white, white_on_black, atol=1e-6)


def test_background_level_is_taken_as_black(tmp_path):
    canvas = on_canvas(seven(40, 30))
    gray_paper = 0.25 + 0.75 * canvas  # a photo: the background is not quite black
    img = load_png(save_png(tmp_path / "photo.png", gray_paper), MNIST)[0, 0]
    assert max(ink_box(img)) == 20 and img.min() == 0.0
    np.testing.assert_allclose(img, center_digit(canvas, MNIST) * 0.75, atol=0.01)


@pytest.mark.parametrize("level", [0.0, 0.5, 1.0])
def test_blank_image_is_a_clear_error(tmp_path, level):
    path = save_png(tmp_path / "blank.png", np.full((50, 40), level))
    with pytest.raises(ValueError, match=r"blank\.png: the image is blank"):
        load_png(path, MNIST)
    faint = np.full((50, 40), min(level, 0.9)) + 0.5 * INK_THRESHOLD * np.eye(50, 40)  # noise
    with pytest.raises(ValueError, match="no digit to centre"):
        center_digit(faint, MNIST)
    assert load_png(path, MNIST, center=False).shape == (1, 1, 28, 28)  # as before


def test_center_digit_rejects_a_non_image():
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        center_digit(np.ones((2, 3, 4)), MNIST)


# ------------------------------------------------------------------------ the 8 x 8 digits' way


def test_digits_fill_the_frame_with_their_bounding_box_centred(tmp_path):
    """A digit already framed as the 8 x 8 digits are comes back unchanged."""
    images = load_digits()[1].images[:100, 0]
    framed, scores = 0, []
    for i, digit in enumerate(images):
        canvas = on_canvas(np.kron(digit, np.ones((10, 10))), shape=(300, 200), at=(200, 110))
        x = load_png(save_png(tmp_path / f"{i}.png", canvas), DIGITS)[0, 0]
        scores.append(correlation(x, digit))
        (top, left), (height, width) = corner(digit > 0), ink_box(digit)
        if (
            (top, height) == (0, 8)  # fills the frame
            and width % 2 == 0
            and left == (8 - width) // 2  # centred (no half pixel left over)
            and corner(digit > INK_THRESHOLD) == (top, left)  # no faint ink outside the box
            and ink_box(digit > INK_THRESHOLD) == (height, width)
        ):
            framed += 1
            np.testing.assert_allclose(x, as_saved(digit), atol=1e-5)
    assert framed >= 50  # most of the data set is framed that way
    assert np.median(scores) > 0.99


# ------------------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def mnist_checkpoint(tmp_path_factory) -> Path:
    """An untrained 28 x 28 MLP: enough to compare what the command prints."""
    arch = models.architecture("mlp", (1, 28, 28), 10, hidden=16)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.safetensors"
    save_checkpoint(path, models.build(arch, rng=0), architecture=arch)
    return path


def printed_top(out: str) -> list[tuple[int, float]]:
    top = out.split("top 10: ")[1].split(")")[0]
    return [(int(k), float(p)) for k, p in re.findall(r"(\d): ([0-9.]+)", top)]


def test_cli_centres_by_default_and_not_with_no_center(mnist_checkpoint, tmp_path, capsys):
    model, _ = load_model(mnist_checkpoint)
    path = save_png(tmp_path / "seven.png", on_canvas(seven(40, 30)))
    shown = {}
    for flags, center in (([], True), (["--no-center"], False)):
        assert main(["predict", str(mnist_checkpoint), str(path), "--top", "10", *flags]) == 0
        shown[center] = printed_top(capsys.readouterr().out)
        (expected,) = classify(model, load_png(path, MNIST, center=center))
        assert shown[center] == [(k, round(p, 3)) for k, p in expected.top(10)]
    assert shown[True] != shown[False]


def test_cli_blank_image_is_one_clear_line(mnist_checkpoint, tmp_path, capsys):
    path = save_png(tmp_path / "blank.png", np.zeros((30, 30)))
    assert main(["predict", str(mnist_checkpoint), str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule predict: error: ") and "is blank" in err
    assert err.count("\n") == 1
    assert main(["predict", str(mnist_checkpoint), str(path), "--no-center"]) == 0


def test_cli_still_notes_a_dark_digit_on_light_paper(mnist_checkpoint, tmp_path, capsys):
    path = save_png(tmp_path / "page.png", 1 - on_canvas(seven(40, 30)))
    assert main(["predict", str(mnist_checkpoint), str(path)]) == 0
    assert "add --invert" in capsys.readouterr().out
    assert main(["predict", str(mnist_checkpoint), str(path), "--invert"]) == 0
    assert "note" not in capsys.readouterr().out


def test_cli_help_explains_the_preparation(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    for words in ("--no-center", "centre of mass", "20 pixels", "--invert", "--debug"):
        assert words in out


# ------------------------------------------------------------------------ real MNIST digits


@pytest.mark.mnist
@pytest.mark.parametrize("side", [28, 47, 120])
def test_real_mnist_digit_pasted_small_and_off_centre_comes_back(mnist_dir, tmp_path, side):
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:10].astype(np.float32) / 255
    scores = []
    for i, digit in enumerate(images):
        big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
        path = save_png(tmp_path / f"{i}.png", on_canvas(big, shape=(300, 400), at=(170, 30)))
        prepared = load_png(path, MNIST)[0, 0]
        scores.append(correlation(prepared, digit))
        assert scores[-1] > 0.75, i  # at worst a one-pixel shift of the centre of mass
        assert correlation(load_png(path, MNIST, center=False)[0, 0], digit) < 0.3, i  # before
    assert np.mean(scores) > (0.99 if side == 28 else 0.9)  # 28: MNIST's own size, unchanged
