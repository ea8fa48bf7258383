"""The colorizer on a pretrained semantic encoder: torchvision's MobileNetV2 features see the grey photo, a
skip-connected decoder (U-Net style) fuses them from 1/32 back to 1/4 resolution and predicts the same
distribution over ab bins as `ColorizeNet` (so the loss, the readout and the pipeline are shared), at a
quarter of the resolution it is given, as Zhang, Isola & Efros 2016 did (colour is a low-frequency signal:
the eye takes its detail from L, which the pipeline keeps at full resolution).

    grey (B, 1, H, W)  L / 100  (a hint model: (B, 4, H, W), then the hints' a / 100, b / 100, mask)
      L -> sRGB grey value, replicated to 3 channels, ImageNet mean/std    -> (B, 3, H, W)
      MobileNetV2 features (pretrained on ImageNet when trained with --pretrained)
          1/4: (B, 24)   1/8: (B, 32)   1/16: (B, 96)   1/32: (B, 320), and (B, 1280) at 1/32
      bottleneck 1/32: 1x1 conv of the 320 + global context (the 1280 averaged over the picture -> MLP)
                       + the hints pooled to 1/32                           -> (B, d3, H/32, W/32)
      1/16, 1/8: upsample x2, concat the encoder's skip, 3x3 conv, + the hints pooled to it, ResBlock
      last stage 1/4: upsample x2, concat the encoder's skip and L with the hints at full resolution
                      (space-to-depth: all 16 pixels of each 4x4 block, 3x3 conv), two 3x3 convs
                                                                           -> (B, d0, H/4, W/4)
      1x1 conv                                                             -> logits (B, Q, H/4, W/4)

Hints that spread (Zhang, Zhu et al. 2017, "Real-Time User-Guided Image Colorization with Learned Deep
Priors"): a hint enters twice. At full resolution into the last stage, where its exact place and colour
are known; and pooled into every coarser level down to the bottleneck, where one cell of 32x32 pixels
holds the mean colour of the hints inside it and a flag that there is one, so a 1-pixel point and a 3x3
patch of the same colour look the same there. The coarse levels are what let one click colour a whole
region; the encoder's features tell the decoder where the region ends.

The encoder's batch-norm statistics stay those of ImageNet during fine-tuning (`freeze_bn`): batches of
16 crops are too small to re-estimate them, and inference then computes exactly what training did.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from aetools.heads.colorize import HINT_CHANNELS, load_bin_centres, with_hint_channels
from aetools.nn.blocks import ResBlock, conv3x3
from aetools.nn.unet import pad_to_multiple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# indices of torchvision's mobilenet_v2().features whose outputs feed the decoder, finest first:
# 1/4 (24 ch), 1/8 (32), 1/16 (96), 1/32 (320); the last layer (18: 1280 ch at 1/32) is the global context.
# Decoder level i works at 1/2^(i+2) with decoder_widths[i] channels.
SKIP_LAYERS = (3, 6, 13, 17)
SKIP_CHANNELS = (24, 32, 96, 320)
OUT_STRIDE = 4  # logits at 1/4 of the input
FULL_CHANNELS = 32  # L and the hints at full resolution, after space-to-depth and a 3x3 conv
CONTEXT_CHANNELS = 1280
STRIDE = 32
MAX_PRETRAINED_BYTES = 200 * 2**20  # a MobileNetV2 state dict is 14 MB


def lightness_to_srgb(grey: torch.Tensor) -> torch.Tensor:
    """L / 100 (any shape) -> the sRGB value (0-1) of the grey of that lightness (CIE L* -> Y -> sRGB gamma):
    what the ImageNet encoder saw for a grey pixel in a colour photo."""
    fy = (grey.clamp(0, 1) * 100.0 + 16.0) / 116.0
    delta = 6.0 / 29.0
    y = torch.where(fy > delta, fy**3, (fy - 4.0 / 29.0) * 3 * delta**2).clamp(min=0.0)
    return torch.where(y <= 0.0031308, 12.92 * y, 1.055 * y.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def pool_hints(hints: torch.Tensor, factor: int) -> torch.Tensor:
    """Hint channels (B, 3, H, W) (a / 100, b / 100, mask), H and W multiples of `factor` -> (B, 3, H/f, W/f):
    per cell the mean ab of the hint pixels inside it and 1 where there is any. A point and a patch of the
    same colour inside one cell give the same cell."""
    mask = hints[:, 2:3]
    count = F.avg_pool2d(mask, factor)  # share of the cell's pixels that are hints
    ab = F.avg_pool2d(hints[:, :2] * mask, factor) / count.clamp(min=1e-8)
    return torch.cat([ab, (count > 0).to(hints.dtype)], dim=1)


class ColorizeMobileNet(nn.Module):
    """Built by `ColorizeNet(config)` when `config.encoder == "mobilenet_v2"`; see the module docstring.
    Settings it reads from `ColorizeConfig`: decoder_widths, bins, hints, freeze_bn (and, for training,
    encoder_lr_scale and encoder_frozen_steps through `optimizer_groups`)."""

    arch = "colorize-unet"  # one architecture name, the config's `encoder` chooses the network

    def __init__(self, config):
        super().__init__()
        from torchvision.models import mobilenet_v2

        if len(config.decoder_widths) != len(SKIP_LAYERS):
            raise ValueError(f"decoder_widths: {len(SKIP_LAYERS)} widths, 1/4 to 1/32 resolution, finest first")
        self.config = config
        self.hints = bool(config.hints)
        self.in_channels = 1 + (HINT_CHANNELS if self.hints else 0)
        self.encoder = mobilenet_v2().features  # 19 layers; keys as torchvision's "features.*"
        if config.encoder_lr_scale == 0:  # frozen for good: no gradients, no backward pass through it
            self.encoder.requires_grad_(False)
        self.register_buffer("rgb_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        d = config.decoder_widths  # level i works at 1/2^(i+2): d[0] at 1/4 ... d[3] at 1/32
        top = len(d) - 1
        self.bottleneck = nn.Conv2d(SKIP_CHANNELS[top], d[top], 1)
        self.context = nn.Sequential(
            nn.Linear(CONTEXT_CHANNELS, d[top]), nn.ReLU(inplace=True), nn.Linear(d[top], d[top])
        )
        self.bottleneck_block = ResBlock(d[top])
        # levels 1/16, 1/8 (i = 2, 1): fuse the upsampled coarser level with the encoder's skip there
        self.fuse = nn.ModuleList(conv3x3(d[i + 1] + SKIP_CHANNELS[i], d[i]) for i in range(1, top))
        self.refine = nn.ModuleList(ResBlock(d[i]) for i in range(1, top))
        # the pooled hints, added at the bottleneck and at every level above it but the last (i = 1 .. 3)
        hint_proj = (nn.Conv2d(HINT_CHANNELS, d[i], 1) for i in range(1, top + 1))
        self.hint_proj = nn.ModuleList(hint_proj) if self.hints else None
        # last stage, 1/4: L and the hints at full resolution, space-to-depth (16 input pixels per position)
        self.full = conv3x3(OUT_STRIDE**2 * self.in_channels, FULL_CHANNELS)
        self.last = nn.Sequential(
            conv3x3(d[1] + SKIP_CHANNELS[0] + FULL_CHANNELS, d[0]),
            nn.ReLU(inplace=True),
            conv3x3(d[0], d[0]),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Conv2d(d[0], config.bins, 1))
        self.register_buffer("ab_bins", load_bin_centres(config.bins))  # (Q, 2), saved

    @property
    def stride(self) -> int:
        return STRIDE

    def train(self, mode: bool = True) -> ColorizeMobileNet:
        """As nn.Module.train, except that with `freeze_bn` the encoder's batch norms keep ImageNet's
        statistics (eval mode); their scale and shift still train."""
        super().train(mode)
        if mode and self.config.freeze_bn:
            for module in self.encoder.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        """grey (B, 1, H, W): L / 100 in [0, 1], or for a hint model (B, 4, H, W): L / 100, then the hints'
        a / 100, b / 100 (0 where there is none) and mask (1 = a hint) -> logits (B, Q, ceil(H/4), ceil(W/4)).
        A hint model given L alone colours automatically (no hints)."""
        h, w = grey.shape[-2:]
        grey = with_hint_channels(grey, self.in_channels)
        x = pad_to_multiple(grey, STRIDE)
        light = x[:, :1]
        rgb = (lightness_to_srgb(light).expand(-1, 3, -1, -1) - self.rgb_mean) / self.rgb_std  # (B, 3, H, W)
        skips = []
        feature = rgb
        for index, layer in enumerate(self.encoder):
            feature = layer(feature)
            if index in SKIP_LAYERS:
                skips.append(feature)
        context = self.context(feature.mean(dim=(2, 3)))  # (B, d3): what the whole picture shows
        hints = x[:, 1:] if self.hints else None

        def with_hints(level: int, features: torch.Tensor) -> torch.Tensor:
            """Level i (1/8 .. 1/32: i = 1 .. 3) works at 1/2^(i+2) of the input."""
            if hints is None:
                return features
            return features + self.hint_proj[level - 1](pool_hints(hints, 2 ** (level + 2)))

        top = len(SKIP_LAYERS) - 1
        y = torch.relu(self.bottleneck(skips[top])) + context[..., None, None]  # (B, d3, H/32, W/32)
        y = self.bottleneck_block(with_hints(top, y))
        for i in reversed(range(1, top)):  # 1/16, 1/8
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            y = torch.relu(self.fuse[i - 1](torch.cat([y, skips[i]], dim=1)))
            y = self.refine[i - 1](with_hints(i, y))
        y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)  # (B, d1, H/4, W/4)
        full = F.pixel_unshuffle(torch.cat([light - 0.5, x[:, 1:]], dim=1), OUT_STRIDE)
        y = self.last(torch.cat([y, skips[0], torch.relu(self.full(full))], dim=1))  # (B, d0, H/4, W/4)
        return self.head(y)[..., : -(-h // OUT_STRIDE), : -(-w // OUT_STRIDE)]

    def optimizer_groups(self) -> list[dict]:
        """For the trainer: the pretrained encoder learns at `encoder_lr_scale` times the learning rate (0: it
        stays as loaded, and costs no backward pass), and not at all for its first `encoder_frozen_steps`
        steps; the decoder at the full rate from the start."""
        encoder = list(self.encoder.parameters())
        ids = {id(p) for p in encoder}
        rest = [p for p in self.parameters() if id(p) not in ids]
        c = self.config
        if c.encoder_lr_scale == 0:
            return [{"params": rest}]
        return [
            {"params": rest},
            {"params": encoder, "lr_scale": float(c.encoder_lr_scale), "frozen_steps": int(c.encoder_frozen_steps)},
        ]

    def load_pretrained(self, path: str | Path) -> dict:
        """Load torchvision's ImageNet MobileNetV2 state dict (a .pth whose "features.*" tensors match this
        encoder; the classifier's are ignored) into the encoder -> a record for the training metadata (file
        name, sha256). Training only: the weights then live in the model's own safetensors.
        Raises ValueError (or OSError) naming the file and the problem."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        if path.stat().st_size > MAX_PRETRAINED_BYTES:
            raise ValueError(f"{path}: {path.stat().st_size / 2**20:.0f} MB, too large for a MobileNetV2 state dict")
        data = path.read_bytes()
        try:
            import io

            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (a foreign or damaged file fails in many ways)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ValueError(f"{path}: not a PyTorch state dict ({first[:200]})") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not a state dict (a {type(state).__name__})")
        features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        own = self.encoder.state_dict()
        missing, extra = [k for k in own if k not in features], [k for k in features if k not in own]
        if missing or extra:
            problem = f"features.{missing[0]} is missing" if missing else f"features.{extra[0]} is not in it"
            raise ValueError(f"{path}: not torchvision's mobilenet_v2 weights ({problem})")
        for name, target in own.items():
            value = features[name]
            if not torch.is_tensor(value) or value.shape != target.shape:
                shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
                raise ValueError(f"{path}: features.{name} is {shape}, mobilenet_v2 has {tuple(target.shape)}")
        self.encoder.load_state_dict({k: features[k].to(own[k].dtype) for k in own})
        return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}
