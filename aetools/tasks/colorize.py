"""Colorization: how a training pair is made, the loss, and the image-level operation.

Everything happens in CIE Lab (skimage.color): L is what a grey photo keeps, ab is what it lost. A
training pair is (L of a photo crop, the crop's ab at half resolution, where the head predicts it).

Loss (Zhang, Isola & Efros 2016, eq. 2-4): the true ab of each pixel is soft-encoded over its 5 nearest
bins (Gaussian, sigma = 5), the network's distribution is scored by cross-entropy against it, and each
pixel is weighted by the rarity of its colour (`rebalancing_weights`), so that the loss is not dominated
by the greys and browns that fill most of every photo.

Inference: L at full resolution is kept exactly; the network sees L resized to a working size, the ab read
out of its distribution (`Readout`) is upsampled to full resolution, and the result is gamut-mapped by
shrinking chroma, never by touching L.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from aetools.data.io import ImageData
from aetools.heads.colorize import ANNEALED_MEAN_T, ColorizeConfig, annealed_mean, readout_temperature
from aetools.heads.colorize_bins import load_prior, rebalancing_weights
from aetools.pipeline import ImagePipeline, register_pipeline
from aetools.precision import Precision
from aetools.tasks.base import Batch, Task, TrainDefaults, against_target, register_task

GAMUT_TOLERANCE = 0.5  # Lab units: a colour that comes back from sRGB further off than this was clipped
SOFT_NEIGHBOURS = 5
SOFT_SIGMA = 5.0
REBALANCE_MIX = 0.5  # λ of eq. 4: 0 = full inverse-frequency weighting, 1 = none


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float RGB in [0, 1] -> (..., 3) Lab (L in [0, 100])."""
    from skimage import color

    return color.rgb2lab(np.clip(rgb, 0.0, 1.0)).astype(np.float32)


def degrade_for_colorize(clean: torch.Tensor, generator: torch.Generator) -> Batch:
    """clean (B, 3, H, W) in [0, 1] -> Batch(inputs={grey: L/100 (B, 1, H, W)}, target=ab (B, 2, H/2, W/2)),
    with the crop itself kept as `reference` for validation PSNR."""
    lab = torch.from_numpy(rgb_to_lab(clean.permute(0, 2, 3, 1).numpy())).permute(0, 3, 1, 2)
    grey = lab[:, :1] / 100.0
    ab = F.avg_pool2d(lab[:, 1:], 2, ceil_mode=True)
    return Batch({"grey": grey}, ab, reference=clean)


@lru_cache(maxsize=1)
def _loss_tables() -> tuple[torch.Tensor, torch.Tensor]:
    bins, prior = load_prior()
    weights = rebalancing_weights(prior, bins, REBALANCE_MIX)
    return torch.as_tensor(bins, dtype=torch.float32), torch.as_tensor(weights, dtype=torch.float32)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ab (N, 2) -> (indices (N, 5) of the nearest bins, nearest first; their Gaussian weights (N, 5))."""
    d2 = torch.cdist(ab, bins).square()
    nearest, idx = d2.topk(SOFT_NEIGHBOURS, dim=1, largest=False)
    return idx, torch.softmax(-nearest / (2 * SOFT_SIGMA**2), dim=1)


def colorize_loss(logits: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """logits (B, Q, h, w), true ab (B, 2, h, w) -> class-rebalanced soft cross-entropy (scalar)."""
    bins, weights = _loss_tables()
    bins, weights = bins.to(ab.device), weights.to(ab.device)
    q = logits.shape[1]
    idx, soft = soft_encode(ab.permute(0, 2, 3, 1).reshape(-1, 2).float(), bins)
    log_probs = torch.log_softmax(logits.permute(0, 2, 3, 1).reshape(-1, q).float(), dim=1)
    cross_entropy = -(soft * log_probs.gather(1, idx)).sum(dim=1)  # (N,)
    return (weights[idx[:, 0]] * cross_entropy).mean()


def lab_to_rgb_keeping_l(lab: np.ndarray, steps: int = 8) -> np.ndarray:
    """(H, W, 3) Lab -> (H, W, 3) RGB in [0, 1] with the input's L.

    lab2rgb clips out-of-gamut colours channel by channel, which changes their lightness. Instead the chroma
    of each out-of-gamut pixel (found by a Lab -> RGB -> Lab round trip) is scaled down, same L and hue, by
    bisection until the colour fits.
    """
    from skimage import color

    def to_rgb(lab_pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (RGB, whether each pixel survived the round trip)."""
        with warnings.catch_warnings():  # "negative Z values clipped": exactly what is being detected
            warnings.simplefilter("ignore", UserWarning)
            rgb = color.lab2rgb(lab_pixels)
        back = color.rgb2lab(rgb)
        return rgb, np.abs(back - lab_pixels).max(axis=-1) < GAMUT_TOLERANCE

    rgb, inside = to_rgb(lab)
    if not inside.all():
        out = lab[~inside][:, None, :]  # (N, 1, 3)
        low, high = np.zeros((len(out), 1, 1)), np.ones((len(out), 1, 1))
        for _ in range(steps):
            mid = (low + high) / 2
            _, fits = to_rgb(np.concatenate([out[..., :1], out[..., 1:] * mid], axis=-1))
            low, high = np.where(fits[..., None], mid, low), np.where(fits[..., None], high, mid)
        mapped, _ = to_rgb(np.concatenate([out[..., :1], out[..., 1:] * low], axis=-1))
        rgb[~inside] = mapped[:, 0]
    return np.clip(rgb, 0.0, 1.0)


