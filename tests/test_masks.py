"""Inpainting masks: the asked-for hole ratio, seeded reproducibility, both shape kinds."""

import numpy as np
import pytest

from aetools.data.masks import RATIO_TOLERANCE, benchmark_mask, random_mask


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.3, 0.5])
@pytest.mark.parametrize("size", [(512, 768), (96, 96), (40, 200)])
def test_mask_covers_the_asked_ratio(ratio, size):
    for index in range(3):
        mask = benchmark_mask(*size, ratio, index)
        assert mask.shape == size and mask.dtype == bool
        assert abs(mask.mean() - ratio) <= RATIO_TOLERANCE + 1e-9, mask.mean()


def test_benchmark_masks_are_fixed_and_differ_between_images_and_ratios():
    a = benchmark_mask(128, 160, 0.2, index=0)
    assert np.array_equal(a, benchmark_mask(128, 160, 0.2, index=0))
    assert not np.array_equal(a, benchmark_mask(128, 160, 0.2, index=1))
    assert not np.array_equal(a, benchmark_mask(128, 160, 0.2, index=0, seed=1))


def test_training_ratio_range_and_shapes():
    rng = np.random.default_rng(0)
    ratios = [random_mask(64, 64, (0.1, 0.5), rng).mean() for _ in range(40)]
    assert min(ratios) >= 0.1 - RATIO_TOLERANCE and max(ratios) <= 0.5 + RATIO_TOLERANCE
    assert np.std(ratios) > 0.05  # a spread of ratios, not one
    boxes_only = random_mask(64, 64, 0.3, np.random.default_rng(1), box_probability=1.0)
    rows = np.flatnonzero(boxes_only.any(axis=1))
    assert boxes_only[rows[0] : rows[0] + 1].sum() > 1  # rectangles: filled rows
    with pytest.raises(ValueError, match="hole ratio"):
        random_mask(8, 8, 1.0, np.random.default_rng(0))
