"""Denoising head: residual learning on the shared backbone, with an optional noise-level map.

The network predicts the noise, not the image (DnCNN, Zhang et al. 2017): the residual is small and
zero-mean, which trains faster than predicting the clean picture. An extra input channel carries the
noise level (FFDNet, Zhang et al. 2018) when the user knows it, and a constant -1 ("unknown") otherwise.
Training shows the network both cases, so one set of weights is a blind denoiser and a non-blind one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aetools.nn.blocks import conv3x3
from aetools.nn.registry import register_model
from aetools.nn.unet import BackboneConfig, SkipAutoencoder

UNKNOWN_SIGMA = -1.0
SIGMA_MAP_SCALE = 50.0  # sigma (0-255 scale) / 50 keeps the map channel near the pixels' range


@dataclass
class DenoiseConfig:
    """Args:
    widths, blocks, bottleneck_blocks: the backbone's (see `BackboneConfig`).
    channels: image channels (3: grey images are replicated to RGB and averaged back).
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 1
    bottleneck_blocks: int = 1
    channels: int = 3


@register_model("denoise-unet", DenoiseConfig)
class DenoiseNet(nn.Module):
    def __init__(self, config: DenoiseConfig):
        super().__init__()
        self.config = config
        self.backbone = SkipAutoencoder(
            BackboneConfig(config.channels + 1, config.widths, config.blocks, config.bottleneck_blocks)
        )
        self.head = conv3x3(self.backbone.out_channels, config.channels)

    def receptive_radius(self) -> int:
        return self.backbone.receptive_radius() + 1  # + the head's 3x3 conv

    @property
    def stride(self) -> int:
        return self.backbone.stride

    def forward(self, noisy: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """noisy (B, C, H, W) in [0, 1]; sigma (B,) on the 0-255 scale, negative = unknown; None = all
        unknown (blind) -> (B, C, H, W)."""
        b, _, h, w = noisy.shape
        if sigma is None:
            sigma = torch.full((b,), -1.0, device=noisy.device)
        sigma = sigma.to(noisy)
        level = torch.where(sigma < 0, torch.full_like(sigma, UNKNOWN_SIGMA), sigma / SIGMA_MAP_SCALE)
        level = level.view(b, 1, 1, 1).expand(b, 1, h, w)
        noise = self.head(self.backbone(torch.cat([noisy, level], dim=1)))
        return noisy - noise
