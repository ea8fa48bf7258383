"""`aetools eval superres`: the standard single-image super-resolution protocol, ours beside bicubic and
Lanczos in the same run.

Protocol (as in SRCNN/VDSR/EDSR evaluations, so published Set5/Set14 numbers compare):
  HR = the 8-bit PNG, cropped to a multiple of the scale ("modcrop")
  LR = bicubic downscale of HR (Pillow BICUBIC, antialiased: the kernel of MATLAB's imresize), 8 bits
  SR = the method's output, rounded to 8 bits
  PSNR and SSIM on the luma channel Y of ITU-R BT.601 (16-235; skimage.color.rgb2ycbcr), after shaving
  `scale` pixels from each border; SSIM with an 11x11 Gaussian window, sigma 1.5 (Wang et al. 2004).
Grey images (Set14's bridge) are replicated to RGB, whose Y is the grey level mapped to 16-235.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aetools.bench.reference import CostRow, cost_table
from aetools.bench.report import Bf16Check, Report, Table, metric_name

PUBLISHED = {  # Y-PSNR (dB) published for the standard protocol: {method: {dataset: {scale: psnr}}}
    "bicubic": {"set5": {2: 33.66, 3: 30.39, 4: 28.42}, "set14": {2: 30.24, 3: 27.55, 4: 26.00}},
    "FSRCNN (Dong et al. 2016)": {"set5": {2: 37.00, 3: 33.16, 4: 30.71}, "set14": {2: 32.63, 3: 29.43, 4: 27.59}},
    "VDSR (Kim et al. 2016)": {"set5": {2: 37.53, 3: 33.66, 4: 31.35}, "set14": {2: 33.03, 3: 29.77, 4: 28.01}},
}


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> BT.601 luma Y in [16, 235] as float64."""
    from skimage.color import rgb2ycbcr

    return rgb2ycbcr(rgb)[..., 0]


def y_psnr_ssim(truth: np.ndarray, output: np.ndarray, shave: int) -> tuple[float, float]:
    """PSNR (dB) and SSIM of two (H, W, 3) uint8 images on Y, `shave` pixels cut from each border."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a, b = y_channel(truth), y_channel(output)
    if shave:
        a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    psnr = peak_signal_noise_ratio(a, b, data_range=255)
    ssim = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return float(psnr), float(ssim)


def resize_upscale(lr: np.ndarray, scale: int, method: int) -> np.ndarray:
    h, w = lr.shape[:2]
    return np.asarray(Image.fromarray(lr).resize((w * scale, h * scale), method))


BASELINES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "bicubic": lambda lr, s: resize_upscale(lr, s, Image.BICUBIC),
    "Lanczos": lambda lr, s: resize_upscale(lr, s, Image.LANCZOS),
}


@dataclass
class SuperResBenchmark:
    """scores[(method, scale)] = list of per-image (psnr, ssim)."""

    dataset: str
    images: int
    scores: dict[tuple[str, int], list[tuple[float, float]]] = field(default_factory=dict)

    def mean(self, method: str, scale: int) -> tuple[float, float] | None:
        values = self.scores.get((method, scale))
        if not values:
            return None
        return float(np.mean([v[0] for v in values])), float(np.mean([v[1] for v in values]))


def run_superres_benchmark(
    files: list[Path],
    scales: Iterable[int],
    models: dict[str, torch.nn.Module],
    degradation: str = "bicubic",
    on_image: Callable[[str], None] | None = None,
    ensemble: bool = False,
    precisions: Iterable[str] = ("fp32",),
) -> SuperResBenchmark:
    """models: {row label: network}. degradation "real" replaces the protocol's LR with the real-photo
    degradation (blur, noise, JPEG), seeded per image: not a published protocol, a check of the variant.
    precisions: each model is also run in these (rows "<label>, bf16"); the ensemble runs in fp32."""
    from aetools.bench.reference import in_precision, precision_named, prepared
    from aetools.data.io import load_image, to_uint8
    from aetools.tasks.superres import bicubic_downscale, crop_to_multiple, real_photo_lr, upscale_pixels

    def network(
        model: torch.nn.Module, ensemble: bool = False, precision: str = "fp32"
    ) -> Callable[[np.ndarray, int], np.ndarray]:
        net, p = prepared(model, precision), precision_named(precision)
        return lambda lr, s: to_uint8(
            upscale_pixels(net, lr.astype(np.float32) / 255, s, tile=0, ensemble=ensemble, precision=p)
        )

    result = SuperResBenchmark(dataset=str(files[0].parent) if files else "", images=len(files))
    methods = {}
    for precision in precisions:
        methods.update({in_precision(label, precision): network(m, precision=precision) for label, m in models.items()})
    if ensemble:
        methods.update({f"{label} + self-ensemble (8x time)": network(m, True) for label, m in models.items()})
    methods.update(BASELINES)
    for index, path in enumerate(files):
        image = to_uint8(load_image(path).pixels)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        for scale in scales:
            hr = crop_to_multiple(image, scale)
            if degradation == "real":
                lr = real_photo_lr(hr, scale, np.random.default_rng([index, scale]))
            else:
                lr = bicubic_downscale(hr, scale)
            for name, fn in methods.items():
                result.scores.setdefault((name, scale), []).append(y_psnr_ssim(hr, fn(lr, scale), shave=scale))
        if on_image:
            on_image(path.name)
    return result


def vdsr_shaped(channels: int = 3, depth: int = 20, width: int = 64) -> torch.nn.Module:
    """VDSR (Kim et al. 2016): 20 3x3 conv layers of 64 channels with ReLUs, run on the bicubic-upscaled
    image (so on every output pixel), plus the input (residual learning)."""
    from torch import nn

    layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(width, channels, 3, padding=1))
    return nn.Sequential(*layers).eval()


def measure_cost(
    model: torch.nn.Module,
    scales: Iterable[int],
    output_side: int = 480,
    repeats: int = 3,
    precisions: Iterable[str] = ("fp32", "bf16"),
) -> list[CostRow]:
    """CPU output-megapixels/s of ours at each scale and of a VDSR-shaped net (scale-independent: it runs
    on the bicubic-upscaled image), on the same output size, in each precision, in the same run."""
    import torch.nn.functional as F

    from aetools.bench.reference import median_seconds, prepared
    from aetools.weights import count_parameters

    megapixels = output_side * output_side / 1e6

    def layout(x: torch.Tensor, precision: str) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if precision == "bf16" else x

    rows = []
    for s in scales:
        speeds = {}
        for p in precisions:
            net, lr = prepared(model, p), layout(torch.rand(1, 3, output_side // s, output_side // s), p)
            speeds[p] = megapixels / median_seconds(lambda net=net, lr=lr, s=s: net(lr, s), repeats, p)
        rows.append(CostRow(f"ours x{s}", count_parameters(model), speeds))
    vdsr = vdsr_shaped()
    speeds = {}
    for p in precisions:
        net, lr = prepared(vdsr, p), layout(torch.rand(1, 3, output_side // 2, output_side // 2), p)

        def run_vdsr(net=net, lr=lr) -> torch.Tensor:
            up = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
            return up + net(up)

        speeds[p] = megapixels / median_seconds(run_vdsr, repeats, p)
    rows.append(CostRow("VDSR-shaped (20 conv, 64 ch)", count_parameters(vdsr), speeds))
    return rows


def photo_seconds(
    model: torch.nn.Module,
    size: tuple[int, int] = (640, 480),
    scale: int = 4,
    repeats: int = 3,
    precision: str = "fp32",
) -> float:
    """Median wall time of the upscale pipeline's pixel work on a width x height photo."""
    from aetools.bench.reference import median_seconds, precision_named, prepared
    from aetools.tasks.superres import upscale_pixels

    net, p = prepared(model, precision), precision_named(precision)
    pixels = np.random.default_rng(0).random((size[1], size[0], 3), dtype=np.float32)
    return median_seconds(lambda: upscale_pixels(net, pixels, scale, precision=p), repeats)


