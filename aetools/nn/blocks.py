"""Small building blocks shared by every backbone and head."""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """conv-ReLU-conv plus identity, no normalisation.

    Batch norm is left out on purpose: restoration nets (EDSR, DRUNet) lose PSNR with it, and a
    norm-free block behaves the same on a 64x64 training crop and on a tile of a 24 MP photo.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class Down(nn.Module):
    """Halve the resolution with a learned 2x2 stride-2 conv (no aliasing-prone pooling)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Up(nn.Module):
    """Double the resolution with a 2x2 stride-2 transposed conv: each input pixel paints a 2x2 block,
    so there are no checkerboard overlaps."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
