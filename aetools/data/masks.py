"""Hole masks for inpainting: free-form brush strokes and boxes, seeded, at a chosen hole ratio.

Strokes follow the free-form recipe of Yu et al. 2019 (DeepFill v2, "Free-Form Image Inpainting with Gated
Convolution"): a random walk of a few vertices, each segment drawn with a thick round brush. Boxes stand for
the rectangular holes of object removal. Training draws a ratio per mask from a range (10-50%);
`aetools eval inpaint` uses fixed seeds and exact ratios (10, 20, 30%), so every method sees the same holes.

A mask is (H, W) bool, True = missing (to be filled). Users give one as an image (white = fill, see
`mask_from_image`) or as the fully transparent pixels of an image with alpha (`mask_from_alpha`).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

RATIO_TOLERANCE = 0.01  # a mask asked for ratio r covers r ± 1% of the image
MASK_THRESHOLD = 127 / 255  # a mask image's pixels brighter than 127 (of 255) are holes


def _stroke(draw: ImageDraw.ImageDraw, height: int, width: int, scale: float, rng: np.random.Generator) -> None:
    """One free-form stroke: 4-12 segments of a random walk, a round brush of random width."""
    side = min(height, width)
    brush = max(1, int(rng.uniform(0.03, 0.10) * side * scale))
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    angle = rng.uniform(0, 2 * math.pi)
    points = [(x, y)]
    for _ in range(int(rng.integers(4, 13))):
        angle += rng.uniform(-math.pi / 2.5, math.pi / 2.5)  # a bent, not a jagged, walk
        length = rng.uniform(0.05, 0.25) * side * scale
        nx, ny = x + length * math.cos(angle), y + length * math.sin(angle)
        if not 0 <= nx < width:  # bounce off the border rather than slide along it
            angle = math.pi - angle
            nx = x + length * math.cos(angle)
        if not 0 <= ny < height:
            angle = -angle
            ny = y + length * math.sin(angle)
        x, y = float(np.clip(nx, 0, width - 1)), float(np.clip(ny, 0, height - 1))
        points.append((x, y))
    draw.line(points, fill=255, width=brush, joint="curve")
    r = brush / 2
    for px, py in (points[0], points[-1]):  # round caps
        draw.ellipse((px - r, py - r, px + r, py + r), fill=255)


def _box(draw: ImageDraw.ImageDraw, height: int, width: int, scale: float, rng: np.random.Generator) -> None:
    bh = max(1, int(rng.uniform(0.1, 0.4) * height * scale))
    bw = max(1, int(rng.uniform(0.1, 0.4) * width * scale))
    top, left = int(rng.integers(0, max(1, height - bh + 1))), int(rng.integers(0, max(1, width - bw + 1)))
    draw.rectangle((left, top, left + bw - 1, top + bh - 1), fill=255)


def random_mask(
    height: int,
    width: int,
    ratio: float | tuple[float, float],
    rng: np.random.Generator,
    box_probability: float = 0.2,
    attempts: int = 200,
) -> np.ndarray:
    """-> (height, width) bool mask, True = hole, covering `ratio` of the pixels (± RATIO_TOLERANCE), or a
    ratio drawn uniformly from a (low, high) range.

    Shapes are added one at a time; a shape that would overshoot the ratio is redrawn smaller.
    """
    target = float(rng.uniform(*ratio)) if isinstance(ratio, tuple) else float(ratio)
    if not 0.0 <= target < 1.0:
        raise ValueError(f"hole ratio {target}: expected a value in [0, 1)")
    total = height * width
    mask = Image.new("L", (width, height), 0)
    covered = 0.0
    scale = 1.0
    for _ in range(attempts):
        if covered >= target - RATIO_TOLERANCE:
            break
        candidate = mask.copy()
        draw = ImageDraw.Draw(candidate)
        if rng.random() < box_probability:
            _box(draw, height, width, scale, rng)
        else:
            _stroke(draw, height, width, scale, rng)
        ratio_now = np.count_nonzero(np.asarray(candidate)) / total
        if ratio_now <= target + RATIO_TOLERANCE:
            mask, covered = candidate, ratio_now
        else:
            scale *= 0.8  # too big for what is left: smaller shapes from now on
    return np.asarray(mask) > 0


def benchmark_mask(height: int, width: int, ratio: float, index: int, seed: int = 0) -> np.ndarray:
    """The fixed mask of benchmark image number `index` at `ratio`: the same for every method and run."""
    rng = np.random.default_rng([seed, index, round(ratio * 1000)])
    return random_mask(height, width, ratio, rng)


def mask_from_image(pixels: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """A mask image's pixels (H, W, C) in [0, 1] -> (H, W) bool: True where white (> 127 of 255). Colour
    masks are read as grey (ITU-R 601 luma, as Pillow's convert("L")); where the mask image has alpha,
    transparent pixels are no hole (strokes painted on a transparent layer)."""
    grey = pixels[..., 0] if pixels.shape[2] == 1 else pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    mask = grey > MASK_THRESHOLD
    if alpha is not None:
        mask &= alpha > MASK_THRESHOLD
    return mask


def mask_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """An image's alpha (H, W) in [0, 1] -> (H, W) bool: True where fully transparent."""
    return alpha <= 0
