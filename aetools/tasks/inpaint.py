"""Inpainting: how a training pair is made, the loss, and the image-level operation.

Training pairs: a photo crop and a hole mask drawn on the fly by `aetools.data.masks.random_mask`
(free-form strokes and boxes, 10-50% of the crop), seeded from the step's generator so `--resume` replays
the same holes. The network returns the crop with only the holes painted, so the L1 loss on its output
counts hole pixels only (the loss reads the mask from the batch); it is averaged over each image's hole
pixels, so that a pixel weighs the same in a thin stroke and in a big box.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from aetools.data.io import ImageData
from aetools.data.masks import random_mask
from aetools.pipeline import ImagePipeline, register_pipeline
from aetools.precision import Precision
from aetools.tasks.base import Batch, Task, TrainDefaults, register_task

TRAIN_HOLE_RATIOS = (0.1, 0.5)
VALIDATION_HOLE_RATIO = 0.2


def _masks(shape: torch.Size, ratio: float | tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """(B, 1, H, W) float masks, 1 = hole, one seeded random mask per image."""
    b, _, h, w = shape
    seeds = torch.randint(2**62, (b,), generator=generator).tolist()
    masks = [random_mask(h, w, ratio, np.random.default_rng(s)) for s in seeds]
    return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))


def _pair(clean: torch.Tensor, mask: torch.Tensor) -> Batch:
    """-> Batch(inputs={image: clean with holes blanked, mask}, target=clean)."""
    return Batch({"image": clean * (1 - mask), "mask": mask}, clean)


def degrade_for_inpaint(clean: torch.Tensor, generator: torch.Generator) -> Batch:
    """clean (B, 3, H, W) -> a training pair with holes covering 10-50% of each crop."""
    return _pair(clean, _masks(clean.shape, TRAIN_HOLE_RATIOS, generator))


def degrade_for_inpaint_validation(clean: torch.Tensor, generator: torch.Generator) -> Batch:
    return _pair(clean, _masks(clean.shape, VALIDATION_HOLE_RATIO, generator))


def hole_l1(output: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """output, clean (B, 3, H, W); mask (B, 1, H, W), 1 = hole -> mean L1 over each image's hole pixels."""
    per_image = ((output - clean).abs() * mask).sum(dim=(1, 2, 3)) / (3 * mask.sum(dim=(1, 2, 3))).clamp_min(1)
    return per_image.mean()


