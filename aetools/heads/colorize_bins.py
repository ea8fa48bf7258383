"""The quantised ab space of colorization (Zhang, Isola & Efros 2016, "Colorful Image Colorization", sec. 2.1)
and the empirical colour prior that rebalances the classes.

ab is cut into a grid of 10x10 cells; the classes are the cells that some sRGB colour falls in (rounded to
the nearest cell centre). Zhang et al. count 313 such cells with their convex-hull construction; occupancy
of the sRGB gamut, computed here with skimage, gives 262: the same grid without the cells outside the gamut.

The prior p(q) is how often each class occurs in natural photos. Measured once on the training photos
(`python -m aetools.heads.colorize_bins PHOTO_DIR` rewrites `colorize_prior.json`); the model stores the
bin centres in its weights, so inference needs neither.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

GRID = 10.0  # ab cell size
PRIOR_FILE = Path(__file__).with_name("colorize_prior.json")


def gamut_bins(grid: float = GRID, samples: int = 64) -> np.ndarray:
    """-> (Q, 2) float32 ab centres of the grid cells that contain at least one sRGB colour, sorted."""
    from skimage import color

    g = np.linspace(0.0, 1.0, samples)
    rgb = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    ab = color.rgb2lab(rgb).reshape(-1, 3)[:, 1:]
    cells = np.unique(np.round(ab / grid).astype(int), axis=0)
    return (cells * grid).astype(np.float32)


def nearest_bin(ab: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """ab (N, 2) -> (N,) index of the nearest bin centre."""
    d2 = ((ab[:, None, :] - bins[None, :, :]) ** 2).sum(-1)
    return d2.argmin(axis=1)


def measure_prior(files: list[Path], bins: np.ndarray, pixels_per_image: int = 4000, seed: int = 0) -> np.ndarray:
    """Class frequencies over `pixels_per_image` random pixels of each photo -> (Q,) summing to 1."""
    from skimage import color

    from aetools.data.io import ImageError, load_image

    rng = np.random.default_rng(seed)
    counts = np.zeros(len(bins))
    for path in files:
        try:
            pixels = load_image(path).pixels
        except ImageError:
            continue
        if pixels.shape[2] != 3:
            continue
        flat = pixels.reshape(-1, 3)
        pick = flat[rng.integers(0, len(flat), min(pixels_per_image, len(flat)))]
        ab = color.rgb2lab(pick[:, None, :]).reshape(-1, 3)[:, 1:]
        counts += np.bincount(nearest_bin(ab, bins), minlength=len(bins))
    return counts / counts.sum()


@lru_cache(maxsize=1)
def load_prior() -> tuple[np.ndarray, np.ndarray]:
    """-> (bins (Q, 2), prior (Q,)) as shipped in colorize_prior.json."""
    data = json.loads(PRIOR_FILE.read_text())
    return np.asarray(data["bins"], dtype=np.float32), np.asarray(data["prior"], dtype=np.float64)


def rebalancing_weights(prior: np.ndarray, bins: np.ndarray, mix: float = 0.5, sigma: float = 5.0) -> np.ndarray:
    """Zhang et al. eq. 4: w ∝ ((1 - λ) p̃ + λ / Q)^-1 with p̃ the prior smoothed by a Gaussian (σ = 5 in
    ab units) and E_p̃[w] = 1. Rare, saturated colours get up to ~1/(λ/Q) times the weight of greys,
    which is what stops the network from settling on desaturated, brownish averages."""
    d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * sigma**2))
    smoothed = kernel @ prior
    smoothed /= smoothed.sum()
    weights = 1.0 / ((1 - mix) * smoothed + mix / len(prior))
    return weights / (smoothed * weights).sum()


def main(argv: list[str]) -> None:
    from aetools.data.datasets import list_images

    files = list_images(argv)
    bins = gamut_bins()
    prior = measure_prior(files, bins)
    PRIOR_FILE.write_text(
        json.dumps(
            {
                "about": "ab bins (10x10 cells occupied by sRGB colours) and their frequencies in the training "
                f"photos ({len(files)} images, 4000 random pixels each); made by aetools.heads.colorize_bins",
                "grid": GRID,
                "bins": bins.astype(int).tolist(),
                "prior": [round(float(p), 8) for p in prior],
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
