"""TIFF through tifffile, for what Pillow cannot keep: 16-bit colour, grey+alpha, 16-bit with alpha.

read_tiff(path, check_size) -> TiffPixels | None       write_tiff16(path, arr, icc, dpi)
tiff_writer(path) + write_tiff_page(writer, arr, icc, dpi): a multi-page file written page by page
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TIFF_MAGIC = frozenset({b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"})  # classic and BigTIFF


@dataclass
class TiffPixels:
    """pixels (H, W, C) uint8 or uint16 as stored (orientation not applied), and what to keep of the file."""

    pixels: np.ndarray
    icc: bytes | None
    orientation: int
    dpi: tuple[float, float] | None


def read_tiff(path: Path, check_size: Callable[[int, int], None]) -> TiffPixels | None:
    """First page of a TIFF (8- or 16-bit grey/RGB, +alpha); None for anything else, including compressions
    tifffile needs the optional imagecodecs package for (LZW, JPEG...). check_size(width, height) runs on the
    header, before any pixel is decoded (the bomb guard)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        check_size(page.imagewidth, page.imagelength)
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
    dpi = None if unit not in (2, 3) or not all(res) else tuple(r * (2.54 if unit == 3 else 1.0) for r in res)
    return TiffPixels(arr, icc, orientation, dpi)


def write_tiff16(path: Path, arr: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None) -> None:
    with tiff_writer(path, bigtiff=arr.nbytes > 2**31) as writer:
        write_tiff_page(writer, arr, icc, dpi)


def tiff_writer(path: Path, bigtiff: bool = False):
    """A tifffile.TiffWriter on `path`, to append pages to one at a time (`write_tiff_page`). bigtiff: the file
    may pass 4 GB (decided before the first page)."""
    import tifffile

    return tifffile.TiffWriter(path, bigtiff=bigtiff)


def write_tiff_page(writer, arr: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None) -> None:
    """One page: arr (H, W, C) uint8 or uint16, grey or RGB with an optional last alpha channel, zlib-compressed."""
    c = arr.shape[2]
    writer.write(
        arr,
        photometric="rgb" if c >= 3 else "minisblack",
        planarconfig="contig",
        extrasamples=["unassalpha"] if c in (2, 4) else None,
        compression="zlib",
        resolution=dpi,
        resolutionunit="INCH" if dpi else None,
        iccprofile=icc,
        metadata=None,  # no tifffile JSON description: plain pages
    )
