"""Images -> binary codes, fast: decoding is the bottleneck, not the network.

    file --(threads: read, sha256, JPEG draft decode at >= 2x the network's side)--> (3, size, size)
         --(batches of BATCH, all cores)--> logits > 0 --> packed codes (bits / 8 bytes, faiss order)

A JPEG is decoded at 1/2, 1/4 or 1/8 scale straight from its DCT coefficients (Pillow's draft mode), so a
12-megapixel photo costs about what a 0.2-megapixel one does. Decoding runs in a thread pool (Pillow and
hashlib release the GIL) while the network runs on the batch before.

Flat borders (letterboxing, frames, one-colour padding) are trimmed before the resize, so a padded copy is
coded as its original.

Orientation: the code of a photo turned by 90 degrees is not the code of the photo. An indexed image also
keeps the codes of its three quarter turns (`turns=True`; dedup compares them), and a query can be encoded
in its 8 orientations (`orientations=True`), search keeping each indexed image's nearest. (A mirror image
needs no extra code: training makes the code nearly blind to left-right mirroring.)
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aetools.data.io import ImageError, load_image
from aetools.index.store import pack_codes
from aetools.precision import Precision, autocast
from aetools.weights import sha256_file

BATCH = 64
DRAFT_FACTOR = 2  # decode at least this many times the network's side, then resize with antialiasing


BORDER_RANGE = 12 / 255  # a row or column whose values span less than this is flat: border, not picture
MAX_BORDER = 0.3  # fraction of a side that trimming may remove


def trim_borders(pixels: np.ndarray) -> np.ndarray:
    """Remove flat borders (letterboxing, frames, padding of one colour) from (H, W, C) float pixels in [0, 1]:
    the outer rows and columns whose values span less than BORDER_RANGE and match the side's first row or
    column, at most MAX_BORDER of each side. A padded copy is then coded as its original."""
    h, w = pixels.shape[:2]

    def flat_run(lines: np.ndarray, limit: int) -> int:
        """How many leading lines (N, L, C) are flat and of the first line's colour."""
        first_spread = (lines[0].max(axis=0) - lines[0].min(axis=0)).max() if limit > 0 else BORDER_RANGE
        if first_spread >= BORDER_RANGE:  # most photos: not even the outermost line is flat
            return 0
        lines = lines[:limit]
        spread = (lines.max(axis=1) - lines.min(axis=1)).max(axis=1)  # per channel: a colour may be flat
        first = lines[0].mean(axis=0)
        same = np.abs(lines.mean(axis=1) - first).max(axis=1) < BORDER_RANGE
        ok = (spread < BORDER_RANGE) & same
        return int(np.argmin(ok)) if not ok.all() else len(ok)

    top = flat_run(pixels, int(h * MAX_BORDER))
    bottom = flat_run(pixels[::-1], int(h * MAX_BORDER))
    left = flat_run(pixels.transpose(1, 0, 2), int(w * MAX_BORDER))
    right = flat_run(pixels.transpose(1, 0, 2)[::-1], int(w * MAX_BORDER))
    return pixels[top : h - bottom, left : w - right]


def pixels_to_tensor(pixels: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, C) float in [0, 1], C = 1 or 3 -> (3, size, size): flat borders trimmed, resized with
    antialiasing (the whole image, squeezed to a square, as in training)."""
    pixels = trim_borders(pixels)
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x[0].clamp(0, 1)


def pil_to_tensor(image, size: int) -> torch.Tensor:
    """A PIL image (any mode) -> (3, size, size)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return pixels_to_tensor(rgb, size)


@dataclass
class Coded:
    """What encoding a file's bytes gives: its packed code (bits / 8,), the codes of the image turned by 90,
    180, 270 degrees (3, bits / 8) or None, and its pixel size as displayed."""

    code: np.ndarray
    turns: np.ndarray | None
    width: int
    height: int


@dataclass
class Loaded:
    """A file read for indexing: its identity (size, mtime, sha256) and either its codes (`coded`: already
    known for these bytes, or computed), or its tensor to encode, or the reason it could not be read."""

    path: Path
    size: int
    mtime_ns: int
    sha256: str
    tensor: torch.Tensor | None = None
    coded: Coded | None = None
    error: str | None = None
    width: int = 0
    height: int = 0

    @property
    def code(self) -> np.ndarray | None:
        return None if self.coded is None else self.coded.code


def file_identity(path: Path) -> tuple[int, int, str]:
    """-> (size, mtime_ns, sha256 of the bytes)."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, sha256_file(path)


def tensor_for_code(path: Path, size: int) -> torch.Tensor:
    """One file as the network takes it, (3, size, size), JPEGs draft-decoded; raises ImageError."""
    return pixels_to_tensor(load_image(path, draft=DRAFT_FACTOR * size).pixels, size)


def pixel_size(path: Path) -> tuple[int, int]:
    """(width, height) as the image is displayed (EXIF orientation applied), from its header; (0, 0) if the
    header cannot say."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # orientations that swap the sides
    except Exception:  # noqa: BLE001 - any reader failure: the size is only used to rank copies
        return 0, 0
    return (h, w) if turned else (w, h)


def load_for_code(
    path: Path, size: int, known: Callable[[str], Coded | None] = lambda sha: None, identity: bool = True
) -> Loaded:
    """Read one file: its identity, then its known codes (`known(sha256)`) or else its pixels. Never raises.
    identity=False skips the sha256 and the pixel size (codes wanted, no index to keep)."""
    if not identity:
        try:
            return Loaded(path, 0, 0, "", tensor_for_code(path, size))
        except ImageError as e:
            return Loaded(path, 0, 0, "", error=e.reason)
    try:
        n, mtime, digest = file_identity(path)
    except OSError as e:
        return Loaded(path, 0, 0, "", error=f"cannot read ({e.strerror or e})")
    coded = known(digest)
    if coded is not None:
        return Loaded(path, n, mtime, digest, coded=coded, width=coded.width, height=coded.height)
    try:
        tensor = tensor_for_code(path, size)
    except ImageError as e:
        return Loaded(path, n, mtime, digest, error=e.reason)
    width, height = pixel_size(path)
    return Loaded(path, n, mtime, digest, tensor, width=width, height=height)


