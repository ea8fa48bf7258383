"""16-bit colour and grey+alpha PNG, which Pillow cuts to 8 bits: a small zlib + numpy codec.

    read_png16(path) -> (H, W, C) uint16        encode_png16(arr, icc, exif, dpi) -> the file's bytes

Reading inflates IDAT with at most the bytes its IHDR implies (`expected_bytes`): a file whose compressed
data would inflate to more (a zlib bomb behind a small declared size) is refused, not decompressed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

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