@dataclass(frozen=True)
class Readout:
    """How the network's distribution over ab bins becomes one colour per pixel (`ab_from_logits`); a model
    stores its own in its config (`ColorizeConfig`), chosen on held-out training photos.

    Args:
        temperature: the annealed mean's T (`annealed_mean`): toward 0 the mode (vivid), 1 the plain mean.
        calibration: how much of the class rebalancing to undo, 0-1 (see `ab_from_logits`).
        flat_entropy: None for one T everywhere; a value in (0, 1] makes T confidence-dependent: it rises to 1
            (the plain mean, muted colour) where the distribution is at least this flat
            (`readout_temperature`).
    """

    temperature: float = ANNEALED_MEAN_T
    calibration: float = 0.0
    flat_entropy: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.temperature <= 1.0:
            raise ValueError(f"temperature {self.temperature:g}: expected a value above 0, at most 1")
        if not 0.0 <= self.calibration <= 1.0:
            raise ValueError(f"calibration {self.calibration:g}: expected a value from 0 to 1")
        if self.flat_entropy is not None and not 0.0 < self.flat_entropy <= 1.0:
            raise ValueError(f"flat entropy {self.flat_entropy:g}: expected a value above 0, at most 1")

    @classmethod
    def of(cls, config: ColorizeConfig) -> Readout:
        """The readout a model's config stores (weights saved before flat_entropy existed: None)."""
        return cls(config.temperature, config.calibration, config.flat_entropy)

    def describe(self) -> str:
        """e.g. "T=0.38, calibration 0.2" or "T=0.3 rising to 1 at entropy 0.6, calibration 0.5"."""
        rise = "" if self.flat_entropy is None else f" rising to 1 at entropy {self.flat_entropy:g}"
        return f"T={self.temperature:g}{rise}, calibration {self.calibration:g}"


def ab_from_logits(
    logits: torch.Tensor, bins: torch.Tensor, size: tuple[int, int], readout: Readout = Readout()
) -> torch.Tensor:
    """logits (B, Q, h, w) over the bin centres `bins` (Q, 2) -> ab (B, 2, H, W): the annealed mean at the
    readout's (possibly per-pixel) temperature, bilinearly upsampled to `size`.

    calibration: trained with class rebalancing, the network's distribution is (about) w(q) p(q | L): the
    minimiser of E[-w(q) log p̂(q)] is p̂ ∝ w p. Subtracting calibration * log w(q) from the logits undoes
    a share of that: 0 = as trained (vivid), 1 = the plain posterior (closer to the mean colour, higher PSNR).
    The confidence that sets a per-pixel temperature is read from these calibrated logits.
    """
    if readout.calibration:
        _, weights = _loss_tables()
        logits = logits - readout.calibration * weights.log().to(logits.device)[None, :, None, None]
    temperature = readout_temperature(logits, readout.temperature, readout.flat_entropy)
    ab = annealed_mean(logits, bins.to(logits.device), temperature)
    return F.interpolate(ab, size=size, mode="bilinear", align_corners=False)


