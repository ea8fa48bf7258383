"""Inpainting: known pixels kept bit for bit, masks from files, folders and transparency, the training
pair and loss, the shipped model on a bundled photo, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aetools.data.masks import benchmark_mask
from tests.conftest import photo, run, save_tiny, tiny_model


@pytest.fixture
def tiny_inpaint():
    return tiny_model("inpaint-unet", widths=(8, 16, 32), blocks=1, bottleneck_blocks=1)


@pytest.fixture
def tiny_inpaint_weights(tiny_inpaint, tmp_path: Path) -> Path:
    return save_tiny(tiny_inpaint, "inpaint", tmp_path / "tiny_inpaint.safetensors")


def box_mask(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[h // 4 : h // 2, w // 3 : 2 * w // 3] = True
    return mask


# ---------------------------------------------------------------------------- the pixel contract


@pytest.mark.parametrize("dtype, channels", [(np.uint8, 3), (np.uint8, 1), (np.uint16, 3), (np.float32, 3)])
def test_pixels_outside_the_holes_come_back_bit_exact(tiny_inpaint, dtype, channels):
    import aetools

    rgb = photo(96)
    image = rgb if channels == 3 else rgb[..., 0]
    if dtype == np.uint16:
        image = image.astype(np.uint16) * 257 + 3
    elif dtype == np.float32:
        image = image.astype(np.float32) / 255 + np.float32(1e-4)
    mask = benchmark_mask(96, 96, 0.2, 0)
    out = aetools.inpaint(image, mask, model=tiny_inpaint)
    assert out.dtype == image.dtype and out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    assert not np.array_equal(out[mask], image[mask])  # the holes were painted


def test_two_pass_fill_of_a_large_region_keeps_known_pixels(tiny_inpaint):
    """A region larger than work_size: a coarse whole-region pass, then full resolution near the edges."""
    from aetools.tasks.inpaint import inpaint_pixels

    pixels = photo(160).astype(np.float32) / 255
    mask = np.zeros((160, 160), dtype=bool)
    mask[20:140, 30:130] = True  # its centre is 50 px from known pixels: beyond REFINE_BAND (48)
    out = inpaint_pixels(tiny_inpaint, pixels, mask, work_size=64)
    one_pass = inpaint_pixels(tiny_inpaint, pixels, mask)
    assert np.array_equal(out[~mask], pixels[~mask]) and np.isfinite(out).all()
    assert not np.allclose(out[mask], one_pass[mask])  # the two-pass route was taken


def test_self_ensemble_averages_the_eight_turned_fills(tiny_inpaint):
    from aetools.inference import self_ensemble
    from aetools.tasks.inpaint import inpaint_pixels

    pixels = photo(48).astype(np.float32) / 255
    mask = box_mask(48, 48)
    out = inpaint_pixels(tiny_inpaint, pixels, mask, ensemble=True)
    assert np.array_equal(out[~mask], pixels[~mask])
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    m = torch.from_numpy(mask)[None, None].float()
    with torch.no_grad():
        expected = self_ensemble(lambda t: tiny_inpaint(t[:, :3], t[:, 3:]), torch.cat([x, m], 1))
    np.testing.assert_allclose(out[mask], expected[0].permute(1, 2, 0).numpy()[mask], atol=1e-5)


def test_only_the_holes_neighbourhood_is_processed(tiny_inpaint):
    """A small hole in a big photo: the network runs on the hole's box plus its receptive radius, and the
    result there equals running it on that crop alone."""
    from aetools.tasks.inpaint import inpaint_pixels

    rng = np.random.default_rng(0)
    pixels = rng.random((900, 900, 3), dtype=np.float32)
    mask = np.zeros((900, 900), dtype=bool)
    mask[440:460, 440:460] = True
    r = tiny_inpaint.receptive_radius()
    out = inpaint_pixels(tiny_inpaint, pixels, mask)
    crop = slice(440 - r, 460 + r)
    alone = inpaint_pixels(tiny_inpaint, pixels[crop, crop], mask[crop, crop])
    np.testing.assert_allclose(out[crop, crop], alone, atol=1e-5)


def test_transparent_pixels_are_the_holes_and_become_opaque(tiny_inpaint):
    import aetools

    rgb = photo(64)
    mask = box_mask(64, 64)
    alpha = np.where(mask, 0, 255).astype(np.uint8)
    out = aetools.inpaint(np.dstack([rgb, alpha]), model=tiny_inpaint)
    assert out.shape == (64, 64, 3)  # every pixel opaque after filling: alpha dropped
    assert np.array_equal(out[~mask], rgb[~mask])
    alpha[0, 0] = 128  # a half-transparent pixel is no hole, and keeps its alpha
    out = aetools.inpaint(np.dstack([rgb, alpha]), model=tiny_inpaint)
    assert out.shape == (64, 64, 4) and out[0, 0, 3] == 128 and (out[mask][:, 3] == 255).all()
    assert np.array_equal(out[~mask][:, :3], rgb[~mask])


def test_mask_images_white_is_the_hole():
    from aetools.data.masks import mask_from_image

    grey = np.array([[0, 127, 128, 255]], dtype=np.float32)[..., None] / 255
    assert mask_from_image(grey).tolist() == [[False, False, True, True]]
    red_and_white = np.array([[[1, 0, 0], [1, 1, 1]]], dtype=np.float32)  # luma of pure red: 76
    assert mask_from_image(red_and_white).tolist() == [[False, True]]
    white = np.ones((1, 2, 1), dtype=np.float32)
    assert mask_from_image(white, alpha=np.array([[0, 1]], np.float32)).tolist() == [[False, True]]


def test_empty_mask_returns_the_image_with_a_warning(tiny_inpaint):
    import aetools
    from aetools.data.io import ImageWarning

    rgb = photo(32)
    with pytest.warns(ImageWarning, match="empty"):
        out = aetools.inpaint(rgb, np.zeros((32, 32), dtype=bool), model=tiny_inpaint)
    assert np.array_equal(out, rgb)


def test_wrong_size_or_missing_mask_is_an_error(tiny_inpaint):
    import aetools
    from aetools.data.io import ImageError

    with pytest.raises(ImageError, match="mask is 16x8 but the image is 32x32"):
        aetools.inpaint(photo(32), np.zeros((8, 16), dtype=bool), model=tiny_inpaint)
    with pytest.raises(ImageError, match="no mask"):
        aetools.inpaint(photo(32), model=tiny_inpaint)


# ------------------------------------------------------------------------------ training pair, loss


def test_training_pairs_have_seeded_holes_in_the_ratio_range():
    from aetools.tasks import get_task

    task = get_task("inpaint")
    clean = torch.rand(6, 3, 64, 64)
    a = task.degrade(clean, torch.Generator().manual_seed(3))
    b = task.degrade(clean, torch.Generator().manual_seed(3))
    mask = a.inputs["mask"]
    assert torch.equal(mask, b.inputs["mask"])
    ratios = mask.mean(dim=(1, 2, 3))
    assert ((ratios >= 0.09) & (ratios <= 0.51)).all() and ratios.std() > 0.02
    assert torch.equal(a.inputs["image"] * mask, torch.zeros_like(clean))  # the holes carry no truth
    assert torch.equal(a.target, clean) and torch.equal(a.inputs["mask"], mask)  # the loss reads the mask there


def test_loss_counts_hole_pixels_only_and_weighs_them_equally():
    from aetools.tasks.base import Batch
    from aetools.tasks.inpaint import inpaint_loss

    clean = torch.zeros(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :1] = 1  # a thin hole
    mask[1, :, :4] = 1  # a big one
    batch = Batch({"image": clean * (1 - mask), "mask": mask}, clean)
    painted = clean + 0.5 * mask  # every hole pixel off by 0.5
    assert inpaint_loss(painted, batch)[0].item() == pytest.approx(0.5)
    outside = painted + (1 - mask)  # changes outside the holes do not count
    assert inpaint_loss(outside, batch)[0].item() == pytest.approx(0.5)


def test_train_inpaint_and_resume(train_folder, tmp_path):
    from aetools.weights import read_weights

    out = tmp_path / "i.safetensors"
    args = ["--data", train_folder, "--val", train_folder, "--out", out, "--batch-size", "2", "--crop", "32"]
    args += ["--widths", "8,16"]
    r = run("train", "inpaint", *args, "--steps", "2", "--checkpoint-every", "1", "--val-every", "2")
    assert r.exit_code == 0, r.output
    r = run("train", "inpaint", *args, "--steps", "3", "--resume")
    assert r.exit_code == 0, r.output
    _, header = read_weights(out)
    assert header["task"] == "inpaint" and header["training"]["steps"] == 3
    assert header["training"]["val_psnr"] > 10  # whole-image PSNR: known pixels are exact


# -------------------------------------------------------------------------------- the shipped model


def test_shipped_model_beats_biharmonic_on_a_bundled_photo():
    """skimage's coffee photo (600x400, as bundled) with a seeded 20% mask: the shipped model is closer to
    the truth than skimage's biharmonic inpainting, over the whole image."""
    from skimage import data
    from skimage.metrics import peak_signal_noise_ratio

    from aetools.bench.inpaint import biharmonic, ours
    from aetools.weights import load_model

    model = load_model(None, "inpaint")
    truth = data.coffee()
    mask = benchmark_mask(*truth.shape[:2], 0.2, 0)
    holed = np.where(mask[..., None], np.uint8(0), truth)
    psnr_ours = peak_signal_noise_ratio(truth, ours(model)(holed, mask), data_range=255)
    psnr_biharmonic = peak_signal_noise_ratio(truth, biharmonic(holed, mask), data_range=255)
    assert psnr_ours > psnr_biharmonic, (psnr_ours, psnr_biharmonic)


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_inpaint_contract(tmp_path, tiny_inpaint_weights):
    w = tiny_inpaint_weights
    rgb = photo(48)
    mask = box_mask(48, 48)
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=90)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    before = (tmp_path / "photo.jpg").read_bytes()

    r = run("inpaint", tmp_path / "photo.jpg", "--mask", tmp_path / "mask.png", "--model", w)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "photo.jpg").read_bytes() == before
    filled = np.asarray(Image.open(tmp_path / "photo_filled.png"))  # JPEG in, PNG out: lossless
    decoded = np.asarray(Image.open(tmp_path / "photo.jpg"))
    assert np.array_equal(filled[~mask], decoded[~mask])

    Image.fromarray(np.zeros((48, 40), np.uint8)).save(tmp_path / "small.png")
    r = run("inpaint", tmp_path / "photo.jpg", "--mask", tmp_path / "small.png", "--model", w, "-o", tmp_path / "x.png")
    assert r.exit_code == 1 and "small.png is 40x48 but the image is 48x48" in r.output
    assert not (tmp_path / "x.png").exists()

    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "empty.png")
    r = run("inpaint", tmp_path / "photo.jpg", "--mask", tmp_path / "empty.png", "--model", w, "-o", tmp_path / "e.png")
    assert r.exit_code == 0 and "warning" in r.output and "empty" in r.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "e.png")), decoded)

    r = run("inpaint", tmp_path / "photo.jpg", "--model", w, "-o", tmp_path / "n.png")
    assert r.exit_code == 1 and "no mask" in r.output
    r = run("inpaint", tmp_path / "photo.jpg", "--mask", tmp_path / "nope", "--model", w)
    assert r.exit_code == 2 and "nope" in r.output


