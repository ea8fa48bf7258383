"""The classic hint-propagation baseline: Levin, Lischinski & Weiss 2004, "Colorization using Optimization".
Benchmark-only (`aetools eval colorize`); the runtime never imports it.

Neighbouring pixels of similar lightness should have similar colour. For each pixel r with neighbours s in
its 3x3 window, the colour U (a, then b, solved separately) should be a weighted average of theirs:

    U(r) = sum_s w_rs U(s),   w_rs ∝ exp(-(Y(r) - Y(s))² / σ_r²),   sum_s w_rs = 1

with σ_r² taken from the lightness variance in the window (0.6 times it, as the authors' code; at least
enough that the most similar neighbour keeps weight 0.01, and at least 2e-6). Pixels given a hint keep its
colour. That is one sparse linear system A U = b per channel, with the same A for a and b: factorised once
(scipy's SuperLU) and solved twice. Y here is CIE L / 100 (the paper used YUV's Y; the propagation is the
same), and the hints' colours are CIE ab, as our models take them.
"""

from __future__ import annotations

import numpy as np

from aetools.tasks.colorize import Hints

MIN_SIGMA2 = 2e-6  # the authors' floor on the window's variance
SIGMA_SHARE = 0.6  # σ² = 0.6 * the window's variance (their code)
NEAREST_WEIGHT = 0.01  # the most similar neighbour keeps at least this unnormalised weight


def levin_affinities(lightness: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CIE L (H, W) in [0, 100] -> (rows, cols, weights) of the sparse matrix W (H*W, H*W): row r holds
    w_rs for the (up to 8) neighbours s of pixel r, summing to 1 over the row."""
    y = np.asarray(lightness, dtype=np.float64) / 100.0
    h, w = y.shape
    index = np.arange(h * w).reshape(h, w)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    padded = np.pad(y, 1, mode="edge")
    padded_index = np.pad(index, 1, mode="constant", constant_values=-1)  # -1: outside the image
    values = np.stack([padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])  # (8, H, W)
    neighbours = np.stack([padded_index[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    inside = neighbours >= 0
    # the window's variance, the centre included, over the pixels inside the image
    count = inside.sum(axis=0) + 1
    mean = (np.where(inside, values, 0).sum(axis=0) + y) / count
    variance = (np.where(inside, (values - mean) ** 2, 0).sum(axis=0) + (y - mean) ** 2) / count
    d2 = np.where(inside, (values - y) ** 2, np.inf)
    sigma2 = np.maximum(SIGMA_SHARE * variance, -d2.min(axis=0) / np.log(NEAREST_WEIGHT))
    sigma2 = np.maximum(sigma2, MIN_SIGMA2)
    weights = np.where(inside, np.exp(-np.where(inside, d2, 0) / sigma2), 0.0)
    weights /= weights.sum(axis=0)
    rows = np.broadcast_to(index, weights.shape)
    return rows[inside], neighbours[inside], weights[inside]


def levin_colorize(lightness: np.ndarray, hints: Hints) -> np.ndarray:
    """CIE L (H, W) and colour hints -> ab (H, W, 2) float32: the hints propagated by Levin et al.'s
    optimisation. Hint pixels keep their hint's ab (several hints on one pixel: their mean); without any
    hint there is nothing to propagate and ab is 0 (grey)."""
    from scipy import sparse
    from scipy.sparse.linalg import splu

    h, w = lightness.shape
    n = h * w
    if len(hints) == 0:
        return np.zeros((h, w, 2), np.float32)
    flat = np.asarray(hints.rows) * w + np.asarray(hints.cols)
    count = np.bincount(flat, minlength=n)
    given = count > 0
    rhs = np.zeros((n, 2))
    for c in range(2):
        rhs[given, c] = np.bincount(flat, weights=hints.ab[:, c], minlength=n)[given] / count[given]
    rows, cols, weights = levin_affinities(lightness)
    free = ~given[rows]  # hint pixels' rows are U(r) = hint: no neighbour terms
    a = sparse.csc_matrix(
        (
            np.concatenate([np.ones(n), -weights[free]]),
            (np.concatenate([np.arange(n), rows[free]]), np.concatenate([np.arange(n), cols[free]])),
        ),
        shape=(n, n),
    )
    solution = splu(a).solve(rhs)  # (n, 2): a and b
    return solution.reshape(h, w, 2).astype(np.float32)