def inpaint_loss(output: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The task loss: `hole_l1` against the clean crop, over the holes the batch was made with."""
    mask = batch.inputs["mask"]
    return hole_l1(output, batch.target, mask), {"hole share": mask.mean()}


TASK = register_task(
    Task(
        name="inpaint",
        arch="inpaint-unet",
        degrade=degrade_for_inpaint,
        loss=inpaint_loss,
        train=TrainDefaults(crop=256, batch_size=8, steps=5_500, lr=5e-4, val_crop=256),  # 1e-3 diverged at step 1,150
        val_degrade=degrade_for_inpaint_validation,
        # validation PSNR: over the whole image (the default pair: output, target)
        description="fill holes given a mask (free-form strokes and boxes, 10-50% of the image)",
    )
)


# ------------------------------------------------------------------------------------------ inference

REFINE_BAND = 48  # px: in a two-pass fill, hole pixels this close to a known pixel are painted at full size
BLEND_RAMP = 16  # px: the inner part of that band fades linearly into the first pass (no visible seam)


def inpaint_pixels(
    model: torch.nn.Module,
    pixels: np.ndarray,
    mask: np.ndarray,
    tile: int | None = None,
    device: torch.device | None = None,
    work_size: int | None = None,
    ensemble: bool = False,
    precision: Precision | None = None,
) -> np.ndarray:
    """pixels (H, W, C) float in [0, 1], C = 1 or 3; mask (H, W) bool, True = hole -> (H, W, C) float32,
    equal to `pixels` (bit for bit) outside the mask. work_size: default the model's. ensemble: average
    the fills of the 8 flips/rotations (8x the time).

    Only the holes' bounding box plus the network's receptive radius is processed. A region whose long side
    exceeds the model's `work_size` is filled in two passes: the whole region at work size (big holes get
    their content from the whole scene), then full resolution for the band of each hole within
    `REFINE_BAND` px of known pixels, with the upsampled first pass standing in as known pixels deeper in;
    the band's inner `BLEND_RAMP` px fade into the first pass.
    """
    from scipy.ndimage import distance_transform_edt

    out = np.array(pixels, dtype=np.float32, copy=True)
    if not mask.any():
        return out
    rgb = np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    context = model.receptive_radius()
    y0, y1 = max(0, rows[0] - context), min(mask.shape[0], rows[-1] + 1 + context)
    x0, x1 = max(0, cols[0] - context), min(mask.shape[1], cols[-1] + 1 + context)
    image = torch.from_numpy(np.ascontiguousarray(rgb[y0:y1, x0:x1])).permute(2, 0, 1)[None]
    hole = torch.from_numpy(mask[y0:y1, x0:x1])[None, None].float()

    work = work_size or model.config.work_size
    if max(image.shape[-2:]) > work:
        f = work / max(image.shape[-2:])
        size = (max(1, round(image.shape[-2] * f)), max(1, round(image.shape[-1] * f)))
        small = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
        small_hole = (F.interpolate(hole, size=size, mode="area") > 0).float()  # any hole pixel -> hole
        coarse = _paint(model, small, small_hole, 0, device, ensemble, precision)
        coarse = F.interpolate(coarse, size=image.shape[-2:], mode="bilinear", align_corners=False)
        distance = torch.from_numpy(distance_transform_edt(hole[0, 0].numpy())).float()[None, None]
        deep = distance > REFINE_BAND
        refined = _paint(model, torch.where(deep, coarse, image), hole * ~deep, tile, device, ensemble, precision)
        weight = ((REFINE_BAND - distance) / BLEND_RAMP).clamp(0, 1)  # 1 near the edge, 0 deep inside
        painted = weight * refined + (1 - weight) * coarse
    else:
        painted = _paint(model, image, hole, tile, device, ensemble, precision)
    painted = painted[0].permute(1, 2, 0).numpy()
    if out.shape[2] == 1:
        painted = painted.mean(axis=2, keepdims=True)
    region = out[y0:y1, x0:x1]
    region[mask[y0:y1, x0:x1]] = painted[mask[y0:y1, x0:x1]]
    return out


def _paint(
    model: torch.nn.Module,
    image: torch.Tensor,
    hole: torch.Tensor,
    tile: int | None,
    device: torch.device | None,
    ensemble: bool = False,
    precision: Precision | None = None,
) -> torch.Tensor:
    """One pass of the network, tiled when asked or large: (1, 3, H, W), (1, 1, H, W) -> (1, 3, H, W) CPU."""
    from aetools.inference import run_model, self_ensemble

    def run(x: torch.Tensor) -> torch.Tensor:  # image and mask travel together, tiled alike
        return run_model(model, x, tile=tile, device=device, split=3, precision=precision)

    x = torch.cat([image, hole], dim=1)
    return self_ensemble(run, x) if ensemble else run(x)


@register_pipeline
class InpaintPipeline(ImagePipeline):
    """Fill holes. mask: (H, W) bool (True = hole), or a mask image (white > 127 = hole); None: the image's
    fully transparent pixels are the holes. Pixels outside the holes come back unchanged, bit for bit; filled
    pixels become opaque (alpha that ends up fully opaque is dropped). An empty mask returns the image
    unchanged with an `ImageWarning`. ensemble: average the fills of the 8 flips/rotations (8x slower)."""

    name = "inpaint"
    task = "inpaint"

    def __call__(
        self,
        image: ImageData,
        mask: np.ndarray | ImageData | None = None,
        tile: int | None = None,
        ensemble: bool = False,
    ) -> ImageData:
        import warnings
        from dataclasses import replace

        from aetools.data.io import ImageError, ImageWarning
        from aetools.data.masks import mask_from_alpha, mask_from_image

        self.check(tile=tile)
        if mask is None:
            if image.alpha is None:
                raise ImageError("", "no mask given, and the image has no alpha channel to take the holes from")
            holes = mask_from_alpha(image.alpha)
        elif isinstance(mask, ImageData):
            holes = mask_from_image(mask.pixels, mask.alpha)
        else:
            holes = np.asarray(mask, dtype=bool)
        if holes.shape != image.pixels.shape[:2]:
            (h, w), (mh, mw) = image.pixels.shape[:2], holes.shape[:2]
            raise ImageError("", f"the mask is {mw}x{mh} but the image is {w}x{h}")
        if not holes.any():
            what = "has no transparent pixel" if mask is None else "is empty (no pixel above 127)"
            warnings.warn(f"the mask {what}: nothing to fill, image returned unchanged", ImageWarning, stacklevel=2)
            return image
        out = inpaint_pixels(
            self.model, image.pixels, holes, tile, self.device, ensemble=ensemble, precision=self.precision
        )
        alpha = image.alpha
        if alpha is not None:
            alpha = np.where(holes, np.float32(1), alpha)
            if (alpha >= 1).all():
                return replace(image, pixels=out, alpha=None)
        return image.with_pixels(out, alpha)
