"""Super-resolution: geometry, grey/alpha, tiling, the benchmark protocol, the shipped model, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import photo, run, save_tiny, tiny_model


@pytest.fixture
def tiny_sr():
    return tiny_model("superres-unet", widths=(8, 16, 32), blocks=1, bottleneck_blocks=1)


@pytest.fixture
def tiny_sr_weights(tiny_sr, tmp_path: Path) -> Path:
    return save_tiny(tiny_sr, "superres", tmp_path / "tiny_sr.safetensors")


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(37, 53), (16, 16), (5, 9)])
def test_output_is_exactly_scale_times_input(tiny_sr, scale, size):
    from aetools.api import upscale

    h, w = size
    rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = upscale(rgb, scale=scale, model=tiny_sr)
    assert out.shape == (h * scale, w * scale, 3) and out.dtype == np.uint8


def test_grey_stays_grey_and_alpha_is_upscaled(tiny_sr):
    from aetools.api import upscale

    grey = Image.fromarray(photo(40)[..., 1])
    out = upscale(grey, scale=3, model=tiny_sr)
    assert out.mode == "L" and out.size == (120, 120)

    rgba = np.dstack([photo(40), np.zeros((40, 40), np.uint8)])
    rgba[10:30, 10:30, 3] = 255  # an opaque square on a transparent background
    big = upscale(rgba, scale=2, model=tiny_sr)
    assert big.shape == (80, 80, 4)
    assert big[30:50, 30:50, 3].min() == 255 and big[:10, :10, 3].max() == 0


def test_tiled_equals_untiled(tiny_sr):
    from aetools.inference import run_model

    x = torch.rand(1, 3, 70, 90)
    scale = torch.tensor([3])
    whole = run_model(tiny_sr, x, extra={"scale": scale}, tile=0, scale=3)
    tiled = run_model(tiny_sr, x, extra={"scale": scale}, tile=24, scale=3)
    assert whole.shape == (1, 3, 210, 270)
    assert (whole - tiled).abs().max() < 1e-4  # far below one 8-bit level (0.004)


def test_training_pairs_follow_the_benchmark_protocol():
    """The training LR is the benchmark's LR: Pillow bicubic of the 8-bit HR crop, with an LR patch of 48."""
    from aetools.data.io import to_uint8
    from aetools.tasks.superres import SuperResDegradation, bicubic_downscale

    hr = torch.from_numpy(photo(192).copy()).permute(2, 0, 1)[None].float() / 255
    for scale in (2, 3, 4):
        batch = SuperResDegradation(fixed_scale=scale)(hr, torch.Generator().manual_seed(0))
        assert batch.inputs["lr"].shape == (1, 3, 48, 48) and batch.target.shape == (1, 3, 48 * scale, 48 * scale)
        expected = bicubic_downscale(to_uint8(batch.target[0].permute(1, 2, 0).numpy()), scale)
        assert np.array_equal(to_uint8(batch.inputs["lr"][0].permute(1, 2, 0).numpy()), expected)


def test_real_photo_degradation_is_seeded_and_degrades():
    from aetools.tasks.superres import SuperResDegradation

    hr = torch.from_numpy(photo(192).copy()).permute(2, 0, 1)[None].float() / 255
    hr = hr.repeat(4, 1, 1, 1)
    real = SuperResDegradation(degradation="real", fixed_scale=2)
    a = real(hr, torch.Generator().manual_seed(3))
    b = real(hr, torch.Generator().manual_seed(3))
    clean = SuperResDegradation(fixed_scale=2)(hr, torch.Generator().manual_seed(3))
    assert torch.equal(a.inputs["lr"], b.inputs["lr"])
    assert (a.inputs["lr"] - clean.inputs["lr"]).abs().mean() > 1e-3


def test_y_psnr_matches_the_published_bicubic_protocol():
    """Y of BT.601 in 16-235 and the border shave: bicubic on a bundled photo scores like bicubic does."""
    from aetools.bench.superres import BASELINES, y_channel, y_psnr_ssim
    from aetools.tasks.superres import bicubic_downscale

    white = np.full((4, 4, 3), 255, np.uint8)
    assert np.allclose(y_channel(white), 235) and np.allclose(y_channel(white * 0), 16)
    hr = photo(256, "astronaut")
    psnr, ssim = y_psnr_ssim(hr, BASELINES["bicubic"](bicubic_downscale(hr, 2), 2), shave=2)
    assert 25 < psnr < 40 and 0.7 < ssim < 1.0


def test_shipped_x2_model_beats_bicubic_by_2db():
    from aetools.bench.superres import BASELINES, y_psnr_ssim
    from aetools.data.io import to_uint8
    from aetools.tasks.superres import bicubic_downscale, upscale_pixels
    from aetools.weights import load_model

    model = load_model(None, "superres")
    hr = photo(384, "chelsea")
    lr = bicubic_downscale(hr, 2)
    ours = to_uint8(upscale_pixels(model, lr.astype(np.float32) / 255, 2))
    bicubic = BASELINES["bicubic"](lr, 2)
    gain = y_psnr_ssim(hr, ours, 2)[0] - y_psnr_ssim(hr, bicubic, 2)[0]
    assert gain >= 2.0, f"only {gain:.2f} dB over bicubic"


