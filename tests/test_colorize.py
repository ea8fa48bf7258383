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


@pytest.fixture
def tiny_hinted():
    """A tiny colorizer that takes colour hints."""
    model = tiny_model("colorize-unet", widths=(8, 16), blocks=1, bottleneck_blocks=1, work_size=64, hints=True)
    with torch.no_grad():
        model.head[-1].bias.copy_(torch.where(model.ab_bins.norm(dim=1) > 60, 5.0, 0.0))
    return model


@pytest.fixture
def tiny_hinted_weights(tiny_hinted, tmp_path: Path) -> Path:
    return save_tiny(tiny_hinted, "colorize", tmp_path / "tiny_hinted.safetensors")


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


def test_confidence_dependent_readout_mutes_only_the_unsure_pixels():
    """T rises to 1 (the plain mean) where the distribution is flat; a certain pixel keeps its mode's colour."""
    from aetools.heads.colorize import normalised_entropy, readout_temperature
    from aetools.tasks.colorize import Readout, _loss_tables, ab_from_logits

    bins, _ = _loss_tables()
    q = len(bins)
    assert torch.allclose(normalised_entropy(torch.zeros(1, q, 1, 1)), torch.ones(1))  # uniform: 1
    red = int((bins - torch.tensor([60.0, 50.0])).norm(dim=1).argmin())
    green = int((bins - torch.tensor([-50.0, 50.0])).norm(dim=1).argmin())
    logits = torch.zeros(1, q, 1, 2)
    logits[0, :, 0, 0] = -20.0
    logits[0, red, 0, 0] = 0.0  # pixel 0: sure it is red
    logits[0, [red, green], 0, 1] = 1.0  # pixel 1: red or green, a little more likely than anything else
    t = readout_temperature(logits, 0.3, 0.5)
    assert t.shape == (1, 1, 1, 2) and abs(t[0, 0, 0, 0] - 0.3) < 0.01 and t[0, 0, 0, 1] > 0.9
    assert readout_temperature(logits, 0.3, None) == 0.3
    fixed = ab_from_logits(logits, bins, (1, 2), Readout(0.3))[0, :, 0]  # (2, 2): ab of each pixel
    adaptive = ab_from_logits(logits, bins, (1, 2), Readout(0.3, flat_entropy=0.5))[0, :, 0]
    mean = ab_from_logits(logits, bins, (1, 2), Readout(1.0))[0, :, 0]
    assert torch.allclose(adaptive[:, 0], fixed[:, 0], atol=0.05)  # the sure pixel: unchanged
    assert torch.allclose(adaptive[:, 1], mean[:, 1], atol=0.05)  # the flat one: the plain mean
    assert adaptive[:, 1].norm() < fixed[:, 1].norm()  # ... which is more muted than the annealed mean
    for bad in [dict(temperature=0.0), dict(calibration=1.5), dict(flat_entropy=0.0), dict(flat_entropy=2.0)]:
        with pytest.raises(ValueError):
            Readout(**bad)


