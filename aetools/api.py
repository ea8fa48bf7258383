"""The Python API: one function per image task, taking and returning what you already have.

    >>> import aetools
    >>> clean = aetools.denoise(Image.open("noisy.png"))        # PIL in -> PIL out
    >>> clean = aetools.denoise(array_uint8, sigma=25)          # numpy in -> numpy out (same dtype)
    >>> codes = aetools.hash_code(["a.jpg", "b.jpg"])           # many files: one batched, threaded pass

Each function is the task's pipeline (`aetools.pipeline`) wrapped for PIL images, numpy arrays and paths.
Pipelines are built once per (task, model, device, precision) and kept.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from aetools.data.io import ImageData, image_from_pil, image_to_pil, load_image


@lru_cache(maxsize=8)
def _cached_pipeline(name: str, model: str | None, device: str, precision: str):
    from aetools.tasks import get_pipeline

    return get_pipeline(name).from_pretrained(model, device, precision)


def pipeline(name: str, model: str | Path | torch.nn.Module | None = None, device: Any = None, precision: str = "auto"):
    """The pipeline of image task `name` (denoise, upscale, colorize, inpaint), cached unless `model` is an
    nn.Module: `aetools.api.pipeline("upscale")(load_image("a.png"), scale=4)`."""
    from aetools.inference import resolve_device
    from aetools.tasks import get_pipeline

    if isinstance(model, torch.nn.Module):
        return get_pipeline(name)(model, device, precision)
    dev = resolve_device(device or "auto")
    return _cached_pipeline(name, None if model is None else str(model), str(dev), precision)


def _apply(name: str, image: Any, model: Any, device: Any, precision: str, **options: Any):
    """The one wrapper: what the user handed us -> ImageData -> the task's pipeline -> the same kind back."""
    data, back = _to_image_data(image)
    return back(pipeline(name, model, device, precision)(data, **options))


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


def denoise(
    image: Any,
    sigma: float | None = None,
    model: Any = None,
    device: Any = None,
    tile: int | None = None,
    precision: str = "auto",
):
    """Denoise a PIL image, numpy array or file path; returns the same kind (a path gives a PIL image).
    sigma: the noise level (0-255 scale) if known, else blind."""
    return _apply("denoise", image, model, device, precision, sigma=sigma, tile=tile)


def upscale(
    image: Any,
    scale: int = 2,
    model: Any = None,
    device: Any = None,
    tile: int | None = None,
    ensemble: bool = False,
    precision: str = "auto",
):
    """Upscale a PIL image, numpy array or file path by 2, 3 or 4; returns the same kind."""
    return _apply("upscale", image, model, device, precision, scale=scale, tile=tile, ensemble=ensemble)


def colorize(image: Any, strength: float = 1.0, model: Any = None, device: Any = None, precision: str = "auto"):
    """Colour a grey PIL image, numpy array or file path; returns the same kind, RGB (RGBA with alpha)."""
    return _apply("colorize", image, model, device, precision, strength=strength)


def inpaint(
    image: Any,
    mask: Any = None,
    model: Any = None,
    device: Any = None,
    tile: int | None = None,
    ensemble: bool = False,
    precision: str = "auto",
):
    """Fill the holes of a PIL image, numpy array or file path; returns the same kind. mask: a bool array
    (True = hole), a mask image, array or path (white = hole), or None for the image's transparent pixels."""
    if mask is not None and not (isinstance(mask, np.ndarray) and mask.dtype == bool):
        mask, _ = _to_image_data(mask)
    return _apply("inpaint", image, model, device, precision, mask=mask, tile=tile, ensemble=ensemble)


@lru_cache(maxsize=4)
def _cached_hash_model(model: str | None, device: str, precision: str) -> torch.nn.Module:
    from aetools.index.encode import load_hash_model

    return load_hash_model(model, torch.device(device), precision)


def hash_model(model: Any = None, device: Any = None, precision: str = "auto") -> torch.nn.Module:
    """The hashing network with its inference precision: a shipped name, a path or None (the default),
    loaded once and kept; an nn.Module is used as it is, its precision resolved."""
    from aetools.index.encode import with_inference_precision
    from aetools.inference import resolve_device

    if isinstance(model, torch.nn.Module):
        return with_inference_precision(model, precision)
    return _cached_hash_model(None if model is None else str(model), str(resolve_device(device or "auto")), precision)


def hash_code(image: Any, model: Any = None, device: Any = None, precision: str = "auto") -> np.ndarray:
    """Binary codes. One PIL image, numpy array or file path -> (bits,) bool, bit i = the model's unit i.
    A list or tuple of them -> (N, bits) bool, encoded in batches with files decoded in threads, as
    `hash-index` does (a file that cannot be read raises its ImageError, naming it).

    Near-duplicates have codes a few bits apart (`np.count_nonzero(a != b)`). A path is read as `hash-index`
    reads it (JPEG draft decoding), so its code is the one an index holds. precision: auto, fp32 or bf16
    (`aetools.precision`; auto takes bf16 only where the model's benchmark showed it keeps the recall)."""
    from aetools.data.io import ImageError
    from aetools.index.encode import codes_of, encode_files, pixels_to_tensor, tensor_for_code

    net = hash_model(model, device, precision)  # codes_of runs it in its `inference_precision`
    size = net.config.size

    def tensor_of(item: Any) -> torch.Tensor:
        if isinstance(item, (str, Path)):
            return tensor_for_code(Path(item), size)
        return pixels_to_tensor(_to_image_data(item)[0].pixels, size)

    if not isinstance(image, (list, tuple)):  # one image: no thread pool to start
        packed = codes_of(net, tensor_of(image)[None])
        return np.unpackbits(packed[0], bitorder="little").astype(bool)
    items = list(image)
    codes: list[np.ndarray | None] = [None] * len(items)
    paths = [(i, Path(x)) for i, x in enumerate(items) if isinstance(x, (str, Path))]
    files = encode_files(net, [p for _, p in paths], identity=False)  # threads decode, the network in batches
    for (i, _), loaded in zip(paths, files):
        if loaded.error is not None:
            raise ImageError(loaded.path, loaded.error)
        codes[i] = loaded.code
    others = [(i, x) for i, x in enumerate(items) if not isinstance(x, (str, Path))]
    if others:
        for (i, _), code in zip(others, codes_of(net, torch.stack([tensor_of(x) for _, x in others]))):
            codes[i] = code
    if not items:
        return np.zeros((0, net.config.bits), dtype=bool)
    return np.unpackbits(np.stack(codes), axis=1, bitorder="little").astype(bool)
