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

Every failure is an `ImageError` whose message is one line naming the file and the problem.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

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
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image")
    try:
        if path.stat().st_size == 0:
            raise ImageError(path, "empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _load(path, draft)
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(path, _too_large()) from None
    except UnidentifiedImageError:
        raise ImageError(path, _unreadable(path)) from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as e:
        raise ImageError(path, f"corrupt or truncated image ({_one_line(e)})") from None


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
    fmt = fmt.upper()
    pixels = np.clip(np.nan_to_num(image.pixels), 0, 1)
    sixteen = image.bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS and image.is_grey and image.alpha is None
    if sixteen:
        return Image.fromarray((pixels[..., 0] * 65535 + 0.5).astype(np.uint16))
    channels = [pixels]
    if image.alpha is not None and fmt in ALPHA_FORMATS:
        channels.append(np.clip(np.nan_to_num(image.alpha), 0, 1)[..., None])
    arr = (np.concatenate(channels, axis=2) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)  # L, LA, RGB or RGBA


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
        raise ImageError(path, "output exists (use --overwrite to replace it)")
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
        if deep is not None and fmt == "PNG":
            tmp.write_bytes(encode_png16(deep, image.icc_profile, image.exif, image.dpi))
        elif deep is not None:
            from aetools.data.tiff import write_tiff16

            write_tiff16(tmp, deep, image.icc_profile, image.dpi)
        else:
            image_to_pil(image, fmt).save(tmp, format=fmt, **options)

    _write_atomically(path, write)


def _write_atomically(path: Path, write) -> None:
    """write(temporary path) into a hidden temporary beside `path`, then rename it onto `path`; any failure
    is an ImageError naming `path`, and the temporary is gone either way."""
    from aetools.outputs import temporary_beside

    tmp = temporary_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, ValueError) as e:
        raise ImageError(path, f"cannot write ({_one_line(e)})") from None
    finally:
        tmp.unlink(missing_ok=True)


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
    """A multi-frame file's layout: count frames; durations (ms, per frame) and loop for animations."""

    count: int
    durations: list[int]
    loop: int | None


def frame_layout(path: str | Path | io.BytesIO) -> Frames | None:
    """The frames of an animated GIF, PNG (APNG) or WebP, or a multi-page TIFF; None for a single image or a
    camera's multi-image file (MPO, HEIF: the primary image is the photo). Unreadable: None (the ordinary
    load reports it)."""
    try:
        with Image.open(path) as img:
            count = getattr(img, "n_frames", 1)
            if count <= 1 or img.format not in FRAME_FORMATS:
                return None
            durations = []
            for i in range(count):
                img.seek(i)
                durations.append(int(img.info.get("duration", 0) or 0))
            return Frames(count, durations, img.info.get("loop"))
    except Exception:  # noqa: BLE001 - whatever is wrong, load_image names it
        return None


def load_frames(path: str | Path):
    """Yield each frame of a multi-frame file as ImageData, composited as a viewer shows it, in order."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            _check_pixels(path, *img.size)
            for i in range(img.n_frames):
                img.seek(i)
                frame = img.convert("RGBA") if img.mode == "P" else img.copy()
                yield image_from_pil(frame)
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as e:
        raise ImageError(path, f"corrupt or truncated frame ({_one_line(e)})") from None


def check_frames_fit(path: str | Path, count: int, fmt: str | None = None) -> None:
    """ImageError unless the file `path` (format from its extension, or `fmt`) can hold `count` frames."""
    fmt = (fmt or format_for_path(path, fallback="PNG")).upper()
    if fmt not in FRAME_FORMATS:
        raise ImageError(path, f"{count} frames do not fit in a {fmt} file; write .gif, .png, .webp or .tif")


def save_frames(
    frames: list[ImageData], path: str | Path, layout: Frames, fmt: str | None = None, overwrite: bool = False
) -> None:
    """Write frames as one animated or multi-page file, atomically; the format (from the extension) must
    hold several frames (`FRAME_FORMATS`)."""
    path = Path(path)
    fmt = (fmt or format_for_path(path, fallback=frames[0].format or "PNG")).upper()
    if path.exists() and not overwrite:
        raise ImageError(path, "output exists (use --overwrite to replace it)")
    check_frames_fit(path, len(frames), fmt)
    images = [image_to_pil(f, fmt) for f in frames]
    options: dict = {"save_all": True, "append_images": images[1:]}
    if fmt != "TIFF":
        options["duration"] = layout.durations
        if layout.loop is not None:
            options["loop"] = layout.loop
    if fmt in QUALITY:
        options["quality"] = QUALITY[fmt]
    _write_atomically(path, lambda tmp: images[0].save(tmp, format=fmt, **options))


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
