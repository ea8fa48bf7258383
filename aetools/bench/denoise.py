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


def cbm3d(noisy: np.ndarray, sigma: float | None) -> np.ndarray:
    """CBM3D given the true sigma (0-255), or, where the noise has no one sigma (None), the estimated one."""
    import bm3d

    return bm3d.bm3d_rgb(noisy, (_sigma_est(noisy) * 255.0 if sigma is None else sigma) / 255.0)


OPENCV_H_PER_SIGMA = 1.0  # h = hColor = this x the estimated sigma (0-255): chosen on skimage.data photos


def opencv_nl_means(noisy: np.ndarray, sigma: float | None) -> np.ndarray:
    """OpenCV's fastNlMeansDenoisingColored (Buades et al.'s NL-means on 8-bit CIELAB, 7x7 patches, 21x21
    search), blind: h and hColor are OPENCV_H_PER_SIGMA x skimage's estimated sigma on the 0-255 scale."""
    import cv2

    h = OPENCV_H_PER_SIGMA * _sigma_est(noisy) * 255.0
    bgr = cv2.cvtColor(to_uint8(noisy), cv2.COLOR_RGB2BGR)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


BASELINES: dict[str, tuple[str, Callable[[np.ndarray, float | None], np.ndarray]]] = {
    "nlm": ("skimage NL-means (blind)", nl_means),
    "wavelet": ("skimage wavelet (blind)", wavelet),
    "tv": ("skimage TV Chambolle (blind)", tv_chambolle),
    "opencv": ("OpenCV fastNlMeansDenoisingColored (blind)", opencv_nl_means),
    "bm3d": ("CBM3D (sigma given)", cbm3d),
}
OPTIONAL_PACKAGES = {"bm3d": "bm3d", "opencv": "cv2"}  # baselines whose package is an extra (aetools[bench])


def baseline_available(key: str) -> bool:
    """Whether the package a baseline needs is installed (the skimage ones always are)."""
    import importlib.util

    return key not in OPTIONAL_PACKAGES or importlib.util.find_spec(OPTIONAL_PACKAGES[key]) is not None


def add_noise(clean: np.ndarray, sigma: float, clip: bool) -> np.ndarray:
    """The protocol's noisy image: a fresh np.random.seed(0) per image, float noise, optionally 8-bit."""
    rng = np.random.RandomState(0)
    noisy = clean + rng.normal(0, sigma / 255.0, clean.shape)
    if clip:
        noisy = np.round(np.clip(noisy, 0, 1) * 255) / 255
    return noisy.astype(np.float32)


