"""Colorization: how a training pair is made, the loss, and the image-level operation.

Everything happens in CIE Lab (skimage.color): L is what a grey photo keeps, ab is what it lost. A
training pair is (L of a photo crop, the crop's ab at half resolution, where the head predicts it).

Loss (Zhang, Isola & Efros 2016, eq. 2-4): the true ab of each pixel is soft-encoded over its 5 nearest
bins (Gaussian, sigma = 5), the network's distribution is scored by cross-entropy against it, and each
pixel is weighted by the rarity of its colour (`rebalancing_weights`), so that the loss is not dominated
by the greys and browns that fill most of every photo. Crops with (almost) no colour at all (option
`min_chroma`: black-and-white or toned photos in a training corpus) are left out of it: they would teach
that everything is grey.

Colour hints (Zhang, Zhu et al. 2017): a model trained with `hints` also sees a sparse ab map and its mask.
Training draws hint points from each crop's own colours with their sampler (`sample_hints`): the number of
points geometric (p = 1/8), positions normal about the centre (sigma a quarter of the side), each the mean
colour of a 1-9 px square; a share of the crops (option `no_hint_share`) gets none, so the automatic colorizer is
trained as much as the guided one.

Inference: L at full resolution is kept exactly; the network sees L resized to a working size, the ab read
out of its distribution (`Readout`) is upsampled to full resolution, hint pixels take their hint's ab, and
the result is gamut-mapped by shrinking chroma, never by touching L.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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
REBALANCE_MIX = 0.5  # λ of eq. 4: 0 = full inverse-frequency weighting, 1 = none (the paper's 0.5)
AB_SCALE = 100.0  # hint ab enter the network as ab / 100
HINT_STOP = 1 / 8  # Zhang et al. 2017: hint points drawn until a coin with this chance says stop
HINT_PATCHES = range(1, 10)  # side of the square a point reveals (its mean colour), px
MAX_HINTS = 64
NO_HINT_SHARE = 0.5  # of training crops: no hints at all (the automatic colorizer)
# a crop whose mean chroma sqrt(a² + b²) is below this is left out of the loss: in a corpus of colour photos
# such crops come from black-and-white or toned ones (the landscapes' grey 3% measure 0-2, their muted
# colour photos 2.5 and up)
MIN_CHROMA = 1.5
STRIP_PIXELS = 1 << 20  # per-pixel colour conversions run on strips of about this many pixels
# peak memory of colorizing one photo, per pixel: its float RGB in and out, L, ab, the output's encoding
BYTES_PER_PIXEL = 56
# the task's training options and their defaults (--set KEY=VALUE)
OPTIONS = {"hints": True, "rebalance": REBALANCE_MIX, "no_hint_share": NO_HINT_SHARE, "min_chroma": MIN_CHROMA}


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float RGB in [0, 1] -> (..., 3) Lab (L in [0, 100])."""
    from skimage import color

    return color.rgb2lab(np.clip(rgb, 0.0, 1.0)).astype(np.float32)


def degrade_for_colorize(
    clean: torch.Tensor, generator: torch.Generator, hints: bool = False, no_hint_share: float = NO_HINT_SHARE
) -> Batch:
    """clean (B, 3, H, W) in [0, 1] -> Batch(inputs={grey: L/100 (B, 1, H, W)}, target=ab (B, 2, H/2, W/2)),
    with the crop itself kept as `reference` for validation PSNR. hints: the input also has hint channels
    (B, 4, H, W), drawn from the crop's own colours (`sample_hints`)."""
    lab = torch.from_numpy(rgb_to_lab(clean.permute(0, 2, 3, 1).numpy())).permute(0, 3, 1, 2)
    grey = lab[:, :1] / 100.0
    ab = F.avg_pool2d(lab[:, 1:], 2, ceil_mode=True)
    if hints:
        grey = torch.cat([grey, sample_hints(lab[:, 1:], generator, no_hint_share=no_hint_share)], dim=1)
    return Batch({"grey": grey}, ab, reference=clean)


