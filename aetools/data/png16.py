"""16-bit colour and grey+alpha PNG, which Pillow cuts to 8 bits: a small zlib + numpy codec (the row filters are
undone by Pillow's own PNG decoder, lane by lane: `_unfilter`).

    read_png16(path) -> (H, W, C) uint16        encode_png16(arr, icc, exif, dpi) -> the file's bytes

Reading inflates IDAT with at most the bytes its IHDR implies (`expected_bytes`): a file whose compressed
data would inflate to more (a zlib bomb behind a small declared size) is refused, not decompressed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> colour type (grey, grey+alpha, RGB, RGBA)
_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


class PngError(ValueError):
    """A 16-bit PNG this codec cannot decode; the message is the reason."""


def needs_own_decoder(head: bytes) -> bool:
    """From the first 26 bytes: a 16-bit colour or grey+alpha PNG (the kinds Pillow reduces to 8 bits)."""
    return head[:8] == PNG_SIGNATURE and len(head) >= 26 and head[24] == 16 and head[25] in (2, 4, 6)


def _passes(width: int, height: int, interlace: int):
    """(x0, y0, dx, dy, w, h) of each non-empty pass: one for a plain image, Adam7's seven otherwise."""
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):  # each pass is a small image of its own
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            yield x0, y0, dx, dy, w, h


def expected_bytes(width: int, height: int, channels: int, interlace: int) -> int:
    """The inflated size of 16-bit image data: per row of each pass, a filter byte and 2 bytes a sample."""
    return sum(h * (1 + w * 2 * channels) for *_, w, h in _passes(width, height, interlace))


def read_png16(path: Path) -> np.ndarray:
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
    if ihdr is None or ihdr[3] not in _CHANNELS:
        raise PngError("not a 16-bit PNG this reader knows (no IHDR or an unknown colour type)")
    width, height, depth, colour, _, _, interlace = ihdr
    c = _CHANNELS[colour]
    size = expected_bytes(width, height, c, interlace)
    inflater = zlib.decompressobj()
    raw = inflater.decompress(b"".join(idat), size)  # never more than the header implies
    if inflater.unconsumed_tail:
        raise PngError(f"image data inflates past the {size:,} bytes its {width}x{height} header implies")
    if len(raw) < size:
        raise PngError("image data is truncated")
    out, pos = np.empty((height, width, c), np.uint16), 0
    for x0, y0, dx, dy, w, h in _passes(width, height, interlace):
        rows = np.frombuffer(raw, np.uint8, h * (1 + w * 2 * c), pos).reshape(h, -1)
        pos += rows.size
        out[y0::dy, x0::dx] = _unfilter(rows[:, 0], rows[:, 1:].reshape(h, w, 2 * c)).view(">u2")
    return out


def _unfilter(kinds: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Undo the PNG row filters of f, (H, W, bytes per pixel) uint8, one filter type per row, with Pillow's PNG
    decoder (C): Average and Paeth are sequential along a row, so an unfilter in Python takes minutes on one
    long row, and its time would not be bounded by the file's size.

    A filter predicts each byte from the same byte of the pixel to its left, above and above-left; so the 4,
    6 or 8 bytes of a 16-bit pixel split into lanes of 3 or 4 bytes, each an independent 8-bit RGB or RGBA
    image with the same rows' filter types, which Pillow's "zip" decoder (the one its PNG reader uses)
    unfilters exactly. The lanes are handed over as stored (uncompressed) deflate blocks.
    """
    if kinds.max(initial=0) > 4:
        raise PngError(f"unknown row filter type {kinds.max()} (PNG has 0 to 4)")
    h, w, bpp = f.shape
    lane = 3 if bpp % 4 else 4  # 6 bytes: two RGB lanes; 4 or 8: one or two RGBA lanes
    mode = "RGB" if lane == 3 else "RGBA"
    out = np.empty_like(f)
    rows = np.empty((h, 1 + w * lane), np.uint8)  # a filter byte, then the lane's bytes of every pixel
    rows[:, 0] = kinds
    for first in range(0, bpp, lane):
        rows[:, 1:] = f[:, :, first : first + lane].reshape(h, -1)
        try:
            decoded = Image.frombytes(mode, (w, h), zlib.compress(rows, 0), "zip", mode)
        except (ValueError, OSError) as e:
            raise PngError(f"image data cannot be unfiltered ({e})") from None
        out[:, :, first : first + lane] = np.asarray(decoded)
    return out


def encode_png16(arr: np.ndarray, icc: bytes | None, exif: bytes | None, dpi: tuple[float, float] | None) -> bytes:
    """A 16-bit PNG of arr, (H, W, C) uint16: every row 'Up'-filtered (a vectorised byte difference)."""
    h, w, c = arr.shape
    rows = np.ascontiguousarray(arr, dtype=">u2").view(np.uint8).reshape(h, w * 2 * c)
    up = np.diff(rows, axis=0, prepend=np.zeros((1, rows.shape[1]), np.uint8))  # wraps modulo 256
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, _COLOUR_TYPES[c], 0, 0, 0))]
    if icc:
        chunks.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if dpi:
        chunks.append((b"pHYs", struct.pack(">IIB", round(dpi[0] / 0.0254), round(dpi[1] / 0.0254), 1)))
    if exif:
        chunks.append((b"eXIf", exif.removeprefix(b"Exif\0\0")))
    chunks += [(b"IDAT", zlib.compress(np.insert(up, 0, 2, axis=1).tobytes())), (b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)) for kind, body in chunks
    )
