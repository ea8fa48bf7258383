"""The shipped denoiser on bundled skimage.data photos, and the Python API."""

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

import aetools
from aetools.bench.denoise import add_noise
from aetools.data.io import to_uint8
from tests.conftest import photo


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
