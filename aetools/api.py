"""The Python API: one function per image task, taking and returning what you already have.

    >>> import aetools
    >>> clean = aetools.denoise(Image.open("noisy.png"))        # PIL in -> PIL out
    >>> clean = aetools.denoise(array_uint8, sigma=25)          # numpy in -> numpy out (same dtype)

Models are loaded once per (name, device) and kept.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from aetools.data.io import ImageData, image_from_pil, image_to_pil, load_image
from aetools.inference import resolve_device
from aetools.weights import load_model


@lru_cache(maxsize=8)
def cached_model(name: str | None, task: str, device: str) -> torch.nn.Module:
    return load_model(name, task, device)


def get_model(
    model: str | Path | torch.nn.Module | None, task: str, device: str | torch.device | None
) -> torch.nn.Module:
    if isinstance(model, torch.nn.Module):
        return model
    dev = resolve_device(device or "auto")
    return cached_model(None if model is None else str(model), task, str(dev))


# ------------------------------------------------------------------------- ImageData -> ImageData


def denoise_image(
    image: ImageData,
    sigma: float | None = None,
    model: str | Path | torch.nn.Module | None = None,
    device: str | torch.device | None = None,
    tile: int | None = None,
) -> ImageData:
    """Remove Gaussian-like noise; `sigma` (0-255 scale) if known, else blind. Alpha is kept."""
    from aetools.tasks.denoise import denoise_pixels

    net = get_model(model, "denoise", device)
    out = denoise_pixels(net, image.pixels, sigma=sigma, tile=tile)
    return image.with_pixels(np.clip(out, 0.0, 1.0))


def upscale_image(
    image: ImageData,
    scale: int = 2,
    model: str | Path | torch.nn.Module | None = None,
    device: str | torch.device | None = None,
    tile: int | None = None,
    ensemble: bool = False,
) -> ImageData:
    """Super-resolve by `scale` (2, 3 or 4): output exactly scale x the input size. Grey stays grey; alpha
    is upscaled (bicubic) and kept; dpi is multiplied by the scale so the print size stays the same.
    ensemble: average over the 8 flips/rotations (a little sharper, 8x slower)."""
    from aetools.data.io import MAX_PIXELS, ImageError
    from aetools.tasks.superres import upscale_alpha, upscale_pixels

    net = get_model(model, "superres", device)  # its forward refuses a scale it has no tail for
    h, w = image.pixels.shape[:2]
    if h * w * scale * scale > MAX_PIXELS:
        raise ImageError(
            "",  # the caller knows the file; the CLI names it
            f"the x{scale} output would be {w * scale}x{h * scale} ({h * w * scale * scale / 1e6:.0f} MP), above"
            f" the {MAX_PIXELS / 1e6:.0f} MP limit (AETOOLS_MAX_PIXELS)",
        )
    out = upscale_pixels(net, image.pixels, scale, tile=tile, ensemble=ensemble)
    alpha = None if image.alpha is None else upscale_alpha(image.alpha, scale)
    result = image.with_pixels(np.clip(out, 0.0, 1.0), alpha)
    if image.dpi:
        result = replace(result, dpi=(image.dpi[0] * scale, image.dpi[1] * scale))
    return result


def colorize_image(
    image: ImageData,
    strength: float = 1.0,
    model: str | Path | torch.nn.Module | None = None,
    device: str | torch.device | None = None,
) -> ImageData:
    """Colour a grey photo: the output is RGB whose lightness (CIE L) is the input's, at full resolution.
    Colour or tinted (sepia) inputs are desaturated first. strength: 0 = grey, 1 = the model's colours.
    Alpha is kept. A grey input's ICC profile (a grey profile) is dropped: it does not describe RGB."""
    from aetools.tasks.colorize import colorize_pixels

    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength {strength}: expected a value from 0 to 1")
    net = get_model(model, "colorize", device)
    out = colorize_pixels(net, image.pixels, strength=strength)
    result = image.with_pixels(out.astype(np.float32))
    if image.is_grey:
        result = replace(result, icc_profile=None)
    return result


