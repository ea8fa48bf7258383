"""`aetools eval colorize`: automatic colorization scored against the truth, ours beside the grey and
mean-colour baselines in the same run.

Protocol (the usual one for automatic colorization, e.g. Zhang et al. 2016/2017):
  input  = L (CIE Lab, skimage) of the 8-bit ground-truth photo, as float
  output = the method's RGB, rounded to 8 bits
Baselines:
  grey          L with ab = 0: the input replicated to RGB
  mean ab       L with every pixel given the mean ab of all the set's true pixels (a constant tint;
                computed from the truth, so an optimistic baseline)
Measures, per image, then averaged over the set (Lab of both 8-bit images, skimage, D65):
  PSNR          RGB PSNR (skimage, data range 255)
  CIEDE2000     mean over pixels of ΔE00(truth, output) (`skimage.color.deltaE_ciede2000`, truth as the
                reference, kL = kC = kH = 1): the perceptual colour error, lightness included
  cast          |mean ab(output) - mean ab(truth)|: a colour cast over the whole photo (sepia, blue). Grey's
                cast is |mean ab(truth)|, the photo's own average colour; a photo counts as "cast worse than
                grey" if ours exceeds that by more than `CAST_TOLERANCE`
  colourfulness Hasler & Süsstrunk 2003, on 0-255 RGB:
                M = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2),  rg = R - G,  yb = (R + G) / 2 - B
                reported as the set's mean M relative to the truth's (not a score to maximise: a wrong hue is
                as colourful as a right one), with the share of images below 0.3 of their truth's M
                (sepia-like failures)
  ΔL            mean |L(output) - L(input)| in grey levels (L * 2.55, so 1 = one step of an 8-bit grey image)
With --hints N, also ours given N hint points drawn from the truth by Zhang, Zhu et al. 2017's simulated
user (`aetools.tasks.colorize.sample_hints`: positions normal about the centre, each the mean colour of a
1-9 px square of the full-size photo), seeded by the photo's index in the set: the same points every run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aetools.bench.report import Bf16Check, Report, Table, metric_name
from aetools.data.io import load_image, to_uint8
from aetools.tasks.colorize import (
    Hints,
    Readout,
    colorize_lightness,
    lab_to_rgb_keeping_l,
    luminance,
    rgb_to_lab,
    sample_hints,
)

GREY_LEVELS_PER_L = 2.55
# ab units: a cast this much above grey's is "worse"; 8-bit rounding moves a photo's mean ab far less, so
# the grey baseline itself never counts against itself
CAST_TOLERANCE = 0.5


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk's M of an (H, W, 3) uint8 (or 0-255 float) RGB image."""
    x = rgb.astype(np.float64)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


@dataclass
class Truth:
    """What every method's output of one photo is compared with, computed once.

    Args:
        rgb: the 8-bit photo (H, W, 3).
        lab: its Lab (H, W, 3); lab[..., 0] is the methods' input.
    """

    rgb: np.ndarray
    lab: np.ndarray

    @classmethod
    def of(cls, rgb8: np.ndarray) -> Truth:
        return cls(rgb8, rgb_to_lab(rgb8 / 255.0))

    @property
    def lightness(self) -> np.ndarray:
        return self.lab[..., 0]

    @cached_property
    def mean_ab(self) -> np.ndarray:
        return self.lab[..., 1:].reshape(-1, 2).mean(axis=0)

    @cached_property
    def colourfulness(self) -> float:
        return colourfulness(self.rgb)


@dataclass
class ImageScore:
    psnr: float
    ciede2000: float  # mean ΔE00 over pixels
    cast: float  # |mean ab(out) - mean ab(truth)|
    grey_cast: float  # |mean ab(truth)|: the grey baseline's cast on this photo
    colourfulness: float
    truth_colourfulness: float
    delta_l: float  # mean |L(out) - L(in)| in grey levels