def load_clean(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A benchmark image -> (8-bit RGB, the same as float32 in [0, 1]); a grey one as three equal channels."""
    from aetools.data.io import load_image

    clean8 = to_uint8(load_image(path).pixels)
    if clean8.shape[2] == 1:
        clean8 = np.repeat(clean8, 3, axis=2)
    return clean8, clean8.astype(np.float32) / 255.0


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
        clean8, clean = load_clean(path)
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


# ------------------------------------------------------------------ the noise users have: JPEG and camera noise

CAMERA_LEVELS = {"low": 1e-3, "mid": 4e-3, "high": 1e-2}  # Brooks et al.'s shot level; read from their fitted line


@dataclass(frozen=True)
class NoiseCondition:
    """One column of the real-noise protocol. Gaussian: the protocol's noise at `sigma` (np.random.seed(0) per
    image), rounded to 8 bits, saved as JPEG at `quality`. Camera: `add_camera_noise` at the shot level
    `shot` (read noise on Brooks et al.'s line, log read = 2.18 log shot + 1.20), its colour matrix, gains
    and noise seeded by the file's name, then JPEG at `quality`."""

    name: str  # "sigma25_jpeg90", "camera_mid_jpeg90": also the recorded metric's condition
    quality: int
    sigma: float | None = None
    shot: float | None = None

    @property
    def label(self) -> str:
        noise = (
            f"σ={self.sigma:g}" if self.sigma is not None else self.name.split("_")[0] + " " + self.name.split("_")[1]
        )
        return f"{noise} JPEG {self.quality}"

    def apply(self, clean: np.ndarray, image_name: str) -> np.ndarray:
        """clean (H, W, 3) float32 in [0, 1] -> the noisy 8-bit JPEG as float32, the same for the same name."""
        import zlib

        from aetools.data.degrade import add_camera_noise, jpeg_compress

        if self.sigma is not None:
            noisy = add_noise(clean, self.sigma, clip=True)
        else:
            rng = np.random.default_rng([zlib.crc32(image_name.encode()), zlib.crc32(self.name.encode())])
            read = float(np.exp(2.18 * np.log(self.shot) + 1.20))
            noisy = add_camera_noise(clean.astype(np.float64), rng, self.shot, read)
        return jpeg_compress(noisy, self.quality)


def real_noise_conditions(
    sigmas: Iterable[float] = (15, 25, 50), qualities: Iterable[int] = (90, 70), camera: Iterable[str] = CAMERA_LEVELS
) -> list[NoiseCondition]:
    """(a) Gaussian noise at each sigma saved at each JPEG quality; (b) camera noise at each named level, JPEG 90."""
    conditions = [NoiseCondition(f"sigma{s:g}_jpeg{q}", q, sigma=s) for s in sigmas for q in qualities]
    conditions += [NoiseCondition(f"camera_{level}_jpeg90", 90, shot=CAMERA_LEVELS[level]) for level in camera]
    return conditions


@dataclass
class RealNoiseBenchmark:
    """scores[(method, condition name)] = per-image (psnr, ssim); seconds[method] = per-call wall times."""

    scores: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def mean(self, method: str, condition: str) -> tuple[float, float] | None:
        values = self.scores.get((method, condition))
        return tuple(np.mean(values, axis=0)) if values else None


NOISY_INPUT = "noisy input (no denoising)"


def run_real_noise_benchmark(
    files: list[Path],
    conditions: list[NoiseCondition],
    models: dict[str, torch.nn.Module],
    baselines: Iterable[str],
    precisions: Iterable[str] = ("fp32",),
    on_image: Callable[[str], None] | None = None,
) -> RealNoiseBenchmark:
    """Every method on the same noisy images: the noisy input itself, each model blind (in each precision),
    each baseline blind (CBM3D given the estimated sigma). PSNR and SSIM on RGB against the 8-bit clean
    image; the time of each call."""
    import time

    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from aetools.bench.reference import in_precision, precision_named, prepared
    from aetools.tasks.denoise import denoise_pixels

    def ours(model: torch.nn.Module, precision: str) -> Callable[[np.ndarray], np.ndarray]:
        net, p = prepared(model, precision), precision_named(precision)
        return lambda noisy: denoise_pixels(net, noisy, None, tile=0, precision=p)

    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {NOISY_INPUT: lambda noisy: noisy}
    for precision in precisions:
        methods.update({in_precision(label, precision): ours(m, precision) for label, m in models.items()})
    for key in baselines:
        label, fn = BASELINES[key]
        methods[label.replace("sigma given", "sigma estimated")] = lambda noisy, fn=fn: fn(noisy, None)
    result = RealNoiseBenchmark()
    for path in files:
        clean8, clean = load_clean(path)
        for condition in conditions:
            noisy = condition.apply(clean, path.name)
            for label, fn in methods.items():
                start = time.perf_counter()
                with torch.inference_mode():
                    out = to_uint8(fn(noisy))
                result.seconds.setdefault(label, []).append(time.perf_counter() - start)
                psnr = peak_signal_noise_ratio(clean8, out, data_range=255)
                ssim = structural_similarity(clean8, out, data_range=255, channel_axis=-1)
                result.scores.setdefault((label, condition.name), []).append((float(psnr), float(ssim)))
        if on_image:
            on_image(path.name)
    return result


def real_noise_report(
    files: list[Path],
    dataset: str,
    conditions: list[NoiseCondition],
    models: dict[str, torch.nn.Module],
    baselines: list[str],
    precisions: list[str],
    notes: list[str] | None = None,
    on_image: Callable[[str], None] | None = None,
) -> Report:
    """`aetools eval denoise --protocol real`: PSNR (with the seconds per image) and SSIM tables, ours beside
    the noisy input and the baselines; the metrics `<set>_<condition>_psnr` / `_ssim` of each model (fp32)."""
    result = run_real_noise_benchmark(files, conditions, models, baselines, precisions, on_image)
    methods = list(result.seconds)
    labels = [c.label for c in conditions]
    shape = f"{len(files)} images, blind"
    psnr_rows, ssim_rows = [], []
    for method in methods:
        cells = [result.mean(method, c.name) for c in conditions]
        seconds = f"{np.mean(result.seconds[method]):.2f}" if method != NOISY_INPUT else "-"
        psnr_rows.append([method] + [f"{c[0]:.2f}" for c in cells] + [seconds])
        ssim_rows.append([method] + [f"{c[1]:.4f}" for c in cells])
    table_notes = [
        "Gaussian columns: the noise of the float protocol (np.random.seed(0) per image) rounded to 8 bits, then"
        " saved as JPEG (Pillow, 4:2:0). Camera columns: unprocessed to raw (Brooks et al. 2019), shot noise at"
        f" {', '.join(f'{k} {v:g}' for k, v in CAMERA_LEVELS.items())} with read noise on their fitted line,"
        " re-processed, JPEG 90; seeded by the file's name. Time: mean seconds per image (one call), CPU.",
        *(notes or []),
    ]
    tables = [
        Table(
            f"Real-noise denoising PSNR (dB, RGB) on {dataset}, {shape}", ["method", *labels, "s / image"], psnr_rows
        ),
        Table(f"Real-noise denoising SSIM (RGB) on {dataset}, {shape}", ["method", *labels], ssim_rows, table_notes),
    ]
    metrics = {}
    for label, model in models.items():
        scores = {c.name: result.mean(label, c.name) for c in conditions}
        metrics[model.weights_path] = {
            metric_name(dataset, name, measure): round(value[i], 2 if i == 0 else 4)
            for name, value in scores.items()
            if value is not None
            for i, measure in enumerate(("psnr", "ssim"))
        }
    return Report(tables, metrics)
