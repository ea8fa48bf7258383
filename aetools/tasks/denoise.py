"""Blind Gaussian denoising: how a training pair is made, the loss, and the image-level operation.

Training pairs: clean crop + N(0, sigma^2), sigma ~ U[0, 55] per image (0-255 scale). Half of the noisy
crops are then clipped and rounded to 8 bits, as they are in a user's file; the benchmark's float
protocol (DnCNN/KAIR) keeps them unclipped, so the model sees both. Half of the crops tell the model
their sigma, half say "unknown": one set of weights serves `--sigma 25` and blind use. A tenth of the
crops are made grey, with the same noise in all three channels, as a grey file run through the colour
network is: grey scans are then in-distribution.

`--set degradation=real` trains on the noise users' photos carry instead (`aetools.data.degrade`: Gaussian
with channel correlation, Poisson, speckle, camera noise by unprocessing, mild resizing, JPEG once or
twice, in a random order, SCUNet-style), always blind; a share of the crops (`gaussian_share`) keeps the
Gaussian pairs above, so the model still removes plain Gaussian noise from PNGs. That is how `denoise-real`
is trained; validation then scores the practical degradation alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aetools.data.degrade import degrade_for_real_denoise
from aetools.data.io import ImageData
from aetools.pipeline import ImagePipeline, from_network_output, register_pipeline, to_network_input
from aetools.precision import Precision
from aetools.tasks.base import Batch, Task, TrainDefaults, against_target, register_task

MAX_SIGMA = 55.0  # trained on sigma 0-55
MAX_SIGMA_OPTION = 100.0  # what --sigma accepts (beyond the training range the model extrapolates)


def degrade_for_denoise(clean: torch.Tensor, generator: torch.Generator) -> Batch:
    """clean (B, 3, H, W) in [0, 1] -> Batch(inputs={noisy, sigma}, target=clean)."""
    b = clean.shape[0]
    grey = torch.rand(b, generator=generator) < 0.1
    if grey.any():
        luma = clean[grey].mean(dim=1, keepdim=True)
        clean = clean.clone()
        clean[grey] = luma.expand(-1, clean.shape[1], -1, -1)
    sigma = torch.rand(b, generator=generator) * MAX_SIGMA
    noise = torch.randn(clean.shape, generator=generator) * (sigma / 255.0).view(b, 1, 1, 1)
    # A grey file has one noise value per pixel, seen identically in the three replicated channels.
    noise[grey] = noise[grey][:, :1].expand(-1, clean.shape[1], -1, -1)
    noisy = clean + noise
    quantise = torch.rand(b, generator=generator) < 0.5
    noisy[quantise] = (noisy[quantise].clamp(0, 1) * 255).round() / 255
    known = torch.rand(b, generator=generator) < 0.5
    sigma_input = torch.where(known, sigma, torch.full_like(sigma, -1.0))
    return Batch({"noisy": noisy, "sigma": sigma_input}, clean)


def degrade_for_denoise_validation(clean: torch.Tensor, generator: torch.Generator) -> Batch:
    """Validation: blind, float noise at sigma 25 (one point of the benchmark protocol)."""
    noisy = clean + torch.randn(clean.shape, generator=generator) * (25.0 / 255.0)
    return Batch({"noisy": noisy, "sigma": torch.full((clean.shape[0],), -1.0)}, clean)


DEGRADATIONS = ("gaussian", "real")
OPTIONS = {"degradation": "gaussian", "gaussian_share": 0.25}


@dataclass
class RealNoiseDegradation:
    """clean (B, 3, H, W) in [0, 1] -> Batch(inputs={noisy, sigma=-1 (blind)}, target=clean), each crop
    through `degrade_for_real_denoise`, except a `gaussian_share` of them, which get the Gaussian pairs of
    `degrade_for_denoise` (sigma known or not, as there). A class so DataLoader workers can pickle it."""

    gaussian_share: float = OPTIONS["gaussian_share"]

    def __call__(self, clean: torch.Tensor, generator: torch.Generator) -> Batch:
        batch = degrade_for_denoise(clean, generator)
        clean = batch.target  # a tenth made grey there
        gaussian = torch.rand(clean.shape[0], generator=generator) < self.gaussian_share
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        noisy, sigma = batch.inputs["noisy"].clone(), batch.inputs["sigma"].clone()
        for i in torch.nonzero(~gaussian).flatten().tolist():
            image = clean[i].permute(1, 2, 0).numpy()
            noisy[i] = torch.from_numpy(degrade_for_real_denoise(image, rng)).permute(2, 0, 1)
            sigma[i] = -1.0
        return Batch({"noisy": noisy, "sigma": sigma}, clean)


def make_denoise_degrade(options: dict[str, Any]):
    """Task options -> (training degrade, validation degrade)."""
    degradation, share = options["degradation"], float(options["gaussian_share"])
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation {degradation!r}: choose from {', '.join(DEGRADATIONS)}")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"gaussian_share {share:g}: expected a share from 0 to 1")
    if degradation == "gaussian":
        return degrade_for_denoise, degrade_for_denoise_validation
    return RealNoiseDegradation(share), RealNoiseDegradation(0.0)


TASK = register_task(
    Task(
        name="denoise",
        arch="denoise-unet",
        degrade=degrade_for_denoise,
        loss=against_target(F.l1_loss),
        train=TrainDefaults(crop=96, batch_size=16, steps=20_000, lr=1e-3),
        val_degrade=degrade_for_denoise_validation,
        options=OPTIONS,
        make_degrade=make_denoise_degrade,
        description="blind noise removal: Gaussian sigma 0-55, or (degradation=real) camera noise and JPEG",
    )
)


def denoise_pixels(
    model: torch.nn.Module,
    pixels: np.ndarray,
    sigma: float | None = None,
    tile: int | None = None,
    device: torch.device | None = None,
    precision: Precision | None = None,
) -> np.ndarray:
    """pixels (H, W, C) float in [0, 1], C = 1 or 3 -> denoised (H, W, C) float32 (not clipped)."""
    from aetools.inference import run_model

    x, grey = to_network_input(pixels)
    sigma_t = torch.tensor([-1.0 if sigma is None else float(sigma)])
    y = run_model(model, x, extra={"sigma": sigma_t}, tile=tile, device=device, precision=precision)
    return from_network_output(y, grey)


@register_pipeline
class DenoisePipeline(ImagePipeline):
    """Remove Gaussian-like noise: `pipe(image, sigma=25)` if the level is known (0-255 scale), else blind.
    Alpha is kept."""

    name = "denoise"
    task = "denoise"
    real_photo_model = "denoise-real"  # camera noise and compression (`--set degradation=real`), once shipped

    def __call__(self, image: ImageData, sigma: float | None = None, tile: int | None = None) -> ImageData:
        if sigma is not None and not 0 <= sigma <= MAX_SIGMA_OPTION:
            raise ValueError(f"sigma {sigma}: expected 0 to {MAX_SIGMA_OPTION:g} (0-255 scale), or None for blind")
        self.check(tile=tile)
        out = denoise_pixels(self.model, image.pixels, sigma, tile, self.device, self.precision)
        return image.with_pixels(np.clip(out, 0.0, 1.0))
