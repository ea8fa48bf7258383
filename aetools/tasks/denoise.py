"""Blind Gaussian denoising: how a training pair is made, the loss, and the image-level operation.

Training pairs: clean crop + N(0, sigma^2), sigma ~ U[0, 55] per image (0-255 scale). Half of the noisy
crops are then clipped and rounded to 8 bits, as they are in a user's file; the benchmark's float
protocol (DnCNN/KAIR) keeps them unclipped, so the model sees both. Half of the crops tell the model
their sigma, half say "unknown": one set of weights serves `--sigma 25` and blind use. A tenth of the
crops are made grey, with the same noise in all three channels, as a grey file run through the colour
network is: grey scans are then in-distribution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from aetools.tasks.base import Batch, Task, TrainDefaults, register_task

MAX_SIGMA = 55.0


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


TASK = register_task(
    Task(
        name="denoise",
        arch="denoise-unet",
        degrade=degrade_for_denoise,
        loss=F.l1_loss,
        train=TrainDefaults(crop=96, batch_size=16, steps=20_000, lr=1e-3),
        val_degrade=degrade_for_denoise_validation,
        description="blind Gaussian noise removal, sigma 0-55",
    )
)


def denoise_pixels(
    model: torch.nn.Module,
    pixels: np.ndarray,
    sigma: float | None = None,
    tile: int | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """pixels (H, W, C) float in [0, 1], C = 1 or 3 -> denoised (H, W, C) float32 (not clipped).

    Grey images go through the colour network as three equal channels and come back averaged.
    """
    from aetools.inference import run_model

    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    grey = x.shape[1] == 1
    if grey:
        x = x.expand(-1, 3, -1, -1)
    sigma_t = torch.tensor([-1.0 if sigma is None else float(sigma)])
    y = run_model(model, x, extra={"sigma": sigma_t}, tile=tile, device=device)
    if grey:
        y = y.mean(dim=1, keepdim=True)
    return y[0].permute(1, 2, 0).numpy()
