"""`aetools eval TASK`: benchmarks that print ours beside the baselines, measured in the same run.

Each command parses its options, calls its benchmark (`aetools.bench.<task>.<task>_report`, which measures
and returns a `bench.report.Report`) under a progress bar, then `publish`es the report: its tables in the
chosen `--format` and, with `--record`, its metrics stored in the weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from typer.core import TyperGroup

from aetools.cli import app
from aetools.cli.console import console, fail, load_task_model, out, parse_numbers, progress_bar

if TYPE_CHECKING:
    from aetools.bench.report import Bf16Check, Report


class _EvalGroup(TyperGroup):
    """`aetools eval MODEL ...`, where MODEL is no eval command, means `aetools eval generative MODEL ...`."""

    def resolve_command(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            return "generative", self.commands["generative"], args
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx):
        return sorted(super().list_commands(ctx), key=lambda name: name == "generative")  # the catch-all last


eval_app = typer.Typer(
    cls=_EvalGroup, help="Benchmark a task's model against baselines on a public set.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")

T = TypeVar("T")
MULTI = {"allow_extra_args": True, "ignore_unknown_options": False}
FORMATS = ("table", "markdown")


def check_format(fmt: str) -> None:
    """--format: table (rich) or markdown (the tables of docs/benchmarks.md)."""
    if fmt not in FORMATS:
        raise fail("--format: table or markdown")


def benchmark_files(data: Path, limit: int, fmt: str) -> list[Path]:
    """The checks every image benchmark starts with: --format, and the folder's images (the first N)."""
    from aetools.data.datasets import list_images

    check_format(fmt)
    files = list_images([data], recursive=False) if data.is_dir() else []
    if not files:
        raise fail(f"{data}: no images found")
    return files[:limit] if limit else files


def parse_precisions(text: str) -> list[str]:
    """--precisions fp32,bf16 -> the precisions ours is measured in (fp32 first: the reference)."""
    from aetools.bench.reference import PRECISIONS

    chosen = [p.strip() for p in text.split(",") if p.strip()]
    if not chosen or not set(chosen) <= set(PRECISIONS):
        raise fail(f"--precisions {text}: a comma list from {', '.join(PRECISIONS)}")
    return sorted(set(chosen), key=PRECISIONS.index)


def measure(title: str, files: list[Path], run: Callable[[Callable[[object], None]], T]) -> T:
    """Run a benchmark, `run(on_image)`, under a progress bar over `files`; the bar goes once every image is
    scored (timings that follow run without it). A file that cannot be read is a one-line error: a
    benchmark set with a broken file has no meaningful mean."""
    from aetools.data.io import ImageError

    with progress_bar(title, "", transient=True) as progress:
        bar = progress.add_task("eval", total=len(files))

        def on_image(_) -> None:
            progress.advance(bar)
            if progress.finished:
                progress.live.stop()  # the display only: leaving the block still ends the progress once

        try:
            return run(on_image)
        except ImageError as e:
            raise fail(f"{e} (benchmark stopped)") from None


def render(title: str, header: list[str], rows: list[list[str]], fmt: str) -> None:
    """A result table as a rich table, or as GitHub markdown for the docs."""
    if fmt == "markdown":  # plain text, never wrapped to the terminal's width
        lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        typer.echo("\n".join(lines) + "\n")
        return
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def publish(report: Report, fmt: str, record: bool) -> None:
    """Print the report's tables (each followed by its notes) and, with --record, store its metrics."""
    for table in report.tables:
        render(table.title, table.columns, table.rows, fmt)
        for note in table.notes:
            typer.echo(note + "\n")
    if not record:
        return
    from aetools.weights import read_weights, record_metrics

    for path, metrics in report.metrics.items():
        if path in report.bf16:
            metrics = {**metrics, **bf16_verdict(report.bf16[path], read_weights(path)[1].get("metrics", {}))}
        record_metrics(path, metrics)
        console.print(f"recorded {len(metrics)} metrics in {path}")


def bf16_verdict(check: Bf16Check, recorded: dict) -> dict:
    """The metrics `--record` stores about bf16 (its loss here, `bf16_auto`), said on the console."""
    from aetools.pipeline import BF16_METRIC

    metrics = check.metrics(recorded)
    console.print(
        f"bf16 against fp32 on {check.benchmark}: {check.loss:.3f} at most (tolerance {check.tolerance:g}); "
        f"over every benchmark recorded, --precision auto uses {'bf16' if metrics[BF16_METRIC] else 'fp32'} "
        "for this model"
    )
    return metrics