def colorize_validation_pair(logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """For the trainer's validation PSNR: (predicted RGB, true RGB), both (B, 3, H, W) on the CPU."""
    grey = batch.inputs["grey"].cpu()
    bins, _ = _loss_tables()  # the centres every colorize network is built with
    ab = ab_from_logits(logits.float().cpu(), bins, grey.shape[-2:])
    lab = torch.cat([grey * 100.0, ab], dim=1).permute(0, 2, 3, 1).numpy()
    from skimage import color

    rgb = torch.from_numpy(color.lab2rgb(lab)).permute(0, 3, 1, 2).float()
    return rgb, batch.reference


TASK = register_task(
    Task(
        name="colorize",
        arch="colorize-unet",
        degrade=degrade_for_colorize,
        loss=against_target(colorize_loss),
        train=TrainDefaults(crop=128, batch_size=16, steps=12_000, lr=1e-3, val_images=24, val_crop=256),
        validation_pair=colorize_validation_pair,
        description="grey photo to colour (Lab: L in, a distribution over ab bins out)",
    )
)


def luminance(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) float in [0, 1], C = 1 or 3 -> L (H, W) in [0, 100]. Colour and tinted inputs are
    desaturated this way: only their lightness is kept."""
    rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3]
    return rgb_to_lab(rgb)[..., 0]


def colorize_pixels(
    model: torch.nn.Module,
    pixels: np.ndarray,
    strength: float = 1.0,
    device: torch.device | None = None,
    precision: Precision | None = None,
    readout: Readout | None = None,
) -> np.ndarray:
    """pixels (H, W, C) float in [0, 1], C = 1 or 3 -> RGB (H, W, 3) float in [0, 1] with the input's L.
    See `colorize_lightness` for the options."""
    return colorize_lightness(model, luminance(pixels), strength, device, precision=precision, readout=readout)


def colorize_lightness(
    model: torch.nn.Module,
    lightness: np.ndarray,
    strength: float = 1.0,
    device: torch.device | None = None,
    work_size: int | None = None,
    readout: Readout | None = None,
    precision: Precision | None = None,
) -> np.ndarray:
    """CIE L (H, W) in [0, 100] -> RGB (H, W, 3) float in [0, 1] whose L is `lightness`.

    strength: scales the predicted ab (0 = grey, 1 = the model's colours).
    work_size: the long side the network sees (default: the model's); larger inputs are resized down for
        the network and the predicted ab is upsampled back. L itself is never resized.
    readout: how the distribution becomes colour (`Readout`); default: the model's.
    """
    logits = colorize_logits(model, lightness, work_size, device, precision)
    readout = readout or Readout.of(model.config)
    ab = ab_from_logits(logits, model.ab_bins, lightness.shape, readout)[0].permute(1, 2, 0).numpy() * strength
    return lab_to_rgb_keeping_l(np.concatenate([lightness[..., None], ab], axis=-1))


def colorize_logits(
    model: torch.nn.Module,
    lightness: np.ndarray,
    work_size: int | None = None,
    device: torch.device | None = None,
    precision: Precision | None = None,
) -> torch.Tensor:
    """CIE L (H, W) -> the network's logits (1, Q, h, w) on the CPU, from one global pass on L resized so its
    long side is at most `work_size` (default: the model's)."""
    from aetools.inference import model_device, run_model

    h, w = lightness.shape
    grey = torch.from_numpy(np.asarray(lightness, dtype=np.float32) / 100.0)[None, None]
    work_size = work_size or model.config.work_size
    if max(h, w) > work_size:
        factor = work_size / max(h, w)
        small = (max(1, round(h * factor)), max(1, round(w * factor)))
        grey = F.interpolate(grey, size=small, mode="bilinear", antialias=True, align_corners=False)
    device = device or model_device(model)
    # one global pass (tile=0): the context branch sees the whole picture
    return run_model(model, grey, tile=0, device=device, precision=precision)


@register_pipeline
class ColorizePipeline(ImagePipeline):
    """Colour a grey photo: the output is RGB whose lightness (CIE L) is the input's, at full resolution.
    Colour or tinted (sepia) inputs are desaturated first. strength: 0 = grey, 1 = the model's colours.
    Alpha is kept. A grey input's ICC profile (a grey profile) is dropped: it does not describe RGB."""

    name = "colorize"
    task = "colorize"

    def __call__(self, image: ImageData, strength: float = 1.0, readout: Readout | None = None) -> ImageData:
        """readout: how the network's distribution becomes colour (`Readout`); default: the model's own."""
        from dataclasses import replace

        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength {strength}: expected a value from 0 to 1")
        out = colorize_pixels(self.model, image.pixels, strength, self.device, self.precision, readout)
        result = image.with_pixels(out.astype(np.float32))
        return replace(result, icc_profile=None) if image.is_grey else result
