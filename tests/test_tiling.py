import numpy as np
import pytest
import torch

from aetools.models import create_model
from aetools.tasks.denoise import denoise_pixels
from aetools.tiling import run_tiled


@pytest.mark.slow
def test_tiled_equals_untiled_on_the_denoiser():
    torch.manual_seed(0)
    model = create_model("denoise-unet").eval()  # the shipped architecture, random weights
    pixels = np.random.default_rng(0).random((203, 170, 3), dtype=np.float32)
    whole = denoise_pixels(model, pixels, tile=0)
    tiled = denoise_pixels(model, pixels, tile=64)
    assert np.abs(whole - tiled).max() < 1e-4


def test_run_tiled_with_scale_places_tiles():
    x = torch.arange(30 * 20, dtype=torch.float32).view(1, 1, 30, 20)
    up = run_tiled(lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2), x, tile=8, margin=0, scale=2)
    assert torch.equal(up, x.repeat_interleave(2, -1).repeat_interleave(2, -2))
