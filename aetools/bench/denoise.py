"""`aetools eval denoise`: the DnCNN/KAIR colour-denoising protocol, ours beside classical baselines.

Protocol (KAIR main_test_dncnn.py, so published CBSD68 numbers compare):
  clean = the 8-bit PNG as float in [0, 1]
  np.random.seed(0) for every image; noisy = clean + N(0, (sigma/255)^2), NOT clipped ("float")
  output clipped and rounded to 8 bits; PSNR on RGB against the 8-bit clean image, averaged over images.
The "8-bit" variant rounds and clips the noisy input first, as a user's noisy file would be.

Baselines, all given the same noisy input: skimage denoise_nl_means (h = 0.8 sigma_est,
sigma = estimate_sigma, fast mode, 5x5 patches, distance 6, as in the skimage gallery),
denoise_wavelet (BayesShrink, YCbCr), denoise_tv_chambolle (weight = sigma_est), and BM3D (the `bm3d`
package's CBM3D, given the true sigma) when installed and asked for: it takes ~25 s a photo on 2 cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aetools.bench.reference import CostRow, cost_table
from aetools.bench.report import Bf16Check, Report, Table, metric_name
from aetools.data.io import to_uint8

PUBLISHED = {  # CBSD68, PSNR (dB) at sigma 15 / 25 / 50, float protocol
    "CDnCNN-B (Zhang et al. 2017)": {15: 33.89, 25: 31.23, 50: 27.92},
    "CBM3D (Dabov et al. 2007)": {15: 33.52, 25: 30.71, 50: 27.38},
}


def _sigma_est(noisy: np.ndarray) -> float:
    from skimage.restoration import estimate_sigma

    return float(np.mean(estimate_sigma(noisy, channel_axis=-1)))


def nl_means(noisy: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    s = _sigma_est(noisy)
    return denoise_nl_means(noisy, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1)


def wavelet(noisy: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(
        noisy, channel_axis=-1, convert2ycbcr=True, method="BayesShrink", mode="soft", rescale_sigma=True
    )


def tv_chambolle(noisy: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(noisy, weight=_sigma_est(noisy), channel_axis=-1)


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return bm3d.bm3d_rgb(noisy, sigma / 255.0)


BASELINES: dict[str, tuple[str, Callable[[np.ndarray, float], np.ndarray]]] = {
    "nlm": ("skimage NL-means (blind)", nl_means),
    "wavelet": ("skimage wavelet (blind)", wavelet),
    "tv": ("skimage TV Chambolle (blind)", tv_chambolle),
    "bm3d": ("CBM3D (sigma given)", cbm3d),
}


def bm3d_available() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def add_noise(clean: np.ndarray, sigma: float, clip: bool) -> np.ndarray:
    """The protocol's noisy image: a fresh np.random.seed(0) per image, float noise, optionally 8-bit."""
    rng = np.random.RandomState(0)
    noisy = clean + rng.normal(0, sigma / 255.0, clean.shape)
    if clip:
        noisy = np.round(np.clip(noisy, 0, 1) * 255) / 255
    return noisy.astype(np.float32)


@dataclass
class DenoiseBenchmark:
    """psnr[(method, sigma, variant)] = list of per-image PSNRs."""

    dataset: str
    images: int
    psnr: dict[tuple[str, float, str], list[float]] = field(default_factory=dict)

    def mean(self, method: str, sigma: float, variant: str) -> float | None:
        values = self.psnr.get((method, sigma, variant))
        return float(np.mean(values)) if values else None


def ours_label(sigma_given: bool, precision: str) -> str:
    """The table rows of our model: "ours (blind)", "ours (sigma given)", and the same ", bf16"."""
    from aetools.bench.reference import in_precision

    return in_precision(f"ours ({'sigma given' if sigma_given else 'blind'})", precision)


