"""The one image loader and writer of the project.

Any file Pillow reads becomes an `ImageData`: float32 pixels in [0, 1], (H, W, 1) for grey or (H, W, 3)
for colour, the alpha channel kept aside, and what is needed to write the result back the way it came
(format, bit depth, ICC profile, EXIF, dpi). On the way in: EXIF orientation applied; palette, CMYK,
YCbCr, 1-bit and 16-bit converted; a decompression-bomb guard. On the way out: the input's format and
bit depth unless the output name says otherwise, alpha reattached, written atomically (temp + rename).

Every failure is an `ImageError` whose message is one line naming the file and the problem.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Decompression-bomb guard: refuse images above this many pixels before decoding them.
MAX_PIXELS = int(float(os.environ.get("AETOOLS_MAX_PIXELS", 250e6)))
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey band

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif", ".ppm",
     ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k", ".ico", ".pcx", ".sgi", ".im", ".qoi"}
)
SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP", "GIF", "TGA", "ICO", "JPEG2000", "QOI", "SGI"})


class ImageError(Exception):
    """A file that cannot be read or written as an image. str(e) is 'PATH: reason'."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


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


def load_image(path: str | Path) -> ImageData:
    """Read any image Pillow can decode; raises ImageError with a one-line reason."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                data = image_from_pil(img)
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            path, f"image is larger than the {MAX_PIXELS / 1e6:.0f} MP safety limit "
            "(decompression-bomb guard; raise it with AETOOLS_MAX_PIXELS)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(path, f"corrupt or truncated image ({_one_line(e)})") from None
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
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        raw = np.asarray(img).astype(np.float32)
        pixels, bit_depth = np.clip(raw / 65535.0, 0, 1)[..., None], 16
    elif mode == "F":
        raw = np.asarray(img, dtype=np.float32)
        peak = 1.0 if raw.max(initial=0) <= 1.0 else (255.0 if raw.max() <= 255.0 else 65535.0)
        pixels = np.clip(raw / peak, 0, 1)[..., None]
    else:
        if mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        elif mode == "PA":
            img = img.convert("RGBA")
        elif mode in ("1",):
            img = img.convert("L")
        elif mode in ("La",):
            img = img.convert("LA")
        elif mode in ("RGBa",):
            img = img.convert("RGBA")
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
    pixels = np.clip(np.nan_to_num(image.pixels), 0, 1)
    sixteen = image.bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS and image.is_grey and image.alpha is None
    if sixteen:
        return Image.fromarray((pixels[..., 0] * 65535 + 0.5).astype(np.uint16))
    channels = [pixels] if image.alpha is None or fmt not in ALPHA_FORMATS else [pixels, image.alpha[..., None]]
    arr = (np.clip(np.concatenate(channels, axis=2), 0, 1) * 255 + 0.5).astype(np.uint8)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    if mode in ("L", "LA") and fmt == "JPEG" and mode == "LA":
        mode, arr = "L", arr[..., :1]
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode)


def save_image(image: ImageData, path: str | Path, fmt: str | None = None, overwrite: bool = False) -> None:
    """Write atomically (temp file in the same folder, then rename). Format from the extension, else the
    input's. Refuses to replace an existing file unless `overwrite`."""
    path = Path(path)
    fmt = fmt or format_for_path(path, fallback=image.format or "PNG")
    if path.exists() and not overwrite:
        raise ImageError(path, "output exists (use --overwrite to replace it)")
    pil = image_to_pil(image, fmt)
    if fmt == "JPEG" and pil.mode not in ("L", "RGB"):
        pil = pil.convert("RGB")
    options: dict = {}
    if image.icc_profile and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        options["icc_profile"] = image.icc_profile
    if image.exif and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        options["exif"] = image.exif
    if image.dpi and fmt in ("JPEG", "PNG", "TIFF"):
        options["dpi"] = image.dpi
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=95)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        pil.save(tmp, format=fmt, **options)
        os.replace(tmp, path)
    except OSError as e:
        raise ImageError(path, f"cannot write ({_one_line(e)})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
