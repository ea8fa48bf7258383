"""Semantic-hashing head: codes are thresholded logits, the decoder sees only the code, and noise before
the sigmoid drives the code units to saturation (Salakhutdinov & Hinton)."""

from __future__ import annotations

import pytest
import torch

from aetools.nn.registry import create_model


@pytest.fixture
def tiny_hash():
    torch.manual_seed(0)
    return create_model("hash-unet", widths=(8, 16), bits=16, size=16, noise=4.0)


def test_codes_are_the_signs_of_the_logits_and_deterministic(tiny_hash):
    tiny_hash.eval()
    x = torch.rand(3, 3, 40, 30)
    codes = tiny_hash.codes(x)
    assert codes.shape == (3, 16) and codes.dtype == torch.bool
    assert torch.equal(codes, tiny_hash.codes(x))
    out = tiny_hash(x)
    assert torch.equal(codes, out.logits > 0)
    assert torch.equal(out.units, codes.float())  # outside training the decoder gets the binary code
    assert torch.allclose(out.recon, tiny_hash.decode(out.units))  # and nothing else


def test_noise_is_added_before_the_sigmoid_in_training_only(tiny_hash):
    x = torch.rand(2, 3, 16, 16)
    tiny_hash.train()
    a, b = tiny_hash(x, noise=4.0), tiny_hash(x, noise=4.0)
    assert torch.equal(a.logits, b.logits) and not torch.allclose(a.units, b.units)
    tiny_hash.eval()
    assert torch.equal(tiny_hash(x).units, tiny_hash(x).units)


def test_the_noise_schedule_counts_training_steps_and_is_saved():
    model = create_model("hash-unet", widths=(8, 16), bits=16, size=16, noise=4.0, noise_warmup=2, noise_ramp=4)
    model.train()
    stds = []
    for _ in range(8):
        stds.append(model.noise_std())
        model(torch.rand(2, 3, 16, 16))
    assert stds == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    model.eval()
    model(torch.rand(2, 3, 16, 16))  # inference does not advance the clock
    assert int(model.state_dict()["trained_steps"]) == 8


def train_tiny(noise: float, steps: int = 300) -> tuple[float, float]:
    """Reconstruct 8 binary patterns through a 16-bit code, noise ramped in after 100 noise-free steps
    -> (MSE through the sigmoid units, MSE through the thresholded bits)."""
    torch.manual_seed(0)
    model = create_model("hash-unet", widths=(8, 16), bits=16, size=16)
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1)).round()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        ramp = min(1.0, max(0.0, (step - 100) / 100))
        loss = torch.nn.functional.mse_loss(model(images, noise=noise * ramp).recon, images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        soft = torch.nn.functional.mse_loss(model.decode(torch.sigmoid(model.code_logits(images))), images).item()
        hard = torch.nn.functional.mse_loss(model(images).recon, images).item()
    return soft, hard


def test_noise_before_the_sigmoid_makes_thresholding_lossless():
    """Without noise the units settle between 0 and 1 and rounding them costs reconstruction; trained
    through noise they saturate, and the binary code rebuilds the images as well as the units do."""
    soft, hard = train_tiny(noise=0.0)
    assert hard > 3 * soft  # rounding hurts a code that was never asked to be binary
    soft, hard = train_tiny(noise=2.0)
    assert hard < 1.05 * soft + 1e-4 and hard < 0.03  # lossless rounding, and the code carries the images
