"""The Python API: one function per image task, taking and returning what you already have.

    >>> import aetools
    >>> clean = aetools.denoise(Image.open("noisy.png"))        # PIL in -> PIL out
    >>> clean = aetools.denoise(array_uint8, sigma=25)          # numpy in -> numpy out (same dtype)
    >>> codes = aetools.hash_code(["a.jpg", "b.jpg"])           # many files: one batched, threaded pass
    >>> aetools.find_duplicates("photos/")                      # {file: [(duplicate, bits), ...]}

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
    """The one wrapper: what the user handed us -> ImageData -> the task's pipeline -> the same kind back.
    Without a model, the task's choice for this input (`ImagePipeline.default_model`: a JPEG gets the
    real-photo model where the task has one), as the CLI and the web app choose; a PIL result says which
    model ran in `result.info["aetools_model"]`."""
    from aetools.tasks import get_pipeline

    data, back = _to_image_data(image)
    if model is None:
        model = get_pipeline(name).default_model(data.format)
    result = back(pipeline(name, model, device, precision)(data, **options))
    if isinstance(result, Image.Image) and not isinstance(model, torch.nn.Module):
        result.info["aetools_model"] = str(model)
    return result


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


def colorize(
    image: Any, strength: float = 1.0, model: Any = None, device: Any = None, precision: str = "auto", hints: Any = None
):
    """Colour a grey PIL image, numpy array or file path; returns the same kind, RGB (RGBA with alpha).
    hints: colours wanted at some pixels, spread by the model: a list of (x, y, "#RRGGBB" or (r, g, b)) points
    (pixels from the top-left), or a hint image the photo's size (path, PIL image or RGBA array) whose opaque
    pixels are the colours."""
    from aetools.tasks.colorize import Hints

    if hints is not None and not isinstance(hints, (list, tuple, ImageData, Hints)):  # a hint image: path, PIL, array
        hints, _ = _to_image_data(hints)
    return _apply("colorize", image, model, device, precision, strength=strength, hints=hints)


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


# ------------------------------------------------------------------------ near-duplicate search (imagededup-like)


def hash_index(
    folder: str | Path,
    index: str | Path | None = None,
    recursive: bool | None = None,
    update: bool = True,
    model: Any = None,
    device: Any = None,
    precision: str = "auto",
):
    """Build the index of a folder of images, or bring it up to date (new, changed and deleted files;
    update=False rebuilds it) -> `aetools.index.folder.IndexReport` (added, changed, kept, moved, removed,
    failures). index: where it lives (default FOLDER/.aetools-index), as `aetools hash-index` keeps it."""
    from aetools.index.folder import index_folder

    _, report = index_folder(hash_model(model, device, precision), folder, index, recursive, update)
    return report


def hash_search(
    queries: Any,
    index: str | Path,
    k: int = 10,
    orientations: bool = False,
    model: Any = None,
    device: Any = None,
    precision: str = "auto",
) -> dict[str, list[tuple[str, int]]]:
    """The k indexed images nearest each query file -> {query: [(indexed path, Hamming distance), ...]},
    nearest first. index: an index folder, or the folder it indexes. A query that cannot be read raises its
    ImageError. orientations: also try each query turned and mirrored."""
    from aetools.data.io import ImageError
    from aetools.index.folder import INDEX_DIR, model_identity, search_files
    from aetools.index.store import HashIndex

    net = hash_model(model, device, precision)
    where = Path(index)
    where = where / INDEX_DIR if (where / INDEX_DIR / "CURRENT").exists() else where
    paths = [Path(q) for q in ([queries] if isinstance(queries, (str, Path)) else queries)]
    results = search_files(net, HashIndex.load(where, model_identity(net)), paths, k, orientations)
    for result in results:
        if result.error:
            raise ImageError(result.path, result.error)
    return {r.path: [(m.path, m.distance) for m in r.matches] for r in results}


def find_duplicates(
    folder: str | Path,
    radius: int | None = None,
    index: str | Path | None = None,
    recursive: bool | None = None,
    groups: bool = False,
    model: Any = None,
    device: Any = None,
    precision: str = "auto",
):
    """Near-duplicates in a folder, as `aetools dedup` finds them (its index brought up to date first).

    -> {file: [(duplicate, code distance in bits), ...]} for every indexed file (an empty list for most):
    a group's first file (the copy to keep, the original by `index.keep`: no overlay, not cropped, least
    compressed, then most pixels, largest file, oldest) lists the others, and each of them lists it.
    groups=True -> `aetools.index.folder.Duplicates` instead (groups of `Member`s led by the copy to keep,
    `suggested_removals()`, and the files that could not be checked). Nothing is deleted."""
    from aetools.index.folder import DEFAULT_RADIUS, FeatureSource, default_index_dir, index_folder
    from aetools.index.folder import find_duplicates as find

    net = hash_model(model, device, precision)
    built, _ = index_folder(net, folder, index, recursive, update=True)
    found = find(built, DEFAULT_RADIUS if radius is None else radius, FeatureSource(index or default_index_dir(folder)))
    if groups:
        return found
    result: dict[str, list[tuple[str, int]]] = {r.path: [] for r in built.records.values()}
    for lead, *rest in found.groups:
        result[lead.path] = [(m.path, m.distance) for m in rest]
        for m in rest:
            result[m.path] = [(lead.path, m.distance)]
    return result