def score(truth: Truth, output: np.ndarray) -> ImageScore:
    """output (H, W, 3) float RGB in [0, 1], rounded to 8 bits as written, against the truth."""
    from skimage.color import deltaE_ciede2000
    from skimage.metrics import peak_signal_noise_ratio

    out8 = to_uint8(output)
    lab = rgb_to_lab(out8 / 255.0)
    mean_ab = lab[..., 1:].reshape(-1, 2).mean(axis=0)
    with np.errstate(divide="ignore"):  # the truth itself: infinite PSNR
        psnr = float(peak_signal_noise_ratio(truth.rgb, out8, data_range=255))
    return ImageScore(
        psnr=psnr,
        ciede2000=float(deltaE_ciede2000(truth.lab, lab).mean()),
        cast=float(np.linalg.norm(mean_ab - truth.mean_ab)),
        grey_cast=float(np.linalg.norm(truth.mean_ab)),
        colourfulness=colourfulness(out8),
        truth_colourfulness=truth.colourfulness,
        delta_l=float(np.abs(lab[..., 0] - truth.lightness).mean() * GREY_LEVELS_PER_L),
    )


def summarize(scores: Sequence[ImageScore]) -> dict[str, float]:
    """One method's scores over a set -> psnr, ciede2000, cast (means over images); cast_worse_than_grey_share;
    colourfulness_ratio (set mean / truth's set mean); washed_out_share (below 0.3 of its truth's
    colourfulness); delta_l."""
    mean = lambda values: float(np.mean(list(values)))  # noqa: E731
    return {
        "psnr": mean(s.psnr for s in scores),
        "ciede2000": mean(s.ciede2000 for s in scores),
        "cast": mean(s.cast for s in scores),
        "cast_worse_than_grey_share": mean(s.cast > s.grey_cast + CAST_TOLERANCE for s in scores),
        "colourfulness_ratio": mean(s.colourfulness for s in scores) / mean(s.truth_colourfulness for s in scores),
        "washed_out_share": mean(s.colourfulness < 0.3 * s.truth_colourfulness for s in scores),
        "delta_l": mean(s.delta_l for s in scores),
    }


def grey_output(lightness: np.ndarray) -> np.ndarray:
    """The grey baseline: L with ab = 0, as RGB."""
    return lab_to_rgb_keeping_l(np.stack([lightness, 0 * lightness, 0 * lightness], axis=-1))


@dataclass
class ColorizeBenchmark:
    dataset: str
    scores: dict[str, list[ImageScore]] = field(default_factory=dict)

    def summary(self, method: str) -> dict[str, float]:
        """See `summarize`."""
        return summarize(self.scores[method])


def truth_hints(truth: Truth, count: int, seed: int) -> Hints:
    """`count` hint points drawn from the photo's own colours by the training sampler, seeded."""
    ab = torch.from_numpy(np.ascontiguousarray(truth.lab[..., 1:].transpose(2, 0, 1)))[None]
    channels = sample_hints(ab, torch.Generator().manual_seed(seed), count=count)[0]
    rows, cols = np.nonzero(channels[2].numpy() > 0)
    return Hints(rows, cols, (channels[:2, rows, cols].numpy().T * 100.0).astype(np.float32))