@eval_app.command("denoise", context_settings=MULTI, no_args_is_help=True)
def eval_denoise(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder of clean benchmark images (e.g. eval/cbsd68)."),
    protocol: str = typer.Option(
        "gaussian",
        help="gaussian (the DnCNN/KAIR protocol: float and 8-bit noise) or real (the noise users have: Gaussian"
        " noise saved as JPEG, and camera noise by unprocessing, then JPEG 90).",
    ),
    sigma: list[float] = typer.Option(
        [15.0, 25.0, 50.0], "--sigma", help="Noise levels (0-255), e.g. --sigma 15 25 50."
    ),
    jpeg_quality: str = typer.Option("90,70", "--jpeg-quality", help="real: JPEG qualities of the Gaussian columns."),
    camera: str = typer.Option("low,mid,high", help="real: camera-noise levels, a comma list from low, mid, high."),
    model: list[str] = typer.Option(
        None, "--model", "-m", help="Shipped model name or .safetensors path (real: repeat to compare)."
    ),
    baselines: str = typer.Option(
        None,
        help="Comma list from nlm, wavelet, tv, opencv, bm3d (bm3d: ~25 s/photo). Default: nlm,wavelet,tv;"
        " real: nlm,opencv,bm3d (bm3d and opencv left out with a note where their package is not installed).",
    ),
    variants: str = typer.Option("float,8-bit", help="gaussian: float (the published protocol) and/or 8-bit."),
    limit: int = typer.Option(0, help="Use only the first N images (0: all)."),
    cost: bool = typer.Option(True, "--cost/--no-cost", help="Also time ours beside a DnCNN-shaped network."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store the means (gaussian: float protocol) in the weights."),
) -> None:
    """Denoising: PSNR (RGB, dB), ours beside classical baselines. --protocol gaussian: the DnCNN/KAIR
    protocol; --protocol real: Gaussian noise saved as JPEG and camera noise, with PSNR, SSIM and time."""
    from aetools.bench.denoise import (
        BASELINES,
        CAMERA_LEVELS,
        OPTIONAL_PACKAGES,
        baseline_available,
        denoise_report,
        real_noise_conditions,
        real_noise_report,
    )

    if protocol not in ("gaussian", "real"):
        raise fail("--protocol: gaussian or real")
    sigmas = parse_numbers(sigma, ctx.args, "--sigma")
    default = "nlm,opencv,bm3d" if protocol == "real" else "nlm,wavelet,tv"
    chosen = [b.strip() for b in (default if baselines is None else baselines).split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BASELINES]
    if unknown:
        raise fail(f"--baselines: unknown {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    missing = [b for b in chosen if not baseline_available(b)]
    if missing and baselines is not None:
        pip = " ".join("opencv-python-headless" if b == "opencv" else OPTIONAL_PACKAGES[b] for b in missing)
        raise fail(f"--baselines {','.join(missing)}: not installed (pip install {pip}, or aetools[bench])")
    chosen = [b for b in chosen if b not in missing]
    notes = [f"{b}: left out, its package ({OPTIONAL_PACKAGES[b]}) is not installed (aetools[bench])." for b in missing]
    names = model or [None]
    if len(names) > 1 and (protocol == "gaussian" or record):
        raise fail("--model: give one (several compare under --protocol real, without --record)")
    files = benchmark_files(data, limit, fmt)
    precision_list = parse_precisions(precisions)
    if protocol == "real":
        try:
            qualities = [int(q) for q in jpeg_quality.split(",") if q.strip()]
        except ValueError:
            raise fail(f"--jpeg-quality {jpeg_quality}: integers from 1 to 100, e.g. 90,70") from None
        if not qualities or not all(1 <= q <= 100 for q in qualities):
            raise fail(f"--jpeg-quality {jpeg_quality}: integers from 1 to 100, e.g. 90,70")
        levels = [c.strip() for c in camera.split(",") if c.strip()]
        if not set(levels) <= set(CAMERA_LEVELS):
            raise fail(f"--camera {camera}: a comma list from {', '.join(CAMERA_LEVELS)}")
        nets = {}
        for name in names:
            net = load_task_model(name, "denoise", "cpu")
            nets[f"ours ({net.weights_path.stem}, blind)"] = net
        conditions = real_noise_conditions(sigmas, qualities, levels)
        report = measure(
            f"eval denoise --protocol real on {data.name}",
            files,
            lambda on_image: real_noise_report(
                files, data.name, conditions, nets, chosen, precision_list, notes, on_image
            ),
        )
        publish(report, fmt, record)
        return
    variant_list = [v.strip() for v in variants.split(",") if v.strip()]
    if not set(variant_list) <= {"float", "8-bit"}:
        raise fail("--variants: choose from float, 8-bit")
    net = load_task_model(names[0], "denoise", "cpu")
    report = measure(
        f"eval denoise on {data.name}",
        files,
        lambda on_image: denoise_report(
            files, data.name, sigmas, net, chosen, variant_list, precision_list, cost, on_image
        ),
    )
    publish(report, fmt, record)


@eval_app.command("superres", context_settings=MULTI, no_args_is_help=True)
def eval_superres(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder of HR benchmark images (e.g. eval/set5)."),
    scale: list[int] = typer.Option([2, 3, 4], "--scale", help="Scales, e.g. --scale 2 3 4."),
    model: list[str] = typer.Option(None, "--model", "-m", help="Shipped model name or path; repeat to compare."),
    degradation: str = typer.Option(
        "bicubic", help="bicubic (the published protocol) or real (blur, noise, JPEG: a check of upscale-real)."
    ),
    limit: int = typer.Option(0, help="Use only the first N images (0: all)."),
    ensemble: bool = typer.Option(False, "--ensemble", help="Also score ours with the 8-fold self-ensemble."),
    cost: bool = typer.Option(True, "--cost/--no-cost", help="Also time ours beside a VDSR-shaped network."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store the Y-PSNR/SSIM means in the weights' metadata."),
) -> None:
    """Super-resolution, standard protocol: Y-PSNR / SSIM (BT.601, border shaved), ours beside bicubic and
    Lanczos."""
    from aetools.bench.superres import superres_report

    scales = parse_numbers(scale, ctx.args, "--scale", int)
    if any(s not in (2, 3, 4) for s in scales):
        raise fail("--scale: choose from 2, 3, 4")
    files = benchmark_files(data, limit, fmt)
    precision_list = parse_precisions(precisions)
    if degradation not in ("bicubic", "real"):
        raise fail("--degradation: bicubic or real")
    names = model or [None]
    if record and len(names) > 1:
        raise fail("--record: give a single --model")
    nets = {}
    for name in names:
        net = load_task_model(name, "superres", "cpu")
        if any(s not in net.config.scales for s in scales):
            raise fail(f"--scale: {net.weights_path.name} upscales by {', '.join(map(str, net.config.scales))} only")
        nets["ours" if len(names) == 1 else f"ours: {name}"] = net
    report = measure(
        f"eval superres on {data.name}",
        files,
        lambda on_image: superres_report(
            files, data.name, scales, nets, degradation, ensemble, precision_list, cost, on_image
        ),
    )
    publish(report, fmt, record)


@eval_app.command("colorize", context_settings=MULTI, no_args_is_help=True)
def eval_colorize(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder of colour benchmark photos (e.g. eval/kodak24)."),
    model: list[str] = typer.Option(None, "--model", "-m", help="Shipped model name or path; repeat to compare."),
    work_size: list[int] = typer.Option(
        None, "--work-size", help="Network input long side(s), e.g. --work-size 256 384 768 (default: the model's)."
    ),
    temperature: float = typer.Option(None, "--temperature", help="Annealed-mean T (default: the model's)."),
    calibration: float = typer.Option(None, "--calibration", help="Rebalancing undone, 0-1 (default: the model's)."),
    flat_entropy: float = typer.Option(
        None,
        "--flat-entropy",
        help="T rises to 1 (the plain mean) where the distribution's normalised entropy reaches this, 0-1; "
        "0: one T everywhere (default: the model's).",
    ),
    hints: int = typer.Option(
        10,
        "--hints",
        min=0,
        help="Also ours and Levin et al. 2004 given N simulated clicks: 1-pixel hints of the true colour at"
        " random pixels (fixed seed); 0: none.",
    ),
    limit: int = typer.Option(0, help="Use only the first N images (0: all)."),
    cost: bool = typer.Option(True, "--cost/--no-cost", help="Also time a 768x512 photo end to end."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store ours' means in the weights' metadata."),
) -> None:
    """Automatic colorization from L: RGB PSNR, CIEDE2000, colour cast, colourfulness and lightness error,
    ours beside the grey and mean-colour baselines; and given N simulated clicks (--hints, 10 by default), ours
    beside Levin et al. 2004's propagation of the same clicks."""
    from dataclasses import replace

    from aetools.bench.colorize import colorize_report
    from aetools.tasks.colorize import Readout

    sizes = parse_numbers(work_size, ctx.args, "--work-size", int)
    if any(s < 16 for s in sizes):
        raise fail("--work-size: at least 16 pixels")
    files = benchmark_files(data, limit, fmt)
    precision_list = parse_precisions(precisions)
    names = model or [None]
    if record and len(names) > 1:
        raise fail("--record: give a single --model")
    nets = {name: load_task_model(name, "colorize", "cpu") for name in names}
    net = nets[names[0]] if len(names) == 1 else nets
    overrides = {"temperature": temperature, "calibration": calibration}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if flat_entropy is not None:
        overrides["flat_entropy"] = flat_entropy or None
    if record and (sizes or overrides):
        raise fail(
            "--record: measure the model as shipped (no --work-size, --temperature, --calibration or --flat-entropy)"
        )
    try:
        readout = replace(Readout.of(nets[names[0]].config), **overrides) if overrides else None
    except ValueError as e:
        raise fail(f"readout: {e}") from None
    report = measure(
        f"eval colorize on {data.name}",
        files,
        lambda on_image: colorize_report(
            files, data.name, net, sizes, readout, precision_list, cost, on_image, clicks=hints
        ),
    )
    publish(report, fmt, record)


@eval_app.command("inpaint", context_settings=MULTI, no_args_is_help=True)
def eval_inpaint(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder of benchmark photos (e.g. eval/kodak24)."),
    holes: list[float] = typer.Option(None, "--holes", help="Hole ratios, e.g. --holes 0.1 0.2 0.3 (the default)."),
    model: str = typer.Option(None, "--model", "-m", help="Shipped model name or .safetensors path."),
    work_size: list[int] = typer.Option(
        None, "--work-size", help="Also ours in two passes at this work size (ablation; repeat the option for several)."
    ),
    ensemble: bool = typer.Option(False, "--ensemble", help="Also score ours with the 8-fold self-ensemble."),
    limit: int = typer.Option(0, help="Use only the first N images (0: all)."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store ours' means in the weights' metadata."),
) -> None:
    """Hole filling with seeded masks: PSNR and SSIM over the whole image, ours beside OpenCV Telea and
    skimage biharmonic."""
    from aetools.bench.inpaint import inpaint_report

    ratios = parse_numbers(holes, ctx.args, "--holes", float) or [0.1, 0.2, 0.3]
    if any(not 0 < r < 1 for r in ratios):
        raise fail("--holes: ratios between 0 and 1, e.g. 0.2")
    sizes = parse_numbers(work_size, [], "--work-size", int)
    if any(s < 32 for s in sizes):
        raise fail("--work-size: at least 32 pixels")
    try:
        import cv2  # noqa: F401
    except ImportError:
        raise fail("the Telea baseline needs OpenCV: pip install opencv-python-headless") from None
    files = benchmark_files(data, limit, fmt)
    precision_list = parse_precisions(precisions)
    net = load_task_model(model, "inpaint", "cpu")
    report = measure(
        f"eval inpaint on {data.name}",
        files,
        lambda on_image: inpaint_report(files, data.name, net, ratios, sizes, ensemble, precision_list, on_image),
    )
    publish(report, fmt, record)


@eval_app.command("generative")
def eval_generative(
    models: list[str] = typer.Argument(
        None, help="Generative models (shipped names or .safetensors paths); default: every shipped one."
    ),
    data: str = typer.Option(
        "fashion-mnist", "--data", help="fashion-mnist or cifar10: its 10,000 test images (and its training images)."
    ),
    fashion_dir: Path = typer.Option(
        None, "--fashion-dir", help="Folder of the idx files (default: $AETOOLS_FASHION_MNIST)."
    ),
    cifar_dir: Path = typer.Option(
        None, "--cifar-dir", help="Folder of CIFAR-10's train.tar and test.tar (default: $AETOOLS_CIFAR10)."
    ),
    classifier: str = typer.Option(
        None,
        help="The classifier whose features score samples, trained on --data (default: classifier-fashion;"
        " for cifar10 a weights file from `aetools train classifier --data cifar10`).",
    ),
    samples: int = typer.Option(
        2000, min=0, help="Samples per generator for the Fréchet distance, precision and recall (0: skip)."
    ),
    temperature: float = typer.Option(
        None, "--temperature", min=0.01, help="VQ-VAE priors: the softmax temperature (default: each model's)."
    ),
    top_k: int = typer.Option(
        None, "--top-k", min=0, help="VQ-VAE priors: draw from the K likeliest codes (0: all; default: each model's)."
    ),
    iwae_k: int = typer.Option(100, "--iwae-k", min=1, help="Importance samples per image for the IWAE bound."),
    iwae_images: int = typer.Option(
        0, "--iwae-images", min=0, help="ELBO and IWAE on the first N test images only (0: all; k decodes each)."
    ),
    limit: int = typer.Option(0, min=0, help="Use the first N test images only (0: all 10,000)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store each model's numbers in its weights' metadata."),
) -> None:
    """Generators and classic autoencoders on Fashion-MNIST's (or CIFAR-10's) test set, beside PCA at the same
    code size:
    reconstruction, VAE bounds (ELBO, IWAE), VQ code usage and the prior's NLL, and the samples' Fréchet
    distance, precision and recall in a small classifier's features (not Inception FID) beside the
    train-vs-test floor.

    `aetools eval vae-fashion` is short for `aetools eval generative vae-fashion`."""
    import torch

    from aetools.bench.generative import generative_report
    from aetools.cli.console import prepare
    from aetools.data.cifar import load_cifar10
    from aetools.data.fashion import DatasetError, load_fashion_mnist
    from aetools.generative.pipeline import GENERATIVE_TASKS, load_generative
    from aetools.weights import WeightsError, load_model, read_manifest

    check_format(fmt)
    datasets = {  # --data -> (name in titles, metric prefix, (channels, size), the default judge, loader)
        "fashion-mnist": ("Fashion-MNIST", "fashion_test", (1, 28), "classifier-fashion", load_fashion_mnist),
        "cifar10": ("CIFAR-10", "cifar10_test", (3, 32), None, load_cifar10),
    }
    if data not in datasets:
        raise fail(f"--data {data}: the generative benchmark runs on {' or '.join(datasets)}")
    if (fashion_dir and data != "fashion-mnist") or (cifar_dir and data != "cifar10"):
        raise fail(f"--{'fashion' if fashion_dir else 'cifar'}-dir does not apply to --data {data}")
    data_name, prefix, shape, default_judge, load = datasets[data]
    classifier = classifier or default_judge
    if samples and classifier is None:
        raise fail(f"--data {data}: give --classifier (weights from `aetools train classifier --data {data}`)")
    dev = prepare(device, None)
    torch.manual_seed(0)  # the VAE bounds sample q(z|x): one seed, the same estimates run after run
    try:
        if models:
            nets = {name: load_generative(name, dev) for name in models}
        else:  # every shipped generator made for these images
            shipped = [e.name for e in read_manifest() if e.task in GENERATIVE_TASKS]
            nets = {name: net for name in shipped if image_shape(net := load_generative(name, dev)) == shape}
        judge = load_model(classifier, "classifier", dev) if samples else None
    except WeightsError as e:
        raise fail(f"{e} (eval commands: {', '.join(sorted(c.name for c in eval_app.registered_commands))})") from None
    if not nets:
        raise fail(f"no generative models given, or shipped for --data {data}")
    for name, net in [*nets.items(), *([(classifier, judge)] if judge is not None else [])]:
        if image_shape(net) != shape:
            channels, size = image_shape(net)
            raise fail(
                f"{name}: made for {size}x{size} {'grey' if channels == 1 else 'colour'} images, not {data_name}'s"
            )
    try:
        folder = cifar_dir if data == "cifar10" else fashion_dir
        train, test = load("train", folder), load("test", folder)
    except DatasetError as e:
        raise fail(str(e)) from None
    if limit:
        test = test.subset(torch.arange(min(limit, len(test))).numpy())

    with progress_bar("eval generative", "{task.fields[name]}", transient=True) as progress:
        bar = progress.add_task("eval", total=2 * len(nets), name="")
        report = generative_report(
            nets, train, test, iwae_k, iwae_images, judge=judge, judge_name=classifier, samples=samples,
            sampling={"temperature": temperature, "top_k": top_k},
            on_stage=lambda name: progress.update(bar, name=name), on_step=lambda: progress.advance(bar),
            data_name=data_name, metric_prefix=prefix,
        )  # fmt: skip
    publish(report, fmt, record)


def image_shape(model) -> tuple[int, int]:
    """A generative model's or classifier's images: (channels, side)."""
    return model.config.channels, model.config.size


from aetools.cli import evaluate_hash  # noqa: E402,F401  (registers `eval hash`, which uses the helpers above)