def sample_hints(
    ab: torch.Tensor, generator: torch.Generator, count: int | None = None, no_hint_share: float = NO_HINT_SHARE
) -> torch.Tensor:
    """True ab (B, 2, H, W) -> hint channels (B, 3, H, W): ab / 100 where a point reveals it, and the mask.

    Zhang, Zhu et al. 2017's simulated user: per image, points until a coin with chance `HINT_STOP` says stop
    (a geometric count; with `no_hint_share` of the images getting none first), or exactly `count`; each at
    a position drawn from a normal about the centre with sigma a quarter of the side (clipped inside), and
    revealing the mean ab of a square of side 1-9 px there."""
    b, _, h, w = ab.shape
    out = torch.zeros(b, 3, h, w)

    def uniform() -> float:
        return float(torch.rand((), generator=generator))

    for i in range(b):
        if count is not None:
            n = count
        elif uniform() < no_hint_share:
            n = 0
        else:
            n = 0
            while n < MAX_HINTS and uniform() >= HINT_STOP:
                n += 1
        for _ in range(n):
            side = HINT_PATCHES[int(torch.randint(len(HINT_PATCHES), (), generator=generator))]
            side = min(side, h, w)
            y, x = (_position(size, side, generator) for size in (h, w))
            patch = ab[i, :, y : y + side, x : x + side].mean(dim=(1, 2))
            out[i, :2, y : y + side, x : x + side] = patch[:, None, None] / AB_SCALE
            out[i, 2, y : y + side, x : x + side] = 1.0
    return out


def _position(size: int, side: int, generator: torch.Generator) -> int:
    """A square's first row (or column): normal about the centre, sigma a quarter of the room, clipped."""
    room = size - side + 1
    z = float(torch.randn((), generator=generator))
    return int(min(max(room / 2 + z * room / 4, 0), size - side))


def make_colorize_degrade(options: dict) -> tuple:
    """Task options -> (training degrade, validation degrade). Validation is the automatic colorizer (no
    hints), the mode whose quality the shipped model is judged by."""
    hints, no_hint_share = bool(options["hints"]), float(options["no_hint_share"])
    if not 0.0 <= no_hint_share <= 1.0:
        raise ValueError(f"no_hint_share {no_hint_share:g}: expected a share from 0 to 1")

    def degrade(clean: torch.Tensor, generator: torch.Generator) -> Batch:
        return degrade_for_colorize(clean, generator, hints, no_hint_share)

    def val_degrade(clean: torch.Tensor, generator: torch.Generator) -> Batch:
        return degrade_for_colorize(clean, generator, False)

    return degrade, val_degrade


def _model_follows_options(model: dict, options: dict) -> None:
    """`configure`: the network's hint channels and its recorded rebalancing mix are the task options' (those
    given, else the defaults)."""
    options = {**OPTIONS, **options}
    model["hints"] = bool(options["hints"])
    model["rebalance"] = float(options["rebalance"])


@lru_cache(maxsize=4)
def _loss_tables(mix: float = REBALANCE_MIX) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (bin centres (Q, 2), rebalancing weight of each bin (Q,)) for the rebalancing mix λ = `mix`."""
    bins, prior = load_prior()
    weights = rebalancing_weights(prior, bins, mix)
    return torch.as_tensor(bins, dtype=torch.float32), torch.as_tensor(weights, dtype=torch.float32)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ab (N, 2) -> (indices (N, 5) of the nearest bins, nearest first; their Gaussian weights (N, 5))."""
    d2 = torch.cdist(ab, bins).square()
    nearest, idx = d2.topk(SOFT_NEIGHBOURS, dim=1, largest=False)
    return idx, torch.softmax(-nearest / (2 * SOFT_SIGMA**2), dim=1)


