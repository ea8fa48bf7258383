"""Semantic-hashing head: codes are thresholded logits, the decoder sees only the code, and noise before
the sigmoid drives the code units to saturation (Salakhutdinov & Hinton)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aetools.models import create_model
from tests.conftest import photo, run


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
    model = create_model("hash-unet", widths=(8, 16), bits=16, size=16, luma=False)
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


@pytest.mark.slow
def test_noise_before_the_sigmoid_makes_thresholding_lossless():
    """Without noise the units settle between 0 and 1 and rounding them costs reconstruction; trained
    through noise they saturate, and the binary code rebuilds the images as well as the units do."""
    soft, hard = train_tiny(noise=0.0)
    assert hard > 3 * soft  # rounding hurts a code that was never asked to be binary
    soft, hard = train_tiny(noise=2.0)
    assert hard < 1.05 * soft + 1e-4 and hard < 0.03  # lossless rounding, and the code carries the images


# ------------------------------------------------------------------------------- edits and training pairs


def test_benchmark_edits_change_the_frame_as_named():
    from PIL import Image

    from aetools.data.augment import BENCHMARK_EDITS

    image = Image.fromarray(photo(200)).crop((0, 0, 200, 120))  # 200 x 120
    sizes = {name: fn(image).size for name, (fn, _) in BENCHMARK_EDITS.items()}
    assert sizes["crop 10%"] == (180, 108) and sizes["crop 25%"] == (150, 90)
    assert sizes["pad 10%"] == (220, 132) and sizes["rotate 90°"] == (120, 200)
    assert sizes["resize 0.5"] == (100, 60)
    for name in ("JPEG q30", "blur σ2", "bright/contrast", "grey", "text overlay", "rotate 5°", "flip"):
        assert sizes[name] == (200, 120), name
        assert BENCHMARK_EDITS[name][0](image).mode == "RGB"
    assert all(kind in ("photometric", "geometric") for _, kind in BENCHMARK_EDITS.values())
    text = np.asarray(BENCHMARK_EDITS["text overlay"][0](image), dtype=int)
    changed = np.abs(text - np.asarray(image, dtype=int)).max(axis=2) > 0
    assert 0.005 < changed.mean() < 0.2 and changed[:80].sum() == 0  # a caption at the bottom


def test_training_pairs_are_a_photo_and_its_edited_copy_seeded():
    from aetools.tasks.hash import degrade_for_hash

    clean = torch.from_numpy(np.stack([photo(96), photo(96, "coffee")])).permute(0, 3, 1, 2).float() / 255
    a = degrade_for_hash(clean, torch.Generator().manual_seed(3))
    b = degrade_for_hash(clean, torch.Generator().manual_seed(3))
    c = degrade_for_hash(clean, torch.Generator().manual_seed(4))
    image = a.inputs["image"]
    assert image.shape == (4, 3, 96, 96) and torch.equal(a.target, image[:2])
    assert torch.equal(image, b.inputs["image"]) and not torch.equal(image, c.inputs["image"])
    assert 0 <= image.min() and image.max() <= 1


def test_contrastive_term_rewards_matching_codes_and_the_bit_terms_their_targets():
    from aetools.tasks.hash import bit_balance, bit_decorrelation, nt_xent

    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 32, generator=g).sign()
    assert nt_xent(z, z, 0.3) < 1.0  # each copy's code is its photo's, and unlike the others (log 31 = 3.4 at chance)
    assert nt_xent(z, torch.randn(16, 32, generator=g).sign(), 0.3) > 3.0
    hadamard = torch.tensor([[1.0, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])
    balanced = hadamard[:, 1:]  # every bit half +1, bits pairwise orthogonal
    assert bit_balance(balanced) == 0 and bit_decorrelation(balanced) == 0
    constant = torch.ones(4, 3)
    assert bit_balance(constant) == 1 and bit_decorrelation(constant) == 1


def test_nested_codes_train_every_prefix():
    from aetools.tasks.hash import code_lengths

    assert code_lengths(64) == [16, 32, 64] and code_lengths(32) == [16, 32] and code_lengths(16) == [16]


def test_train_hash_and_resume(train_folder, tmp_path):
    from aetools.weights import read_weights

    out = tmp_path / "h.safetensors"
    args = ["--data", train_folder, "--val", train_folder, "--out", out, "--batch-size", "4", "--crop", "48"]
    args += ["--widths", "8,16", "--set", "bits=16", "--set", "size=16"]
    r = run("train", "hash", *args, "--steps", "2", "--checkpoint-every", "1", "--val-every", "2")
    assert r.exit_code == 0, r.output
    r = run("train", "hash", *args, "--steps", "3", "--resume")
    assert r.exit_code == 0, r.output
    tensors, header = read_weights(out)
    assert header["task"] == "hash" and header["config"]["bits"] == 16 and header["training"]["steps"] == 3
    assert int(tensors["trained_steps"]) == 3  # the noise schedule's clock came back with the checkpoint
    assert run("train", "denoise", *args[:8], "--set", "bits=16").exit_code == 2  # bits is hash's setting
    assert "bits 12: choose from" in run("train", "hash", *args[:8], "--set", "bits=12").output  # the config checks


def test_luma_input_is_the_same_for_grey_and_rescaled_copies():
    """What the encoder sees is standardised luminance: a grey copy and an affine brightness/contrast change
    look (almost) the same to it, so their codes are the original's by construction."""
    from PIL import Image

    from aetools.data.augment import grey

    model = create_model("hash-unet", widths=(8, 16), bits=16, size=32).eval()
    image = Image.fromarray(photo(96, "coffee"))

    def seen(im):
        x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        return model.network_input(x)

    original = seen(image)
    assert original.shape == (1, 1, 32, 32)
    assert (seen(grey(image)) - original).abs().max() < 0.05  # 8-bit rounding of the grey copy
    affine = Image.fromarray((np.asarray(image) * 0.6 + 40).astype(np.uint8))  # lower contrast, brighter
    assert (seen(affine) - original).abs().max() < 0.1