def test_colour_metrics_on_images_with_known_answers():
    """A perfect colorization scores CIEDE2000 0 and cast 0; the grey input's cast is the truth's own mean ab;
    a pure cast of (8, 6) in ab measures 10; Hasler and Süsstrunk's M of a flat colour is 0.3 |(rg, yb)|."""
    from skimage import color

    from aetools.bench.colorize import Truth, colourfulness, grey_output, score, summarize

    truth = Truth.of(photo(96, "coffee"))
    perfect = score(truth, truth.rgb / 255.0)
    assert perfect.ciede2000 == 0 and perfect.cast == 0 and perfect.delta_l == 0 and perfect.psnr == np.inf
    assert perfect.colourfulness == perfect.truth_colourfulness

    grey = score(truth, grey_output(truth.lightness))
    assert abs(grey.cast - np.linalg.norm(truth.mean_ab)) < 0.1 and grey.grey_cast == np.linalg.norm(truth.mean_ab)
    assert grey.colourfulness < 1 and grey.ciede2000 > 5
    assert summarize([grey])["cast_worse_than_grey_share"] == 0  # grey never counts against itself

    # a low-chroma scene shifted by (8, 6) in ab stays in gamut: a pure cast of 10
    rng = np.random.default_rng(0)
    lab = np.zeros((64, 64, 3))
    lab[..., 0] = np.linspace(35, 75, 64)[None, :]
    lab[..., 1:] = rng.uniform(-4, 4, (64, 64, 2))
    muted = Truth.of(to_uint8(color.lab2rgb(lab)))
    cast = score(muted, color.lab2rgb(muted.lab + np.array([0.0, 8.0, 6.0])))
    assert abs(cast.cast - 10.0) < 0.3 and cast.grey_cast < 2
    assert cast.delta_l < 0.5 and 5 < cast.ciede2000 < 15
    summary = summarize([cast, perfect])
    assert summary["cast_worse_than_grey_share"] == 0.5 and abs(summary["cast"] - cast.cast / 2) < 1e-9

    flat = np.zeros((8, 8, 3), dtype=np.uint8) + np.array([200, 100, 50], dtype=np.uint8)  # rg 100, yb 100
    assert abs(colourfulness(flat) - 0.3 * np.hypot(100, 100)) < 1e-9


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
    from aetools.tasks.colorize import Readout, colorize_pixels

    muted = to_uint8(colorize_pixels(tiny_color, grey[..., None] / 255.0, readout=Readout(1.0, 1.0))).astype(int)
    assert spread(muted) < spread(full)  # the plain posterior mean: a readout of the pipeline, more muted
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
    from aetools.weights import read_weights

    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ["astronaut", "coffee"]:
        Image.fromarray(photo(64, name)).save(folder / f"{name}.png")
    args = ["eval", "colorize", "--data", folder, "--model", tiny_color_weights, "--no-cost", "--precisions", "fp32"]
    r = run(*args, "--format", "markdown", "--record")
    assert r.exit_code == 0, r.output
    for text in ["grey (input as RGB)", "mean ab of the set", "| ours |", "CIEDE2000", "cast worse than grey's"]:
        assert text in r.output
    grey_row = next(line for line in r.output.splitlines() if line.startswith("| grey"))
    assert grey_row.split("|")[5].strip() == "0%"  # grey's cast is never worse than grey's
    metrics = read_weights(tiny_color_weights)[1]["metrics"]
    for measure in ["psnr", "colourfulness_ratio", "washed_out_share", "delta_l"]:  # the names already recorded
        assert f"bench_{measure}" in metrics
    assert metrics["bench_ciede2000"] > 0 and 0 <= metrics["bench_cast_worse_than_grey_share"] <= 1
    assert metrics["bench_cast"] > 0
    r = run(*args, "--flat-entropy", "0.6", "--temperature", "0.3", "--format", "markdown")
    assert r.exit_code == 0 and "rising to 1 at entropy 0.6" in r.output, r.output
    r = run(*args, "--flat-entropy", "1.5")
    assert r.exit_code == 2 and "flat entropy" in r.output and "Traceback" not in r.output
    r = run(*args, "--temperature", "0.3", "--record")
    assert r.exit_code == 2 and "--record" in r.output


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


# ------------------------------------------------------------------------------------- colour hints


def test_hint_sampler_reveals_patch_means_and_is_seeded():
    from aetools.tasks.colorize import HINT_PATCHES, sample_hints

    ab = torch.randn(3, 2, 40, 48) * 30
    hints = sample_hints(ab, torch.Generator().manual_seed(7), count=5)
    again = sample_hints(ab, torch.Generator().manual_seed(7), count=5)
    assert hints.shape == (3, 3, 40, 48) and torch.equal(hints, again)
    for i in range(3):
        mask = hints[i, 2] > 0
        assert 1 <= mask.sum() <= 5 * max(HINT_PATCHES) ** 2  # 5 squares of 1-9 px, possibly overlapping
        assert torch.all(hints[i, :2][:, ~mask] == 0)  # colour only where the mask says
        assert hints[i, :2].abs().max() <= ab[i].abs().max() / 100 + 1e-6  # means of true ab, / 100
    none = sample_hints(ab, torch.Generator().manual_seed(0), no_hint_share=1.0)
    assert torch.all(none == 0)  # the automatic share: no hints at all


