"""`aetools eval colorize`: automatic colorization scored against the truth, ours beside the grey and
mean-colour baselines in the same run.

Protocol (the usual one for automatic colorization, e.g. Zhang et al. 2016/2017):
  input  = L (CIE Lab, skimage) of the 8-bit ground-truth photo, as float
  output = the method's RGB, rounded to 8 bits
  PSNR   = RGB PSNR (skimage, data range 255) per image, averaged over the set
Baselines:
  grey          L with ab = 0: the input replicated to RGB
  mean ab       L with every pixel given the mean ab of all the set's true pixels (a constant tint;
                computed from the truth, so an optimistic baseline)
Colour is judged by colourfulness (Hasler & Süsstrunk 2003), because PSNR alone rewards washed-out colour:
  M = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2),  rg = R - G,  yb = (R + G) / 2 - B
on 0-255 RGB. Reported: the set's mean M relative to the truth's, and the share of images below 0.3 of
their truth's M (sepia-like failures). Lightness kept: mean |L(output) - L(input)| in grey levels
(L * 2.55, so 1 = one step of an 8-bit grey image).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aetools.bench.report import Bf16Check, Report, Table, metric_name
from aetools.data.io import load_image, to_uint8
from aetools.tasks.colorize import colorize_lightness, lab_to_rgb_keeping_l, luminance, rgb_to_lab

GREY_LEVELS_PER_L = 2.55


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk's M of an (H, W, 3) uint8 (or 0-255 float) RGB image."""
    x = rgb.astype(np.float64)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


@dataclass
class ImageScore:
    psnr: float
    colourfulness: float
    delta_l: float  # mean |L(out) - L(in)| in grey levels


@dataclass
class ColorizeBenchmark:
    dataset: str
    truth_colourfulness: list[float] = field(default_factory=list)
    scores: dict[str, list[ImageScore]] = field(default_factory=dict)

    def summary(self, method: str) -> dict[str, float]:
        """-> psnr, colourfulness ratio (set mean / truth's set mean), share of images below 0.3 of their
        truth's colourfulness, mean ΔL."""
        values = self.scores[method]
        truth = self.truth_colourfulness
        return {
            "psnr": float(np.mean([v.psnr for v in values])),
            "colourfulness_ratio": float(np.mean([v.colourfulness for v in values]) / np.mean(truth)),
            "washed_out_share": float(np.mean([v.colourfulness < 0.3 * t for v, t in zip(values, truth)])),
            "delta_l": float(np.mean([v.delta_l for v in values])),
        }


def score(truth: np.ndarray, lightness: np.ndarray, output: np.ndarray) -> ImageScore:
    """truth (H, W, 3) uint8, lightness (H, W) the input L, output (H, W, 3) float RGB in [0, 1]."""
    from skimage.metrics import peak_signal_noise_ratio

    out8 = to_uint8(output)
    delta = np.abs(rgb_to_lab(out8 / 255.0)[..., 0] - lightness).mean() * GREY_LEVELS_PER_L
    return ImageScore(float(peak_signal_noise_ratio(truth, out8, data_range=255)), colourfulness(out8), float(delta))


def run_colorize_benchmark(
    files: list[Path],
    methods: dict[str, tuple[torch.nn.Module, dict[str, Any]]],
    on_image: Callable[[Path], None] | None = None,
) -> ColorizeBenchmark:
    """methods: name -> (network, keyword arguments of `colorize_lightness`)."""
    truths, lights, image_mean_ab = [], [], []
    for path in files:
        data = load_image(path)
        pixels = data.pixels if data.pixels.shape[2] == 3 else np.repeat(data.pixels, 3, axis=2)
        truth = to_uint8(pixels)
        lab = rgb_to_lab(truth / 255.0)
        truths.append(truth)
        lights.append(lab[..., 0])
        image_mean_ab.append(lab[..., 1:].reshape(-1, 2).mean(axis=0))
    mean_ab = np.mean(image_mean_ab, axis=0)

    result = ColorizeBenchmark(files[0].parent.name if files else "")
    for path, truth, light in zip(files, truths, lights):
        result.truth_colourfulness.append(colourfulness(truth))
        zeros = np.zeros(light.shape + (2,), dtype=np.float32)
        constant = zeros + mean_ab.astype(np.float32)
        outputs = {
            "grey (input as RGB)": lab_to_rgb_keeping_l(np.concatenate([light[..., None], zeros], axis=-1)),
            "mean ab of the set": lab_to_rgb_keeping_l(np.concatenate([light[..., None], constant], axis=-1)),
        }
        for name, (net, options) in methods.items():
            outputs[name] = colorize_lightness(net, light, **options)
        for name, output in outputs.items():
            result.scores.setdefault(name, []).append(score(truth, light, output))
        if on_image:
            on_image(path)
    return result