def run_colorize_benchmark(
    files: list[Path],
    methods: dict[str, tuple[torch.nn.Module, dict[str, Any]]],
    on_image: Callable[[Path], None] | None = None,
    hinted: dict[str, tuple[torch.nn.Module, dict[str, Any], int]] | None = None,
) -> ColorizeBenchmark:
    """methods: name -> (network, keyword arguments of `colorize_lightness`); hinted: name -> (network, keyword
    arguments, number of hint points drawn from the truth (`truth_hints`))."""
    truths = []
    for path in files:
        data = load_image(path)
        pixels = data.pixels if data.pixels.shape[2] == 3 else np.repeat(data.pixels, 3, axis=2)
        truths.append(Truth.of(to_uint8(pixels)))
    mean_ab = np.mean([t.mean_ab for t in truths], axis=0).astype(np.float32)

    result = ColorizeBenchmark(files[0].parent.name if files else "")
    for index, (path, truth) in enumerate(zip(files, truths)):
        light = truth.lightness
        constant = np.zeros(light.shape + (2,), dtype=np.float32) + mean_ab
        outputs = {
            "grey (input as RGB)": grey_output(light),
            "mean ab of the set": lab_to_rgb_keeping_l(np.concatenate([light[..., None], constant], axis=-1)),
        }
        for name, (net, options) in methods.items():
            outputs[name] = colorize_lightness(net, light, **options)
        for name, (net, options, count) in (hinted or {}).items():
            outputs[name] = colorize_lightness(net, light, hints=truth_hints(truth, count, index), **options)
        for name, output in outputs.items():
            result.scores.setdefault(name, []).append(score(truth, output))
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
    readout: Readout | None = None,
    precisions: Sequence[str] = ("fp32",),
    cost: bool = True,
    on_image: Callable[[Path], None] | None = None,
    hints: int = 0,
) -> Report:
    """`aetools eval colorize`: ours (in each precision, or at each of `work_sizes`: an ablation; with
    `readout`, or the model's own) beside the baselines, the first photo timed end to end if `cost`; ours'
    metrics `<set>_psnr`, `_ciede2000`, `_cast`, `_cast_worse_than_grey_share`, `_colourfulness_ratio`,
    `_washed_out_share`, `_delta_l` and bf16's PSNR loss (`<set>_colorize`). hints: also ours given this many
    hint points drawn from the truth (`truth_hints`), metrics `<set>_hints<N>_psnr` and so on."""
    from aetools.bench.reference import in_precision, precision_line, precision_named, prepared, torch_threads
    from aetools.weights import count_parameters

    config = model.config
    readout = readout or Readout.of(config)
    if work_sizes:
        methods = {f"ours, work size {s}": (model, {"readout": readout, "work_size": s}) for s in work_sizes}
    else:
        options = {p: {"readout": readout, "work_size": None, "precision": precision_named(p)} for p in precisions}
        methods = {in_precision("ours", p): (prepared(model, p), options[p]) for p in precisions}
    hinted = {}
    if hints:
        first = precisions[0]
        options = {"readout": readout, "work_size": None, "precision": precision_named(first)}
        hinted = {f"ours + {hints} hints": (prepared(model, first), options, hints)}
    result = run_colorize_benchmark(files, methods, on_image=on_image, hinted=hinted)

    rows = []
    for name in result.scores:
        s = result.summary(name)
        rows.append(
            [
                name,
                f"{s['psnr']:.2f}",
                f"{s['ciede2000']:.2f}",
                f"{s['cast']:.2f}",
                f"{s['cast_worse_than_grey_share'] * 100:.0f}%",
                f"{s['colourfulness_ratio']:.2f}",
                f"{s['washed_out_share'] * 100:.0f}%",
                f"{s['delta_l']:.2f}",
            ]
        )
    table = Table(
        f"Colorization on {dataset}, {len(files)} images (input: L of the photo; readout {readout.describe()}; "
        f"default work size {config.work_size})",
        [
            "method",
            "PSNR (RGB, dB)",
            "CIEDE2000",
            "colour cast (ab)",
            "cast worse than grey's",
            "colourfulness / truth",
            "below 0.3 of truth",
            "mean abs ΔL (grey levels)",
        ],
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
        digits = {"psnr": 2, "ciede2000": 2, "cast": 2, "delta_l": 3}
        report.metrics[model.weights_path] = {
            metric_name(dataset, measure): round(value, digits.get(measure, 3)) for measure, value in s.items()
        }
        for name in hinted:
            h = result.summary(name)
            table.notes.append(f"{name}: {h['psnr'] - s['psnr']:+.2f} dB PSNR over ours without hints.")
            report.metrics[model.weights_path].update(
                {
                    metric_name(dataset, f"hints{hints}", measure): round(value, digits.get(measure, 3))
                    for measure, value in h.items()
                }
            )
        if "ours, bf16" in result.scores:
            pair = [(s["psnr"], result.summary("ours, bf16")["psnr"])]
            report.bf16[model.weights_path] = Bf16Check.of(pair, metric_name(dataset, "colorize"))
    return report
