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
Simulated clicks (`clicks` N, the CLI's --hints N, 10 by default): N distinct pixels drawn uniformly over
the photo, seeded by the photo's index in the set (the same clicks every run, for every method), each given
the photo's true ab there: 1-pixel hints, as a user's clicks with a colour picker. Ours (each model that takes
hints) and Levin, Lischinski & Weiss 2004 (`aetools.bench.levin`, solved at full resolution) get the same
clicks; each is scored as above.
Seconds per photo: the median over the set's photos of each method's wall time as it was scored (L in, RGB
out; Kodak24's photos are 768x512), on the threads torch uses.
"""

from __future__ import annotations

import time
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
CLICKS = 10  # simulated clicks per photo, by default
GREY = "grey (input as RGB)"
MEAN_AB = "mean ab of the set"
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
    """scores: per method, one per photo in order; seconds: per method (not the baselines), its wall time on
    each photo."""

    dataset: str
    scores: dict[str, list[ImageScore]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def summary(self, method: str) -> dict[str, float]:
        """See `summarize`."""
        return summarize(self.scores[method])

    def median_seconds(self, method: str) -> float | None:
        times = self.seconds.get(method)
        return float(np.median(times)) if times else None


def truth_hints(truth: Truth, count: int, seed: int) -> Hints:
    """`count` hint points drawn from the photo's own colours by the training sampler, seeded."""
    ab = torch.from_numpy(np.ascontiguousarray(truth.lab[..., 1:].transpose(2, 0, 1)))[None]
    channels = sample_hints(ab, torch.Generator().manual_seed(seed), count=count)[0]
    rows, cols = np.nonzero(channels[2].numpy() > 0)
    return Hints(rows, cols, (channels[:2, rows, cols].numpy().T * 100.0).astype(np.float32))


def click_hints(truth: Truth, count: int, seed: int) -> Hints:
    """`count` simulated clicks: distinct pixels drawn uniformly over the photo (seeded), each given the
    photo's true ab there (1-pixel hints)."""
    h, w = truth.lightness.shape
    flat = np.random.default_rng(seed).choice(h * w, size=min(count, h * w), replace=False)
    rows, cols = flat // w, flat % w
    return Hints(rows, cols, truth.lab[rows, cols, 1:].astype(np.float32))


def levin_row(clicks: int) -> str:
    return f"Levin et al. 2004 + {clicks} clicks"


def run_colorize_benchmark(
    files: list[Path],
    methods: dict[str, tuple[torch.nn.Module, dict[str, Any]]],
    on_image: Callable[[Path], None] | None = None,
    clicked: dict[str, tuple[torch.nn.Module, dict[str, Any]]] | None = None,
    clicks: int = 0,
    levin: bool = False,
) -> ColorizeBenchmark:
    """methods: row name -> (network, keyword arguments of `colorize_lightness`), run on L alone; clicked: the
    same, run with `clicks` simulated clicks (`click_hints`); levin: also Levin et al. 2004 given the same
    clicks (row `levin_row(clicks)`). Every method is timed on every photo."""
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
            GREY: grey_output(light),
            MEAN_AB: lab_to_rgb_keeping_l(np.concatenate([light[..., None], constant], axis=-1)),
        }

        runs = {name: (colorize_lightness, (net, light), options) for name, (net, options) in methods.items()}
        hints = click_hints(truth, clicks, index) if clicks else Hints.none()
        for name, (net, options) in (clicked or {}).items() if clicks else ():
            runs[name] = (colorize_lightness, (net, light), {**options, "hints": hints})
        if levin and clicks:
            runs[levin_row(clicks)] = (levin_output, (light, hints), {})
        for name, (method, args, kwargs) in runs.items():
            start = time.perf_counter()
            outputs[name] = method(*args, **kwargs)
            result.seconds.setdefault(name, []).append(time.perf_counter() - start)
        for name, output in outputs.items():
            result.scores.setdefault(name, []).append(score(truth, output))
        if on_image:
            on_image(path)
    return result


def levin_output(lightness: np.ndarray, hints: Hints) -> np.ndarray:
    """Levin et al. 2004 as a method of this benchmark: the hints propagated over L, as RGB with L kept."""
    from aetools.bench.levin import levin_colorize

    ab = levin_colorize(lightness, hints)
    return lab_to_rgb_keeping_l(np.concatenate([lightness[..., None], ab], axis=-1))


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
    model: torch.nn.Module | dict[str, torch.nn.Module],
    work_sizes: Sequence[int] = (),
    readout: Readout | None = None,
    precisions: Sequence[str] = ("fp32",),
    cost: bool = True,
    on_image: Callable[[Path], None] | None = None,
    clicks: int = CLICKS,
) -> Report:
    """`aetools eval colorize`: ours (a model, or several by name: rows "ours: NAME"; each in every precision,
    or at each of `work_sizes`: an ablation; with `readout`, or each model's own) beside the baselines; with
    `clicks`, also each model that takes hints and Levin et al. 2004 given the same simulated clicks
    (`click_hints`). The first photo is timed end to end if `cost`. Each model's metrics: `<set>_psnr`,
    `_ciede2000`, `_cast`, `_cast_worse_than_grey_share`, `_colourfulness_ratio`, `_washed_out_share`,
    `_delta_l`, the same with clicks as `<set>_clicks<N>_psnr` and so on, and bf16's PSNR loss
    (`<set>_colorize`)."""
    from aetools.bench.reference import in_precision, precision_line, precision_named, prepared, torch_threads
    from aetools.weights import count_parameters

    models = model if isinstance(model, dict) else {"ours": model}
    labels = {name: name if name == "ours" else f"ours: {name}" for name in models}
    readouts = {name: readout or Readout.of(net.config) for name, net in models.items()}
    methods, clicked, skipped = {}, {}, []
    first = precisions[0]
    for name, net in models.items():
        label, options = labels[name], {"readout": readouts[name], "work_size": None}
        if work_sizes:
            for size in work_sizes:
                methods[f"{label}, work size {size}"] = (net, {**options, "work_size": size})
        else:
            for p in precisions:
                methods[in_precision(label, p)] = (prepared(net, p), {**options, "precision": precision_named(p)})
        if clicks and getattr(net.config, "hints", False):
            clicked[f"{label} + {clicks} clicks"] = (
                prepared(net, first),
                {**options, "precision": precision_named(first)},
            )
        elif clicks:
            skipped.append(label)
    result = run_colorize_benchmark(files, methods, on_image, clicked, clicks, levin=bool(clicks))

    rows = []
    for name in result.scores:
        s = result.summary(name)
        seconds = result.median_seconds(name)
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
                "-" if seconds is None else f"{seconds:.2f}",
            ]
        )
    if len(models) == 1:
        (only,) = models.values()
        how = f"readout {readouts['ours' if 'ours' in readouts else next(iter(readouts))].describe()}; "
        how += f"default work size {only.config.work_size}"
    else:
        how = "each model's own readout and work size"
    table = Table(
        f"Colorization on {dataset}, {len(files)} images (input: L of the photo; {how})",
        [
            "method",
            "PSNR (RGB, dB)",
            "CIEDE2000",
            "colour cast (ab)",
            "cast worse than grey's",
            "colourfulness / truth",
            "below 0.3 of truth",
            "mean abs ΔL (grey levels)",
            "s / photo",
        ],
        rows,
    )
    if clicks:
        table.notes.append(
            f"+ {clicks} clicks: {clicks} pixels of each photo drawn uniformly (seeded by its index), each given the"
            " true colour there; the same clicks for every method. Levin et al. 2004 solves at full resolution."
            + (f" {', '.join(skipped)}: takes no hints, no clicked row." if skipped else "")
        )
    table.notes.append(
        f"s / photo: median wall time over the photos as they were scored (L in, RGB out) on {torch_threads()}."
    )
    if cost:
        for name, net in models.items():
            timed = [(p, *photo_seconds(net, files[0], precision=p)) for p in precisions]
            (w, h) = timed[0][2]
            times = ", ".join(f"{seconds:.2f} s in {p}" for p, seconds, _ in timed)
            table.notes.append(
                f"{labels[name]}: {files[0].name} ({w}x{h}), end to end (L in, RGB out): {times} on {torch_threads()}"
                f" (median of 3, after a warm-up); {count_parameters(net) / 1e6:.2f} M parameters."
            )
        table.notes.append(precision_line())

    report = Report([table])
    digits = {"psnr": 2, "ciede2000": 2, "cast": 2, "delta_l": 3}

    def rounded(summary: dict[str, float], *condition: str) -> dict[str, float]:
        return {
            metric_name(dataset, *condition, measure): round(value, digits.get(measure, 3))
            for measure, value in summary.items()
        }

    levin = result.summary(levin_row(clicks)) if clicks else None
    for name, net in models.items():
        label = labels[name]
        if label not in result.scores:  # a work-size ablation: nothing recorded
            continue
        s = result.summary(label)
        report.metrics[net.weights_path] = rounded(s)
        with_clicks = f"{label} + {clicks} clicks"
        if with_clicks in result.scores:
            c = result.summary(with_clicks)
            table.notes.append(
                f"{with_clicks}: {c['psnr'] - s['psnr']:+.2f} dB PSNR over {label} without clicks and"
                f" {c['psnr'] - levin['psnr']:+.2f} dB over Levin et al. with the same clicks; CIEDE2000"
                f" {(1 - c['ciede2000'] / s['ciede2000']) * 100:.0f}% below {label} without clicks."
            )
            report.metrics[net.weights_path].update(rounded(c, f"clicks{clicks}"))
        bf16 = in_precision(label, "bf16")
        if bf16 in result.scores:
            pair = [(s["psnr"], result.summary(bf16)["psnr"])]
            report.bf16[net.weights_path] = Bf16Check.of(pair, metric_name(dataset, "colorize"))
    return report