def superres_report(
    files: list[Path],
    dataset: str,
    scales: list[int],
    models: dict[str, torch.nn.Module],
    degradation: str = "bicubic",
    ensemble: bool = False,
    precisions: Sequence[str] = ("fp32",),
    cost: bool = True,
    on_image: Callable[[str], None] | None = None,
) -> Report:
    """`aetools eval superres`: the Y-PSNR / SSIM table (the published rows under the bicubic protocol), the
    cost table of the first model if `cost`. With one model (row "ours"), the metrics `<set>_x<s>_y_psnr`
    and `_y_ssim` (`<set>_real_...` under the real-photo degradation) and bf16's largest PSNR loss."""
    result = run_superres_benchmark(
        files, scales, models, degradation, on_image=on_image, ensemble=ensemble, precisions=precisions
    )
    rows = []
    for method in dict.fromkeys(m for m, _ in result.scores):
        cells = [result.mean(method, s) for s in scales]
        rows.append([method] + ["-" if c is None else f"{c[0]:.2f} / {c[1]:.4f}" for c in cells])
    for name, numbers in PUBLISHED.items():
        published = numbers.get(dataset.lower())
        if published and degradation == "bicubic":
            rows.append([f"{name}, published"] + [f"{published[s]:.2f}" if s in published else "" for s in scales])
    what = "" if degradation == "bicubic" else ", LR with real-photo degradation (blur, noise, JPEG)"
    title = f"Super-resolution Y-PSNR (dB) / SSIM on {dataset}, {len(files)} images{what}"
    tables = [Table(title, ["method"] + [f"x{s} PSNR / SSIM" for s in scales], rows)]

    net = next(iter(models.values()))
    if cost:
        speeds = measure_cost(net, scales, precisions=precisions)
        table = cost_table("CPU cost, 480x480 output", speeds, precisions, "output MP/s")
        if 4 in net.config.scales:
            times = ", ".join(f"{photo_seconds(net, precision=p):.2f} s in {p}" for p in precisions)
            table.notes.append(f"640x480 photo upscaled x4 (2560x1920): {times} (median of 3, after a warm-up)")
        tables.append(table)

    benchmark = dataset if degradation == "bicubic" else f"{dataset}_real"
    metrics = {}
    for s in scales:
        mean = result.mean("ours", s)
        if mean:
            metrics[metric_name(benchmark, f"x{s}", "y_psnr")] = round(mean[0], 2)
            metrics[metric_name(benchmark, f"x{s}", "y_ssim")] = round(mean[1], 4)
    report = Report(tables, {net.weights_path: metrics})
    if "ours" in models and {"fp32", "bf16"} <= set(precisions):
        pairs = [(result.mean("ours", s)[0], result.mean("ours, bf16", s)[0]) for s in scales]
        report.bf16[net.weights_path] = Bf16Check.of(pairs, benchmark)
    return report
