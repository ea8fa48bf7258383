"""`aetools eval inpaint`: hole filling scored against the truth, ours beside two classical inpainters in
the same run.

Protocol:
  truth  = the 8-bit benchmark photo (Kodak24: 24 photos, 768x512)
  holes  = `benchmark_mask(H, W, ratio, index)`: seeded free-form strokes and boxes covering exactly
           ratio ± 1% of image number `index` (files sorted by name), the same masks for every method and
           run; ratios 10%, 20%, 30%
  input  = the truth with the hole pixels zeroed, plus the mask
  output = the method's image rounded to 8 bits, scored as it comes (known pixels are not pasted back:
           how far a method moves them is reported, as the largest change outside the holes)
  scores = PSNR (data range 255) and SSIM (skimage defaults: 7x7 uniform window, data range 255, the mean
           over the three channels) over the whole image, per image, averaged over the set
Baselines:
  Telea        OpenCV `cv2.inpaint(..., INPAINT_TELEA)` (Telea 2004, fast marching), radius 3 px
  biharmonic   skimage `restoration.inpaint_biharmonic` (smooth biharmonic continuation of the border)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aetools.bench.report import Bf16Check, Report, Table, metric_name
from aetools.data.io import load_image, to_uint8
from aetools.data.masks import benchmark_mask
from aetools.tasks.inpaint import inpaint_pixels

TELEA_RADIUS = 3  # px, as in OpenCV's inpainting example


def telea(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """image (H, W, 3) uint8, mask (H, W) bool -> (H, W, 3) uint8."""
    import cv2

    return cv2.inpaint(image, mask.astype(np.uint8) * 255, TELEA_RADIUS, cv2.INPAINT_TELEA)


def biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    return to_uint8(inpaint_biharmonic(image / 255.0, mask, channel_axis=-1))


def ours(
    model: torch.nn.Module, work_size: int | None = None, ensemble: bool = False, precision: str = "fp32"
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    from aetools.bench.reference import precision_named, prepared

    net, p = prepared(model, precision), precision_named(precision)

    def fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        pixels = image / np.float32(255)
        return to_uint8(inpaint_pixels(net, pixels, mask, work_size=work_size, ensemble=ensemble, precision=p))

    return fill


@dataclass
class Score:
    psnr: float
    ssim: float
    seconds: float
    outside_change: int  # the largest |output - truth| outside the holes, in 8-bit levels


@dataclass
class InpaintBenchmark:
    dataset: str
    ratios: list[float]
    scores: dict[tuple[str, float], list[Score]] = field(default_factory=dict)

    def mean(self, method: str, ratio: float, what: str) -> float:
        return float(np.mean([getattr(s, what) for s in self.scores[method, ratio]]))

    def outside_change(self, method: str) -> int:
        return max(s.outside_change for ratio in self.ratios for s in self.scores[method, ratio])


def score(truth: np.ndarray, output: np.ndarray, mask: np.ndarray, seconds: float) -> Score:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    outside = np.abs(output.astype(np.int16) - truth)[~mask]
    return Score(
        float(peak_signal_noise_ratio(truth, output, data_range=255)),
        float(structural_similarity(truth, output, data_range=255, channel_axis=2)),
        seconds,
        int(outside.max(initial=0)),
    )


def run_inpaint_benchmark(
    files: list[Path],
    methods: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]],
    ratios: list[float],
    on_image: Callable[[Path], None] | None = None,
) -> InpaintBenchmark:
    """methods: name -> (holed image (H, W, 3) uint8, mask (H, W) bool) -> filled (H, W, 3) uint8."""
    result = InpaintBenchmark(files[0].parent.name if files else "", list(ratios))
    for index, path in enumerate(files):
        pixels = load_image(path).pixels
        truth = to_uint8(pixels if pixels.shape[2] == 3 else np.repeat(pixels, 3, axis=2))
        for ratio in ratios:
            mask = benchmark_mask(*truth.shape[:2], ratio, index)
            holed = np.where(mask[..., None], np.uint8(0), truth)
            for name, method in methods.items():
                start = time.perf_counter()
                output = method(holed, mask)
                seconds = time.perf_counter() - start
                result.scores.setdefault((name, ratio), []).append(score(truth, output, mask, seconds))
        if on_image:
            on_image(path)
    return result


def inpaint_report(
    files: list[Path],
    dataset: str,
    model: torch.nn.Module,
    ratios: list[float],
    work_sizes: Sequence[int] = (),
    ensemble: bool = False,
    precisions: Sequence[str] = ("fp32",),
    on_image: Callable[[Path], None] | None = None,
) -> Report:
    """`aetools eval inpaint`: ours (in each precision; at each of `work_sizes` in two passes, and with the
    self-ensemble, as ablations) beside Telea and biharmonic; ours' metrics `<set>_holes<percent>_psnr`
    and `_ssim` and bf16's largest PSNR loss (`<set>_inpaint`)."""
    from aetools.bench.reference import in_precision, precision_line, torch_threads
    from aetools.weights import count_parameters

    methods = {"OpenCV Telea": telea, "skimage biharmonic": biharmonic}
    methods |= {in_precision("ours", p): ours(model, precision=p) for p in precisions}
    methods |= {f"ours, work size {s}": ours(model, s) for s in work_sizes}
    if ensemble:
        methods["ours + self-ensemble (8x time)"] = ours(model, ensemble=True)
    result = run_inpaint_benchmark(files, methods, ratios, on_image=on_image)

    columns = ["method"]
    for r in ratios:
        columns += [f"PSNR {r:.0%}", f"SSIM {r:.0%}"]
    rows = []
    for name in methods:
        row = [name]
        for r in ratios:
            row += [f"{result.mean(name, r, 'psnr'):.2f}", f"{result.mean(name, r, 'ssim'):.4f}"]
        seconds = np.mean([result.mean(name, r, "seconds") for r in ratios])
        rows.append(row + [f"{seconds:.2f}", str(result.outside_change(name))])
    table = Table(
        f"Inpainting on {dataset}, {len(files)} images, seeded masks (benchmark_mask), scores over the whole image",
        columns + ["s / image", "max change outside holes"],
        rows,
        [
            f"times: mean per image over the hole ratios, on {torch_threads()};"
            f" ours has {count_parameters(model) / 1e6:.2f} M parameters.\n{precision_line()}"
        ],
    )

    report = Report([table])
    if "ours" in methods:
        report.metrics[model.weights_path] = {
            metric_name(dataset, f"holes{round(r * 100)}", what): round(result.mean("ours", r, what), 4)
            for r in ratios
            for what in ("psnr", "ssim")
        }
        if "ours, bf16" in methods:
            pairs = [(result.mean("ours", r, "psnr"), result.mean("ours, bf16", r, "psnr")) for r in ratios]
            report.bf16[model.weights_path] = Bf16Check.of(pairs, metric_name(dataset, "inpaint"))
    return report