def photo_seconds(
    model: torch.nn.Module, path: Path, repeats: int = 3, precision: str = "fp32"
) -> tuple[float, tuple[int, int]]:
    """Median wall time to colour the photo at `path` end to end (its L in, RGB out), after a warm-up
    -> (seconds, (width, height))."""
    from aetools.bench.reference import median_seconds, precision_named, prepared

    data = load_image(path)
    lightness = luminance(data.pixels)
    net, p = prepared(model, precision), precision_named(precision)
    return median_seconds(lambda: colorize_lightness(net, lightness, precision=p), repeats), data.size


def colorize_report(
    files: list[Path],
    dataset: str,
    model: torch.nn.Module,
    work_sizes: Sequence[int] = (),
    temperature: float | None = None,
    calibration: float | None = None,
    precisions: Sequence[str] = ("fp32",),
    cost: bool = True,
    on_image: Callable[[Path], None] | None = None,
) -> Report:
    """`aetools eval colorize`: ours (in each precision, or at each of `work_sizes`: an ablation) beside the
    baselines, the first photo timed end to end if `cost`; ours' metrics `<set>_psnr`,
    `_colourfulness_ratio`, `_washed_out_share`, `_delta_l` and bf16's PSNR loss (`<set>_colorize`)."""
    from aetools.bench.reference import in_precision, precision_line, precision_named, prepared, torch_threads
    from aetools.weights import count_parameters

    readout = {"temperature": temperature, "calibration": calibration}
    if work_sizes:
        methods = {f"ours, work size {s}": (model, {**readout, "work_size": s}) for s in work_sizes}
    else:
        options = {p: {**readout, "work_size": None, "precision": precision_named(p)} for p in precisions}
        methods = {in_precision("ours", p): (prepared(model, p), options[p]) for p in precisions}
    result = run_colorize_benchmark(files, methods, on_image=on_image)

    config = model.config
    t = config.temperature if temperature is None else temperature
    c = config.calibration if calibration is None else calibration
    rows = []
    for name in result.scores:
        s = result.summary(name)
        cells = [f"{s['psnr']:.2f}", f"{s['colourfulness_ratio']:.2f}", f"{s['washed_out_share'] * 100:.0f}%"]
        rows.append([name, *cells, f"{s['delta_l']:.2f}"])
    table = Table(
        f"Colorization on {dataset}, {len(files)} images (input: L of the photo; readout T={t:g}, "
        f"calibration {c:g}; default work size {config.work_size})",
        ["method", "PSNR (RGB, dB)", "colourfulness / truth", "below 0.3 of truth", "mean abs ΔL (grey levels)"],
        rows,
    )
    if cost:
        timed = [(p, *photo_seconds(model, files[0], precision=p)) for p in precisions]
        (w, h) = timed[0][2]
        times = ", ".join(f"{seconds:.2f} s in {p}" for p, seconds, _ in timed)
        table.notes.append(
            f"{files[0].name} ({w}x{h}), end to end (L in, RGB out): {times} on {torch_threads()}"
            f" (median of 3, after a warm-up); {count_parameters(model) / 1e6:.2f} M parameters.\n{precision_line()}"
        )

    report = Report([table])
    if "ours" in result.scores:
        s = result.summary("ours")
        report.metrics[model.weights_path] = {
            metric_name(dataset, "psnr"): round(s["psnr"], 2),
            metric_name(dataset, "colourfulness_ratio"): round(s["colourfulness_ratio"], 3),
            metric_name(dataset, "washed_out_share"): round(s["washed_out_share"], 3),
            metric_name(dataset, "delta_l"): round(s["delta_l"], 3),
        }
        if "ours, bf16" in result.scores:
            pair = [(s["psnr"], result.summary("ours, bf16")["psnr"])]
            report.bf16[model.weights_path] = Bf16Check.of(pair, metric_name(dataset, "colorize"))
    return report
