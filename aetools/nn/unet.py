"""The shared backbone: a convolutional encoder-decoder with symmetric skip connections.

    x (B, C_in, H, W)
      stem 3x3 conv                                   -> (B, w0, H, W)       ----skip0----+
      level 0: `blocks` ResBlocks, Down               -> (B, w1, H/2, W/2)   ----skip1--+ |
      ...                                                                               | |
      bottleneck: `bottleneck_blocks` ResBlocks       -> (B, wL, H/2^L, W/2^L)          | |
      ...                                                                               | |
      Up, add skip1, `blocks` ResBlocks               -> (B, w1, H/2, W/2)   <----------+ |
      Up, add skip0, `blocks` ResBlocks               -> (B, w0, H, W)       <------------+

Skips are *added*, as in RED-Net (Mao et al. 2016) and DRUNet (Zhang et al. 2021), rather than
concatenated as in U-Net: the same gradient path to the early layers at a fraction of the cost.
Most of the compute sits at the low-resolution levels, so a wide receptive field costs little.

The backbone returns features at the input resolution; the task heads (`aetools.heads`) turn them into
a denoised image, ab colour bins, a hash code... `encode` alone serves encoders (hashing).
Any input size works: the input is padded to a multiple of the total stride and the output cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aetools.nn.blocks import Down, ResBlock, Up, conv3x3


@dataclass
class BackboneConfig:
    """Args:
    in_channels: channels of the tensor the task feeds in (e.g. RGB + a noise-level map = 4).
    widths: channels per level, finest first; len(widths) - 1 is the number of 2x downsamplings.
    blocks: ResBlocks per level on each side (encoder and decoder).
    bottleneck_blocks: ResBlocks at the coarsest level.
    """

    in_channels: int = 3
    widths: tuple[int, ...] = (32, 64, 128)
    blocks: int = 1
    bottleneck_blocks: int = 2


class SkipAutoencoder(nn.Module):
    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = config
        w = config.widths
        self.stem = conv3x3(config.in_channels, w[0])
        self.enc = nn.ModuleList(
            nn.Sequential(*[ResBlock(w[i]) for _ in range(config.blocks)]) for i in range(len(w) - 1)
        )
        self.down = nn.ModuleList(Down(w[i], w[i + 1]) for i in range(len(w) - 1))
        self.bottleneck = nn.Sequential(*[ResBlock(w[-1]) for _ in range(config.bottleneck_blocks)])
        self.up = nn.ModuleList(Up(w[i + 1], w[i]) for i in range(len(w) - 1))
        self.dec = nn.ModuleList(
            nn.Sequential(*[ResBlock(w[i]) for _ in range(config.blocks)]) for i in range(len(w) - 1)
        )

    @property
    def out_channels(self) -> int:
        return self.config.widths[0]

    @property
    def stride(self) -> int:
        """Input sizes are padded to a multiple of this."""
        return 2 ** (len(self.config.widths) - 1)

    def receptive_radius(self) -> int:
        """An upper bound on how far (in input pixels) an output pixel can see: the overlap that makes
        tiled inference exact (`aetools.tiling`). Tested against autograd in tests/test_backbone.py."""
        radius, scale = 1, 1  # stem conv
        for _ in range(len(self.config.widths) - 1):
            radius += 2 * self.config.blocks * scale + scale  # ResBlocks (2 convs each) + Down's 2x2 kernel
            scale *= 2
        radius += 2 * self.config.bottleneck_blocks * scale
        for _ in range(len(self.config.widths) - 1):
            scale //= 2
            radius += scale + 2 * self.config.blocks * scale  # Up (one input pixel per output) + ResBlocks
        return radius

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, C_in, H, W) with H, W multiples of `stride` -> (bottleneck, skips finest first)."""
        h = self.stem(x)
        skips = []
        for enc, down in zip(self.enc, self.down):
            h = enc(h)
            skips.append(h)
            h = down(h)
        return self.bottleneck(h), skips

    def decode(self, h: torch.Tensor, skips: list[torch.Tensor] | None) -> torch.Tensor:
        """skips None: decode from the bottleneck alone, as autoencoders whose code must carry everything do
        (hashing, the generators in `aetools.generative`)."""
        for i in reversed(range(len(self.up))):
            h = self.up[i](h)
            h = self.dec[i](h if skips is None else h + skips[i])
        return h  # (B, widths[0], H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        features = self.decode(*self.encode(x))
        return features[..., :height, :width]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right so H and W are multiples of `multiple`; reflect where the image is big enough."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
