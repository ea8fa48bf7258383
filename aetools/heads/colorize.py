"""Colorization head: the shared backbone sees the lightness L, the head predicts a distribution over
quantised ab colours (Zhang, Isola & Efros 2016) at half the working resolution.

    grey (B, 1, H, W)  L / 100  (a hint model: (B, 4, H, W), L / 100 then the hints' a / 100, b / 100, mask)
      pixel_unshuffle(2): each 2x2 block to 4 channels     -> (B, 4C, H/2, W/2)    lossless, 4x cheaper
      backbone encode                                      -> bottleneck (B, wL, H/16, W/16) + skips
      + global context: mean over the image -> MLP         -> added to every bottleneck pixel
      backbone decode                                      -> (B, w0, H/2, W/2)
      3x3 conv, ReLU, 1x1 conv                             -> logits (B, Q, H/2, W/2)

Colour is a low-frequency signal (the eye takes its detail from L), so the network works at half the
resolution of its input, without discarding any of L's detail: space-to-depth keeps all of it.

Why classes, not regression: the colour of a shirt is multimodal (red or blue, rarely their brown mean);
L2 regression predicts that mean and washes everything out. A distribution keeps the modes, and the
readout picks between mode and mean (the "annealed mean", `annealed_mean`). Where the network is unsure, a
vivid readout paints a confident wrong hue, which costs more than grey does; `readout_temperature` lets the
temperature rise toward the plain mean (muted colour) as the distribution flattens.

The global-context branch (as in Iizuka et al. 2016's fusion layer) tells every pixel what the whole
scene is (beach, forest, indoor) at the cost of one matrix product; it is why the network runs on the whole
image at a working resolution rather than on tiles.

Colour hints (Zhang, Zhu et al. 2017, "Real-Time User-Guided Image Colorization with Learned Deep Priors"):
a model with `hints` takes three more input channels, a sparse ab map of colours a user gave and a mask of
where they are (zeros: no hints, the automatic colorizer). It learns to spread a hint over the region it
belongs to from training crops with hint points drawn from their own colours (`aetools.tasks.colorize`).

Two networks share this architecture name, its config and everything around them (loss, readout,
pipeline); the config's `encoder` chooses: "unet" (the default, and every file saved before the choice
existed) is the network above, trained from scratch; "mobilenet_v2" is `ColorizeMobileNet`
(`aetools.heads.colorize_mobilenet`): an ImageNet-pretrained encoder under a skip-connected decoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aetools.nn.blocks import conv3x3
from aetools.nn.registry import register_model
from aetools.nn.unet import BackboneConfig, SkipAutoencoder, pad_to_multiple

ANNEALED_MEAN_T = 0.38  # Zhang et al.'s temperature: between the mode (T -> 0) and the mean (T = 1)


@dataclass
class ColorizeConfig:
    """Args:
    widths, blocks, bottleneck_blocks: the backbone's (see `BackboneConfig`).
    bins: number of ab classes (`aetools.heads.colorize_bins`).
    work_size: the long side (px) the image is resized to for the network; ab is upsampled back.
    temperature, calibration, flat_entropy: the readout (`aetools.tasks.colorize.ab_from_logits`), chosen
        after training on held-out training photos. flat_entropy None: one temperature everywhere; a value h:
        the temperature of each pixel rises from `temperature` (a certain distribution) to 1 (the plain mean)
        at normalised entropy h and above (`readout_temperature`).
    hints: the network also takes colour hints (3 more input channels: a / 100, b / 100, mask).
    rebalance: the class-rebalancing mix λ it was trained with (`colorize_bins.rebalancing_weights`), which
        the readout's calibration undoes.
    encoder: "unet" (this module's network: widths, blocks, bottleneck_blocks) or "mobilenet_v2"
        (`ColorizeMobileNet`: torchvision's MobileNetV2 features, pretrained with `aetools train --pretrained`).
    decoder_widths: mobilenet_v2's decoder channels at 1/4, 1/8, 1/16 and 1/32 resolution (its logits are at 1/4).
    encoder_lr_scale, encoder_frozen_steps: mobilenet_v2's training: the encoder's learning rate is this
        share of the decoder's (0: frozen, no backward pass through it), and zero for the first
        `encoder_frozen_steps` steps.
    freeze_bn: mobilenet_v2's encoder keeps its batch-norm statistics (ImageNet's) while it trains.
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 1
    bottleneck_blocks: int = 2
    bins: int = 261
    work_size: int = 384
    temperature: float = ANNEALED_MEAN_T
    calibration: float = 0.0
    flat_entropy: float | None = None
    hints: bool = False
    rebalance: float = 0.5
    encoder: str = "unet"
    decoder_widths: tuple[int, ...] = (64, 96, 128, 256)
    encoder_lr_scale: float = 0.1
    encoder_frozen_steps: int = 0
    freeze_bn: bool = True


HINT_CHANNELS = 3  # a / 100, b / 100, mask


def with_hint_channels(grey: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A colorizer's input with its `in_channels`: L alone (B, 1, H, W) given to a hint model gets empty hint
    channels (zeros: no hints); anything else must already have them."""
    if grey.shape[1] == in_channels:
        return grey
    if grey.shape[1] != 1:
        raise ValueError(f"expected 1 or {in_channels} input channels, got {grey.shape[1]}")
    return F.pad(grey, (0, 0, 0, 0, 0, in_channels - 1))


ENCODERS = ("unet", "mobilenet_v2")


def load_bin_centres(bins: int) -> torch.Tensor:
    """The shipped ab bin centres (Q, 2) as a float32 tensor; zeros when a config asks for another number of
    bins (a weights file then brings its own centres)."""
    from aetools.heads.colorize_bins import load_prior

    centres, _ = load_prior()
    if len(centres) != bins:
        return torch.zeros(bins, 2)
    return torch.as_tensor(centres, dtype=torch.float32)


@register_model("colorize-unet", ColorizeConfig)
class ColorizeNet(nn.Module):
    def __new__(cls, config: ColorizeConfig | None = None):
        """The config's `encoder` chooses the network: "mobilenet_v2" builds a `ColorizeMobileNet` instead."""
        encoder = getattr(config, "encoder", "unet")
        if encoder not in ENCODERS:
            raise ValueError(f"encoder {encoder!r}: expected one of {', '.join(ENCODERS)}")
        if encoder == "mobilenet_v2":
            from aetools.heads.colorize_mobilenet import ColorizeMobileNet

            return ColorizeMobileNet(config)
        return super().__new__(cls)

    def __init__(self, config: ColorizeConfig):
        super().__init__()
        self.config = config
        self.in_channels = 1 + (HINT_CHANNELS if config.hints else 0)
        self.backbone = SkipAutoencoder(
            BackboneConfig(4 * self.in_channels, config.widths, config.blocks, config.bottleneck_blocks)
        )
        top = config.widths[-1]
        self.context = nn.Sequential(nn.Linear(top, top), nn.ReLU(inplace=True), nn.Linear(top, top))
        w0 = self.backbone.out_channels
        hidden = max(64, w0)
        self.head = nn.Sequential(conv3x3(w0, hidden), nn.ReLU(inplace=True), nn.Conv2d(hidden, config.bins, 1))
        self.register_buffer("ab_bins", load_bin_centres(config.bins))  # (Q, 2), saved

    @property
    def stride(self) -> int:
        return self.backbone.stride * 2  # logits are at half resolution

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        """grey (B, 1, H, W): L / 100 in [0, 1], or for a hint model (B, 4, H, W): L / 100, then the hints'
        a / 100, b / 100 (0 where there is none) and mask (1 = a hint) -> logits (B, Q, ceil(H/2), ceil(W/2)).
        A hint model given L alone colours automatically (no hints)."""
        h, w = grey.shape[-2:]
        grey = with_hint_channels(grey, self.in_channels)
        x = torch.cat([grey[:, :1] - 0.5, grey[:, 1:]], dim=1)  # L centred; hints as they are
        # pixel_unshuffle orders channels c * 4 + k: L's four come first, so a model grown from one without
        # hints (zero weights for the new channels) computes exactly what the old one did
        x = F.pixel_unshuffle(pad_to_multiple(x, self.stride), 2)
        bottleneck, skips = self.backbone.encode(x)
        bottleneck = bottleneck + self.context(bottleneck.mean(dim=(2, 3)))[..., None, None]
        features = self.backbone.decode(bottleneck, skips)
        return self.head(features)[..., : (h + 1) // 2, : (w + 1) // 2]


def annealed_mean(
    logits: torch.Tensor, bins: torch.Tensor, temperature: float | torch.Tensor = ANNEALED_MEAN_T
) -> torch.Tensor:
    """logits (B, Q, h, w), bin centres (Q, 2) -> ab (B, 2, h, w): the mean of the distribution sharpened to
    temperature T, f_T(z) ∝ exp(log z / T) (Zhang et al. eq. 5). T = 1 is the mean (desaturated), T -> 0
    the mode (vivid but patchy); 0.38 is the paper's compromise. temperature: one value, or one per pixel
    (B, 1, h, w)."""
    probs = torch.softmax(logits.float() / temperature, dim=1)  # softmax(logits / T) = z^(1/T), normalised
    return torch.einsum("bqhw,qc->bchw", probs, bins)


def normalised_entropy(logits: torch.Tensor) -> torch.Tensor:
    """logits (B, Q, h, w) -> (B, 1, h, w): H(p) / log Q of p = softmax(logits); 0 = all mass on one bin,
    1 = uniform over the Q bins."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1, keepdim=True)
    return entropy / math.log(logits.shape[1])


def readout_temperature(logits: torch.Tensor, temperature: float, flat_entropy: float | None) -> float | torch.Tensor:
    """The annealed mean's temperature, dependent on the network's confidence.

    flat_entropy None: `temperature` everywhere. Otherwise per pixel (B, 1, h, w):
        T(x) = T + (1 - T) * min(1, H(x) / flat_entropy),   H = `normalised_entropy(logits)`
    so a peaked distribution (H -> 0) is read at T (its mode's colour, vivid) and one at least as flat as
    `flat_entropy` as the plain mean (T = 1: unsure colour stays muted instead of a confident wrong hue)."""
    if flat_entropy is None:
        return temperature
    unsure = (normalised_entropy(logits) / flat_entropy).clamp(max=1.0)
    return temperature + (1.0 - temperature) * unsure