def inpaint_image(
    image: ImageData,
    mask: np.ndarray | ImageData | None = None,
    model: str | Path | torch.nn.Module | None = None,
    device: str | torch.device | None = None,
    tile: int | None = None,
    ensemble: bool = False,
) -> ImageData:
    """Fill holes. mask: (H, W) bool (True = hole), or a mask image (white > 127 = hole); None: the image's
    fully transparent pixels are the holes. Pixels outside the holes come back unchanged, bit for bit; filled
    pixels become opaque (alpha that ends up fully opaque is dropped). An empty mask returns the image
    unchanged with an `ImageWarning`. ensemble: average the fills of the 8 flips/rotations (8x slower)."""
    import warnings

    from aetools.data.io import ImageError, ImageWarning
    from aetools.data.masks import mask_from_alpha, mask_from_image
    from aetools.tasks.inpaint import inpaint_pixels

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
    net = get_model(model, "inpaint", device)
    out = inpaint_pixels(net, image.pixels, holes, tile=tile, ensemble=ensemble)
    alpha = image.alpha
    if alpha is not None:
        alpha = np.where(holes, np.float32(1), alpha)
        if (alpha >= 1).all():
            return replace(image, pixels=out, alpha=None)
    return image.with_pixels(out, alpha)


# --------------------------------------------------------------- what users hand us, and back again


def _to_image_data(image: Any) -> tuple[ImageData, Any]:
    """PIL image, path or numpy array -> (ImageData, a function turning ImageData back into that type)."""
    if isinstance(image, (str, Path)):
        return load_image(image), lambda d: image_to_pil(d, "PNG")
    if isinstance(image, Image.Image):
        return image_from_pil(image), lambda d: image_to_pil(d, "PNG")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, got {image.shape}")
        if image.dtype == np.uint8:
            scale = 255.0
        elif image.dtype == np.uint16:
            scale = 65535.0
        else:
            scale = 1.0
        pixels = arr.astype(np.float32) / scale
        alpha = pixels[..., 3] if pixels.shape[2] == 4 else None
        data = ImageData(np.ascontiguousarray(pixels[..., :3]), alpha, 16 if image.dtype == np.uint16 else 8)

        def back(d: ImageData) -> np.ndarray:
            out = d.pixels if d.alpha is None else np.concatenate([d.pixels, d.alpha[..., None]], axis=2)
            if image.ndim == 2 and out.shape[2] == 1:
                out = out[..., 0]
            if scale == 1.0:
                return out.astype(image.dtype)
            return (np.clip(out, 0, 1) * scale + 0.5).astype(image.dtype)

        return data, back
    raise TypeError(f"expected a PIL image, a numpy array or a path, got {type(image).__name__}")


def denoise(image: Any, sigma: float | None = None, model: Any = None, device: Any = None, tile: int | None = None):
    """Denoise a PIL image, numpy array or file path; returns the same kind (a path gives a PIL image)."""
    data, back = _to_image_data(image)
    return back(denoise_image(data, sigma=sigma, model=model, device=device, tile=tile))


def upscale(
    image: Any, scale: int = 2, model: Any = None, device: Any = None, tile: int | None = None, ensemble: bool = False
):
    """Upscale a PIL image, numpy array or file path by 2, 3 or 4; returns the same kind."""
    data, back = _to_image_data(image)
    return back(upscale_image(data, scale=scale, model=model, device=device, tile=tile, ensemble=ensemble))


def colorize(image: Any, strength: float = 1.0, model: Any = None, device: Any = None):
    """Colour a grey PIL image, numpy array or file path; returns the same kind, RGB (RGBA with alpha)."""
    data, back = _to_image_data(image)
    return back(colorize_image(data, strength=strength, model=model, device=device))


def inpaint(
    image: Any, mask: Any = None, model: Any = None, device: Any = None, tile: int | None = None, ensemble: bool = False
):
    """Fill the holes of a PIL image, numpy array or file path; returns the same kind. mask: a bool array
    (True = hole), a mask image, array or path (white = hole), or None for the image's transparent pixels."""
    data, back = _to_image_data(image)
    if mask is not None and not (isinstance(mask, np.ndarray) and mask.dtype == bool):
        mask, _ = _to_image_data(mask)
    return back(inpaint_image(data, mask=mask, model=model, device=device, tile=tile, ensemble=ensemble))


def hash_code(image: Any, model: Any = None, device: Any = None) -> np.ndarray:
    """The binary code of a PIL image, numpy array or file path: (bits,) bool, bit i = the model's unit i.
    Near-duplicates have codes a few bits apart (`np.count_nonzero(a != b)`). A path is read as
    `hash-index` reads it (JPEG draft decoding), so its code is the one an index holds."""
    from aetools.index.encode import codes_of, pixels_to_tensor, tensor_for_code

    net = get_model(model, "hash", device)
    if isinstance(image, (str, Path)):
        tensor = tensor_for_code(Path(image), net.config.size)
    else:
        data, _ = _to_image_data(image)
        tensor = pixels_to_tensor(data.pixels, net.config.size)
    codes = codes_of(net, tensor[None])
    return np.unpackbits(codes[0], bitorder="little").astype(bool)