def pooled_to(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The target ab (B, 2, h, w) at half the crop's resolution, averaged over 2x2 blocks until it is `size`:
    the resolution a network's logits have (the pretrained-encoder colorizer predicts at 1/4)."""
    while ab.shape[-2:] != tuple(size):
        if ab.shape[-2] < size[0] or ab.shape[-1] < size[1] or ab.shape[-2:] == (1, 1):
            raise ValueError(f"logits {tuple(size)} do not match the target's {tuple(ab.shape[-2:])} halved")
        ab = F.avg_pool2d(ab, 2, ceil_mode=True)
    return ab


def colorize_loss(
    logits: torch.Tensor, ab: torch.Tensor, mix: float = REBALANCE_MIX, min_chroma: float = 0.0
) -> torch.Tensor:
    """logits (B, Q, h, w), true ab (B, 2, h, w) (or larger by powers of 2: `pooled_to`) -> class-rebalanced
    soft cross-entropy (scalar); mix: the rebalancing λ (0 = full inverse-frequency weighting, 1 = none);
    min_chroma: images whose mean chroma is below this count for nothing (a batch of only such images: 0,
    with gradients of zero)."""
    bins, weights = _loss_tables(mix)
    bins, weights = bins.to(ab.device), weights.to(ab.device)
    ab = pooled_to(ab, logits.shape[-2:])
    b, q = logits.shape[:2]
    idx, soft = soft_encode(ab.permute(0, 2, 3, 1).reshape(-1, 2).float(), bins)
    log_probs = torch.log_softmax(logits.permute(0, 2, 3, 1).reshape(-1, q).float(), dim=1)
    cross_entropy = -(soft * log_probs.gather(1, idx)).sum(dim=1)  # (N,)
    per_pixel = (weights[idx[:, 0]] * cross_entropy).view(b, -1)  # (B, h * w)
    if min_chroma <= 0:
        return per_pixel.mean()
    coloured = ab.float().norm(dim=1).flatten(1).mean(dim=1) >= min_chroma  # (B,)
    return (per_pixel * coloured[:, None]).sum() / (coloured.sum() * per_pixel.shape[1]).clamp(min=1)


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
    logits: torch.Tensor,
    bins: torch.Tensor,
    size: tuple[int, int],
    readout: Readout = Readout(),
    rebalance: float = REBALANCE_MIX,
) -> torch.Tensor:
    """logits (B, Q, h, w) over the bin centres `bins` (Q, 2) -> ab (B, 2, H, W): the annealed mean at the
    readout's (possibly per-pixel) temperature, bilinearly upsampled to `size`.

    calibration: trained with class rebalancing, the network's distribution is (about) w(q) p(q | L): the
    minimiser of E[-w(q) log p̂(q)] is p̂ ∝ w p. Subtracting calibration * log w(q) from the logits undoes
    a share of that: 0 = as trained (vivid), 1 = the plain posterior (closer to the mean colour, higher PSNR).
    The confidence that sets a per-pixel temperature is read from these calibrated logits. rebalance: the
    mix the network was trained with (its config's), whose weights calibration divides out.
    """
    if readout.calibration:
        _, weights = _loss_tables(rebalance)
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


def make_colorize_loss(options: dict):
    """Task options -> the task loss at the options' rebalancing mix."""
    mix, min_chroma = float(options["rebalance"]), float(options["min_chroma"])
    return against_target(lambda logits, ab: colorize_loss(logits, ab, mix, min_chroma))


TASK = register_task(
    Task(
        name="colorize",
        arch="colorize-unet",
        degrade=degrade_for_colorize,
        loss=against_target(colorize_loss),
        options=OPTIONS,
        make_degrade=make_colorize_degrade,
        make_loss=make_colorize_loss,
        configure=lambda model, options, data: _model_follows_options(model, options),
        train=TrainDefaults(crop=128, batch_size=16, steps=12_000, lr=1e-3, val_images=24, val_crop=256),
        validation_pair=colorize_validation_pair,
        description="grey photo to colour (Lab: L in, a distribution over ab bins out)",
    )
)