def test_a_hint_model_grown_from_one_without_computes_the_same():
    """--init from a colorizer without hints: the new input channels start at zero, so the grown network
    gives the old one's logits until training moves them; other size changes are refused."""
    from aetools.train.trainer import load_grown

    old = tiny_model("colorize-unet", widths=(8, 16), blocks=1, bottleneck_blocks=1)
    grown = tiny_model("colorize-unet", widths=(8, 16), blocks=1, bottleneck_blocks=1, hints=True)
    load_grown(grown, old.state_dict())
    grey = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        expected = old(grey)
        assert torch.equal(grown(grey), expected)  # L alone: no hints
        hinted = torch.cat([grey, torch.zeros(1, 3, 32, 32)], dim=1)
        hinted[:, 1:, 10:14, 10:14] = torch.tensor([0.5, -0.3, 1.0]).view(1, 3, 1, 1)
        assert torch.equal(grown(hinted), expected)  # the hint channels' weights are still zero
    wider = tiny_model("colorize-unet", widths=(8, 32), blocks=1, bottleneck_blocks=1, hints=True)
    with pytest.raises(ValueError, match="the model has"):
        load_grown(wider, old.state_dict())


def test_hints_at_the_working_size():
    """Hints on a big photo: each working pixel holds the mean ab of the hints falling in it."""
    from aetools.tasks.colorize import Hints

    hints = Hints(np.array([0, 1, 99]), np.array([0, 1, 199]), np.array([[10.0, 20.0], [30.0, 40.0], [-50.0, 0.0]]))
    channels = hints.channels((100, 200), (10, 20))[0]
    assert channels.shape == (3, 10, 20) and channels[2].sum() == 2
    assert torch.allclose(channels[:2, 0, 0], torch.tensor([0.2, 0.3]))  # mean of the first two, / 100
    assert torch.allclose(channels[:2, 9, 19], torch.tensor([-0.5, 0.0]))


def test_hints_honoured_and_lightness_kept(tiny_hinted):
    from skimage.color import deltaE_ciede2000

    from aetools.tasks.colorize import GAMUT_TOLERANCE, Hints, colorize_pixels, lab_to_rgb_keeping_l, rgb_to_lab

    pixels = photo(48).astype(np.float32) / 255.0  # a colour photo: only its L is used
    light = lightness(photo(48))
    points = [(5, 7, "#2f6fd0"), (40, 30, (40, 160, 60)), (20, 44, "#c03030")]
    hints = Hints.from_points(points, (48, 48))
    for given in (None, hints):
        out = colorize_pixels(tiny_hinted, pixels, hints=given)
        # L kept, with and without hints (to the gamut mapping's round-trip tolerance)
        assert np.abs(rgb_to_lab(out)[..., 0] - light).max() < GAMUT_TOLERANCE
    lab = rgb_to_lab(out)
    for (x, y, _), ab in zip(points, hints.ab):
        # the hint's colour at the photo's lightness (chroma shrunk into the gamut where it does not fit)
        wanted = rgb_to_lab(lab_to_rgb_keeping_l(np.array([[[light[y, x], *ab]]], np.float32)))[0]
        assert deltaE_ciede2000(wanted, lab[y, x][None]).max() < 1.0
    without = colorize_pixels(tiny_hinted, pixels)
    assert not np.allclose(without, out)


def test_hints_from_an_image_and_bad_hints():
    from aetools.data.io import ImageData
    from aetools.tasks.colorize import Hints, parse_hint

    alpha = np.zeros((10, 12), np.float32)
    alpha[2, 3] = alpha[5, 6] = 1.0
    pixels = np.zeros((10, 12, 3), np.float32)
    pixels[2, 3] = [1.0, 0.0, 0.0]
    hints = Hints.from_image(ImageData(pixels, alpha), (12, 10))
    assert len(hints) == 2 and hints.ab[0, 0] > 50  # red: large a
    assert parse_hint("3, 4,#FF0000") == (3, 4, (255, 0, 0))
    for bad, message in [("3,4,#FF00", "#RRGGBB"), ("3,4,red", "#RRGGBB"), ("3;4;#ff0000", "X,Y,#RRGGBB")]:
        with pytest.raises(ValueError, match=message):
            parse_hint(bad)
    with pytest.raises(ValueError, match=r"outside the 12x10 image"):
        Hints.from_points([(12, 0, "#ffffff")], (12, 10))
    with pytest.raises(ValueError, match="is 12x10 but the image is 20x10"):
        Hints.from_image(ImageData(pixels, alpha), (20, 10))
    with pytest.raises(ValueError, match="no transparency"):
        Hints.from_image(ImageData(pixels), (12, 10))


