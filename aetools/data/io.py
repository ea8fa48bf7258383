"""The one image loader and writer of the project.

Any file Pillow reads becomes an `ImageData`: float32 pixels in [0, 1], (H, W, 1) for grey or (H, W, 3)
for colour, the alpha channel kept aside, and what is needed to write the result back the way it came
(format, bit depth, ICC profile, EXIF, dpi). On the way in: EXIF orientation applied; palette, CMYK,
YCbCr, 1-bit and 16-bit converted; a decompression-bomb guard. On the way out: the input's format and
bit depth unless the output name says otherwise, alpha reattached, written atomically (temp + rename).

HEIC/HEIF (iPhone photos) are read and written through pillow-heif, the maintained libheif binding that
registers itself as a Pillow plugin (libheif applies the file's rotation and mirror, and pillow-heif resets
the EXIF orientation to match); AVIF through Pillow's own plugin (in Pillow builds with libavif, as its
recent wheels are). Both are decoded to 8 bits. A format this installation can read but not write (no
encoder) is written as PNG: `output_suffix` says so before any work.

Pillow (13) keeps 16 bits only for grey without alpha: it cuts 16-bit colour or grey+alpha PNGs and TIFFs
to 8 bits (and cannot open 16-bit grey+alpha TIFFs at all), so those are read and written here: PNG with a
small zlib + numpy codec (`png16`), TIFF with tifffile (`tiff`).

Decode budgets (docs/guarantees.md), each checked before the work it bounds:
- pixels: an image, and every frame of an animation or page of a TIFF, at most `MAX_PIXELS`
  (AETOOLS_MAX_PIXELS, 250 MP), from its header before it is decoded;
- frames x pixels: all the frames of one file together at most `MAX_TOTAL_PIXELS` (AETOOLS_MAX_TOTAL_PIXELS,
  by default the pixel limit), before any frame is decoded; frames are decoded one at a time, and what a
  command keeps of them until their file is written is the encoder's 8- or 16-bit array (`save_frames`);
- bytes: standard input read up to `MAX_STDIN_BYTES` (AETOOLS_MAX_STDIN_MB, 256 MB, `read_stream`);
- special files (FIFOs, devices, sockets) are refused before they are opened: they may block or never end;
- decoders' time follows the pixels: the 16-bit PNG row filters are undone by Pillow's C decoder (`png16`).

Every failure is an `ImageError` whose message is one line naming the file and the problem: whatever a
decoder raises (Pillow's DecompressionBombError is not an OSError; a plugin may raise anything on a hostile
file) becomes that line, so a batch goes on past the file. Pillow's warnings are never printed: a
DecompressionBombWarning is the file's error, the others (notes about metadata the loader does without) are
silenced (`_pillow_warnings`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import stat
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError, features

from aetools.data.formats import IMAGE_EXTENSIONS, LOSSY_FORMATS  # noqa: F401  (re-exported)
from aetools.data.png16 import PngError, encode_png16, needs_own_decoder, read_png16
from aetools.data.tiff import TIFF_MAGIC

try:  # a declared dependency; without it HEIC files are refused with the reason
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover
    pillow_heif = None

# Decompression-bomb guard: refuse images above this many pixels before decoding them.
MAX_PIXELS = int(float(os.environ.get("AETOOLS_MAX_PIXELS", 250e6)))
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey band
# All the frames of one animation or multi-page file together (frames x pixels): each is decoded, processed and
# kept until the file is written, so this bounds the work and the memory one file may take.
MAX_TOTAL_PIXELS = int(float(os.environ.get("AETOOLS_MAX_TOTAL_PIXELS", MAX_PIXELS)))
# Standard input is read into memory, at most this many bytes (a file's size; a larger one: give its path).
MAX_STDIN_BYTES = int(float(os.environ.get("AETOOLS_MAX_STDIN_MB", 256)) * 1_000_000)

HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP", "GIF", "TGA", "ICO", "JPEG2000", "QOI", "SGI", "HEIF", "AVIF"})
METADATA_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "WEBP", "HEIF", "AVIF"})  # can carry ICC and EXIF
QUALITY = {"JPEG": 95, "WEBP": 95, "HEIF": 90, "AVIF": 90}  # lossy writers' quality (HEIF's default is 50)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageError(Exception):
    """A file that cannot be read or written as an image. str(e) is 'PATH: reason'."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ImageWarning(UserWarning):
    """Something about an input worth telling its user that does not stop the job (e.g. an empty mask).
    The CLI prints it as one line naming the file."""


