"""The one image loader and writer of the project.

Any file Pillow reads becomes an `ImageData`: float32 pixels in [0, 1], (H, W, 1) for grey or (H, W, 3)
for colour, the alpha channel kept aside, and what is needed to write the result back the way it came
(format, bit depth, ICC profile, EXIF, dpi). On the way in: EXIF orientation applied; palette, CMYK,
YCbCr, 1-bit and 16-bit converted; a decompression-bomb guard. On the way out: the input's format and
bit depth unless the output name says otherwise, alpha reattached, written atomically (temp + rename).

Pillow (13) keeps 16 bits only for grey without alpha: it cuts 16-bit colour or grey+alpha PNGs and TIFFs
to 8 bits (and cannot open 16-bit grey+alpha TIFFs at all), so those are read and written here: PNG with a
small zlib + numpy codec, TIFF with tifffile (see the private section at the end).

Every failure is an `ImageError` whose message is one line naming the file and the problem.
"""

from __future__ import annotations

import os
import secrets
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

# Decompression-bomb guard: refuse images above this many pixels before decoding them.
MAX_PIXELS = int(float(os.environ.get("AETOOLS_MAX_PIXELS", 250e6)))
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey band

IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".gif",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
        ".jp2",
        ".j2k",
        ".ico",
        ".pcx",
        ".sgi",
        ".im",
        ".qoi",
    }
)
SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP", "GIF", "TGA", "ICO", "JPEG2000", "QOI", "SGI"})
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
        raise ImageError(path, "not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as e:
        raise ImageError(path, f"corrupt or truncated image ({_one_line(e)})") from None


def _load(path: Path, draft: int | None = None) -> ImageData:
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        data = _load_tiff(path) if _head(path, 4) in _TIFF_MAGIC else None  # e.g. 16-bit grey + alpha
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
        if img.format == "PNG" and _png_needs_own_decoder(path):
            px = _orient(_read_png16(path), orientation).astype(np.float32) / 65535.0
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        if deep is not None and fmt == "PNG":
            tmp.write_bytes(_encode_png16(deep, image.icc_profile, image.exif, image.dpi))
        elif deep is not None:
            _write_tiff16(tmp, deep, image.icc_profile, image.dpi)
        else:
            image_to_pil(image, fmt).save(tmp, format=fmt, **options)
        os.replace(tmp, path)
    except (OSError, ValueError) as e:
        raise ImageError(path, f"cannot write ({_one_line(e)})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:  # without the file name, which may be our temp file
        return e.strerror
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


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


# ------------------------------------------------------- 16-bit colour and grey+alpha (private helpers)

_TIFF_MAGIC = frozenset({b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"})  # classic and BigTIFF
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> colour type (grey, grey+alpha, RGB, RGBA)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
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
    return (np.clip(np.nan_to_num(np.concatenate(channels, axis=2)), 0, 1) * 65535 + 0.5).astype(np.uint16)


def _load_tiff(path: Path) -> ImageData | None:
    """First page of a TIFF through tifffile (8- or 16-bit grey/RGB, +alpha); None for anything else,
    including compressions tifffile needs the optional imagecodecs package for (LZW, JPEG...)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        _check_pixels(path, page.imagewidth, page.imagelength)
        if (
            page.photometric not in (1, 2)
            or page.dtype not in (np.uint8, np.uint16)
            or page.axes not in ("YX", "YXS", "SYX")
            or page.compression not in tifffile.TIFF.DECOMPRESSORS
            or page.predictor not in tifffile.TIFF.UNPREDICTORS
        ):  # MINISBLACK or RGB, decodable here
            return None
        arr = page.asarray()
        tags = page.tags
        icc = tags.valueof("InterColorProfile")
        orientation = tags.valueof("Orientation", 1)
        unit, res = tags.valueof("ResolutionUnit", 2), page.resolution  # 2: inch, 3: cm
    arr = np.moveaxis(arr, 0, -1) if page.axes.startswith("S") else arr.reshape(arr.shape[:2] + (-1,))
    if arr.ndim != 3 or arr.shape[2] > 4:
        return None
    bit_depth = 16 if arr.dtype == np.uint16 else 8
    px = _orient(arr, orientation).astype(np.float32) / (65535.0 if bit_depth == 16 else 255.0)
    c = 3 if px.shape[2] >= 3 else 1
    alpha = np.ascontiguousarray(px[..., c]) if px.shape[2] > c else None
    dpi = None if unit not in (2, 3) or not all(res) else tuple(r * (2.54 if unit == 3 else 1.0) for r in res)
    return ImageData(np.ascontiguousarray(px[..., :c]), alpha, bit_depth, "TIFF", icc, None, dpi)


def _write_tiff16(path: Path, arr: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None) -> None:
    import tifffile

    c = arr.shape[2]
    tifffile.imwrite(
        path,
        arr,
        photometric="rgb" if c >= 3 else "minisblack",
        planarconfig="contig",
        extrasamples=["unassalpha"] if c in (2, 4) else None,
        compression="zlib",
        resolution=dpi,
        resolutionunit="INCH" if dpi else None,
        iccprofile=icc,
    )


def _png_needs_own_decoder(path: Path) -> bool:
    head = _head(path, 26)  # signature, IHDR length + type, width, height, bit depth, colour type
    return head[:8] == _PNG_SIGNATURE and head[24] == 16 and head[25] in (2, 4, 6)


def _read_png16(path: Path) -> np.ndarray:
    """(H, W, C) uint16 pixels of a 16-bit PNG, from its IHDR and IDAT chunks (interlaced or not)."""
    data, pos, ihdr, idat = path.read_bytes(), 8, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", data[pos + 8 : pos + 21])
        elif kind == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length  # length, type, data, CRC
    width, height, depth, colour, _, _, interlace = ihdr
    c = {0: 1, 4: 2, 2: 3, 6: 4}[colour]
    raw, pos = zlib.decompress(b"".join(idat)), 0
    out = np.empty((height, width, c), np.uint16)
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):  # each pass is a small image of its own
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w <= 0 or h <= 0:
            continue
        rows = np.frombuffer(raw, np.uint8, h * (1 + w * 2 * c), pos).reshape(h, -1)
        pos += rows.size
        out[y0::dy, x0::dx] = _unfilter(rows[:, 0], rows[:, 1:].reshape(h, w, 2 * c)).view(">u2")
    return out


def _unfilter(kinds: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Undo the PNG row filters of f, (H, W, bytes per pixel) uint8, one filter type per row.

    A pixel is predicted from its left (a), upper (b) and upper-left (c) neighbours once they are
    decoded, so the pixels are decoded one anti-diagonal x + y = t at a time: H + W steps, each
    vectorised over the diagonal. r is the output padded with a zero row on top and a zero column on the
    left, so that r[y + 1, x + 1] is pixel (y, x) and the neighbours outside the image read as 0.
    """
    if kinds.max(initial=0) <= 2:  # only None/Sub/Up rows (as we write them): a vectorised step per row
        out, prev = np.empty_like(f), np.zeros_like(f[0])
        for y, k in enumerate(kinds):  # uint8 sums wrap modulo 256, as PNG wants
            out[y] = prev = f[y] + prev if k == 2 else np.cumsum(f[y], axis=0, dtype=np.uint8) if k == 1 else f[y]
        return out
    h, w, _ = f.shape
    r = np.zeros((h + 1, w + 1, f.shape[2]), np.int16)
    kinds = kinds.astype(np.int16)[:, None]
    for t in range(h + w - 1):
        y = np.arange(max(0, t - w + 1), min(h, t + 1))  # the rows that have a pixel on this diagonal
        x = t - y
        a, b, c = r[y + 1, x], r[y, x + 1], r[y, x]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        k = kinds[y]
        pred = np.select([k == 1, k == 2, k == 3, k == 4], [a, b, (a + b) >> 1, paeth], 0)
        r[y + 1, x + 1] = (f[y, x] + pred) & 255
    return r[1:, 1:].astype(np.uint8)


def _encode_png16(arr: np.ndarray, icc: bytes | None, exif: bytes | None, dpi: tuple[float, float] | None) -> bytes:
    """A 16-bit PNG of arr, (H, W, C) uint16: every row 'Up'-filtered (a vectorised byte difference)."""
    h, w, c = arr.shape
    rows = arr.astype(">u2").view(np.uint8).reshape(h, w * 2 * c)
    up = np.diff(rows, axis=0, prepend=np.zeros((1, rows.shape[1]), np.uint8))  # wraps modulo 256
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, _PNG_COLOUR_TYPES[c], 0, 0, 0))]
    if icc:
        chunks.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if dpi:
        chunks.append((b"pHYs", struct.pack(">IIB", round(dpi[0] / 0.0254), round(dpi[1] / 0.0254), 1)))
    if exif:
        chunks.append((b"eXIf", exif.removeprefix(b"Exif\0\0")))
    chunks += [(b"IDAT", zlib.compress(np.insert(up, 0, 2, axis=1).tobytes())), (b"IEND", b"")]
    return _PNG_SIGNATURE + b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)) for kind, body in chunks
    )