def test_cli_colorize_with_hints(tmp_path, tiny_hinted_weights, tiny_color_weights):
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(photo(40)).convert("L").save(folder / "old.png")
    Image.fromarray(photo(32, "coffee")).convert("L").save(folder / "small.png")
    hint_image = np.zeros((40, 40, 4), np.uint8)
    hint_image[10:13, 10:13] = [40, 90, 200, 255]
    Image.fromarray(hint_image).save(tmp_path / "hints.png")
    model = ["--model", tiny_hinted_weights]
    r = run("colorize", folder / "old.png", "-o", tmp_path / "a.png", "--hint", "30,5,#c03030", *model)
    assert r.exit_code == 0, r.output
    r = run("colorize", folder / "old.png", "-o", tmp_path / "b.png", "--hints", tmp_path / "hints.png", *model)
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "b.png").convert("RGB")).astype(int)
    assert out[11, 11, 2] > out[11, 11, 0]  # blue where the hint image says blue
    # bad hints: one line each, nothing written
    r = run("colorize", folder / "old.png", "-o", tmp_path / "c.png", "--hint", "3,4,blue", *model)
    assert r.exit_code == 2 and "#RRGGBB" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "c.png").exists()
    r = run("colorize", folder / "old.png", "-o", tmp_path / "c.png", "--hint", "50,4,#ffffff", *model)
    assert r.exit_code == 1 and "outside the 40x40 image" in r.output and not (tmp_path / "c.png").exists()
    r = run("colorize", folder / "small.png", "-o", tmp_path / "c.png", "--hints", tmp_path / "hints.png", *model)
    assert r.exit_code == 1 and "is 40x40 but the image is 32x32" in r.output
    r = run("colorize", folder / "old.png", "--hints", tmp_path / "none.png", *model)
    assert r.exit_code == 2 and "none.png" in r.output
    r = run("colorize", folder / "old.png", "--hint", "1,1,#ffffff", "--model", tiny_color_weights)
    assert r.exit_code == 2 and "no colour hints" in r.output


def test_api_colorize_with_hints(tiny_hinted_weights):
    import aetools

    grey = Image.fromarray(photo(40)).convert("L")
    out = aetools.colorize(grey, model=str(tiny_hinted_weights), hints=[(20, 20, "#2050e0")])
    rgb = np.asarray(out.convert("RGB")).astype(int)
    assert out.size == (40, 40) and rgb[20, 20, 2] > rgb[20, 20, 0]
    painted = np.zeros((40, 40, 4), np.uint8)
    painted[18:23, 18:23] = [32, 80, 224, 255]  # a hint image: a blue dab on a transparent layer
    out = aetools.colorize(grey, model=str(tiny_hinted_weights), hints=Image.fromarray(painted))
    rgb = np.asarray(out.convert("RGB")).astype(int)
    assert rgb[20, 20, 2] > rgb[20, 20, 0]
    with pytest.raises(ValueError, match="hints: expected"):
        from aetools.tasks.colorize import Hints

        Hints.of(3.5, (40, 40))


