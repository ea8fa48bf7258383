"""The shipped denoiser on bundled skimage.data photos, and the Python API."""

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

import aetools
from aetools.bench.denoise import add_noise
from aetools.data.io import to_uint8
from tests.conftest import photo, run


@pytest.fixture(scope="module")
def astronaut():
    return photo(256, "astronaut")


@pytest.mark.parametrize("variant", ["float", "8-bit"])
def test_shipped_denoiser_gains_5db_at_sigma_25(astronaut, variant):
    clean = astronaut.astype(np.float32) / 255
    noisy = add_noise(clean, 25, clip=variant == "8-bit")
    out = aetools.denoise(noisy)  # blind, shipped weights
    before = peak_signal_noise_ratio(astronaut, to_uint8(noisy), data_range=255)
    after = peak_signal_noise_ratio(astronaut, to_uint8(out), data_range=255)
    assert after >= before + 5.0, (before, after)


def test_known_sigma_is_at_least_as_good_as_blind(astronaut):
    clean = astronaut.astype(np.float32) / 255
    noisy = add_noise(clean, 50, clip=False)
    blind = peak_signal_noise_ratio(astronaut, to_uint8(aetools.denoise(noisy)), data_range=255)
    known = peak_signal_noise_ratio(astronaut, to_uint8(aetools.denoise(noisy, sigma=50)), data_range=255)
    assert known > blind - 0.3


def test_grey_input_stays_grey_and_is_denoised(astronaut):
    grey = astronaut.mean(axis=2).round().astype(np.uint8)
    noisy = to_uint8(add_noise(grey[..., None] / 255.0, 25, clip=True))[..., 0]
    out = aetools.denoise(noisy)
    assert out.shape == grey.shape and out.dtype == np.uint8
    assert peak_signal_noise_ratio(grey, out) > peak_signal_noise_ratio(grey, noisy) + 5


def test_api_keeps_the_callers_types(astronaut):
    pil = aetools.denoise(Image.fromarray(astronaut[:64, :64]))
    assert isinstance(pil, Image.Image) and pil.size == (64, 64) and pil.mode == "RGB"
    arr16 = astronaut[:32, :32].astype(np.uint16) * 257
    out16 = aetools.denoise(arr16)
    assert out16.dtype == np.uint16 and out16.shape == arr16.shape
    rgba = np.dstack([astronaut[:32, :32], np.full((32, 32), 7, np.uint8)])
    out_rgba = aetools.denoise(rgba)
    assert out_rgba.shape == (32, 32, 4) and (out_rgba[..., 3] == 7).all()


def test_real_noise_benchmark_reports_every_method_and_condition(tmp_path):
    """Two small photos through the JPEG and camera conditions: the table has a row per method and a column per
    condition, and NL-means beats the noisy input on the JPEG-noise column (measured, not assumed)."""
    from aetools.bench.denoise import NOISY_INPUT, baseline_available, real_noise_conditions, real_noise_report
    from aetools.weights import load_model

    files = []
    for name in ("astronaut", "coffee"):
        files.append(tmp_path / f"{name}.png")
        Image.fromarray(photo(64, name)).save(files[-1])
    conditions = real_noise_conditions(sigmas=[25], qualities=[90], camera=["mid"])
    assert [c.name for c in conditions] == ["sigma25_jpeg90", "camera_mid_jpeg90"]
    noisy = conditions[1].apply(photo(64, "coffee") / 255.0, "coffee.png")
    assert np.array_equal(noisy, conditions[1].apply(photo(64, "coffee") / 255.0, "coffee.png"))  # seeded per file
    baselines = ["nlm"] + (["opencv"] if baseline_available("opencv") else [])
    net = load_model(None, "denoise", "cpu")
    report = real_noise_report(files, "set", conditions, {"ours (denoise, blind)": net}, baselines, ["fp32"])
    psnr, ssim = report.tables
    assert psnr.columns == ["method", "σ=25 JPEG 90", "camera mid JPEG 90", "s / image"]
    assert ssim.columns == psnr.columns[:-1]
    rows = {row[0]: row[1:] for row in psnr.rows}
    expected = {NOISY_INPUT, "ours (denoise, blind)", "skimage NL-means (blind)"}
    assert expected <= set(rows) and len(rows) == 2 + len(baselines)
    assert float(rows["skimage NL-means (blind)"][0]) > float(rows[NOISY_INPUT][0]) + 1.0
    assert all(0 < float(cell) <= 1 for row in ssim.rows for cell in row[1:])
    metrics = report.metrics[net.weights_path]
    assert metrics["set_sigma25_jpeg90_psnr"] == float(rows["ours (denoise, blind)"][0])
    assert set(metrics) == {f"set_{c.name}_{m}" for c in conditions for m in ("psnr", "ssim")}


def test_eval_denoise_real_protocol_from_the_cli(tmp_path, tiny_weights):
    data = tmp_path / "set"
    data.mkdir()
    Image.fromarray(photo(48, "astronaut")).save(data / "a.png")
    args = ["--sigma", "15", "--jpeg-quality", "70", "--camera", "low", "--baselines", "nlm", "--precisions", "fp32"]
    r = run(
        "eval", "denoise", "--protocol", "real", "--data", data, "--model", tiny_weights, *args, "--format", "markdown"
    )
    assert r.exit_code == 0, r.output
    assert "| noisy input (no denoising) |" in r.output and "| ours (tiny, blind) |" in r.output
    assert "σ=15 JPEG 70" in r.output and "camera low JPEG 90" in r.output
    bad = run("eval", "denoise", "--protocol", "real", "--data", data, "--camera", "extreme")
    assert bad.exit_code != 0 and "--camera extreme" in bad.output
