"""Semantic-hashing head: the shared backbone's encoder squeezed to a few dozen sigmoid units, whose
thresholded values are an image's binary code; a decoder rebuilds the image from the code alone.

    image (B, 3, H, W) in [0, 1], resized to size x size (the whole image: a code describes all of it)
      luma: Y = 0.299 R + 0.587 G + 0.114 B, standardised per image -> (B, 1, size, size)   (else RGB - 0.5)
      backbone encode                                  -> bottleneck (B, wL, s, s), s = size / stride
      mean over positions, MLP                         -> logits (B, bits)
      training: + N(0, std^2), sigmoid                 -> code units in (0, 1), pushed to 0 or 1
      inference: logits > 0 (sigmoid > 0.5)            -> bits (B, bits) bool; the decoder gets these
    decoder (the autoencoder objective):
      code -> linear -> (B, wL, s, s) -> backbone decode with zero skips -> 3x3 conv -> what the encoder saw

Why noise (Salakhutdinov & Hinton 2009, "Semantic hashing"): a unit whose input is near 0 outputs ~0.5
plus whatever the noise makes of it, which the decoder cannot use. Units that carry information learn to
sit far from 0, where noise of a few units barely moves the sigmoid, so at inference rounding them to 0/1
loses little. The decoder gets no skip connections: every bit of what it rebuilds must pass through the
code.

Why luma (the default): a grey copy, or one with brightness and contrast changed, has exactly (up to clipping)
the same standardised luminance as its original, so its code is the same by construction, as pHash's is
(which also hashes luminance only). Colour still matters for similar-image search: `luma=False` feeds RGB.

Noise schedule: std = 0 for `noise_warmup` training steps, then a linear ramp to `noise` over `noise_ramp`
steps. Full noise on a fresh network drives the units to saturation before they carry anything and the code
collapses to a constant (S&H add it only when fine-tuning). The network counts its own training forward
passes in a buffer, so the schedule is saved with the weights and a resumed run continues it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aetools.nn.blocks import conv3x3
from aetools.nn.registry import register_model
from aetools.nn.unet import BackboneConfig, SkipAutoencoder


@dataclass
class HashConfig:
    """Args:
    widths, blocks, bottleneck_blocks: the backbone's (see `BackboneConfig`).
    bits: code length: 32, 64, 128 or 256 (a multiple of 8, packed into bytes for faiss).
    size: images are resized to size x size before encoding.
    noise: standard deviation of the Gaussian noise added to the logits in training, once ramped in.
    noise_warmup, noise_ramp: training steps without noise, then steps over which it rises to `noise`.
    luma: encode standardised luminance (invariant to grey, brightness, contrast) instead of RGB.
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks: int = 1
    bottleneck_blocks: int = 1
    bits: int = 64
    size: int = 64
    noise: float = 4.0
    noise_warmup: int = 500
    noise_ramp: int = 1000
    luma: bool = True

    def __post_init__(self) -> None:
        if self.bits not in (16, 32, 64, 128, 256):
            raise ValueError(f"bits {self.bits}: choose from 16, 32, 64, 128, 256")


@dataclass
class HashOutput:
    """recon (B, C, size, size): what the encoder saw, rebuilt from the code; target: what the encoder saw
    (`HashNet.seen`); logits (B, bits): the code units' inputs, noise-free; units (B, bits): what the
    decoder got: sigmoid of the noisy logits in training, the binary code (0./1.) in eval mode."""

    recon: torch.Tensor
    target: torch.Tensor
    logits: torch.Tensor
    units: torch.Tensor

    def float(self) -> HashOutput:  # the trainer calls output.float() after autocast
        return HashOutput(self.recon.float(), self.target.float(), self.logits.float(), self.units.float())


@register_model("hash-unet", HashConfig)
class HashNet(nn.Module):
    def __init__(self, config: HashConfig):
        super().__init__()
        if config.bits % 8:
            raise ValueError(f"bits {config.bits}: expected a multiple of 8")
        self.config = config
        channels = 1 if config.luma else 3
        self.backbone = SkipAutoencoder(
            BackboneConfig(channels, config.widths, config.blocks, config.bottleneck_blocks)
        )
        if config.size % self.backbone.stride:
            raise ValueError(f"size {config.size}: expected a multiple of {self.backbone.stride}")
        top, side = config.widths[-1], config.size // self.backbone.stride
        self.to_code = nn.Sequential(nn.Linear(top, top), nn.ReLU(inplace=True), nn.Linear(top, config.bits))
        self.from_code = nn.Linear(config.bits, top * side * side)
        self.head = conv3x3(self.backbone.out_channels, channels)
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))  # the noise schedule's clock

    def noise_std(self) -> float:
        """This training step's noise standard deviation (the schedule in the module docstring)."""
        c = self.config
        ramp = (int(self.trained_steps) - c.noise_warmup) / max(1, c.noise_ramp)
        return c.noise * min(1.0, max(0.0, ramp))

    def resize(self, image: torch.Tensor) -> torch.Tensor:
        size = (self.config.size, self.config.size)
        if image.shape[-2:] == size:
            return image
        return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)

    def network_input(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1] -> what the encoder sees, (B, 1 or 3, size, size), about zero-mean."""
        x = self.resize(image)
        if not self.config.luma:
            return x - 0.5
        y = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]  # ITU-R 601 luma, as PIL's "L"
        mean = y.mean(dim=(2, 3), keepdim=True)
        std = y.std(dim=(2, 3), keepdim=True)
        return (y - mean) / (std + 0.01)  # + 0.01: a flat image stays flat instead of amplifying its noise

    def seen(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input x (`network_input`) on a [0, 1] scale, what the decoder must rebuild: the RGB
        image, or the standardised luma mapped to 0.5 +- 0.2 per standard deviation."""
        return x + 0.5 if not self.config.luma else 0.5 + 0.2 * x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's input x -> (pooled encoder features (B, widths[-1]), logits (B, bits))."""
        bottleneck, _ = self.backbone.encode(x)
        pooled = bottleneck.mean(dim=(2, 3))
        return pooled, self.to_code(pooled)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1] -> the pooled encoder features (B, widths[-1]), the continuous latent
        the code is computed from."""
        return self.encode(self.network_input(image))[0]

    def code_logits(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1] -> logits (B, bits); a bit is set where its logit is > 0."""
        return self.encode(self.network_input(image))[1]

    def decode(self, units: torch.Tensor) -> torch.Tensor:
        """code units (B, bits) in [0, 1] -> (B, C, size, size) on `seen`'s scale, through no skip connection."""
        b, w, side = units.shape[0], self.config.widths, self.config.size // self.backbone.stride
        h = self.from_code(units).view(b, w[-1], side, side)
        return self.head(self.backbone.decode(h, None)) + 0.5

    def forward(self, image: torch.Tensor, noise: float | None = None) -> HashOutput:
        """noise: the training noise's standard deviation for this call; default: the schedule's, and the
        call counts as a training step."""
        x = self.network_input(image)
        _, logits = self.encode(x)
        if not self.training:
            units = (logits > 0).to(logits.dtype)
        else:
            if noise is None:
                noise = self.noise_std()
                self.trained_steps += 1
            units = torch.sigmoid(logits + noise * torch.randn_like(logits))
        return HashOutput(self.decode(units), self.seen(x), logits, units)

    @torch.no_grad()
    def codes(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1] -> (B, bits) bool, the binary codes."""
        return self.code_logits(image) > 0