def test_vdsr_reference_has_the_published_shape():
    from aetools.bench.superres import vdsr_shaped

    convs = [m for m in vdsr_shaped().modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 20 and all(c.out_channels == 64 for c in convs[:-1])


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_upscale_default_name_scale_and_named_output(tmp_path, tiny_sr_weights):
    src = tmp_path / "photo.jpg"
    Image.fromarray(photo(40)).save(src, quality=92)
    before = src.read_bytes()
    r = run("upscale", src, "--model", tiny_sr_weights)
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / "photo_x2.jpg")
    assert out.size == (80, 80) and out.format == "JPEG"
    r = run("upscale", src, "--scale", "4", "-o", tmp_path / "big.png", "--model", tiny_sr_weights)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "big.png").size == (160, 160)
    assert src.read_bytes() == before  # the input is never touched
    r = run("upscale", src, "--model", tiny_sr_weights)  # the output exists now
    assert r.exit_code == 1 and "--overwrite" in r.output


def test_cli_upscale_folder_keeps_going_past_a_bad_file(tmp_path, tiny_sr_weights):
    folder = tmp_path / "album"
    folder.mkdir()
    Image.fromarray(photo(32)).save(folder / "a.png")
    Image.fromarray(photo(24)[..., 0]).save(folder / "grey.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    r = run("upscale", folder, "-o", tmp_path / "album_x3", "--scale", "3", "--tile", "16", "--model", tiny_sr_weights)
    assert r.exit_code == 1
    assert "broken.jpg" in r.output and "2 written, 1 failed" in r.output
    assert Image.open(tmp_path / "album_x3" / "a.png").size == (96, 96)
    assert Image.open(tmp_path / "album_x3" / "grey.png").mode == "L"


def test_cli_upscale_rejects_a_bad_scale(tmp_path, tiny_sr_weights):
    src = tmp_path / "a.png"
    Image.fromarray(photo(16)).save(src)
    r = run("upscale", src, "--scale", "5", "--model", tiny_sr_weights)
    assert r.exit_code == 2 and "--scale 5" in r.output
    assert not (tmp_path / "a_x5.png").exists()


def test_train_superres_single_scale_records_options(train_folder, tmp_path):
    from aetools.weights import read_weights

    out = tmp_path / "sr.safetensors"
    r = run(
        "train", "superres", "--data", train_folder, "--out", out, "--steps", "3", "--batch-size", "2",
        "--crop", "64", "--widths", "8,16", "--set", "scales=4", "--val-every", "3",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    _, header = read_weights(out)
    assert header["config"]["scales"] == [4] and header["training"]["options"]["scales"] == [4]
    r = run("train", "denoise", "--data", train_folder, "--out", tmp_path / "d.safetensors", "--set", "scales=2")
    assert r.exit_code == 2 and "does not apply" in r.output


def test_self_ensemble_is_equivariant_to_flips_and_turns(tiny_sr):
    """Averaging over the 8 dihedral transforms makes the output commute with them (a plain net does not)."""
    from aetools.tasks.superres import upscale_pixels

    x = np.random.default_rng(1).random((12, 20, 3), dtype=np.float32)
    y = upscale_pixels(tiny_sr, x, 2, ensemble=True)
    assert y.shape == (24, 40, 3)
    flipped = upscale_pixels(tiny_sr, x[:, ::-1], 2, ensemble=True)
    turned = upscale_pixels(tiny_sr, np.rot90(x), 2, ensemble=True)
    assert np.abs(flipped - y[:, ::-1]).max() < 1e-5 and np.abs(turned - np.rot90(y)).max() < 1e-5
    plain = upscale_pixels(tiny_sr, x, 2)
    assert np.abs(upscale_pixels(tiny_sr, x[:, ::-1], 2) - plain[:, ::-1]).max() > 1e-4


def test_train_superres_one_scale_without_out_and_resume(train_folder, tmp_path, monkeypatch):
    """`aetools train superres --set scales=4 --data DIR --resume`: no --out needed (./superres.safetensors)."""
    monkeypatch.chdir(tmp_path)
    args = ["--data", train_folder, "--steps", "2", "--batch-size", "2", "--crop", "64", "--widths", "8,16"]
    r = run("train", "superres", "--set", "scales=4", *args, "--checkpoint-every", "1")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "superres.safetensors").exists()
    r = run("train", "superres", "--set", "scales=4", *args[:2], "--steps", "3", *args[4:], "--resume")
    assert r.exit_code == 0, r.output
    r = run("train", "superres", *args, "--resume")  # the checkpoint is an x4-only network
    assert r.exit_code == 2 and "another task or model size" in r.output
