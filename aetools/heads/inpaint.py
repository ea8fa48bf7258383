"""Inpainting head: the shared backbone sees the photo with its holes blanked plus the mask, and paints
the holes; known pixels are passed through untouched.

    image (B, 3, H, W) in [0, 1], mask (B, 1, H, W) 1 = hole
      (image - 0.5) * (1 - mask), mask                      -> (B, 4, H, W)       holes read as neutral grey
      pixel_unshuffle(2): each 2x2 block to 4 channels      -> (B, 16, H/2, W/2)  lossless, 4x cheaper
      backbone encode (5 levels)                            -> bottleneck (B, wL, H/32, W/32) + skips
      + global context: mean over the image -> MLP          -> added to every bottleneck pixel
      backbone decode                                       -> (B, w0, H/2, W/2)
      3x3 conv, ReLU, 3x3 conv, pixel_shuffle(2)            -> painted image (B, 3, H, W)
      composite: image where known, painting in the holes   -> (B, 3, H, W)

Context is everything here: a pixel in the middle of a hole has nothing nearby to copy, so the network
must see past the hole's edge. Working at half resolution (space to depth) and five backbone levels give a
receptive radius of about 300 px (`receptive_radius`), wider than the largest holes the training masks draw
on a 256 px crop; the global branch (Iizuka et al. 2017 use one too) tells every pixel what the whole
scene is. The mask channel tells the convolutions which inputs are real (the simplest of the options;
gated (Yu et al. 2019) and partial (Liu et al. 2018) convolutions learn the same thing more explicitly, at
twice the cost per layer).
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
class InpaintConfig:
    """Args:
    widths, blocks, bottleneck_blocks: the backbone's (see `BackboneConfig`); it runs at half resolution.
    work_size: regions (holes + context) whose long side is larger are filled in two passes
        (`aetools.tasks.inpaint.inpaint_pixels`): a whole-region pass at this size for the content of big
        holes, then full resolution near the holes' edges. 512 px is the scale of the training photos
        (400-481 px long side, holes drawn on 256 px crops): at it, a photo's holes look like the ones the
        network learned to fill.
    """

    widths: tuple[int, ...] = (32, 64, 128, 160, 192)
    blocks: int = 1
    bottleneck_blocks: int = 2
    work_size: int = 512


@register_model("inpaint-unet", InpaintConfig)
class InpaintNet(nn.Module):
    def __init__(self, config: InpaintConfig):
        super().__init__()
        self.config = config
        self.backbone = SkipAutoencoder(BackboneConfig(16, config.widths, config.blocks, config.bottleneck_blocks))
        top = config.widths[-1]
        self.context = nn.Sequential(nn.Linear(top, top), nn.ReLU(inplace=True), nn.Linear(top, top))
        w0 = self.backbone.out_channels
        self.head = nn.Sequential(conv3x3(w0, 2 * w0), nn.ReLU(inplace=True), conv3x3(2 * w0, 3 * 4))

    @property
    def stride(self) -> int:
        return self.backbone.stride * 2

    def receptive_radius(self) -> int:
        """Bound on how far (input pixels) an output pixel sees through the convolutions; the global
        branch sees the whole image on top of this, so tiles are approximate, never exact."""
        return 2 * (self.backbone.receptive_radius() + 2) + 1

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1] (hole pixels are ignored), mask (B, 1, H, W), 1 = hole
        -> (B, 3, H, W): `image` outside the holes, the painting inside."""
        h, w = image.shape[-2:]
        mask = mask.to(image.dtype)
        x = torch.cat([(image - 0.5) * (1 - mask), mask], dim=1)
        x = F.pixel_unshuffle(pad_to_multiple(x, self.stride), 2)
        bottleneck, skips = self.backbone.encode(x)
        bottleneck = bottleneck + self.context(bottleneck.mean(dim=(2, 3)))[..., None, None]
        painted = F.pixel_shuffle(self.head(self.backbone.decode(bottleneck, skips)), 2)[..., :h, :w] + 0.5
        return torch.where(mask > 0.5, painted, image)