def run_denoise_benchmark(
    files: list[Path],
    sigmas: Iterable[float],
    model: torch.nn.Module,
    baselines: Iterable[str],
    variants: Iterable[str] = ("float", "8-bit"),
    with_known_sigma: bool = True,
    on_image: Callable[[str], None] | None = None,
    precisions: Iterable[str] = ("fp32",),
) -> DenoiseBenchmark:
    """precisions: ours is run in each (fp32, bf16), on the same noisy images."""
    from skimage.metrics import peak_signal_noise_ratio

    from aetools.bench.reference import precision_named, prepared
    from aetools.data.io import load_image
    from aetools.tasks.denoise import denoise_pixels

    result = DenoiseBenchmark(dataset=str(files[0].parent) if files else "", images=len(files))

    def ours(given: bool, precision: str) -> Callable[[np.ndarray, float], np.ndarray]:
        net, p = prepared(model, precision), precision_named(precision)
        return lambda noisy, sigma: denoise_pixels(net, noisy, sigma if given else None, tile=0, precision=p)

    methods: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {}
    for precision in precisions:
        for given in (False, True) if with_known_sigma else (False,):
            methods[ours_label(given, precision)] = ours(given, precision)
    for key in baselines:
        label, fn = BASELINES[key]
        methods[label] = fn
    for path in files:
        clean8 = to_uint8(load_image(path).pixels)
        if clean8.shape[2] == 1:
            clean8 = np.repeat(clean8, 3, axis=2)
        clean = clean8.astype(np.float32) / 255.0
        for sigma in sigmas:
            for variant in variants:
                noisy = add_noise(clean, sigma, clip=variant == "8-bit")
                for label, fn in methods.items():
                    out = to_uint8(fn(noisy, sigma))
                    score = peak_signal_noise_ratio(clean8, out, data_range=255)
                    result.psnr.setdefault((label, sigma, variant), []).append(score)
        if on_image:
            on_image(path.name)
    return result


def measure_cost(
    model: torch.nn.Module, size: tuple[int, int] = (512, 512), repeats: int = 5, precisions=("fp32", "bf16")
) -> list[CostRow]:
    """CPU throughput of ours and of a DnCNN-shaped network on the same input, in each precision, in the
    same run."""
    from aetools.bench.reference import dncnn_shaped, megapixels_per_second, prepared
    from aetools.weights import count_parameters

    x = torch.rand(1, 3, *size)
    sigma = torch.tensor([-1.0])
    rows = []
    for name, net, call in (
        ("ours", model, lambda m: lambda t: m(t, sigma)),
        ("DnCNN-shaped (17 conv, 64 ch)", dncnn_shaped(), lambda m: m),
    ):
        speeds = {p: megapixels_per_second(call(prepared(net, p)), x, repeats, p) for p in precisions}
        rows.append(CostRow(name, count_parameters(net), speeds))
    return rows


def denoise_report(
    files: list[Path],
    dataset: str,
    sigmas: list[float],
    model: torch.nn.Module,
    baselines: list[str],
    variants: list[str],
    precisions: list[str],
    cost: bool = True,
    on_image: Callable[[str], None] | None = None,
) -> Report:
    """`aetools eval denoise`: the PSNR table (the published rows on CBSD68), the cost table if `cost`; the
    metrics `<set>_sigma<s>_psnr` (blind model, float protocol) and bf16's largest loss over every cell."""
    result = run_denoise_benchmark(files, sigmas, model, baselines, variants, on_image=on_image, precisions=precisions)
    columns = ["method"] + [f"σ={s:g} {v}" for s in sigmas for v in variants]
    rows = []
    for method in dict.fromkeys(m for m, _, _ in result.psnr):
        cells = [result.mean(method, s, v) for s in sigmas for v in variants]
        rows.append([method] + ["-" if c is None else f"{c:.2f}" for c in cells])
    if dataset.lower() == "cbsd68":
        for name, numbers in PUBLISHED.items():
            cells = [f"{numbers[s]:.2f}" if v == "float" and s in numbers else "" for s in sigmas for v in variants]
            rows.append([f"{name}, published"] + cells)
    tables = [Table(f"Denoising PSNR (dB, RGB) on {dataset}, {len(files)} images", columns, rows)]
    if cost:
        speeds = measure_cost(model, precisions=precisions)
        tables.append(cost_table("CPU cost, 512x512 input", speeds, precisions, "MP/s"))

    blind = {s: result.mean(ours_label(False, "fp32"), s, "float") for s in sigmas}
    metrics = {metric_name(dataset, f"sigma{s:g}", "psnr"): round(v, 2) for s, v in blind.items() if v is not None}
    report = Report(tables, {model.weights_path: metrics})
    if {"fp32", "bf16"} <= set(precisions):
        pairs = [
            (result.mean(ours_label(g, "fp32"), s, v), result.mean(ours_label(g, "bf16"), s, v))
            for g in (False, True)
            for s in sigmas
            for v in variants
        ]
        report.bf16[model.weights_path] = Bf16Check.of([p for p in pairs if None not in p], dataset)
    return report
