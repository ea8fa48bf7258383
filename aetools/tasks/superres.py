"""Super-resolution: how a training pair is made, the loss, and the image-level operation.

Training pairs (the "bicubic" degradation, the benchmark's): an HR crop, downscaled by Pillow's antialiased
BICUBIC resize and rounded to 8 bits, exactly as `aetools eval superres` makes its LR inputs. Each step
draws one scale for its whole batch; every scale sees the same LR patch size (48 px, as EDSR), so the
HR crop is 48 * scale and a step costs the same whatever the scale.

The "real" degradation, for photos that were never bicubic-downscaled (phone pictures, web images), adds
what real LR images carry (in the spirit of Real-ESRGAN, much milder): a slight Gaussian blur before the
downscale, then sensor-like noise and JPEG compression at random strengths.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from aetools.data.io import ImageData, to_uint8
from aetools.pipeline import ImagePipeline, from_network_output, register_pipeline, to_network_input
from aetools.precision import Precision
from aetools.tasks.base import Batch, Task, TrainDefaults, against_target, register_task

LR_PATCH = 48
DEGRADATIONS = ("bicubic", "real")


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """hr (H, W, C) uint8 with H, W multiples of `scale` -> (H/scale, W/scale, C) uint8, Pillow BICUBIC
    (antialiased): the LR image of the benchmark protocol."""
    h, w, c = hr.shape
    size = (w // scale, h // scale)
    if c == 1:
        return np.asarray(Image.fromarray(hr[..., 0]).resize(size, Image.BICUBIC))[..., None]
    return np.asarray(Image.fromarray(hr).resize(size, Image.BICUBIC))


def crop_to_multiple(hr: np.ndarray, scale: int) -> np.ndarray:
    """The protocol's "modcrop": drop the bottom/right rows and columns that do not divide by `scale`."""
    h, w = hr.shape[:2]
    return hr[: h - h % scale, : w - w % scale]


