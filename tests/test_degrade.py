"""The practical degradation model (aetools.data.degrade): each noise at a known strength measured back, the
camera round trip, JPEG's block artefacts, and the seeded random pipeline the `denoise` task trains on."""

import numpy as np
import pytest
import torch

from aetools.data import degrade as d
from tests.conftest import photo


@pytest.fixture(scope="module")
def astronaut():
    return photo(128, "astronaut").astype(np.float64) / 255


def flat(value=0.5, side=128):
    return np.full((side, side, 3), value)


def gradient(side=128):
    """A smooth colour image with little saturation: every camera step is invertible on it."""
    y, x = np.mgrid[0:side, 0:side] / side
    return np.stack([0.2 + 0.5 * x, 0.25 + 0.4 * y, 0.3 + 0.3 * (x + y) / 2], axis=-1)


def test_the_pipeline_is_seeded_and_keeps_shape_and_range(astronaut):
    a = d.degrade_for_real_denoise(astronaut, np.random.default_rng(3))
    b = d.degrade_for_real_denoise(astronaut, np.random.default_rng(3))
    c = d.degrade_for_real_denoise(astronaut, np.random.default_rng(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == astronaut.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-4)  # 8-bit values, as a file holds
    odd = d.degrade_for_real_denoise(astronaut[:37, :51], np.random.default_rng(0))
    assert odd.shape == (37, 51, 3)


def test_the_pipeline_draws_varied_strengths():
    image = gradient()
    errors = [np.std(d.degrade_for_real_denoise(image, np.random.default_rng(s)) - image) * 255 for s in range(16)]
    assert min(errors) < 5 and max(errors) > 20, errors  # from nearly clean to heavy noise


@pytest.mark.parametrize("mode", ["colour", "grey"])
def test_gaussian_sigma_is_measured_back(mode):
    noisy = d.add_gaussian_noise(flat(), np.random.default_rng(0), 20.0, mode)
    assert abs(np.std(noisy - 0.5) * 255 - 20.0) < 2.0
    noise = (noisy - 0.5).reshape(-1, 3)
    correlation = np.corrcoef(noise.T)[0, 1]
    assert correlation > 0.99 if mode == "grey" else abs(correlation) < 0.05


def test_correlated_gaussian_has_a_random_channel_covariance():
    noise = d.add_gaussian_noise(flat(), np.random.default_rng(1), 30.0, "correlated") - 0.5
    cov = np.cov(noise.reshape(-1, 3).T) * 255**2
    assert np.all(np.diag(cov) <= 30.0**2 * 1.1)  # each channel at most sigma (D in [0, 1))
    off = cov[~np.eye(3, dtype=bool)]
    assert np.max(np.abs(off)) > 0.1 * np.max(np.diag(cov))  # channels correlated


def test_poisson_variance_is_signal_over_peak():
    for value in (0.2, 0.8):
        noisy = d.add_poisson_noise(flat(value), np.random.default_rng(0), peak=1000.0)
        expected = np.sqrt(value / 1000.0)
        assert abs(np.std(noisy - value) - expected) < 0.1 * expected


def test_speckle_scales_with_the_signal():
    dark = np.std(d.add_speckle_noise(flat(0.2), np.random.default_rng(0), 20.0) - 0.2) * 255
    bright = np.std(d.add_speckle_noise(flat(0.8), np.random.default_rng(0), 20.0) - 0.8) * 255
    assert abs(dark - 0.2 * 20) < 0.4 and abs(bright - 0.8 * 20) < 1.6


def test_unprocess_then_process_round_trips():
    image = gradient()
    rng = np.random.default_rng(0)
    ccm, gains = d.random_ccm(rng), d.random_gains(rng)
    assert np.allclose(ccm.sum(axis=1), 1.0)
    back = d.process(d.unprocess(image, ccm, gains), ccm, gains)
    assert np.max(np.abs(back - image)) < 1e-6
    # without noise the whole camera path (mosaic, demosaic of the noise) gives the photo back
    same = d.add_camera_noise(image, rng, shot=0.0, read=0.0, rgb_to_cam=ccm, gains=gains)
    assert np.max(np.abs(same - image)) < 1e-6


def test_demosaic_keeps_the_samples_and_fills_a_flat_image():
    image = flat(0.4)
    bayer = d.mosaic_rggb(image * np.array([1.0, 0.5, 0.25]))
    out = d.demosaic_bilinear(bayer)
    assert np.allclose(out, 0.4 * np.array([1.0, 0.5, 0.25]))


def test_camera_noise_grows_with_the_level_and_is_spatially_correlated():
    image, stds = gradient(), []
    for shot in (1e-4, 1e-3, 1e-2):
        read = float(np.exp(2.18 * np.log(shot) + 1.20))
        noisy = d.add_camera_noise(image, np.random.default_rng(0), shot, read)
        stds.append(np.std(noisy - image) * 255)
    assert stds[0] < stds[1] < stds[2] and stds[2] > 10, stds
    noise = (noisy - image)[..., 1]
    neighbours = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
    white = d.add_gaussian_noise(image, np.random.default_rng(0), 20.0)[..., 1] - image[..., 1]
    white_neighbours = np.corrcoef(white[:, :-1].ravel(), white[:, 1:].ravel())[0, 1]
    assert neighbours > 0.2 > abs(white_neighbours), (neighbours, white_neighbours)  # demosaic spreads noise


def blockiness(image):
    """Mean jump between columns across 8x8 block edges over the mean jump inside blocks (1 without blocks)."""
    jumps = np.abs(np.diff(image.mean(axis=2), axis=1)).mean(axis=0)  # jump between column j and j+1
    edges = np.arange(len(jumps)) % 8 == 7
    return jumps[edges].mean() / jumps[~edges].mean()


def test_jpeg_leaves_measurable_8x8_blocks():
    noisy = d.add_gaussian_noise(gradient(), np.random.default_rng(0), 15.0)
    assert abs(blockiness(noisy) - 1.0) < 0.05
    assert blockiness(d.jpeg_compress(noisy, 30)) > 1.2


def test_resizing_down_and_up_keeps_the_size_and_softens_noise():
    noisy = d.add_gaussian_noise(flat(), np.random.default_rng(0), 20.0)
    out = d.resize_down_up(noisy, 0.5)
    assert out.shape == noisy.shape
    assert np.std(out - 0.5) < 0.7 * np.std(noisy - 0.5)


def test_the_denoise_task_trains_on_real_noise_by_option():
    from aetools.tasks import get_task
    from aetools.tasks.denoise import RealNoiseDegradation

    task = get_task("denoise")
    options, degrade, val_degrade = task.degradations({"degradation": "real"})
    assert isinstance(degrade, RealNoiseDegradation) and val_degrade.gaussian_share == 0.0
    clean = torch.from_numpy(np.stack([gradient(64)] * 8)).permute(0, 3, 1, 2).float()
    batch = degrade(clean, torch.Generator().manual_seed(0))
    again = degrade(clean, torch.Generator().manual_seed(0))
    assert torch.equal(batch.inputs["noisy"], again.inputs["noisy"])
    assert batch.inputs["noisy"].shape == clean.shape
    grey = clean.mean(dim=1, keepdim=True).expand_as(clean)  # the Gaussian recipe makes a tenth grey
    assert all(torch.equal(t, c) or torch.equal(t, g) for t, c, g in zip(batch.target, clean, grey))
    assert not torch.equal(batch.inputs["noisy"], batch.target)
    val = val_degrade(clean, torch.Generator().manual_seed(0))
    assert torch.all(val.inputs["sigma"] == -1.0)  # real noise: always blind
    assert torch.all(val.inputs["noisy"] * 255 == torch.round(val.inputs["noisy"] * 255))
    with pytest.raises(ValueError, match="degradation"):
        task.degradations({"degradation": "poisson"})
    with pytest.raises(ValueError, match="gaussian_share"):
        task.degradations({"degradation": "real", "gaussian_share": 2})
