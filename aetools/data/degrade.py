"""The practical degradation model: clean photo -> the noise a user's photo carries, for training `denoise-real`.

    degrade_for_real_denoise(clean (H, W, 3) float in [0, 1], rng) -> noisy (H, W, 3) float32 in [0, 1]

After Zhang et al., "Practical Blind Image Denoising via Swin-Conv-UNet and Data Synthesis" (SCUNet, 2023)
and "Designing a Practical Degradation Model for Deep Blind Image Super-Resolution" (BSRGAN, 2021): several
kinds of noise, each applied with some probability and a random strength, in a random order, then JPEG. The
camera noise follows Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019): the sRGB
photo is taken back to a plausible raw Bayer image (inverse tone curve, inverse gamma, inverse colour matrix,
inverse white balance, mosaic), given shot and read noise there, and developed again (bilinear demosaic of
the noise, gains, colour matrix, gamma, tone curve): the noise comes out signal-dependent, colour-correlated
and spatially correlated by the demosaic, as a camera's is.

Each step is a small function of (image, rng, strength...) so a test can apply it alone at a known strength;
`degrade_for_real_denoise` draws the strengths and the order. Everything is numpy on one image, seeded by
the caller's `np.random.Generator` only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from aetools.data.augment import jpeg

# ------------------------------------------------------------------ additive and multiplicative noise

NOISE_MODES = ("colour", "grey", "correlated")


def _noise_field(shape: tuple[int, ...], rng: np.random.Generator, sigma: float, mode: str) -> np.ndarray:
    """(H, W, 3) zero-mean Gaussian noise of standard deviation `sigma` (0-1 scale).

    colour: independent per channel; grey: one value per pixel in all three channels (luminance noise);
    correlated: a random 3x3 covariance between the channels, SCUNet/BSRGAN's `L^2 U^T D U` with U a random
    orthogonal matrix and D a random diagonal in [0, 1) (so each channel's deviation is at most `sigma`).
    """
    h, w = shape[:2]
    if mode == "colour":
        return rng.normal(0.0, sigma, (h, w, 3))
    if mode == "grey":
        return np.repeat(rng.normal(0.0, sigma, (h, w, 1)), 3, axis=2)
    if mode == "correlated":
        u, _ = np.linalg.qr(rng.random((3, 3)))  # an orthogonal basis of a random matrix (scipy's orth)
        d = rng.random(3)
        # z (N(0, I)) @ sqrt(D) U has covariance U^T D U: a random colour correlation, scaled by sigma^2.
        mix = np.sqrt(d)[:, None] * u
        return (rng.normal(0.0, 1.0, (h * w, 3)) @ mix).reshape(h, w, 3) * sigma
    raise ValueError(f"noise mode {mode!r}: choose from {', '.join(NOISE_MODES)}")


def add_gaussian_noise(image: np.ndarray, rng: np.random.Generator, sigma: float, mode: str = "colour") -> np.ndarray:
    """Additive white Gaussian noise, sigma on the 0-255 scale (SCUNet: 0-50; BSRGAN: 2-25)."""
    return image + _noise_field(image.shape, rng, sigma / 255.0, mode)


def add_speckle_noise(image: np.ndarray, rng: np.random.Generator, sigma: float, mode: str = "colour") -> np.ndarray:
    """Multiplicative noise, x + x * n (BSRGAN's speckle): stronger in the highlights, none in black."""
    return image + np.clip(image, 0.0, 1.0) * _noise_field(image.shape, rng, sigma / 255.0, mode)


def add_poisson_noise(image: np.ndarray, rng: np.random.Generator, peak: float, grey: bool = False) -> np.ndarray:
    """Photon (shot) noise: Poisson(x * peak) / peak, so the variance is x / peak (BSRGAN: peak 10^2-10^4,
    log-uniform). grey: the noise of the luminance (BT.601), added to the three channels alike."""
    x = np.clip(image, 0.0, 1.0)
    if not grey:
        return rng.poisson(x * peak) / peak
    luma = x @ np.array([0.299, 0.587, 0.114])
    return x + (rng.poisson(luma * peak) / peak - luma)[..., None]


# ------------------------------------------------------------------ camera noise by unprocessing (Brooks et al.)

# XYZ -> camera colour matrices of four cameras, as published with "Unprocessing" (google-research/unprocessing).
XYZ_TO_CAMS = np.array(
    [
        [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
        [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
        [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
        [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
    ]
)
SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)


def random_ccm(rng: np.random.Generator) -> np.ndarray:
    """A random sRGB -> camera matrix: a random convex mix of the four cameras' XYZ -> camera matrices, times
    sRGB -> XYZ, each row normalised to sum 1 (so grey stays grey before white balance)."""
    weights = rng.uniform(1e-8, 1e8, len(XYZ_TO_CAMS))
    xyz_to_cam = np.tensordot(weights / weights.sum(), XYZ_TO_CAMS, axes=1)
    rgb_to_cam = xyz_to_cam @ SRGB_TO_XYZ
    return rgb_to_cam / rgb_to_cam.sum(axis=1, keepdims=True)


def random_gains(rng: np.random.Generator) -> tuple[float, float, float]:
    """(brightening gain, red gain, blue gain), Brooks et al.'s distributions: 1 / N(0.8, 0.1), U(1.9, 2.4),
    U(1.5, 1.9)."""
    return 1.0 / rng.normal(0.8, 0.1), rng.uniform(1.9, 2.4), rng.uniform(1.5, 1.9)


def random_noise_levels(rng: np.random.Generator) -> tuple[float, float]:
    """(shot, read) of a raw image in [0, 1]: log(shot) uniform on [log 1e-4, log 0.012], log(read) on the
    line 2.18 log(shot) + 1.20 fitted to real cameras, plus N(0, 0.26) (Brooks et al., section 3.2)."""
    log_shot = rng.uniform(np.log(1e-4), np.log(0.012))
    log_read = 2.18 * log_shot + 1.20 + rng.normal(0.0, 0.26)
    return float(np.exp(log_shot)), float(np.exp(log_read))


def inverse_smoothstep(x: np.ndarray) -> np.ndarray:
    """The inverse of the global tone curve 3x^2 - 2x^3."""
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * np.clip(x, 0.0, 1.0)) / 3.0)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 3.0 * x**2 - 2.0 * x**3


def gamma_expansion(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 1e-8) ** 2.2


def gamma_compression(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 1e-8) ** (1.0 / 2.2)


def safe_invert_gains(x: np.ndarray, rgb_gain: float, red_gain: float, blue_gain: float) -> np.ndarray:
    """Undo white balance and brightening; near white the gains fade to 1 so highlights stay saturated
    instead of turning grey (Brooks et al.'s mask, inflection at 0.9)."""
    gains = np.array([1.0 / red_gain, 1.0, 1.0 / blue_gain]) / rgb_gain
    grey = x.mean(axis=-1, keepdims=True)
    mask = (np.maximum(grey - 0.9, 0.0) / 0.1) ** 2
    return x * np.maximum(mask + (1.0 - mask) * gains, gains)


def mosaic_rggb(x: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) Bayer image, RGGB: R at (even, even), G at (even, odd) and (odd, even), B at
    (odd, odd). H and W even."""
    bayer = x[..., 1].copy()
    bayer[0::2, 0::2] = x[0::2, 0::2, 0]
    bayer[1::2, 1::2] = x[1::2, 1::2, 2]
    return bayer


def _bayer_masks(h: int, w: int) -> np.ndarray:
    """(H, W, 3) 0/1 masks of where each colour was sampled in an RGGB mosaic."""
    masks = np.zeros((h, w, 3))
    masks[0::2, 0::2, 0] = 1
    masks[0::2, 1::2, 1] = masks[1::2, 0::2, 1] = 1
    masks[1::2, 1::2, 2] = 1
    return masks


_BILINEAR_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4.0  # fills R and B from 2 or 4 neighbours
_BILINEAR_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4.0  # fills G from its 4 neighbours


def _convolve3x3(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # Reflection without repeating the edge keeps the Bayer parity at the border (pixel -1 mirrors pixel 1).
    padded = np.pad(plane, 1, mode="reflect")
    h, w = plane.shape
    return sum(kernel[i, j] * padded[i : i + h, j : j + w] for i in range(3) for j in range(3) if kernel[i, j])


def demosaic_bilinear(bayer: np.ndarray) -> np.ndarray:
    """(H, W) RGGB Bayer -> (H, W, 3) by bilinear interpolation (each missing sample the mean of its nearest
    same-colour neighbours; sampled values kept)."""
    masks = _bayer_masks(*bayer.shape)
    kernels = (_BILINEAR_RB, _BILINEAR_G, _BILINEAR_RB)
    return np.stack([_convolve3x3(bayer * masks[..., c], kernels[c]) for c in range(3)], axis=-1)


def add_shot_read_noise(raw: np.ndarray, rng: np.random.Generator, shot: float, read: float) -> np.ndarray:
    """Heteroscedastic Gaussian noise of variance shot * x + read on a linear raw image (Brooks et al. eq. 4)."""
    variance = np.clip(raw, 0.0, None) * shot + read
    return raw + rng.normal(0.0, 1.0, raw.shape) * np.sqrt(variance)


def unprocess(image: np.ndarray, rgb_to_cam: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """sRGB (H, W, 3) in [0, 1] -> linear camera RGB before white balance, in [0, 1] (not yet mosaicked)."""
    x = gamma_expansion(inverse_smoothstep(image))
    x = x @ rgb_to_cam.T
    return np.clip(safe_invert_gains(x, *gains), 0.0, 1.0)


def process(raw_rgb: np.ndarray, rgb_to_cam: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Linear camera RGB (H, W, 3) -> sRGB: white balance and brightening, colour matrix, gamma, tone curve."""
    rgb_gain, red_gain, blue_gain = gains
    x = np.clip(raw_rgb * (np.array([red_gain, 1.0, blue_gain]) * rgb_gain), 0.0, 1.0)
    x = x @ np.linalg.inv(rgb_to_cam).T
    return smoothstep(gamma_compression(np.clip(x, 0.0, 1.0)))


def add_camera_noise(
    image: np.ndarray,
    rng: np.random.Generator,
    shot: float,
    read: float,
    rgb_to_cam: np.ndarray | None = None,
    gains: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """A camera's noise on an sRGB photo (H, W, 3): unprocess, mosaic, shot + read noise, bilinear demosaic,
    process. Odd sizes are handled by mirroring a row/column before and cropping it after. The colour matrix
    and gains are drawn from `rng` unless given.

    Only the noise goes through the demosaic: the noise drawn on the mosaic (the clipped noisy mosaic minus
    the clean one) is interpolated to full colour and added to the unprocessed image. The training photos
    were already demosaicked by their cameras; demosaicking them again bilinearly would blur their detail
    and teach the network to sharpen, not to denoise. The noise keeps what the mosaic gives it: its level
    follows the signal of each site's colour, and interpolation correlates it across neighbouring pixels
    and between channels.
    """
    rgb_to_cam = random_ccm(rng) if rgb_to_cam is None else rgb_to_cam
    gains = random_gains(rng) if gains is None else gains
    h, w = image.shape[:2]
    even = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    raw = unprocess(even, rgb_to_cam, gains)  # (H, W, 3) linear camera RGB
    bayer = mosaic_rggb(raw)
    noise = np.clip(add_shot_read_noise(bayer, rng, shot, read), 0.0, 1.0) - bayer
    return process(raw + demosaic_bilinear(noise), rgb_to_cam, gains)[:h, :w]


# ------------------------------------------------------------------ resizing and compression


def resize_down_up(image: np.ndarray, factor: float, resample: int = Image.BICUBIC) -> np.ndarray:
    """Down to `factor` of the size, back up to the size (Pillow, float per channel): softens detail and
    spreads noise over neighbouring pixels, as a phone's downscaled output does."""
    h, w = image.shape[:2]
    small = (max(1, round(w * factor)), max(1, round(h * factor)))

    def channel(plane: np.ndarray) -> np.ndarray:
        im = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
        return np.asarray(im.resize(small, resample).resize((w, h), resample))

    return np.stack([channel(image[..., c]) for c in range(image.shape[2])], axis=-1)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Through an 8-bit JPEG file at `quality` (Pillow, 4:2:0 chroma), back to float in [0, 1]."""
    pixels = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.asarray(jpeg(Image.fromarray(pixels), quality), dtype=np.float32) / 255.0


# ------------------------------------------------------------------ the random pipeline

MAX_GAUSSIAN_SIGMA = 50.0  # 0-255 scale, SCUNet's range
JPEG_QUALITY = (30, 95)


def _random_noise_mode(rng: np.random.Generator) -> str:
    # BSRGAN's split: 40% colour, 40% grey, 20% correlated
    u = rng.random()
    return "colour" if u < 0.4 else "grey" if u < 0.8 else "correlated"


def _gaussian(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return add_gaussian_noise(x, rng, rng.uniform(0.0, MAX_GAUSSIAN_SIGMA), _random_noise_mode(rng))


def _poisson(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return add_poisson_noise(x, rng, 10 ** rng.uniform(2.0, 4.0), grey=rng.random() < 0.5)


def _speckle(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return add_speckle_noise(x, rng, rng.uniform(1.0, 25.0), _random_noise_mode(rng))


def _camera(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return add_camera_noise(x, rng, *random_noise_levels(rng))


def _resize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    resample = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS)[int(rng.integers(3))]
    return resize_down_up(x, rng.uniform(0.5, 1.0), resample)


def _jpeg(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return jpeg_compress(x, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))


# name -> (probability of the step, the step). The order is shuffled per image; JPEG here is the optional
# first compression (a re-saved file); the last compression is applied after the shuffled steps.
STEPS: dict[str, tuple[float, Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = {
    "gaussian": (0.7, _gaussian),
    "poisson": (0.3, _poisson),
    "speckle": (0.2, _speckle),
    "camera": (0.5, _camera),
    "resize": (0.3, _resize),
    "jpeg": (0.25, _jpeg),
}
FINAL_JPEG = 0.8  # share of the images saved as JPEG at the end


def degrade_for_real_denoise(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """clean (H, W, 3) float in [0, 1] -> noisy (H, W, 3) float32 in [0, 1], rounded to 8 bits as a file is.

    The steps of `STEPS`, each with its probability and a random strength, in a random order; then, for
    `FINAL_JPEG` of the images, JPEG at quality 30-95 (so a quarter of those are compressed twice). Every
    random number comes from `rng`.
    """
    x = clean.astype(np.float64)
    for index in rng.permutation(len(STEPS)):
        probability, step = list(STEPS.values())[index]
        if rng.random() < probability:
            x = np.clip(step(x, rng), 0.0, 1.0)
    if rng.random() < FINAL_JPEG:
        x = _jpeg(x, rng)
    return (np.clip(x, 0.0, 1.0) * 255.0).round().astype(np.float32) / 255.0
