"""Edits that leave "the same photo": what near-duplicate search has to see through.

Each edit is a plain function on a PIL RGB image. The hashing benchmark applies them with fixed settings
(`BENCHMARK_EDITS`, one query per edit); training applies random compositions of the same functions
(`random_edit`), so what the model is taught and what it is scored on are one code path.

Photometric edits change pixel values in place (JPEG, resize, blur, colour, grey, text overlay); geometric
ones move content (crop, pad, rotation, flip), which is where perceptual hashes of the whole frame fail.
"""

from __future__ import annotations

import io
import string
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def rescale(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    return image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BICUBIC)


def blur(image: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur, sigma in pixels (Pillow's GaussianBlur radius is the standard deviation)."""
    return image.filter(ImageFilter.GaussianBlur(sigma))


def adjust(image: Image.Image, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0) -> Image.Image:
    """Factors of 1 leave the image as it is (PIL.ImageEnhance)."""
    image = ImageEnhance.Brightness(image).enhance(brightness)
    image = ImageEnhance.Contrast(image).enhance(contrast)
    return ImageEnhance.Color(image).enhance(saturation)


def grey(image: Image.Image) -> Image.Image:
    return image.convert("L").convert("RGB")


def crop(image: Image.Image, keep: float, x: float = 0.5, y: float = 0.5, keep_y: float | None = None) -> Image.Image:
    """Keep `keep` of the width and `keep_y` (default: `keep`) of the height; (x, y) in [0, 1] place the kept
    window from left/top (0) to right/bottom (1)."""
    w, h = image.size
    cw, ch = max(1, round(w * keep)), max(1, round(h * (keep if keep_y is None else keep_y)))
    left, top = round((w - cw) * x), round((h - ch) * y)
    return image.crop((left, top, left + cw, top + ch))


def pad(image: Image.Image, fraction: float, fill: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Add a border of `fraction` of each side in total (half on each edge)."""
    w, h = image.size
    bx, by = round(w * fraction / 2), round(h * fraction / 2)
    return ImageOps.expand(image, (bx, by, bx, by), fill=fill)


def rotate(image: Image.Image, degrees: float, fill: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Rotate about the centre, counter-clockwise, same frame size; corners filled with `fill`."""
    return image.rotate(degrees, Image.BICUBIC, expand=False, fillcolor=fill)


def rotate90(image: Image.Image, turns: int = 1) -> Image.Image:
    return image.rotate(90 * turns, expand=True)


def hflip(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size)  # Pillow's bundled scalable font: no font files needed


def overlay_text(
    image: Image.Image,
    text: str,
    height: float = 0.08,
    x: float = 0.05,
    y: float = 0.85,
    colour: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Write `text` at relative position (x, y) (its top-left), letters `height` of the image height tall,
    with a dark outline, as a caption or watermark would be."""
    out = image.copy()
    w, h = out.size
    size = max(6, round(h * height))
    ImageDraw.Draw(out).text(
        (round(w * x), round(h * y)),
        text,
        fill=colour,
        font=_font(size),
        stroke_width=max(1, size // 12),
        stroke_fill=(0, 0, 0),
    )
    return out


# The benchmark's queries (issue 6): one fixed edit each, and whether it moves content.
BENCHMARK_EDITS: dict[str, tuple[Callable[[Image.Image], Image.Image], str]] = {
    "JPEG q30": (lambda im: jpeg(im, 30), "photometric"),
    "resize 0.5": (lambda im: rescale(im, 0.5), "photometric"),
    "blur σ2": (lambda im: blur(im, 2.0), "photometric"),
    "bright/contrast": (lambda im: adjust(im, brightness=1.25, contrast=0.75), "photometric"),
    "grey": (grey, "photometric"),
    "text overlay": (lambda im: overlay_text(im, "Holiday 2026 (c) aetools"), "photometric"),
    "crop 10%": (lambda im: crop(im, 0.9), "geometric"),
    "crop 25%": (lambda im: crop(im, 0.75), "geometric"),
    "pad 10%": (lambda im: pad(im, 0.1), "geometric"),
    "rotate 5°": (lambda im: rotate(im, 5), "geometric"),
    "rotate 90°": (lambda im: rotate90(im), "geometric"),
    "flip": (hflip, "geometric"),
}


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    if rng.random() < 0.5:
        return (0, 0, 0) if rng.random() < 0.7 else (255, 255, 255)
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def random_edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random composition of the edits above, for training codes that see through them. Quarter turns
    are left out: search tries the query's 8 orientations instead (`aetools.index.encode`)."""
    if rng.random() < 0.5:
        image = crop(image, rng.uniform(0.6, 0.95), rng.random(), rng.random(), keep_y=rng.uniform(0.6, 0.95))
    if rng.random() < 0.25:
        image = pad(image, rng.uniform(0.04, 0.25), _random_colour(rng))
    if rng.random() < 0.3:
        image = rotate(image, rng.uniform(-12, 12), _random_colour(rng))
    if rng.random() < 0.5:
        image = hflip(image)
    if rng.random() < 0.5:
        image = adjust(image, rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0.3, 1.6))
    if rng.random() < 0.15:
        image = grey(image)
    if rng.random() < 0.3:
        image = blur(image, rng.uniform(0.5, 3.0) * max(image.size) / 512)
    if rng.random() < 0.3:
        letters = string.ascii_letters + string.digits + "  ()-."
        text = "".join(rng.choice(list(letters), int(rng.integers(4, 24))))
        image = overlay_text(
            image, text, rng.uniform(0.04, 0.14), rng.uniform(0, 0.6), rng.uniform(0, 0.9), _random_colour(rng)
        )
    if rng.random() < 0.3:
        image = rescale(image, rng.uniform(0.3, 0.9))
    if rng.random() < 0.4:
        image = jpeg(image, int(rng.integers(15, 90)))
    return image