def load_hash_model(name_or_path: str | Path | None, device: torch.device, precision: str = "auto") -> torch.nn.Module:
    """The hashing network, loaded, with its inference precision resolved (`with_inference_precision`)."""
    from aetools.weights import load_model

    return with_inference_precision(load_model(name_or_path, "hash", device), precision)


def with_inference_precision(model: torch.nn.Module, precision: str = "auto") -> torch.nn.Module:
    """Resolve the hashing network's precision once (auto: bf16 only where its benchmark record allows it)
    and keep it on the model as `inference_precision`, which `codes_of` then uses; -> the model."""
    from aetools.pipeline import bf16_measured_safe
    from aetools.precision import resolve_precision

    device = next(model.parameters()).device
    model.inference_precision = resolve_precision(precision, device, bf16_measured_safe(model))
    if model.inference_precision.is_bf16:
        model.to(memory_format=torch.channels_last)
    return model


def dihedral(x: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) -> (B, 8, C, S, S): the 8 orientations (4 quarter turns, each also mirrored), the
    identity first. Turning a square after squeezing equals squeezing after turning."""
    views = [torch.rot90(x.flip(-1) if flip else x, turns, (-2, -1)) for flip in (False, True) for turns in range(4)]
    return torch.stack(views, dim=1)


# A few 64x64 images are too little work to share between threads: on a machine whose other cores are busy,
# the threads' hand-offs cost far more than the work (a single image's code took 0.3 s instead of 4 ms).
SMALL_BATCH = 8


@contextlib.contextmanager
def _one_thread_if(small: bool) -> Iterator[None]:
    """torch's intra-op threads set to 1 for the block (and restored), when `small`."""
    if not small or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def quarter_turns(x: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) -> (B, 4, C, S, S): the image and its turns by 90, 180, 270 degrees counter-clockwise,
    `dihedral`'s first four views."""
    return torch.stack([torch.rot90(x, turns, (-2, -1)) for turns in range(4)], dim=1)


@torch.inference_mode()
def codes_of(
    model: torch.nn.Module,
    images: torch.Tensor,
    orientations: bool = False,
    precision: Precision | None = None,
    turns: bool = False,
) -> np.ndarray:
    """images (B, 3, S, S) -> packed codes (B, bits / 8) uint8; with orientations (B, 8, bits / 8), the
    8 views of `dihedral`; with turns (B, 4, bits / 8), the image and its 3 quarter turns.
    precision: bf16 autocasts the encoder (its code bits are the signs of fp32 logits); None = the model's
    `inference_precision` if a loader set one (`load_hash_model`), else fp32."""
    device = next(model.parameters()).device
    precision = precision or getattr(model, "inference_precision", None)
    layout = torch.channels_last if precision is not None and precision.is_bf16 else torch.contiguous_format

    def codes(x: torch.Tensor) -> np.ndarray:
        x = x.to(device).contiguous(memory_format=layout)
        with _one_thread_if(device.type == "cpu" and len(x) <= SMALL_BATCH), autocast(device, precision):
            return model.codes(x).cpu().numpy()

    if orientations or turns:
        views = dihedral(images) if orientations else quarter_turns(images)
        return pack_codes(codes(views.flatten(0, 1))).reshape(images.shape[0], views.shape[1], -1)
    return pack_codes(codes(images))


def encode_files(
    model: torch.nn.Module,
    paths: Iterable[Path],
    known: Callable[[str], Coded | None] = lambda sha: None,
    workers: int | None = None,
    on_file: Callable[[Loaded], None] | None = None,
    precision: Precision | None = None,
    identity: bool = True,
    turns: bool = False,
) -> Iterator[Loaded]:
    """Read, decode and encode files in parallel -> each file's Loaded with its codes (`coded`) or `error`,
    in input order.

    known(sha256): the codes of bytes already encoded (an unchanged, touched, moved or copied file), which
        are then not decoded; None for unknown bytes.
    on_file: called as each file is read (progress). precision: as `codes_of`. identity: also hash each
        file's bytes (sha256) and read its pixel size, for an index; False for codes alone. turns: also the
        codes of each image's quarter turns (4x the network's work)."""
    size = model.config.size
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        ahead: deque[Future[Loaded]] = deque()  # bounded read-ahead: memory stays flat for any number of files
        batch: list[Loaded] = []

        def flush() -> Iterator[Loaded]:
            tensors = [item.tensor for item in batch if item.tensor is not None]
            codes = iter(codes_of(model, torch.stack(tensors), precision=precision, turns=turns) if tensors else [])
            for item in batch:
                if item.tensor is not None:
                    views = next(codes)
                    code, turned = (views[0], views[1:]) if turns else (views, None)
                    item.coded, item.tensor = Coded(code, turned, item.width, item.height), None
                yield item
            batch.clear()

        def drain_one() -> Iterator[Loaded]:
            item = ahead.popleft().result()
            if on_file:
                on_file(item)
            batch.append(item)
            if sum(i.tensor is not None for i in batch) >= BATCH:
                yield from flush()

        for path in paths:
            ahead.append(pool.submit(load_for_code, path, size, known, identity))
            if len(ahead) >= 2 * BATCH:
                yield from drain_one()
        while ahead:
            yield from drain_one()
        yield from flush()