def real_photo_lr(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    """hr (H, W, 3) uint8 -> an LR image with mild blur, noise and JPEG at random strengths."""
    image = Image.fromarray(hr)
    if rng.random() < 0.7:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.2, 0.8 * scale / 2))))
    image = image.resize((hr.shape[1] // scale, hr.shape[0] // scale), Image.BICUBIC)
    lr = np.asarray(image).astype(np.float32)
    if rng.random() < 0.5:
        sigma = rng.uniform(0, 8)  # 0-255 scale
        grey_noise = rng.random() < 0.4  # luminance-only noise, as many phones leave it
        shape = lr.shape[:2] + ((1,) if grey_noise else (3,))
        lr = lr + rng.normal(0, sigma, shape)
    lr = lr.clip(0, 255).round().astype(np.uint8)
    if rng.random() < 0.6:
        buffer = io.BytesIO()
        Image.fromarray(lr).save(buffer, "JPEG", quality=int(rng.integers(40, 96)))
        lr = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return lr


@dataclass
class SuperResDegradation:
    """clean HR crops (B, 3, H, W) in [0, 1] -> Batch(inputs={lr, scale}, target=hr) for one drawn scale.

    A class rather than a closure so that DataLoader worker processes can pickle it.
    """

    scales: tuple[int, ...] = (2, 3, 4)
    degradation: str = "bicubic"
    lr_patch: int | None = LR_PATCH  # None: keep the whole (modcropped) crop (validation)
    fixed_scale: int | None = None

    def __call__(self, clean: torch.Tensor, generator: torch.Generator) -> Batch:
        if self.fixed_scale is not None:
            scale = self.fixed_scale
        else:
            scale = self.scales[int(torch.randint(len(self.scales), (1,), generator=generator))]
        hr = clean
        if self.lr_patch is not None:
            side = min(self.lr_patch * scale, hr.shape[-1] // scale * scale, hr.shape[-2] // scale * scale)
            hr = hr[..., :side, :side]
        hr8 = [crop_to_multiple(to_uint8(x.permute(1, 2, 0).numpy()), scale) for x in hr]
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        if self.degradation == "real":
            lr8 = [real_photo_lr(x, scale, rng) for x in hr8]
        else:
            lr8 = [bicubic_downscale(x, scale) for x in hr8]
        to_tensor = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
        return Batch({"lr": to_tensor(lr8), "scale": torch.tensor([scale])}, to_tensor(hr8))


def make_superres_degrade(options: dict[str, Any]):
    """Task options -> (training degrade, validation degrade). Validation: the smallest scale, the same
    degradation (seeded per image by the trainer)."""
    scales = tuple(int(s) for s in options["scales"])
    degradation = options["degradation"]
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation {degradation!r}: choose from {', '.join(DEGRADATIONS)}")
    if not scales or any(s not in (2, 3, 4) for s in scales):
        raise ValueError(f"scales {scales}: choose from 2, 3, 4")
    return (
        SuperResDegradation(scales, degradation),
        SuperResDegradation(scales, degradation, lr_patch=None, fixed_scale=min(scales)),
    )


def _tails_for_the_scales_trained(model: dict[str, Any], options: dict[str, Any]) -> None:
    """Training some scales only (`--set scales=4`) builds a network with just their tails."""
    if "scales" in options:
        model["scales"] = options["scales"] = tuple(sorted(set(options["scales"])))


TASK = register_task(
    Task(
        name="superres",
        arch="superres-unet",
        degrade=SuperResDegradation(),
        loss=against_target(F.l1_loss),  # L1, as EDSR: sharper than L2 and the usual choice for PSNR-oriented SR
        train=TrainDefaults(crop=LR_PATCH * 4, batch_size=16, steps=20_000, lr=5e-4, val_images=16, val_crop=240),
        val_degrade=SuperResDegradation(lr_patch=None, fixed_scale=2),
        options={"scales": (2, 3, 4), "degradation": "bicubic"},
        make_degrade=make_superres_degrade,
        configure=lambda model, options, data: _tails_for_the_scales_trained(model, options),
        description="super-resolution x2/x3/x4 (one network, a tail per scale)",
    )
)


def upscale_pixels(
    model: torch.nn.Module,
    pixels: np.ndarray,
    scale: int,
    tile: int | None = None,
    device: torch.device | None = None,
    ensemble: bool = False,
    precision: Precision | None = None,
) -> np.ndarray:
    """pixels (H, W, C) float in [0, 1], C = 1 or 3 -> (scale*H, scale*W, C) float32 (not clipped).

    ensemble: average the outputs for the 8 flips/rotations of the input ("self-ensemble", Lim et al.
    2017, EDSR+): usually a little more PSNR, for 8x the time.
    """
    from aetools.inference import run_model, self_ensemble

    x, grey = to_network_input(pixels)
    extra = {"scale": torch.tensor([scale])}

    def run(t: torch.Tensor) -> torch.Tensor:
        return run_model(model, t, extra=extra, tile=tile, device=device, scale=scale, precision=precision)

    return from_network_output(self_ensemble(run, x) if ensemble else run(x), grey)


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """(H, W) float alpha -> (scale*H, scale*W), Pillow bicubic on float32 ("F" mode), clipped to [0, 1]."""
    h, w = alpha.shape
    image = Image.fromarray(np.ascontiguousarray(alpha, dtype=np.float32), mode="F")
    return np.clip(np.asarray(image.resize((w * scale, h * scale), Image.BICUBIC)), 0.0, 1.0)


@register_pipeline
class UpscalePipeline(ImagePipeline):
    """Super-resolve by `scale` (one the model has a tail for): output exactly scale x the input size. Grey
    stays grey; alpha is upscaled (bicubic) and kept; dpi is multiplied by the scale so the print size
    stays the same. ensemble: average over the 8 flips/rotations (a little sharper, 8x slower)."""

    name = "upscale"
    task = "superres"
    real_photo_model = "upscale-real"  # blurred, noisy, JPEG-compressed training inputs

    def check(self, scale: int = 2, tile: int | None = None, **options: Any) -> None:
        if scale not in self.model.config.scales:
            scales = ", ".join(map(str, self.model.config.scales))
            raise ValueError(f"scale {scale}: this model upscales by {scales} only")
        super().check(tile=tile, **options)

    def __call__(self, image: ImageData, scale: int = 2, tile: int | None = None, ensemble: bool = False) -> ImageData:
        from aetools.data.io import MAX_PIXELS, ImageError

        self.check(scale=scale, tile=tile)
        h, w = image.pixels.shape[:2]
        if h * w * scale * scale > MAX_PIXELS:
            raise ImageError(
                "",  # the caller knows the file; the CLI names it
                f"the x{scale} output would be {w * scale}x{h * scale} ({h * w * scale * scale / 1e6:.0f} MP), above"
                f" the {MAX_PIXELS / 1e6:.0f} MP limit (AETOOLS_MAX_PIXELS)",
            )
        out = upscale_pixels(self.model, image.pixels, scale, tile, self.device, ensemble, self.precision)
        alpha = None if image.alpha is None else upscale_alpha(image.alpha, scale)
        result = image.with_pixels(np.clip(out, 0.0, 1.0), alpha)
        if image.dpi:
            result = replace(result, dpi=(image.dpi[0] * scale, image.dpi[1] * scale))
        return result