def test_cli_mask_folder_matched_by_stem_and_cutouts(tmp_path, tiny_inpaint_weights):
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea"]):
        Image.fromarray(photo(40, name)).save(photos / f"{name}.png")
        if i < 2:
            m = np.zeros((40, 40), np.uint8)
            m[5 + 10 * i : 15 + 10 * i, 5:30] = 255
            Image.fromarray(m).save(masks / f"{name}.png")
    r = run("inpaint", photos, "--mask", masks, "-o", tmp_path / "filled", "--model", tiny_inpaint_weights)
    assert r.exit_code == 1 and "2 written, 1 failed" in r.output and "no mask named chelsea" in r.output
    for name in ["astronaut", "coffee"]:
        out = np.asarray(Image.open(tmp_path / "filled" / f"{name}.png"))
        hole = np.asarray(Image.open(masks / f"{name}.png")) > 127
        assert np.array_equal(out[~hole], photo(40, name)[~hole]) and not np.array_equal(
            out[hole], photo(40, name)[hole]
        )

    cut = np.dstack([photo(40), np.where(box_mask(40, 40), 0, 255).astype(np.uint8)])
    Image.fromarray(cut).save(tmp_path / "cut.png")
    r = run("inpaint", tmp_path / "cut.png", "--model", tiny_inpaint_weights)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "cut_filled.png").mode == "RGB"