def test_eval_colorize_with_clicks_beside_levin(tmp_path, tiny_hinted_weights, tiny_color_weights):
    """The same simulated clicks for ours and for Levin et al. 2004, in one run; a model without hints gets no
    clicked row but Levin still runs; --record stores the clicked metrics."""
    from aetools.weights import read_weights

    folder = tmp_path / "bench"
    folder.mkdir()
    Image.fromarray(photo(48, "coffee")).save(folder / "coffee.png")
    args = ["eval", "colorize", "--data", folder, "--no-cost", "--precisions", "fp32", "--hints", "5"]
    r = run(*args, "--model", tiny_hinted_weights, "--format", "markdown", "--record")
    assert r.exit_code == 0, r.output
    assert "| ours + 5 clicks |" in r.output and "| Levin et al. 2004 + 5 clicks |" in r.output
    assert "dB over Levin et al. with the same clicks" in r.output and "s / photo" in r.output
    levin = next(line for line in r.output.splitlines() if line.startswith("| Levin"))
    grey = next(line for line in r.output.splitlines() if line.startswith("| grey"))
    assert float(levin.split("|")[2]) > float(grey.split("|")[2])  # five true colours beat none
    metrics = read_weights(tiny_hinted_weights)[1]["metrics"]
    assert metrics["bench_clicks5_ciede2000"] > 0 and "bench_psnr" in metrics
    r = run(*args, "--model", tiny_color_weights, "--format", "markdown")
    assert r.exit_code == 0, r.output
    assert "ours + 5 clicks" not in r.output and "| Levin et al. 2004 + 5 clicks |" in r.output
    assert "takes no hints" in r.output
    r = run(*args, "--model", tiny_color_weights, "--model", tiny_hinted_weights, "--format", "markdown")
    assert r.exit_code == 0, r.output
    assert f"| ours: {tiny_hinted_weights} + 5 clicks |" in r.output and f"| ours: {tiny_color_weights} |" in r.output
    r = run(*args, "--model", tiny_color_weights, "--model", tiny_hinted_weights, "--record")
    assert r.exit_code == 2 and "single --model" in r.output


def test_click_hints_are_true_colours_at_distinct_seeded_pixels():
    from aetools.bench.colorize import Truth, click_hints

    truth = Truth.of(photo(40, "coffee"))
    clicks = click_hints(truth, 10, seed=3)
    assert len(clicks) == 10 and len(set(zip(clicks.rows, clicks.cols))) == 10
    assert np.allclose(clicks.ab, truth.lab[clicks.rows, clicks.cols, 1:])
    again, other = click_hints(truth, 10, seed=3), click_hints(truth, 10, seed=4)
    assert np.array_equal(again.rows, clicks.rows) and not np.array_equal(other.rows, clicks.rows)


# --------------------------------------------------------------------------- Levin et al. 2004


def test_levin_fills_each_region_with_its_hint():
    """Two flat regions split by an edge, one hint in each: each region takes its hint's colour."""
    from aetools.bench.levin import levin_affinities, levin_colorize
    from aetools.tasks.colorize import Hints

    light = np.full((24, 30), 30.0)
    light[:, 13:] = 70.0
    hints = Hints(np.array([3, 20]), np.array([2, 27]), np.array([[40.0, 10.0], [-20.0, 50.0]], np.float32))
    ab = levin_colorize(light, hints)
    assert ab.shape == (24, 30, 2)
    # within 2 ab units everywhere, 2% of the hints' difference (the edge's weights are small, not zero: a
    # trace of the other colour leaks across it)
    for region, colour in ((ab[:, :13], [40.0, 10.0]), (ab[:, 13:], [-20.0, 50.0])):
        assert np.abs(region - colour).max() < 2.0
    assert np.allclose(ab[3, 2], [40.0, 10.0]) and np.allclose(ab[20, 27], [-20.0, 50.0])  # hints kept exactly
    # without the edge, the colour is a smooth blend: far from both hints it lies between them
    blend = levin_colorize(np.full((24, 30), 50.0), hints)
    assert -20.0 < blend[12, 15, 0] < 40.0 and 10.0 < blend[12, 15, 1] < 50.0
    rows, _, weights = levin_affinities(light)
    assert np.allclose(np.bincount(rows, weights=weights), 1.0)  # each pixel: a weighted mean of neighbours
    assert np.all(levin_colorize(light, Hints.none()) == 0)  # nothing to propagate: grey


# --------------------------------------------------------------- the colorizer on a pretrained encoder


@pytest.fixture
def mobile():
    """The MobileNetV2 colorizer with hints, a small decoder."""
    return tiny_model("colorize-unet", encoder="mobilenet_v2", hints=True, decoder_widths=(8, 8, 16, 16))