@dataclass(frozen=True)
class Hints:
    """Colours a user gives at some pixels of a photo: pixel rows and columns (N,) and the ab (N, 2) of the
    colour wanted there. Only ab is used: the lightness is always the photo's.

    Make them with `Hints.from_points` (x, y and a colour each), `Hints.from_image` (the opaque pixels of an
    image the photo's size) or `Hints.of` (either, as the API takes them); join two with `+`."""

    rows: np.ndarray
    cols: np.ndarray
    ab: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def __add__(self, other: Hints) -> Hints:
        return Hints(*(np.concatenate([a, b]) for a, b in zip(self.arrays(), other.arrays())))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.rows, self.cols, self.ab

    @classmethod
    def none(cls) -> Hints:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2), np.float32))

    @classmethod
    def from_points(cls, points: Sequence[tuple[int, int, Any]], size: tuple[int, int]) -> Hints:
        """points: (x, y, colour): x from the left, y from the top, in pixels of the photo; colour "#RRGGBB"
        or (r, g, b) 0-255. size: the photo's (width, height). A point outside it: ValueError."""
        width, height = size
        rows, cols, rgb = [], [], []
        for n, (x, y, colour) in enumerate(points, start=1):
            if not (0 <= x < width and 0 <= y < height):
                raise ValueError(f"hint {n} at ({x}, {y}) lies outside the {width}x{height} image")
            rows.append(int(y))
            cols.append(int(x))
            rgb.append(parse_colour(colour) if isinstance(colour, str) else _rgb_triple(colour))
        if not rows:
            return cls.none()
        ab = rgb_to_lab(np.asarray(rgb, dtype=np.float32)[None] / 255.0)[0, :, 1:]
        return cls(np.asarray(rows), np.asarray(cols), ab)

    @classmethod
    def from_image(cls, hint_image: ImageData, size: tuple[int, int], name: str = "hint image") -> Hints:
        """The opaque pixels (alpha at least one half) of `hint_image`, which must be `size` (width, height)
        and have transparency: what a user paints on a transparent layer over the photo."""
        if hint_image.size != size:
            (hw, hh), (w, h) = hint_image.size, size
            raise ValueError(f"the {name} is {hw}x{hh} but the image is {w}x{h}")
        if hint_image.alpha is None:
            raise ValueError(
                f"the {name} has no transparency: its opaque pixels are the hints (paint on a clear layer)"
            )
        rows, cols = np.nonzero(hint_image.alpha >= 0.5)
        pixels = hint_image.pixels[rows, cols]  # (N, C)
        if len(rows) == 0:
            return cls.none()
        rgb = np.repeat(pixels, 3, axis=1) if pixels.shape[1] == 1 else pixels[:, :3]
        return cls(rows, cols, rgb_to_lab(rgb[None])[0, :, 1:])

    @classmethod
    def of(cls, spec: Any, size: tuple[int, int]) -> Hints:
        """What the pipeline accepts: None, Hints, a list of (x, y, colour) points, or a hint image as
        ImageData with transparency (`aetools.colorize` also takes a path, PIL image or array)."""
        if spec is None:
            return cls.none()
        if isinstance(spec, Hints):
            return spec
        if isinstance(spec, (list, tuple)):
            return cls.from_points(spec, size)
        if isinstance(spec, ImageData):
            return cls.from_image(spec, size)
        raise ValueError(f"hints: expected (x, y, colour) points or a hint image, not {type(spec).__name__}")

    def channels(self, full: tuple[int, int], work: tuple[int, int]) -> torch.Tensor:
        """The network's hint channels (1, 3, h, w) at the working size `work` for a photo of size `full`
        (both (height, width)): each working pixel holds the mean ab / 100 of the hints falling in it, and
        the mask 1 where there is any."""
        (height, width), (h, w) = full, work
        rows = np.minimum(self.rows * h // height, h - 1)
        cols = np.minimum(self.cols * w // width, w - 1)
        flat = rows * w + cols
        count = np.bincount(flat, minlength=h * w).astype(np.float32)
        sums = [np.bincount(flat, weights=self.ab[:, c], minlength=h * w) for c in range(2)]
        out = np.zeros((3, h * w), np.float32)
        seen = count > 0
        for c in range(2):
            out[c, seen] = sums[c][seen] / count[seen] / AB_SCALE
        out[2] = seen
        return torch.from_numpy(out.reshape(1, 3, h, w))


def parse_colour(text: str) -> tuple[int, int, int]:
    """ "#RRGGBB" (or "RRGGBB") -> (r, g, b) 0-255; anything else: ValueError naming it."""
    digits = text.strip().removeprefix("#")
    if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(f"colour {text!r}: expected #RRGGBB, e.g. #3a7bd5")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _rgb_triple(colour: Any) -> tuple[int, int, int]:
    values = tuple(int(v) for v in colour)
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"colour {colour!r}: expected (r, g, b) from 0 to 255 or #RRGGBB")
    return values


def parse_hint(text: str) -> tuple[int, int, tuple[int, int, int]]:
    """ "X,Y,#RRGGBB" (the CLI's --hint) -> (x, y, (r, g, b)); a malformed one: ValueError naming it."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts[:2]):
        raise ValueError(f"hint {text!r}: expected X,Y,#RRGGBB (pixels from the top-left), e.g. 120,45,#3a7bd5")
    return int(parts[0]), int(parts[1]), parse_colour(parts[2])


def luminance(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) float in [0, 1], C = 1 or 3 -> L (H, W) in [0, 100]. Colour and tinted inputs are
    desaturated this way: only their lightness is kept."""
    out = np.empty(pixels.shape[:2], np.float32)
    for rows in strips(pixels.shape):  # bounded memory: Lab conversion works in float64
        part = pixels[rows]
        out[rows] = rgb_to_lab(np.repeat(part, 3, axis=2) if part.shape[2] == 1 else part[..., :3])[..., 0]
    return out


def strips(shape: tuple[int, ...], pixels: int = STRIP_PIXELS) -> list[slice]:
    """Row ranges of about `pixels` pixels each covering an image of `shape` (H, W, ...): the per-pixel
    colour work runs strip by strip, so its float64 temporaries stay a few MB whatever the photo's size."""
    height, width = shape[:2]
    step = max(1, pixels // max(1, width))
    return [slice(top, min(top + step, height)) for top in range(0, height, step)]


def colorize_pixels(
    model: torch.nn.Module,
    pixels: np.ndarray,
    strength: float = 1.0,
    device: torch.device | None = None,
    precision: Precision | None = None,
    readout: Readout | None = None,
    hints: Hints | None = None,
) -> np.ndarray:
    """pixels (H, W, C) float in [0, 1], C = 1 or 3 -> RGB (H, W, 3) float in [0, 1] with the input's L.
    See `colorize_lightness` for the options."""
    return colorize_lightness(
        model, luminance(pixels), strength, device, precision=precision, readout=readout, hints=hints
    )


def colorize_lightness(
    model: torch.nn.Module,
    lightness: np.ndarray,
    strength: float = 1.0,
    device: torch.device | None = None,
    work_size: int | None = None,
    readout: Readout | None = None,
    precision: Precision | None = None,
    hints: Hints | None = None,
) -> np.ndarray:
    """CIE L (H, W) in [0, 100] -> RGB (H, W, 3) float in [0, 1] whose L is `lightness`.

    strength: scales the ab (0 = grey, 1 = the model's colours).
    work_size: the long side the network sees (default: the model's); larger inputs are resized down for
        the network and the predicted ab is upsampled back. L itself is never resized.
    readout: how the distribution becomes colour (`Readout`); default: the model's.
    hints: colours wanted at some pixels (`Hints`; the model must take hints): the network spreads them,
        and the hint pixels themselves take their hint's ab.
    """
    logits = colorize_logits(model, lightness, work_size, device, precision, hints)
    readout = readout or Readout.of(model.config)
    rebalance = getattr(model.config, "rebalance", REBALANCE_MIX)
    ab = ab_from_logits(logits, model.ab_bins, lightness.shape, readout, rebalance)[0].permute(1, 2, 0).numpy()
    if hints is not None and len(hints):
        ab[hints.rows, hints.cols] = hints.ab
    out = np.empty(lightness.shape + (3,), np.float32)
    for rows in strips(lightness.shape):
        out[rows] = lab_to_rgb_keeping_l(np.concatenate([lightness[rows, :, None], ab[rows] * strength], axis=-1))
    return out


def colorize_logits(
    model: torch.nn.Module,
    lightness: np.ndarray,
    work_size: int | None = None,
    device: torch.device | None = None,
    precision: Precision | None = None,
    hints: Hints | None = None,
) -> torch.Tensor:
    """CIE L (H, W) -> the network's logits (1, Q, h, w) on the CPU, from one global pass on L resized so its
    long side is at most `work_size` (default: the model's), with the `hints` at that size."""
    from aetools.inference import model_device, run_model

    h, w = lightness.shape
    grey = torch.from_numpy(np.asarray(lightness, dtype=np.float32) / 100.0)[None, None]
    work_size = work_size or model.config.work_size
    if max(h, w) > work_size:
        factor = work_size / max(h, w)
        small = (max(1, round(h * factor)), max(1, round(w * factor)))
        grey = F.interpolate(grey, size=small, mode="bilinear", antialias=True, align_corners=False)
    if hints is not None and len(hints):
        if not getattr(model.config, "hints", False):
            raise ValueError("this colorize model takes no colour hints (trained without them)")
        grey = torch.cat([grey, hints.channels((h, w), tuple(grey.shape[-2:]))], dim=1)
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

    def __call__(
        self, image: ImageData, strength: float = 1.0, readout: Readout | None = None, hints: Any = None
    ) -> ImageData:
        """readout: how the network's distribution becomes colour (`Readout`); default: the model's own.
        hints: colours wanted at some pixels: `Hints`, a list of (x, y, "#RRGGBB") points or a hint image
        the photo's size whose opaque pixels are the colours (`Hints.of`)."""
        from dataclasses import replace

        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength {strength}: expected a value from 0 to 1")
        hints = Hints.of(hints, image.size)
        from aetools.inference import check_memory

        w, h = image.size
        check_memory(w * h * BYTES_PER_PIXEL, f"colorizing a {w * h / 1e6:.0f} MP photo")
        out = colorize_pixels(self.model, image.pixels, strength, self.device, self.precision, readout, hints)
        result = image.with_pixels(out.astype(np.float32))
        return replace(result, icc_profile=None) if image.is_grey else result