def test_eval_inpaint_prints_ours_beside_baselines(tmp_path, tiny_inpaint_weights):
    pytest.importorskip("cv2")
    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ["astronaut", "coffee"]:
        Image.fromarray(photo(64, name)).save(folder / f"{name}.png")
    r = run(
        "eval",
        "inpaint",
        "--data",
        folder,
        "--model",
        tiny_inpaint_weights,
        "--holes",
        "0.1",
        "0.3",
        "--format",
        "markdown",
    )
    assert r.exit_code == 0, r.output
    for text in ["| OpenCV Telea |", "| skimage biharmonic |", "| ours |", "| ours, bf16 |", "PSNR 10%", "SSIM 30%"]:
        assert text in r.output
    assert r.output.count("| 0 |") == 4  # no method changes a known pixel (ours in fp32 and in bf16 included)


def test_cli_masks_inside_the_photo_folder_are_not_filled(tmp_path, tiny_inpaint_weights):
    photos = tmp_path / "photos"
    (photos / "masks").mkdir(parents=True)
    Image.fromarray(photo(32)).save(photos / "a.png")
    Image.fromarray(box_mask(32, 32).astype(np.uint8) * 255).save(photos / "masks" / "a.png")
    r = run(
        "inpaint", photos, "-r", "--mask", photos / "masks", "-o", tmp_path / "out", "--model", tiny_inpaint_weights
    )
    assert r.exit_code == 0, r.output
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")] == ["a.png"]
