"""The convolutional trunk every generative model here shares: the backbone (`aetools.nn.unet`) with its skip
connections cut, so that everything the decoder gets has passed through the model's code.

    image (B, C, S, S)  --encode-->  features (B, wL, S/r, S/r)  ...the model's code...  (B, wL, S/r, S/r)
                        --decode-->  logits (B, C, S, S)              (r = 2^(len(widths) - 1), the stride)

Each model puts its own bottleneck between the two halves: a linear map to a vector (AE, VAE) or a
quantiser on the feature grid (VQ-VAE). A skip connection would let pixels bypass that bottleneck, which
would defeat its purpose, hence `decode(h, None)`.
"""

from __future__ import annotations

import torch
from torch import nn

from aetools.nn.blocks import conv3x3
from aetools.nn.unet import BackboneConfig, SkipAutoencoder


class ConvTrunk(nn.Module):
    """Args:
    channels: image channels (1 for Fashion-MNIST, 3 for photos).
    size: the square image side the model is trained at, a multiple of the stride.
    widths: channels per level, finest first (see `BackboneConfig`).
    """

    def __init__(self, channels: int, size: int, widths: tuple[int, ...]):
        super().__init__()
        self.backbone = SkipAutoencoder(BackboneConfig(channels, widths, blocks=1, bottleneck_blocks=1))
        self.stride = self.backbone.stride
        if size % self.stride:
            raise ValueError(f"size {size}: expected a multiple of {self.stride} for widths {widths}")
        self.side = size // self.stride  # the feature grid's side
        self.width = widths[-1]
        self.head = conv3x3(widths[0], channels)

    @property
    def flat(self) -> int:
        """Number of values in the flattened feature grid, wL * side * side."""
        return self.width * self.side * self.side

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [0, 1] -> (B, wL, side, side). Centred on 0.5, as every network here sees images."""
        return self.backbone.encode(image - 0.5)[0]

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """(B, wL, side, side) -> logits (B, C, S, S); sigmoid(logits) is the image."""
        return self.head(self.backbone.decode(features, None))