@dataclass
class ImageData:
    """pixels: (H, W, C) float32 in [0, 1], C = 1 (grey) or 3 (RGB). alpha: (H, W) float32 or None."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    format: str | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None

    @property
    def is_grey(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow says it."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def with_pixels(self, pixels: np.ndarray, alpha: np.ndarray | None = None) -> ImageData:
        """The same file attributes around new pixels (alpha kept unless given)."""
        return replace(self, pixels=pixels, alpha=self.alpha if alpha is None else alpha)


# ------------------------------------------------------------------------------------------- reading


def load_image(path: str | Path, draft: int | None = None) -> ImageData:
    """Read any image Pillow can decode; raises ImageError with a one-line reason.

    draft: the caller only needs the image this big (short side, pixels): JPEGs are then decoded at the
    smallest DCT scale (1/2, 1/4 or 1/8) that keeps both sides at least `draft` (Pillow's draft mode),
    several times faster than a full decode. Other formats are decoded in full."""
    path = Path(path)
    try:
        _check_regular(path)
        if path.stat().st_size == 0:
            raise ImageError(path, "empty file")
        with _pillow_warnings():
            return _load(path, draft)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(path, _unreadable(path)) from None
    except Exception as e:  # noqa: BLE001 - whatever a decoder raises is this file's one-line error
        raise ImageError(path, _decode_problem(e)) from None


def _load(path: Path, draft: int | None = None) -> ImageData:
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        data = _load_tiff(path) if _head(path, 4) in TIFF_MAGIC else None  # e.g. 16-bit grey + alpha
        if data is None:
            raise
        return data
    with img:
        _check_pixels(path, *img.size)
        if img.format == "TIFF" and img.mode not in _SIXTEEN_BIT_MODES | {"F"} and _tiff_bits(img) > 8:
            data = _load_tiff(path)  # Pillow would hand back the top 8 bits of each sample
            if data is not None:
                return data
        if draft and img.format == "JPEG":
            img.draft(img.mode, (draft, draft))
        img.load()
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        data = image_from_pil(img)
        if img.format == "PNG" and needs_own_decoder(_head(path, 26)):
            try:
                deep = read_png16(path)
            except PngError as e:
                raise ImageError(path, str(e)) from None
            px = _orient(deep, orientation).astype(np.float32) / 65535.0
            c = 1 if px.shape[2] <= 2 else 3  # not data's: Pillow turns 16-bit grey + alpha into RGBA
            alpha = np.ascontiguousarray(px[..., c]) if px.shape[2] > c else data.alpha  # data's: tRNS
            data = replace(data, pixels=np.ascontiguousarray(px[..., :c]), alpha=alpha, bit_depth=16)
    return data


def image_from_pil(img: Image.Image) -> ImageData:
    """A decoded Pillow image -> ImageData (EXIF orientation applied, alpha split off)."""
    fmt = img.format
    icc = img.info.get("icc_profile")
    dpi = img.info.get("dpi")
    img = ImageOps.exif_transpose(img) or img
    exif = img.getexif()
    exif_bytes = exif.tobytes() if len(exif) else None

    mode, alpha, bit_depth = img.mode, None, 8
    if mode in _SIXTEEN_BIT_MODES:
        raw = np.asarray(img).astype(np.float32)
        pixels, bit_depth = np.clip(raw / 65535.0, 0, 1)[..., None], 16
    elif mode == "F":
        raw = np.asarray(img, dtype=np.float32)
        peak = 1.0 if raw.max(initial=0) <= 1.0 else (255.0 if raw.max() <= 255.0 else 65535.0)
        pixels = np.clip(raw / peak, 0, 1)[..., None]
    else:
        if mode in ("P", "L", "RGB") and "transparency" in img.info:  # palette or tRNS transparency
            img = img.convert("LA" if mode == "L" else "RGBA")
        elif mode == "P":
            img = img.convert("RGB")
        elif mode == "1":
            img = img.convert("L")
        elif mode in ("La", "PA", "RGBa"):
            img = img.convert("LA" if mode == "La" else "RGBA")
        elif mode not in ("L", "LA", "RGB", "RGBA"):
            img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
        arr = np.asarray(img, dtype=np.float32) / 255.0
        if arr.ndim == 2:
            arr = arr[..., None]
        if img.mode in ("LA", "RGBA"):
            arr, alpha = arr[..., :-1], np.ascontiguousarray(arr[..., -1])
        pixels = arr
    if dpi is not None:
        dpi = (float(dpi[0]), float(dpi[1]))
    return ImageData(np.ascontiguousarray(pixels, dtype=np.float32), alpha, bit_depth, fmt, icc, exif_bytes, dpi)


# ------------------------------------------------------------------------------------------- writing


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] -> uint8, clipped and rounded as a saved 8-bit file would be."""
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def format_for_path(path: str | Path, fallback: str | None = None) -> str:
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        if fallback:
            return fallback
        raise ImageError(path, f"unknown image extension {ext!r}")
    return fmt


def image_to_pil(image: ImageData, fmt: str = "PNG") -> Image.Image:
    """ImageData -> Pillow image, 16-bit grey kept where the format can hold it."""
    return Image.fromarray(encoder_array(image, fmt))


def encoder_array(image: ImageData, fmt: str = "PNG") -> np.ndarray:
    """What Pillow's encoder of `fmt` is given: (H, W) uint16 for 16-bit grey where the format holds it, else
    uint8 (H, W) grey or (H, W, C) grey+alpha, RGB or RGBA (alpha where the format keeps it)."""
    fmt = fmt.upper()
    pixels = np.clip(np.nan_to_num(image.pixels), 0, 1)
    sixteen = image.bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS and image.is_grey and image.alpha is None
    if sixteen:
        return (pixels[..., 0] * 65535 + 0.5).astype(np.uint16)
    channels = [pixels]
    if image.alpha is not None and fmt in ALPHA_FORMATS:
        channels.append(np.clip(np.nan_to_num(image.alpha), 0, 1)[..., None])
    arr = (np.concatenate(channels, axis=2) * 255 + 0.5).astype(np.uint8)
    return arr[..., 0] if arr.shape[2] == 1 else arr  # L, LA, RGB or RGBA


@functools.cache
def can_write(fmt: str) -> bool:
    """Whether this installation can encode `fmt` (a Pillow format name). HEIF and AVIF writers exist only
    with an encoder in the library's build, so those are tried once on a tiny image."""
    Image.init()
    if fmt not in Image.SAVE:
        return False
    if fmt not in ("HEIF", "AVIF"):
        return True
    try:
        Image.new("RGB", (16, 16)).save(io.BytesIO(), format=fmt)
    except (OSError, ValueError, KeyError, RuntimeError):
        return False
    return True


def output_suffix(suffix: str) -> tuple[str, str | None]:
    """The extension an output gets for an input with this one: the same, or '.png' with a one-line note
    when its format can be read here but not written."""
    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None or can_write(fmt):
        return suffix, None
    return ".png", f"{fmt} files cannot be written by this installation (no encoder); writing PNG"


def save_image(image: ImageData, path: str | Path, fmt: str | None = None, overwrite: bool = False) -> None:
    """Write atomically (temp file in the same folder, then rename). Format from the extension, else the
    input's. Refuses to replace an existing file unless `overwrite`."""
    path = Path(path)
    fmt = (fmt or format_for_path(path, fallback=image.format or "PNG")).upper()
    if path.exists() and not overwrite:
        raise ImageError(path, _EXISTS)
    Image.init()
    if fmt not in Image.SAVE:
        raise ImageError(path, f"cannot write {fmt} files")
    deep = _sixteen_bit_array(image, fmt)  # 16-bit colour or grey + alpha, which Pillow cannot write
    options: dict = {}
    if image.icc_profile and fmt in METADATA_FORMATS:
        options["icc_profile"] = image.icc_profile
    if image.exif and fmt in METADATA_FORMATS:
        options["exif"] = image.exif
    if image.dpi and fmt in ("JPEG", "PNG", "TIFF"):
        options["dpi"] = image.dpi
    if fmt in QUALITY:
        options["quality"] = QUALITY[fmt]
    if fmt == "JPEG":
        options["subsampling"] = 0  # 4:4:4: no colour bleeding at edges

    def write(tmp: Path) -> None:
        with _encoding(path):
            if deep is not None and fmt == "PNG":
                tmp.write_bytes(encode_png16(deep, image.icc_profile, image.exif, image.dpi))
            elif deep is not None:
                from aetools.data.tiff import write_tiff16

                write_tiff16(tmp, deep, image.icc_profile, image.dpi)
            else:
                image_to_pil(image, fmt).save(tmp, format=fmt, **options)

    _write_atomically(path, write, overwrite)


_EXISTS = "output exists (use --overwrite to replace it)"


def _write_atomically(path: Path, write, overwrite: bool) -> None:
    """write(temporary path) into a hidden temporary beside `path`, then published onto it (never over a file
    that appeared meanwhile unless `overwrite`): `aetools.outputs.write_atomically`. A failure to write or
    publish is an ImageError naming `path` (write's own errors pass as raised: see `_encoding`); the
    temporary is gone either way."""
    from aetools.outputs import write_atomically

    try:
        write_atomically(path, write, overwrite)
    except FileExistsError:
        raise ImageError(path, _EXISTS) from None
    except OSError as e:
        raise ImageError(path, f"cannot write ({_one_line(e)})") from None


@contextlib.contextmanager
def _encoding(path: Path) -> Iterator[None]:
    """An encoder's failure (an OSError, or a ValueError for what the format cannot hold) as `path`'s error."""
    try:
        yield
    except (OSError, ValueError) as e:
        raise ImageError(path, f"cannot write ({_one_line(e)})") from None


def read_stream(stream: BinaryIO, name: str = "-", limit: int | None = None) -> bytes:
    """All of `stream` (standard input), at most `limit` bytes (default `MAX_STDIN_BYTES`): an endless or
    huge stream (/dev/zero) is an ImageError naming `name` once the limit is passed, never read to the end."""
    limit = MAX_STDIN_BYTES if limit is None else limit
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(min(1 << 22, limit + 1 - len(data)))
        if not chunk:
            return bytes(data)
        data += chunk
    raise ImageError(
        name,
        f"more than {limit / 1e6:g} MB on standard input (AETOOLS_MAX_STDIN_MB): give a larger image by its path",
    )


def load_image_bytes(data: bytes, name: str = "-") -> ImageData:
    """An image held in memory (standard input) -> ImageData, exactly as `load_image` reads a file (through
    a private temporary file, so every codec takes its file path); errors name `name`."""
    if not data:
        raise ImageError(name, "empty input")
    with tempfile.TemporaryDirectory(prefix="aetools-") as folder:
        path = Path(folder) / "image"
        path.write_bytes(data)
        try:
            return load_image(path)
        except ImageError as e:
            raise ImageError(name, e.reason) from None


def encode_image(image: ImageData, fmt: str, name: str = "-") -> bytes:
    """The bytes `save_image` would write in format `fmt` (for standard output); errors name `name`."""
    with tempfile.TemporaryDirectory(prefix="aetools-") as folder:
        path = Path(folder) / "image"
        try:
            save_image(image, path, fmt=fmt)
        except ImageError as e:
            raise ImageError(name, e.reason) from None
        return path.read_bytes()


# ------------------------------------------------------------------- animations and multi-page files

# Formats whose extra frames are content: every frame is processed and written (animations keep their
# timing). Other multi-image files (a camera's MPO or HEIF with a depth map or preview) are their primary
# image: the photo a viewer shows.
FRAME_FORMATS = frozenset({"GIF", "PNG", "WEBP", "TIFF"})


@dataclass
class Frames:
    """A multi-frame file's layout: count frames; durations (ms, per frame) and loop for animations; pixels:
    all the frames' together (what `MAX_TOTAL_PIXELS` bounds)."""

    count: int
    durations: list[int]
    loop: int | None
    pixels: int = 0


def frame_layout(path: str | Path | io.BytesIO) -> Frames | None:
    """The frames of an animated GIF, PNG (APNG) or WebP, or a multi-page TIFF; None for a single image or a
    camera's multi-image file (MPO, HEIF: the primary image is the photo). Unreadable, or not a regular file:
    None (the ordinary load reports it). Nothing is decoded for a file over the frames budget (its durations
    are then left 0: it is refused)."""
    try:
        if not isinstance(path, io.BytesIO) and not _is_regular(Path(path)):
            return None  # a FIFO would block Image.open; load_image refuses it
        with _pillow_warnings(), Image.open(path) as img:
            count = getattr(img, "n_frames", 1)
            if count <= 1 or img.format not in FRAME_FORMATS:
                return None
            pixels = _frames_pixels(img, count)
            durations = [0] * count
            if pixels <= MAX_TOTAL_PIXELS and img.format != "TIFF":  # pages have no timing
                with contextlib.suppress(Exception):  # a frame that cannot be decoded: load_frames names it
                    for i in range(count):
                        img.seek(i)  # decodes the frames before i (GIF, APNG and WebP frames build on them)
                        durations[i] = int(img.info.get("duration", 0) or 0)
            return Frames(count, durations, img.info.get("loop"), pixels)
    except Exception:  # noqa: BLE001 - whatever is wrong, load_image names it
        return None


def _frames_pixels(img: Image.Image, count: int) -> int:
    """The pixels of all frames, from headers only: a TIFF's pages have their own sizes (a seek reads a page's
    header, not its pixels); an animation's frames are drawn on its canvas (a GIF frame reaching past it
    enlarges it when decoded: `load_frames` counts again)."""
    if img.format != "TIFF":
        return count * img.size[0] * img.size[1]
    total = 0
    for i in range(count):
        img.seek(i)
        total += img.size[0] * img.size[1]
    return total


def check_frame_budget(path: str | Path, layout: Frames) -> None:
    """ImageError unless all the frames of `path` together are within `MAX_TOTAL_PIXELS` (frames x pixels)."""
    if layout.pixels > MAX_TOTAL_PIXELS:
        raise ImageError(path, _over_budget(layout.count, layout.pixels))


def _over_budget(count: int, pixels: int) -> str:
    return (
        f"{count} frames, {pixels:,} pixels in all: over the {MAX_TOTAL_PIXELS:,}-pixel budget for one file's"
        " frames (each is processed and kept until the file is written); split it into shorter files, or raise"
        " AETOOLS_MAX_TOTAL_PIXELS"
    )


def load_frames(path: str | Path, layout: Frames | None = None) -> Iterator[ImageData]:
    """Yield each frame of a multi-frame file as ImageData, composited as a viewer shows it, in order, one at
    a time. Before any is decoded: all of them against the frames budget; before each is decoded: its size
    against the pixel limit. Any failure is an ImageError naming the file and the frame. A file with one
    image yields it (load_image). layout: `frame_layout(path)`, if the caller has it."""
    path = Path(path)
    layout = layout or frame_layout(path)
    if layout is None:
        yield load_image(path)
        return
    check_frame_budget(path, layout)
    _check_regular(path)
    try:
        img = Image.open(path)
    except Exception as e:  # noqa: BLE001 - the file changed since frame_layout read it, or anything else
        raise ImageError(path, _decode_problem(e)) from None
    with img:
        total = 0
        for i in range(layout.count):
            try:
                with _pillow_warnings():
                    img.seek(i)
                    width, height = img.size  # from the frame's header; the pixels are decoded below
                    _check_pixels(path, width, height)
                    total += width * height
                    if total > MAX_TOTAL_PIXELS:
                        raise ImageError(path, _over_budget(layout.count, total))
                    frame = image_from_pil(img.convert("RGBA") if img.mode == "P" else img.copy())
            except Exception as e:  # noqa: BLE001 - one line for this file, whatever was raised
                reason = e.reason if isinstance(e, ImageError) else _decode_problem(e)
                raise ImageError(path, f"frame {i + 1} of {layout.count}: {reason}") from None
            yield frame


def check_frames_fit(path: str | Path, count: int, fmt: str | None = None) -> None:
    """ImageError unless the file `path` (format from its extension, or `fmt`) can hold `count` frames."""
    fmt = (fmt or format_for_path(path, fallback="PNG")).upper()
    if fmt not in FRAME_FORMATS:
        raise ImageError(path, f"{count} frames do not fit in a {fmt} file; write .gif, .png, .webp or .tif")


def save_frames(
    frames: Iterable[ImageData],
    path: str | Path,
    layout: Frames,
    fmt: str | None = None,
    overwrite: bool = False,
    memory: int | None = None,
) -> None:
    """Write frames as one animated or multi-page file, atomically; the format (from the extension) must hold
    several frames (`FRAME_FORMATS`). `frames` may be made as they are asked for (a generator running each
    frame through a network): a TIFF is written page by page as they come, nothing kept; GIF, APNG and WebP
    encoders take every frame at once, so each is kept until then as its encoder's 8-bit array
    (`hold_frames`, which refuses frames that would not fit in `memory` bytes)."""
    path = Path(path)
    fmt = (fmt or format_for_path(path, fallback="PNG")).upper()
    if path.exists() and not overwrite:
        raise ImageError(path, _EXISTS)
    check_frames_fit(path, layout.count, fmt)
    if fmt == "TIFF":
        _write_atomically(path, lambda tmp: _write_pages(tmp, frames, path, layout), overwrite)
        return
    held = hold_frames(frames, path, layout, fmt, memory)
    if not held:
        raise ImageError(path, "no frames to write")
    held.reverse()
    images = []
    while held:  # one array at a time into Pillow (which shares an L, RGBA or 16-bit grey array, copies others)
        images.append(Image.fromarray(held.pop()))
    options: dict = {"save_all": True, "append_images": images[1:], "duration": layout.durations[: len(images)]}
    if layout.loop is not None:
        options["loop"] = layout.loop
    if fmt in QUALITY:
        options["quality"] = QUALITY[fmt]

    def write(tmp: Path) -> None:
        with _encoding(path):
            images[0].save(tmp, format=fmt, **options)

    _write_atomically(path, write, overwrite)


def hold_frames(
    frames: Iterable[ImageData], path: str | Path, layout: Frames, fmt: str, memory: int | None = None
) -> list[np.ndarray]:
    """Each frame, as it comes, converted to the array `fmt`'s encoder takes (`encoder_array`: 8-bit, or
    16-bit grey) and the float frame let go: about 4 bytes a pixel kept, not 16. memory: bytes free (None:
    not checked); layout.count frames the size of the first that would take more are refused after the
    first, with what to do."""
    held: list[np.ndarray] = []
    for frame in frames:
        held.append(encoder_array(frame, fmt))
        if len(held) == 1 and memory is not None and held[0].nbytes * layout.count > memory:
            need, (h, w) = held[0].nbytes * layout.count, held[0].shape[:2]
            raise ImageError(
                path,
                f"{layout.count} frames of {w}x{h} would hold {need / 1e9:.1f} GB until the {fmt} file is written"
                f" ({memory / 1e9:.1f} GB free): write .tif (written page by page) or split the file",
            )
    return held


def _write_pages(tmp: Path, frames: Iterable[ImageData], path: Path, layout: Frames) -> None:
    """Each frame appended to the TIFF `tmp` as a page as soon as it is made (8 or 16 bits, alpha kept)."""
    from aetools.data.tiff import tiff_writer, write_tiff_page

    with _encoding(path):
        writer = tiff_writer(tmp, bigtiff=layout.pixels * 8 > 2**31)  # up to 8 bytes a pixel, unless compressed
    with writer:
        for frame in frames:
            deep = _sixteen_bit_array(frame, "TIFF")
            arr = deep if deep is not None else encoder_array(frame, "TIFF")
            with _encoding(path):
                write_tiff_page(writer, arr if arr.ndim == 3 else arr[..., None], frame.icc_profile, frame.dpi)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:  # without the file name, which may be our temp file
        return e.strerror
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _unreadable(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in HEIF_EXTENSIONS and pillow_heif is None:
        return "HEIC/HEIF files need the pillow-heif package (pip install pillow-heif)"
    if suffix == ".avif" and not features.check("avif"):
        return "this Pillow was built without AVIF support (a recent Pillow wheel has it)"
    return "not an image file (or a format Pillow cannot read)"


def _too_large() -> str:
    return (
        f"image is larger than the {MAX_PIXELS / 1e6:g} MP safety limit "
        "(decompression-bomb guard; raise it with AETOOLS_MAX_PIXELS)"
    )


def _decode_problem(e: BaseException) -> str:
    """The one-line reason for what a decoder raised."""
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _too_large()
    if isinstance(e, MemoryError):
        return "not enough memory to decode it"
    if isinstance(e, (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error, PngError)):
        return f"corrupt or truncated image ({_one_line(e)})"
    return f"cannot be decoded ({type(e).__name__}: {_one_line(e)})"


@contextlib.contextmanager
def _pillow_warnings() -> Iterator[None]:
    """Pillow's warnings while decoding are never printed: a DecompressionBombWarning (an image between our
    limit and twice it, where Pillow only warns) is raised, to become the file's error; the others are notes
    about metadata the loader does without (an EXIF tag pointing past the file's end, a palette's transparency
    as bytes, which is turned into alpha here) and are silenced: the pixels handed back are whole. Not across a
    yield: the filters are the process's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _is_regular(path: Path) -> bool:
    """A regular file (or a link to one). False for FIFOs, devices and sockets, and for what is not there."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False


def _check_regular(path: Path) -> None:
    """Refuse, before it is opened, what is not a regular file: a FIFO blocks the reader, a device (/dev/zero)
    never ends. Missing or unreadable paths are left for the open to name."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return
    if stat.S_ISDIR(mode):
        raise ImageError(path, "is a folder, not an image")
    if not stat.S_ISREG(mode):
        raise ImageError(path, "not a regular file (a pipe, device or socket); give an image file")


def _check_pixels(path: Path, width: int, height: int) -> None:
    """Our own bomb guard, from the header, whatever Image.MAX_IMAGE_PIXELS has been set to since."""
    if width * height > MAX_PIXELS:
        raise ImageError(path, _too_large())


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


# ------------------------------------------------------- 16-bit colour and grey+alpha (codecs: png16, tiff)

_ORIENT = {  # EXIF orientation -> the numpy version of what ImageOps.exif_transpose does, on (H, W, C)
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    return _ORIENT.get(orientation, lambda a: a)(a)


def _tiff_bits(img: Image.Image) -> int:
    bits = getattr(img, "tag_v2", {}).get(258, 8)  # BitsPerSample: one number or one per sample
    return max(bits) if isinstance(bits, tuple) else int(bits)


def _sixteen_bit_array(image: ImageData, fmt: str) -> np.ndarray | None:
    """(H, W, C) uint16 with alpha last, when 16 bits must be written and Pillow cannot (all but plain grey)."""
    if image.bit_depth != 16 or fmt not in SIXTEEN_BIT_FORMATS or (image.is_grey and image.alpha is None):
        return None
    channels = [image.pixels] + ([] if image.alpha is None else [image.alpha[..., None]])
    deep = (np.clip(np.nan_to_num(np.concatenate(channels, axis=2)), 0, 1) * 65535 + 0.5).astype(np.uint16)
    return np.ascontiguousarray(deep)  # a network's output may be a strided view; the encoders need rows


def _load_tiff(path: Path) -> ImageData | None:
    """A TIFF Pillow cannot read faithfully, through tifffile; None if tifffile cannot either."""
    from aetools.data.tiff import read_tiff

    tiff = read_tiff(path, lambda w, h: _check_pixels(path, w, h))
    if tiff is None:
        return None
    bit_depth = 16 if tiff.pixels.dtype == np.uint16 else 8
    px = _orient(tiff.pixels, tiff.orientation).astype(np.float32) / (65535.0 if bit_depth == 16 else 255.0)
    c = 3 if px.shape[2] >= 3 else 1
    alpha = np.ascontiguousarray(px[..., c]) if px.shape[2] > c else None
    return ImageData(np.ascontiguousarray(px[..., :c]), alpha, bit_depth, "TIFF", tiff.icc, None, tiff.dpi)
