"""Colorization: the Lab contract (L kept exactly), the loss of Zhang et al., input modes, the shipped
model on a bundled photo, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aetools.data.io import to_uint8
from tests.conftest import photo, run, save_tiny, tiny_model


@pytest.fixture
def tiny_color():
    model = tiny_model("colorize-unet", widths=(8, 16), blocks=1, bottleneck_blocks=1, work_size=64)
    with torch.no_grad():  # a head biased to a vivid bin, so the tiny net paints real colour
        model.head[-1].bias.copy_(torch.where(model.ab_bins.norm(dim=1) > 60, 5.0, 0.0))
    return model


@pytest.fixture
def tiny_color_weights(tiny_color, tmp_path: Path) -> Path:
    return save_tiny(tiny_color, "colorize", tmp_path / "tiny_color.safetensors")


def lightness(rgb: np.ndarray) -> np.ndarray:
    from aetools.tasks.colorize import luminance

    return luminance(np.asarray(rgb, dtype=np.float32) / (65535.0 if rgb.dtype == np.uint16 else 255.0))


# ------------------------------------------------------------------------------------- the maths


def test_gamut_bins_and_rebalancing_weights():
    from aetools.heads.colorize_bins import gamut_bins, load_prior, rebalancing_weights

    bins, prior = load_prior()
    assert np.array_equal(bins, gamut_bins())  # the shipped table is what the code computes
    assert abs(prior.sum() - 1) < 1e-6 and np.all(prior >= 0)
    weights = rebalancing_weights(prior, bins)
    grey = np.argmin(np.abs(bins).sum(1))
    assert weights[grey] < 1 < weights.max()  # common greys count less, rare colours more
    d2 = ((bins[:, None] - bins[None]) ** 2).sum(-1)
    smoothed = np.exp(-d2 / 50) @ prior
    assert np.isclose((smoothed / smoothed.sum() * weights).sum(), 1.0)  # E_p̃[w] = 1 (eq. 4)


def test_soft_encoding_and_annealed_mean():
    from aetools.heads.colorize import annealed_mean
    from aetools.tasks.colorize import _loss_tables, soft_encode

    bins, _ = _loss_tables()
    ab = torch.tensor([[0.0, 0.0], [23.0, -41.0]])
    idx, weights = soft_encode(ab, bins)
    assert torch.allclose(weights.sum(1), torch.ones(2))
    assert torch.equal(bins[idx[1, 0]], torch.tensor([20.0, -40.0]))  # nearest bin first, heaviest
    assert weights[1, 0] == weights[1].max()
    logits = torch.full((1, len(bins), 1, 1), -3.0)
    logits[0, idx[1, 0]] = 0.0
    vivid = annealed_mean(logits, bins, temperature=0.01)[0, :, 0, 0]
    mean = annealed_mean(logits, bins, temperature=1.0)[0, :, 0, 0]
    assert torch.allclose(vivid, torch.tensor([20.0, -40.0]), atol=1e-3)  # T -> 0: the mode
    assert mean.norm() < vivid.norm()  # T = 1: the mean, pulled toward grey


def test_loss_decreases_toward_the_true_bin():
    from aetools.tasks.colorize import _loss_tables, colorize_loss, soft_encode

    bins, _ = _loss_tables()
    ab = torch.tensor([30.0, 20.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4)
    right = torch.zeros(1, len(bins), 4, 4)
    idx, _ = soft_encode(ab[:, :, 0, 0], bins)
    right[:, idx[0, 0]] = 8.0
    wrong = torch.zeros(1, len(bins), 4, 4)
    wrong[:, 0] = 8.0
    assert colorize_loss(right, ab) < colorize_loss(torch.zeros_like(right), ab) < colorize_loss(wrong, ab)


def test_gamut_mapping_keeps_lightness():
    """Out-of-gamut ab is shrunk (same L, same hue) instead of being clipped per channel."""
    from skimage import color

    from aetools.tasks.colorize import lab_to_rgb_keeping_l, rgb_to_lab

    lab = np.zeros((8, 8, 3))
    lab[..., 0] = np.linspace(5, 95, 64).reshape(8, 8)
    lab[..., 1:] = [90.0, 70.0]  # far outside sRGB at most lightness levels
    ours = lab_to_rgb_keeping_l(lab)
    assert np.abs(rgb_to_lab(ours)[..., 0] - lab[..., 0]).max() < 0.6
    with pytest.warns(UserWarning):
        clipped = np.clip(color.lab2rgb(lab), 0, 1)
    assert np.abs(rgb_to_lab(clipped)[..., 0] - lab[..., 0]).max() > 5  # what plain clipping does


# ------------------------------------------------------------------------------- the image contract


def test_luminance_kept_on_a_bundled_photo(tiny_color):
    from aetools.api import colorize

    grey = Image.fromarray(photo(200, "coffee")).convert("L")
    out = colorize(grey, model=tiny_color)
    assert out.mode == "RGB" and out.size == grey.size
    rgb = np.asarray(out)
    delta = np.abs(lightness(rgb) - lightness(np.asarray(grey.convert("RGB"))))
    assert delta.mean() * 2.55 < 1.0 and delta.max() * 2.55 < 3.0  # under one grey level on average
    assert np.ptp(rgb.astype(int), axis=2).mean() > 5  # and it is in colour


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "CMYK", "I;16"])
def test_input_modes(tmp_path, tiny_color_weights, mode):
    rgb = photo(48, "astronaut")
    base = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray((lightness(rgb) / 100 * 65535).astype(np.uint16))  # 16-bit grey
    elif mode in ("LA", "RGBA"):
        img = base.convert(mode)
        img.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 48).astype(np.uint8), (48, 1))))
    else:
        img = base.convert(mode)
    ext = ".tif" if mode == "CMYK" else ".png"
    src = tmp_path / f"in{ext}"
    img.save(src)
    r = run("colorize", src, "--model", tiny_color_weights)
    assert r.exit_code == 0, r.output
    from aetools.data.io import load_image

    out = load_image(tmp_path / f"in_color{ext}")
    assert out.pixels.shape == (48, 48, 3)
    assert (out.alpha is not None) == (mode in ("LA", "RGBA"))
    if out.alpha is not None:
        assert np.abs(out.alpha - load_image(src).alpha).max() < 1e-6
    assert out.bit_depth == (16 if mode == "I;16" else 8)
    source_l = lightness(np.asarray(load_image(src).pixels * 255, dtype=np.float32).round().astype(np.uint8))
    out_l = lightness(to_uint8(out.pixels))
    assert np.abs(out_l - source_l).mean() * 2.55 < (1.0 if mode != "CMYK" else 1.5)


def test_sepia_and_colour_inputs_are_desaturated_first(tiny_color):
    """A tinted scan and a grey one with the same lightness give the same colours."""
    from aetools.api import colorize

    rgb = photo(64, "chelsea").astype(np.float32)
    grey_level = rgb.mean(axis=2, keepdims=True)
    sepia = np.clip(grey_level * np.array([1.07, 0.74, 0.43]) * 1.25, 0, 255).astype(np.uint8)
    grey = np.repeat((np.round(_grey_with_lightness(lightness(sepia)) * 255)).astype(np.uint8)[..., None], 3, axis=2)
    a = colorize(sepia, model=tiny_color).astype(int)
    b = colorize(grey, model=tiny_color).astype(int)
    assert np.abs(a - b).mean() < 2.0


def _grey_with_lightness(L: np.ndarray) -> np.ndarray:
    from skimage import color

    return color.lab2rgb(np.stack([L, 0 * L, 0 * L], axis=-1))[..., 0]


def test_strength_blends_toward_grey(tiny_color):
    from aetools.api import colorize

    grey = photo(48, "coffee").mean(axis=2).astype(np.uint8)
    full = colorize(grey, model=tiny_color).astype(int)
    half = colorize(grey, strength=0.5, model=tiny_color).astype(int)
    none = colorize(grey, strength=0.0, model=tiny_color).astype(int)
    spread = lambda x: np.ptp(x, axis=2).mean()  # noqa: E731
    assert spread(none) < 1.0 < spread(half) < spread(full)
    with pytest.raises(ValueError, match="strength"):
        colorize(grey, strength=1.5, model=tiny_color)


def test_large_photos_run_at_the_working_size(tiny_color):
    """A photo far above the working size is coloured at full resolution from one low-resolution pass."""
    from aetools.tasks.colorize import colorize_pixels

    big = np.random.default_rng(0).random((300, 500, 1), dtype=np.float32)
    out = colorize_pixels(tiny_color, big)
    assert out.shape == (300, 500, 3)
    assert np.abs(lightness(to_uint8(out)) - lightness(to_uint8(np.repeat(big, 3, 2)))).mean() * 2.55 < 1.0


# -------------------------------------------------------------------------------- the shipped model


def test_shipped_model_colours_a_bundled_photo_better_than_grey():
    """On a bundled colour photo made grey: closer to the truth than grey, more colourful than a constant
    mean-ab tint, and its L is the input's."""
    from skimage.metrics import peak_signal_noise_ratio

    from aetools.bench.colorize import colourfulness
    from aetools.heads.colorize_bins import load_prior
    from aetools.tasks.colorize import colorize_lightness, lab_to_rgb_keeping_l, rgb_to_lab
    from aetools.weights import load_model

    model = load_model(None, "colorize")
    truth = photo(256, "coffee")
    L = rgb_to_lab(truth / 255.0)[..., 0]
    ours = to_uint8(colorize_lightness(model, L))
    grey = to_uint8(lab_to_rgb_keeping_l(np.stack([L, 0 * L, 0 * L], -1)))
    bins, prior = load_prior()
    mean_ab = (prior[:, None] * bins).sum(0)
    tint = to_uint8(lab_to_rgb_keeping_l(np.stack([L, 0 * L + mean_ab[0], 0 * L + mean_ab[1]], -1)))
    psnr = lambda x: peak_signal_noise_ratio(truth, x, data_range=255)  # noqa: E731
    assert psnr(ours) > psnr(grey) + 0.5, (psnr(ours), psnr(grey))
    assert colourfulness(ours) > colourfulness(tint)
    assert np.abs(rgb_to_lab(ours / 255.0)[..., 0] - L).mean() * 2.55 < 1.0


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_colorize_contract(tmp_path, tiny_color_weights):
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(photo(40)).convert("L").save(folder / "old.jpg", quality=95)
    Image.fromarray(photo(32, "coffee")).save(folder / "colour.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    before = (folder / "old.jpg").read_bytes()
    r = run("colorize", folder / "old.jpg", "--model", tiny_color_weights, "--strength", "0.7")
    assert r.exit_code == 0, r.output
    out = Image.open(folder / "old_color.jpg")
    assert out.mode == "RGB" and out.size == (40, 40)
    assert (folder / "old.jpg").read_bytes() == before
    r = run("colorize", folder, "-o", tmp_path / "colour", "--model", tiny_color_weights)
    assert r.exit_code == 1 and "broken.png" in r.output and "2 written, 1 failed" in r.output
    # old_color.jpg, an earlier output, is not taken as an input
    assert sorted(p.name for p in (tmp_path / "colour").iterdir()) == ["colour.png", "old.jpg"]
    r = run("colorize", folder / "old.jpg", "--strength", "2", "--model", tiny_color_weights)
    assert r.exit_code == 2
    r = run("colorize", folder / "old.jpg", "--model", tmp_path / "nope.safetensors")
    assert r.exit_code == 2 and "nope.safetensors" in r.output


def test_eval_colorize_prints_ours_beside_baselines(tmp_path, tiny_color_weights):
    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ["astronaut", "coffee"]:
        Image.fromarray(photo(64, name)).save(folder / f"{name}.png")
    r = run("eval", "colorize", "--data", folder, "--model", tiny_color_weights, "--no-cost", "--format", "markdown")
    assert r.exit_code == 0, r.output
    for row in ["grey (input as RGB)", "mean ab of the set", "| ours |"]:
        assert row in r.output


def test_train_colorize_and_resume(train_folder, tmp_path):
    from aetools.weights import read_weights

    out = tmp_path / "c.safetensors"
    args = ["--data", train_folder, "--val", train_folder, "--out", out, "--batch-size", "2", "--crop", "32"]
    args += ["--widths", "8,16"]
    r = run("train", "colorize", *args, "--steps", "2", "--checkpoint-every", "1", "--val-every", "2")
    assert r.exit_code == 0, r.output
    r = run("train", "colorize", *args, "--steps", "3", "--resume")
    assert r.exit_code == 0, r.output
    tensors, header = read_weights(out)
    assert header["task"] == "colorize" and header["training"]["steps"] == 3
    assert header["training"]["val_psnr"] > 10  # validation scores the RGB built from L and predicted ab
    assert tensors["ab_bins"].shape == (261, 2)  # the bin centres travel with the weights


def test_eval_stops_with_one_line_on_a_broken_benchmark_file(tmp_path, tiny_color_weights):
    folder = tmp_path / "bench"
    folder.mkdir()
    Image.fromarray(photo(32)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    r = run("eval", "colorize", "--data", folder, "--model", tiny_color_weights, "--no-cost")
    assert r.exit_code == 2 and "b.png" in r.output and "Traceback" not in r.output