def test_mobilenet_colorizer_shape_and_stride_on_odd_sizes(mobile):
    """L in (or L and hints), logits out at a quarter of the resolution rounded up, whatever the size; padded
    to the encoder's stride (32) inside. The loss averages the half-resolution target down to them."""
    from aetools.heads.colorize_mobilenet import ColorizeMobileNet
    from aetools.tasks.colorize import colorize_loss, pooled_to

    assert isinstance(mobile, ColorizeMobileNet) and mobile.arch == "colorize-unet" and mobile.stride == 32
    with torch.no_grad():
        for h, w in [(37, 53), (1, 1), (33, 18), (64, 96)]:
            for channels in (1, 4):
                logits = mobile(torch.rand(2, channels, h, w))
                assert logits.shape == (2, 261, -(-h // 4), -(-w // 4))
        target = torch.randn(2, 2, 19, 27) * 20  # a 37x53 crop's ab at half resolution
        assert pooled_to(target, (10, 14)).shape == (2, 2, 10, 14)
        assert torch.allclose(pooled_to(target, (10, 14))[..., 0, 0], target[..., :2, :2].mean(dim=(2, 3)))
        assert colorize_loss(mobile(torch.rand(2, 1, 37, 53)), target) > 0
        with pytest.raises(ValueError, match="do not match"):
            pooled_to(target, (8, 14))
        grey = torch.rand(1, 1, 40, 56)
        assert torch.equal(mobile(grey), mobile(torch.cat([grey, torch.zeros(1, 3, 40, 56)], 1)))  # L alone: no hints
    with pytest.raises(ValueError, match="input channels"):
        mobile(torch.rand(1, 2, 32, 32))


def test_mobilenet_hints_reach_the_bottleneck_and_the_full_resolution_stage(mobile):
    """A hint enters pooled at every level down to the bottleneck (1/32), where a 1-pixel point and a 3x3 patch
    of the same colour inside one cell are the same input, and at full resolution into the last stage, where
    they differ; the logits change over a whole region, not at one pixel."""
    seen = {}

    def keep(name):
        return lambda module, args, output: seen.__setitem__(name, args[0].detach().clone())

    mobile.bottleneck_block.register_forward_hook(keep("bottleneck"))
    mobile.last.register_forward_hook(keep("last"))
    grey = torch.rand(1, 1, 64, 64)

    def forward(hint_pixels: tuple[slice, slice] | None):
        x = torch.cat([grey, torch.zeros(1, 3, 64, 64)], dim=1)
        if hint_pixels is not None:
            x[:, 1:, hint_pixels[0], hint_pixels[1]] = torch.tensor([0.4, -0.2, 1.0]).view(1, 3, 1, 1)
        with torch.no_grad():
            logits = mobile(x)
        return logits, {k: v.clone() for k, v in seen.items()}

    base, before = forward(None)
    point, at_point = forward((slice(40, 41), slice(10, 11)))
    patch, at_patch = forward((slice(39, 42), slice(9, 12)))
    changed = (at_point["bottleneck"] - before["bottleneck"]).abs().sum(1)[0]  # (2, 2) cells of 32x32
    assert changed[1, 0] > 0 and changed[0, 0] == changed[0, 1] == changed[1, 1] == 0  # the hint's cell only
    assert torch.allclose(at_point["bottleneck"], at_patch["bottleneck"], atol=1e-6)  # one pooled cell, both
    full_changed = (at_point["last"] - before["last"]).abs().sum(1)[0]  # (16, 16) at 1/4
    assert full_changed[10, 2] > 0 and not torch.equal(at_point["last"], at_patch["last"])
    region = ((point - base).abs().amax(dim=1)[0] > 1e-4).sum()
    assert region >= 64  # one hinted pixel moves the logits over a region (its 32x32 cell: 8x8 at 1/4)


def test_pretrained_encoder_loads_and_trains_frozen_then_saves_whole(train_folder, tmp_path):
    """--pretrained loads torchvision's mobilenet_v2 state dict into the encoder (here a fake one with its
    keys); with encoder_frozen_steps the encoder is still exactly that after training; the weights file
    holds it (inference needs no .pth) and records the file's name and sha256; bad uses are one line."""
    import hashlib

    from torchvision.models import mobilenet_v2

    from aetools.weights import load_model, read_weights

    torch.manual_seed(1)
    fake = mobilenet_v2().state_dict()  # random weights under torchvision's key names
    fake = {k: v + 0.01 if v.is_floating_point() else v for k, v in fake.items()}
    pth = tmp_path / "mobilenet_v2-fake.pth"
    torch.save(fake, pth)
    out = tmp_path / "m.safetensors"
    args = ["train", "colorize", "--data", train_folder, "--val", train_folder, "--out", out, "--crop", "32"]
    args += [
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--set",
        "encoder=mobilenet_v2",
        "--set",
        "decoder_widths=8,8,16,16",
    ]
    r = run(*args, "--pretrained", pth, "--set", "encoder_frozen_steps=5")
    assert r.exit_code == 0, r.output
    tensors, header = read_weights(out)
    assert header["config"]["encoder"] == "mobilenet_v2"
    assert header["training"]["pretrained"] == {
        "file": pth.name,
        "sha256": hashlib.sha256(pth.read_bytes()).hexdigest(),
    }
    assert header["training"]["val"] == [str(train_folder)]
    for name, value in fake.items():
        if name.startswith("features."):
            assert torch.equal(tensors["encoder." + name.removeprefix("features.")], value), name
    model = load_model(str(out), "colorize")  # the config selects the network; no .pth needed
    assert type(model).__name__ == "ColorizeMobileNet"
    assert not torch.equal(model.head[-1].weight, create_like(header)["head.0.weight"])  # the decoder trained
    # bad uses: one line, exit 2
    r = run(*args, "--out", tmp_path / "u.safetensors", "--pretrained", tmp_path / "none.pth")
    assert r.exit_code == 2 and "none.pth: no such file" in r.output and "Traceback" not in r.output
    (tmp_path / "other.pth").write_bytes(b"not a state dict")
    r = run(*args, "--out", tmp_path / "v.safetensors", "--pretrained", tmp_path / "other.pth")
    assert r.exit_code == 2 and "other.pth: not a PyTorch state dict" in r.output
    torch.save({"features.0.0.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    r = run(*args, "--out", tmp_path / "w.safetensors", "--pretrained", tmp_path / "wrong.pth")
    assert r.exit_code == 2 and "not torchvision's mobilenet_v2 weights" in r.output
    r = run("train", "colorize", "--data", train_folder, "--out", tmp_path / "x.safetensors", "--pretrained", pth)
    assert r.exit_code == 2 and "has no pretrained part" in r.output


def create_like(header: dict) -> dict:
    """The initial weights (seed 0) of the network a weights header describes."""
    from aetools.models import create_model

    torch.manual_seed(0)
    return create_model(header["arch"], **header["config"]).state_dict()


def test_encoder_learns_slower_or_not_yet():
    """The optimizer groups the model gives the trainer: the encoder at encoder_lr_scale, after
    encoder_frozen_steps; the rest at the full rate."""
    model = tiny_model("colorize-unet", encoder="mobilenet_v2", encoder_lr_scale=0.1, encoder_frozen_steps=100)
    rest, encoder = model.optimizer_groups()
    assert {id(p) for p in encoder["params"]} == {id(p) for p in model.encoder.parameters()}
    assert len(rest["params"]) + len(encoder["params"]) == len(list(model.parameters()))
    assert encoder["lr_scale"] == 0.1 and encoder["frozen_steps"] == 100 and "lr_scale" not in rest
    frozen = tiny_model("colorize-unet", encoder="mobilenet_v2", encoder_lr_scale=0.0, decoder_widths=(8, 8, 16, 16))
    (only,) = frozen.optimizer_groups()  # frozen for good: the encoder is not optimised, nor differentiated
    assert {id(p) for p in only["params"]}.isdisjoint(id(p) for p in frozen.encoder.parameters())
    frozen.train()(torch.rand(1, 1, 32, 32)).sum().backward()
    assert all(p.grad is None for p in frozen.encoder.parameters()) and frozen.head[0].weight.grad is not None
    model.train()
    assert model.head.training and not any(
        m.training for m in model.encoder.modules() if "BatchNorm" in type(m).__name__
    )


def test_shipped_colorizer_still_loads_as_the_unet_and_mobilenet_round_trips(mobile, tmp_path):
    """Files saved before `encoder` existed (the shipped colorize.safetensors) load as the from-scratch U-Net;
    a MobileNet colorizer saved and loaded computes exactly what it did."""
    from aetools.heads.colorize import ColorizeNet
    from aetools.tasks.colorize import colorize_lightness
    from aetools.weights import load_model

    shipped = load_model(None, "colorize")
    assert type(shipped) is ColorizeNet and shipped.config.encoder == "unet"
    assert colorize_lightness(shipped, np.full((20, 28), 60.0, np.float32)).shape == (20, 28, 3)
    path = save_tiny(mobile, "colorize", tmp_path / "mobile.safetensors")
    loaded = load_model(str(path), "colorize")
    x = torch.rand(1, 4, 40, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), mobile(x))


def test_crops_without_colour_are_left_out_of_the_loss():
    from aetools.tasks.colorize import colorize_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 261, 4, 4)
    coloured = torch.tensor([30.0, -20.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4)
    grey = torch.full((1, 2, 4, 4), 0.3)
    both = torch.cat([coloured, grey])
    assert torch.isclose(colorize_loss(logits, both, min_chroma=1.5), colorize_loss(logits[:1], coloured))
    assert torch.isclose(
        colorize_loss(logits, both), (colorize_loss(logits[:1], coloured) + colorize_loss(logits[1:], grey)) / 2
    )
    assert colorize_loss(logits[1:], grey, min_chroma=1.5) == 0


def test_a_trained_hint_colours_its_region_not_one_pixel():
    """A few hundred steps on a synthetic task (two flat regions of random hue, split at a random column, with
    simulated hints; about 15 s on 2 cores): one hinted pixel then colours most of its region."""
    from aetools.tasks.colorize import Readout, ab_from_logits, colorize_loss, sample_hints

    torch.manual_seed(0)
    model = tiny_model(
        "colorize-unet", encoder="mobilenet_v2", hints=True, encoder_lr_scale=0.0, decoder_widths=(16, 16, 32, 32)
    )
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 3e-3)
    generator = torch.Generator().manual_seed(0)

    def two_regions(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """L (n, 1, 32, 32) and ab (n, 2, 32, 32): left and right of a random column, each its own hue."""
        light, ab = torch.zeros(n, 1, 32, 32), torch.zeros(n, 2, 32, 32)
        for i, cut in enumerate(torch.randint(8, 24, (n,), generator=generator).tolist()):
            for side, columns in ((0, slice(0, cut)), (1, slice(cut, 32))):
                angle = float(torch.rand((), generator=generator)) * 2 * np.pi
                ab[i, :, :, columns] = torch.tensor([50 * np.cos(angle), 50 * np.sin(angle)]).view(2, 1, 1)
                light[i, :, :, columns] = 0.3 + 0.4 * side
        return light, ab

    for _ in range(300):
        light, ab = two_regions(8)
        logits = model(torch.cat([light, sample_hints(ab, generator, no_hint_share=0.2)], dim=1))
        loss = colorize_loss(logits, torch.nn.functional.avg_pool2d(ab, 2), mix=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    light, ab = two_regions(8)
    hint = torch.zeros(8, 3, 32, 32)
    hint[:, :2, 16, 2] = ab[:, :, 16, 2] / 100  # one pixel in the left region, given its true colour
    hint[:, 2, 16, 2] = 1.0
    with torch.no_grad():
        hinted = ab_from_logits(model(torch.cat([light, hint], 1)), model.ab_bins, (32, 32), Readout())
        alone = ab_from_logits(model(light), model.ab_bins, (32, 32), Readout())
    left = slice(0, 8)  # every cut lies at column 8 or beyond
    error_hinted = (hinted - ab).norm(dim=1)[..., left]
    error_alone = (alone - ab).norm(dim=1)[..., left]
    assert error_hinted.mean() < 0.5 * error_alone.mean()
    # most of the region, not one pixel: in every image the median pixel of the left region lies within 30 ab
    # units of its true colour (chroma 50) once the one pixel is hinted
    assert torch.all(error_hinted.flatten(1).median(dim=1).values < 30)
