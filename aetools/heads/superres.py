"""Super-resolution head: the shared backbone on the low-resolution grid, sub-pixel upsampling, and a
global bicubic skip.

    lr (B, C, h, w)
      backbone (skip-connected encoder-decoder)          -> (B, w0, h, w)        all compute at LR size
      tail[s]: 3x3 conv to C * s^2 channels              -> (B, C*s*s, h, w)
      PixelShuffle(s) (Shi et al. 2016, ESPCN)           -> (B, C, s*h, s*w)     the residual
      + bicubic(lr, s)                                   -> (B, C, s*h, s*w)     the prediction

Working on the LR grid makes the cost grow with the input, not the output (VDSR, by contrast, runs its
20 layers on the bicubic-upscaled image: s^2 times more pixels). The bicubic skip means the network only
learns the missing high frequencies (VDSR's residual learning, Kim et al. 2016).

One network serves x2, x3 and x4: the backbone is shared and each scale has its own tail, as in MDSR
(Lim et al. 2017). Training draws a scale per step; see `aetools.tasks.superres`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aetools.nn.blocks import conv3x3
from aetools.nn.registry import register_model
from aetools.nn.unet import BackboneConfig, SkipAutoencoder, pad_to_multiple


@dataclass
class SuperResConfig:
    """Args:
    widths, blocks, bottleneck_blocks: the backbone's (see `BackboneConfig`).
    channels: image channels (grey images are replicated to RGB and averaged back).
    scales: the upscaling factors this network has tails for.
    """

    widths: tuple[int, ...] = (48, 96, 192)
    blocks: int = 2
    bottleneck_blocks: int = 2
    channels: int = 3
    scales: tuple[int, ...] = (2, 3, 4)


@register_model("superres-unet", SuperResConfig)
class SuperResNet(nn.Module):
    # Each training step uses one scale's tail only; DDP must be told the others get no gradient.
    has_unused_parameters = True

    def __init__(self, config: SuperResConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.backbone = SkipAutoencoder(BackboneConfig(c, config.widths, config.blocks, config.bottleneck_blocks))
        w0 = self.backbone.out_channels
        self.tails = nn.ModuleDict(
            {str(s): nn.Sequential(conv3x3(w0, c * s * s), nn.PixelShuffle(s)) for s in config.scales}
        )

    def receptive_radius(self) -> int:
        """In input (LR) pixels: the backbone's + the tail's 3x3 conv + bicubic's 2-pixel reach."""
        return self.backbone.receptive_radius() + 2

    @property
    def stride(self) -> int:
        return self.backbone.stride

    def forward(self, lr: torch.Tensor, scale: int | torch.Tensor = 2) -> torch.Tensor:
        """lr (B, C, h, w) in [0, 1]; scale an int (or a tensor holding it) -> (B, C, scale*h, scale*w)."""
        s = int(scale.flatten()[0]) if isinstance(scale, torch.Tensor) else int(scale)
        if str(s) not in self.tails:
            raise ValueError(f"this network upscales by {', '.join(map(str, self.config.scales))}, not {s}")
        h, w = lr.shape[-2:]
        x = pad_to_multiple(lr, self.stride)  # padded once here so the bicubic skip sees the same border
        residual = self.tails[str(s)](self.backbone.decode(*self.backbone.encode(x)))
        base = F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
        return (base + residual)[..., : s * h, : s * w]
