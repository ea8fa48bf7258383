"""`aetools eval TASK`: benchmarks that print ours beside the baselines, measured in the same run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from typer.core import TyperGroup

from aetools.cli import app
from aetools.cli.console import console, fail, load_task_model, out, parse_numbers, progress_bar


class _EvalGroup(TyperGroup):
    """`aetools eval MODEL ...`, where MODEL is no eval command, means `aetools eval generative MODEL ...`."""

    def resolve_command(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            return "generative", self.commands["generative"], args
        return super().resolve_command(ctx, args)


eval_app = typer.Typer(
    cls=_EvalGroup, help="Benchmark a task's model against baselines on a public set.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")

T = TypeVar("T")
MULTI = {"allow_extra_args": True, "ignore_unknown_options": False}


def benchmark_files(data: Path, limit: int, fmt: str) -> list[Path]:
    """The checks every `eval` command starts with: --format, and the benchmark folder's images (first N)."""
    from aetools.data.datasets import list_images

    if fmt not in ("table", "markdown"):
        raise fail("--format: table or markdown")
    files = list_images([data], recursive=False) if data.is_dir() else []
    if not files:
        raise fail(f"{data}: no images found")
    return files[:limit] if limit else files


def measure(title: str, files: list[Path], run: Callable[[Callable[[Path], None]], T]) -> T:
    """Run a benchmark, `run(on_image)`, under a progress bar over `files`. A file that cannot be read is a
    one-line error: a benchmark set with a broken file has no meaningful mean."""
    from aetools.data.io import ImageError

    with progress_bar(title, "", transient=True) as progress:
        bar = progress.add_task("eval", total=len(files))
        try:
            return run(lambda _: progress.advance(bar))
        except ImageError as e:
            raise fail(f"{e} (benchmark stopped)") from None


def render(title: str, header: list[str], rows: list[list[str]], fmt: str) -> None:
    """A result table as a rich table, or as GitHub markdown for the README."""
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


def torch_threads() -> str:
    """ "1 torch thread" / "2 torch threads": the threads a timing ran on."""
    import torch

    n = torch.get_num_threads()
    return f"{n} torch thread" + ("" if n == 1 else "s")


def parse_precisions(text: str) -> list[str]:
    """--precisions fp32,bf16 -> the precisions ours is measured in (fp32 first: the reference)."""
    from aetools.bench.reference import PRECISIONS

    chosen = [p.strip() for p in text.split(",") if p.strip()]
    if not chosen or not set(chosen) <= set(PRECISIONS):
        raise fail(f"--precisions {text}: a comma list from {', '.join(PRECISIONS)}")
    return sorted(set(chosen), key=PRECISIONS.index)


def render_cost(title: str, rows: list, precisions: list[str], reference: str, what: str, fmt: str) -> None:
    """A cost table with one MP/s column per precision, the bf16 speed-up, and ours vs the reference shape
    in the same precision; then the processor's capability line (what `auto` picks here)."""
    import torch

    from aetools.precision import capability_line

    by_name = {r.name: r for r in rows}
    header = ["network", "params"] + [f"{what} {p}" for p in precisions]
    if len(precisions) > 1:
        header.append("bf16 / fp32")
    header += [f"vs {reference.split(' (')[0]}, {p}" for p in precisions]
    table = []
    for r in rows:
        speeds = r.megapixels_per_s
        cells = [r.name, f"{r.params / 1e6:.2f} M"] + [f"{speeds[p]:.3f}" for p in precisions]
        if len(precisions) > 1:
            cells.append(f"{speeds['bf16'] / speeds['fp32']:.1f}x")
        cells += [f"{speeds[p] / by_name[reference].megapixels_per_s[p]:.1f}x" for p in precisions]
        table.append(cells)
    render(f"{title} ({torch_threads()})", header, table, fmt)
    typer.echo(f"Precision: {capability_line(torch.device('cpu'))}.\n")


def bf16_record(pairs: list[tuple[float, float]], net, benchmark: str, tolerance: float | None = None) -> dict:
    """The metrics `--record` stores about bf16: its largest loss on this benchmark, and whether `auto` may
    use bf16 (every benchmark recorded so far within the tolerance)."""
    from aetools.bench.reference import BF16_PSNR_TOLERANCE, bf16_verdict
    from aetools.pipeline import BF16_METRIC

    tolerance = BF16_PSNR_TOLERANCE if tolerance is None else tolerance
    ok, loss = bf16_verdict(pairs, tolerance)
    key = f"{benchmark}_bf16_max_loss"
    losses = {k: v for k, v in net.weights_header.get("metrics", {}).items() if k.endswith("_bf16_max_loss")}
    losses[key] = round(loss, 4)
    allowed = all(v <= tolerance for v in losses.values())
    console.print(
        f"bf16 against fp32 on {benchmark}: {loss:.3f} at most (tolerance {tolerance:g}); "
        f"over every benchmark recorded, --precision auto uses {'bf16' if allowed else 'fp32'} for this model"
    )
    return {key: round(loss, 4), BF16_METRIC: allowed}


@eval_app.command("denoise", context_settings=MULTI, no_args_is_help=True)
def eval_denoise(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder of clean benchmark images (e.g. eval/cbsd68)."),
    sigma: list[float] = typer.Option(
        [15.0, 25.0, 50.0], "--sigma", help="Noise levels (0-255), e.g. --sigma 15 25 50."
    ),
    model: str = typer.Option(None, "--model", "-m", help="Shipped model name or .safetensors path."),
    baselines: str = typer.Option("nlm,wavelet,tv", help="Comma list from nlm, wavelet, tv, bm3d (bm3d: ~25 s/photo)."),
    variants: str = typer.Option("float,8-bit", help="float (the published protocol) and/or 8-bit."),
    limit: int = typer.Option(0, help="Use only the first N images (0: all)."),
    cost: bool = typer.Option(True, "--cost/--no-cost", help="Also time ours beside a DnCNN-shaped network."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store the float-protocol means in the weights' metadata."),
) -> None:
    """Gaussian denoising, DnCNN/KAIR protocol: PSNR (RGB, dB), ours beside skimage baselines."""
    from aetools.bench.denoise import (
        BASELINES,
        PUBLISHED,
        bm3d_available,
        measure_cost,
        ours_label,
        run_denoise_benchmark,
    )
    from aetools.weights import record_metrics

    sigmas = parse_numbers(sigma, ctx.args, "--sigma")
    chosen = [b.strip() for b in baselines.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BASELINES]
    if unknown:
        raise fail(f"--baselines: unknown {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    if "bm3d" in chosen and not bm3d_available():
        raise fail("--baselines bm3d: the bm3d package is not installed (pip install bm3d)")
    variant_list = [v.strip() for v in variants.split(",") if v.strip()]
    if not set(variant_list) <= {"float", "8-bit"}:
        raise fail("--variants: choose from float, 8-bit")
    files = benchmark_files(data, limit, fmt)
    precision_list = parse_precisions(precisions)
    net = load_task_model(model, "denoise", "cpu")

    result = measure(
        f"eval denoise on {data.name}",
        files,
        lambda on_image: run_denoise_benchmark(
            files, sigmas, net, chosen, variant_list, on_image=on_image, precisions=precision_list
        ),
    )

    methods = list(dict.fromkeys(m for m, _, _ in result.psnr))
    header = ["method"] + [f"σ={s:g} {v}" for s in sigmas for v in variant_list]
    rows = []
    for m in methods:
        cells = [result.mean(m, s, v) for s in sigmas for v in variant_list]
        rows.append([m] + ["-" if c is None else f"{c:.2f}" for c in cells])
    if data.name.lower() == "cbsd68":
        for name, numbers in PUBLISHED.items():
            rows.append(
                [f"{name}, published"]
                + [f"{numbers[s]:.2f}" if v == "float" and s in numbers else "" for s in sigmas for v in variant_list]
            )
    render(f"Denoising PSNR (dB, RGB) on {data.name}, {len(files)} images", header, rows, fmt)

    if cost:
        rows = measure_cost(net, precisions=precision_list)
        render_cost("CPU cost, 512x512 input", rows, precision_list, rows[-1].name, "MP/s", fmt)

    if record:
        metrics = {
            f"{data.name}_sigma{s:g}_psnr": round(result.mean("ours (blind)", s, "float"), 2)
            for s in sigmas
            if result.mean("ours (blind)", s, "float") is not None
        }
        if "bf16" in precision_list:
            pairs = [
                (result.mean(ours_label(g, "fp32"), s, v), result.mean(ours_label(g, "bf16"), s, v))
                for g in (False, True)
                for s in sigmas
                for v in variant_list
            ]
            metrics.update(bf16_record([p for p in pairs if None not in p], net, data.name))
        record_metrics(net.weights_path, metrics)
        console.print(f"recorded {len(metrics)} metrics in {net.weights_path}")


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
    from aetools.bench.superres import PUBLISHED, measure_cost, photo_seconds, run_superres_benchmark
    from aetools.weights import record_metrics

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

    result = measure(
        f"eval superres on {data.name}",
        files,
        lambda on_image: run_superres_benchmark(
            files, scales, nets, degradation, on_image=on_image, ensemble=ensemble, precisions=precision_list
        ),
    )

    methods = list(dict.fromkeys(m for m, _ in result.scores))
    header = ["method"] + [f"x{s} PSNR / SSIM" for s in scales]
    rows = []
    for m in methods:
        cells = [result.mean(m, s) for s in scales]
        rows.append([m] + ["-" if c is None else f"{c[0]:.2f} / {c[1]:.4f}" for c in cells])
    for name, numbers in PUBLISHED.items():
        table = numbers.get(data.name.lower())
        if table and degradation == "bicubic":
            rows.append([f"{name}, published"] + [f"{table[s]:.2f}" if s in table else "" for s in scales])
    what = "" if degradation == "bicubic" else ", LR with real-photo degradation (blur, noise, JPEG)"
    render(f"Super-resolution Y-PSNR (dB) / SSIM on {data.name}, {len(files)} images{what}", header, rows, fmt)

    net = next(iter(nets.values()))
    if cost:
        rows = measure_cost(net, scales, precisions=precision_list)
        render_cost("CPU cost, 480x480 output", rows, precision_list, rows[-1].name, "output MP/s", fmt)
        if 4 in net.config.scales:
            times = ", ".join(f"{photo_seconds(net, precision=p):.2f} s in {p}" for p in precision_list)
            typer.echo(f"640x480 photo upscaled x4 (2560x1920): {times} (median of 3, after a warm-up)\n")

    if record:
        metrics = {}
        for s in scales:
            mean = result.mean("ours", s)
            key = data.name if degradation == "bicubic" else f"{data.name}_real"
            if mean:
                metrics[f"{key}_x{s}_y_psnr"] = round(mean[0], 2)
                metrics[f"{key}_x{s}_y_ssim"] = round(mean[1], 4)
        if "bf16" in precision_list:
            pairs = [(result.mean("ours", s)[0], result.mean("ours, bf16", s)[0]) for s in scales]
            metrics.update(bf16_record(pairs, net, key))
        record_metrics(net.weights_path, metrics)
        console.print(f"recorded {len(metrics)} metrics in {net.weights_path}")


@eval_app.command("colorize", context_settings=MULTI, no_args_is_help=True)
def eval_colorize(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder of colour benchmark photos (e.g. eval/kodak24)."),
    model: str = typer.Option(None, "--model", "-m", help="Shipped model name or .safetensors path."),
    work_size: list[int] = typer.Option(
        None, "--work-size", help="Network input long side(s), e.g. --work-size 256 384 768 (default: the model's)."
    ),
    temperature: float = typer.Option(None, "--temperature", help="Annealed-mean T (default: the model's)."),
    calibration: float = typer.Option(None, "--calibration", help="Rebalancing undone, 0-1 (default: the model's)."),
    limit: int = typer.Option(0, help="Use only the first N images (0: all)."),
    cost: bool = typer.Option(True, "--cost/--no-cost", help="Also time a 768x512 photo end to end."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store ours' means in the weights' metadata."),
) -> None:
    """Automatic colorization from L: RGB PSNR, colourfulness and lightness error, ours beside the grey and
    mean-colour baselines."""
    import torch

    from aetools.bench.colorize import photo_seconds, run_colorize_benchmark
    from aetools.weights import count_parameters, record_metrics

    sizes = parse_numbers(work_size, ctx.args, "--work-size", int)
    if any(s < 16 for s in sizes):
        raise fail("--work-size: at least 16 pixels")
    files = benchmark_files(data, limit, fmt)
    precision_list = parse_precisions(precisions)
    net = load_task_model(model, "colorize", "cpu")
    if record and (sizes or temperature is not None or calibration is not None):
        raise fail("--record: measure the model as shipped (no --work-size, --temperature or --calibration)")
    readout = {"temperature": temperature, "calibration": calibration}
    from aetools.bench.reference import in_precision, precision_named, prepared

    methods = {
        in_precision("ours", p): (
            prepared(net, p),
            {**readout, "work_size": None, "precision": precision_named(p)},
        )
        for p in precision_list
    }
    if sizes:
        methods = {f"ours, work size {s}": (net, {**readout, "work_size": s}) for s in sizes}

    result = measure(
        f"eval colorize on {data.name}",
        files,
        lambda on_image: run_colorize_benchmark(files, methods, on_image=on_image),
    )

    config = net.config
    t = config.temperature if temperature is None else temperature
    c = config.calibration if calibration is None else calibration
    rows = []
    for name in result.scores:
        s = result.summary(name)
        rows.append(
            [
                name,
                f"{s['psnr']:.2f}",
                f"{s['colourfulness_ratio']:.2f}",
                f"{s['washed_out_share'] * 100:.0f}%",
                f"{s['delta_l']:.2f}",
            ]
        )
    render(
        f"Colorization on {data.name}, {len(files)} images (input: L of the photo; readout T={t:g}, "
        f"calibration {c:g}; default work size {config.work_size})",
        ["method", "PSNR (RGB, dB)", "colourfulness / truth", "below 0.3 of truth", "mean abs ΔL (grey levels)"],
        rows,
        fmt,
    )
    if cost:
        from aetools.precision import capability_line

        timed = [(p, *photo_seconds(net, files[0], precision=p)) for p in precision_list]
        (w, h) = timed[0][2]
        times = ", ".join(f"{seconds:.2f} s in {p}" for p, seconds, _ in timed)
        typer.echo(
            f"{files[0].name} ({w}x{h}), end to end (L in, RGB out): {times} on {torch_threads()}"
            f" (median of 3, after a warm-up); {count_parameters(net) / 1e6:.2f} M parameters.\n"
            f"Precision: {capability_line(torch.device('cpu'))}.\n"
        )
    if record:
        s = result.summary("ours")
        metrics = {
            f"{data.name}_psnr": round(s["psnr"], 2),
            f"{data.name}_colourfulness_ratio": round(s["colourfulness_ratio"], 3),
            f"{data.name}_washed_out_share": round(s["washed_out_share"], 3),
            f"{data.name}_delta_l": round(s["delta_l"], 3),
        }
        if "bf16" in precision_list:
            pair = [(s["psnr"], result.summary("ours, bf16")["psnr"])]
            metrics.update(bf16_record(pair, net, f"{data.name}_colorize"))
        record_metrics(net.weights_path, metrics)
        console.print(f"recorded {len(metrics)} metrics in {net.weights_path}")


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
    import numpy as np
    import torch

    from aetools.bench.inpaint import biharmonic, ours, run_inpaint_benchmark, telea
    from aetools.bench.reference import in_precision
    from aetools.weights import count_parameters, record_metrics

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
    methods = {"OpenCV Telea": telea, "skimage biharmonic": biharmonic}
    methods |= {in_precision("ours", p): ours(net, precision=p) for p in precision_list}
    methods |= {f"ours, work size {s}": ours(net, s) for s in sizes}
    if ensemble:
        methods["ours + self-ensemble (8x time)"] = ours(net, ensemble=True)

    result = measure(
        f"eval inpaint on {data.name}",
        files,
        lambda on_image: run_inpaint_benchmark(files, methods, ratios, on_image=on_image),
    )

    rows = []
    for name in methods:
        row = [name]
        for r in ratios:
            row += [f"{result.mean(name, r, 'psnr'):.2f}", f"{result.mean(name, r, 'ssim'):.4f}"]
        seconds = np.mean([result.mean(name, r, "seconds") for r in ratios])
        rows.append(row + [f"{seconds:.2f}", str(result.outside_change(name))])
    header = ["method"]
    for r in ratios:
        header += [f"PSNR {r:.0%}", f"SSIM {r:.0%}"]
    render(
        f"Inpainting on {data.name}, {len(files)} images, seeded masks (benchmark_mask), scores over the whole image",
        header + ["s / image", "max change outside holes"],
        rows,
        fmt,
    )
    from aetools.precision import capability_line

    typer.echo(
        f"times: mean per image over the hole ratios, on {torch_threads()};"
        f" ours has {count_parameters(net) / 1e6:.2f} M parameters.\n"
        f"Precision: {capability_line(torch.device('cpu'))}.\n"
    )
    if record:
        metrics = {
            f"{data.name}_holes{round(r * 100)}_{what}": round(result.mean("ours", r, what), 4)
            for r in ratios
            for what in ("psnr", "ssim")
        }
        if "bf16" in precision_list:
            pairs = [(result.mean("ours", r, "psnr"), result.mean("ours, bf16", r, "psnr")) for r in ratios]
            metrics.update(bf16_record(pairs, net, f"{data.name}_inpaint"))
        record_metrics(net.weights_path, metrics)
        console.print(f"recorded {len(metrics)} metrics in {net.weights_path}")


@eval_app.command("hash", no_args_is_help=True)
def eval_hash(
    eval_root: Path = typer.Option(
        ..., "--eval", help="Folder holding kodak24/ and cbsd68/ (near-duplicate originals)."
    ),
    photos: Path = typer.Option(None, "--photos", help="Folder of photos to draw the distractors from."),
    cifar: Path = typer.Option(None, "--cifar", help="Folder holding CIFAR-10's test.tar and train.tar."),
    model: str = typer.Option(None, "--model", "-m", help="Near-duplicate model: shipped name or .safetensors path."),
    cifar_model: list[str] = typer.Option(
        None, "--cifar-model", help="Model(s) scored on CIFAR-10 (default: hash-cifar and the near-duplicate one)."
    ),
    distractors: int = typer.Option(1000, help="Distractor photos in the near-duplicate database."),
    parts: list[str] = typer.Option(None, "--part", help="near-dup, semantic, speed (default: all three)."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store ours' scores in the weights' metadata."),
) -> None:
    """Binary codes for search: near-duplicate Recall@1 per edit beside imagehash pHash/dHash; CIFAR-10
    mAP@1000 beside LSH and ITQ; indexing and query speed."""
    import re
    import tempfile

    import numpy as np
    import torch

    from aetools.bench import hash as bench
    from aetools.bench.reference import in_precision
    from aetools.weights import WeightsError, load_model, read_manifest, record_metrics

    if fmt not in ("table", "markdown"):
        raise fail("--format: table or markdown")
    parts = parts or ["near-dup", "semantic", "speed"]
    if set(parts) - {"near-dup", "semantic", "speed"}:
        raise fail("--part: near-dup, semantic or speed")
    try:
        import imagehash  # noqa: F401
    except ImportError:
        raise fail("the baselines need imagehash: pip install imagehash") from None
    precision_list = parse_precisions(precisions)
    net = load_task_model(model, "hash", "cpu")
    threads = torch.get_num_threads()
    metrics: dict[Path, dict[str, float]] = {}  # weights file -> its measured scores

    if "near-dup" in parts or "speed" in parts:
        if photos is None:
            raise fail("--photos: the folder the distractors (and the speed test's files) come from")
        originals, others = bench.near_duplicate_database(eval_root, photos, distractors)
        if not originals:
            raise fail(f"{eval_root}: no kodak24/ or cbsd68/ images")

    if "near-dup" in parts:
        hashers = {
            "pHash (imagehash)": bench.imagehash_hasher("phash"),
            "dHash (imagehash)": bench.imagehash_hasher("dhash"),
            "pHash, borders trimmed as ours": bench.imagehash_hasher("phash", trim=True),
        }
        for p in precision_list:
            hashers[in_precision(f"ours ({net.config.bits} bits)", p)] = bench.model_hasher(net, 256, p)
        with progress_bar("eval hash: near-duplicates", "", transient=True) as progress:
            bar = progress.add_task("near-dup", total=len(hashers))
            result = bench.run_near_duplicate(hashers, originals, others, lambda: progress.advance(bar))
        edits = list(bench.BENCHMARK_EDITS)
        rows = []
        for name, recall in result.recall.items():
            photometric = [recall[e] for e in edits if bench.BENCHMARK_EDITS[e][1] == "photometric"]
            geometric = [recall[e] for e in edits if bench.BENCHMARK_EDITS[e][1] == "geometric"]
            rows.append(
                [name]
                + [f"{100 * recall[e]:.1f}" for e in edits]
                + [f"{100 * np.mean(photometric):.1f}", f"{100 * np.mean(geometric):.1f}"]
            )
        render(
            f"Near-duplicate Recall@1 (%): {result.queries} originals (Kodak24 + CBSD68) among {result.database}"
            f" images ({result.database - result.queries} distractors), one query per original and edit",
            ["method", *edits, "photometric mean", "geometric mean"],
            rows,
            fmt,
        )
        ours_name = f"ours ({net.config.bits} bits)"
        typer.echo(
            "median Hamming distance from an edited query to its original: "
            + "; ".join(
                f"{name}: " + ", ".join(f"{e} {d[e]:.0f}" for e in edits) for name, d in result.distances.items()
            )
            + "\n1st percentile of the distance between two different database photos: "
            + ", ".join(f"{name} {d:.0f}" for name, d in result.distinct.items())
            + f"\npairs of different database photos (of {result.database * (result.database - 1) // 2:,}) within"
            + " 2 / 3 / 4 / 6 bits: "
            + "; ".join(
                f"{name} " + " / ".join(str(v) for v in pairs.values()) for name, pairs in result.close_pairs.items()
            )
            + "\n"
        )
        for suffix, key in (("", ours_name), ("_orientations", f"{ours_name} + 8 orientations")):
            for e in edits:
                slug = re.sub(r"[^a-z0-9]+", "_", e.lower()).strip("_")
                metrics.setdefault(net.weights_path, {})[f"neardup_{slug}{suffix}"] = round(result.recall[key][e], 4)
        if "bf16" in precision_list:  # auto may use bf16 if no edit's Recall@1 moves by more than 0.5 points
            bf16 = f"{ours_name}, bf16"
            pairs = [(100 * result.recall[ours_name][e], 100 * result.recall[bf16][e]) for e in edits]
            pairs += [(b, a) for a, b in pairs]  # a change either way counts
            if record:
                metrics[net.weights_path].update(bf16_record(pairs, net, "neardup", tolerance=0.5))

    if "semantic" in parts:
        if cifar is None:
            raise fail("--cifar: the folder holding test.tar and train.tar")
        names = cifar_model or [e.name for e in read_manifest() if e.name.startswith("hash-cifar")]
        models = {}
        try:
            for name in names:
                models[f"ours ({name})"] = load_model(name, "hash")
        except WeightsError as e:
            raise fail(str(e)) from None
        models[f"ours ({model or 'hash'}: the near-duplicate model, grey, trained on photos)"] = net
        latent_model = next(iter(models.values()))
        console.print("eval hash: reading CIFAR-10 ...")
        images, labels, is_query = bench.read_cifar(cifar)
        with progress_bar("eval hash: CIFAR-10 mAP@1000", "", transient=True) as progress:
            bar = progress.add_task("semantic", total=3)
            scores = bench.run_semantic(
                images, labels, is_query, models, latent_model, on_step=lambda: progress.advance(bar)
            )
        rows = [[name] + [f"{scores[name].get(b, float('nan')):.4f}" for b in (16, 32, 64)] for name in scores]
        render(
            f"CIFAR-10 mAP@1000: {is_query.sum()} queries, {(~is_query).sum()} database images"
            f" (ITQ on our latent: {next(iter(models))})",
            ["method", "16 bits", "32 bits", "64 bits"],
            rows,
            fmt,
        )
        for name, m in models.items():
            found = {f"cifar10_map1000_{b}bits": round(v, 4) for b, v in scores[name].items()}
            metrics.setdefault(m.weights_path, {}).update(found)

    if "speed" in parts:
        timed = others[:1000]
        with tempfile.TemporaryDirectory() as tmp:
            camera = bench.camera_sized_copies(originals[:24], Path(tmp) / "camera")
            rows = []
            for label, files in (
                (f"{len(timed)} photos (JPEG, up to 400 px)", timed),
                (f"{len(camera)} camera-sized JPEGs (12 MP)", camera),
            ):
                console.print(f"eval hash: timing {label} ...")
                p = bench.files_per_second(bench.phash_files, files)
                ours = [bench.files_per_second(bench.ours_files(net, q), files) for q in precision_list]
                one = bench.files_per_second(bench.api_one_call_per_file(net), files)
                many = bench.files_per_second(bench.api_list_of_files(net), files)
                cells = [f"{o:.0f}" for o in ours] + [f"{o / p:.2f}x" for o in ours]
                rows.append([label, f"{p:.0f}", *cells, f"{one:.0f}", f"{many:.0f}"])
        render(
            "Indexing speed (files/s: read, decode, code; best of 2 passes)",
            [
                "files",
                "pHash (imagehash, 1 process)",
                *[f"ours (hash-index pipeline, {threads} threads), {q}" for q in precision_list],
                *[f"ours / pHash, {q}" for q in precision_list],
                "aetools.hash_code(path), a call per file",
                "aetools.hash_code(list of paths)",
            ],
            rows,
            fmt,
        )
        from aetools.pipeline import bf16_measured_safe
        from aetools.precision import capability_line

        chosen = "bf16" if bf16_measured_safe(net) else "fp32 (its benchmark record)"
        typer.echo(f"Precision: {capability_line(torch.device('cpu'))}; this model under auto: {chosen}.\n")
        latency = bench.query_latency()
        rows = [[f"one query, 100,000 codes, {k}", f"{v * 1e3:.3f} ms"] for k, v in latency.items()]
        for radius, n in ((3, 10_000), (3, 100_000), (3, 300_000), (6, 10_000), (6, 100_000), (6, 300_000)):
            r = bench.radius_search_seconds(n, radius)
            rows.append(
                [
                    f"dedup all pairs within {radius} bits, {n:,} codes: full scan / multi-hash",
                    f"{r['full scan']:.2f} s / {r['multi-hash']:.2f} s",
                ]
            )
        memory = bench.bytes_per_image()
        rows.append(["index on disk per image (codes + SQLite file list)", f"{memory['disk']:.0f} bytes"])
        rows.append(["index in memory per image (loaded, file list included)", f"{memory['memory']:.0f} bytes"])
        render("Search speed and size (synthetic random 64-bit codes)", ["measure", "value"], rows, fmt)
    if record:
        for path, found in metrics.items():
            record_metrics(path, found)
            console.print(f"recorded {len(found)} metrics in {path}")


@eval_app.command("generative")
def eval_generative(
    models: list[str] = typer.Argument(
        None, help="Generative models (shipped names or .safetensors paths); default: every shipped one."
    ),
    data: str = typer.Option("fashion-mnist", "--data", help="fashion-mnist: its 10,000 test images."),
    fashion_dir: Path = typer.Option(
        None, "--fashion-dir", help="Folder of the idx files (default: $AETOOLS_FASHION_MNIST)."
    ),
    classifier: str = typer.Option("classifier-fashion", help="The classifier whose features score samples."),
    samples: int = typer.Option(2000, min=0, help="Samples per generator for the Fréchet distance (0: skip)."),
    iwae_k: int = typer.Option(100, "--iwae-k", min=1, help="Importance samples per image for the IWAE bound."),
    iwae_images: int = typer.Option(
        0, "--iwae-images", min=0, help="ELBO and IWAE on the first N test images only (0: all; k decodes each)."
    ),
    limit: int = typer.Option(0, min=0, help="Use the first N test images only (0: all 10,000)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store each model's numbers in its weights' metadata."),
) -> None:
    """Generators and classic autoencoders on Fashion-MNIST's test set, beside PCA at the same code size:
    reconstruction, VAE bounds (ELBO, IWAE), VQ code usage, and a Fréchet distance of samples in a small
    classifier's features (not Inception FID) beside the train-vs-test floor.

    `aetools eval vae-fashion` is short for `aetools eval generative vae-fashion`."""
    import torch

    from aetools.bench.generative import evaluate_model, frechet_scores
    from aetools.cli.console import prepare
    from aetools.data.fashion import DatasetError, load_fashion_mnist
    from aetools.generative.pipeline import GENERATIVE_TASKS, load_generative
    from aetools.weights import WeightsError, load_model, read_manifest, record_metrics

    if fmt not in ("table", "markdown"):
        raise fail("--format: table or markdown")
    if data != "fashion-mnist":
        raise fail(f"--data {data}: the generative benchmark runs on fashion-mnist")
    names = list(models or []) or [e.name for e in read_manifest() if e.task in GENERATIVE_TASKS]
    if not names:
        raise fail("no generative models given or shipped")
    dev = prepare(device, None)
    torch.manual_seed(0)  # the VAE bounds sample q(z|x): one seed, the same estimates run after run
    try:
        nets = {name: load_generative(name, dev) for name in names}
        judge = load_model(classifier, "classifier", dev) if samples else None
    except WeightsError as e:
        raise fail(f"{e} (eval commands: {', '.join(sorted(c.name for c in eval_app.registered_commands))})") from None
    try:
        train, test = load_fashion_mnist("train", fashion_dir), load_fashion_mnist("test", fashion_dir)
    except DatasetError as e:
        raise fail(str(e)) from None
    if limit:
        test = test.subset(torch.arange(min(limit, len(test))).numpy())
    train_flat = train.tensors().flatten(1)

    reports = []
    with progress_bar("eval generative", "{task.fields[name]}", transient=True) as progress:
        bar = progress.add_task("eval", total=2 * len(nets), name="")
        for name, net in nets.items():
            progress.update(bar, name=name)
            reports.append(
                evaluate_model(name, net, test, train_flat, iwae_k, lambda: progress.advance(bar), iwae_images)
            )
        floor, scores = None, {}
        if judge is not None:
            progress.update(bar, name="Fréchet distance: sampling")
            floor, scores = frechet_scores(judge, {r.name: nets[r.name] for r in reports}, train, test, samples)
    for r in reports:
        r.frechet = scores.get(r.name)

    n_test = len(test)

    def minutes(r) -> str:
        return "-" if r.seconds is None else f"{r.seconds / 60:.1f} min"

    rows = []
    for r in reports:
        ratio = "-" if r.pca_mse is None else f"{r.mse / r.pca_mse:.3f}"
        pca = "-" if r.pca_mse is None else f"{r.pca_mse:.5f}"
        rows.append([r.name, r.kind, r.code, f"{r.mse:.5f}", pca, ratio, f"{r.psnr:.2f}", f"{r.params:,}", minutes(r)])
    render(
        f"Reconstruction, Fashion-MNIST test ({n_test:,} images); PCA fitted on the 60,000 training images",
        ["model", "kind", "code", "MSE", "PCA MSE (same k)", "MSE / PCA", "PSNR dB", "params", "training time"],
        rows,
        fmt,
    )
    linear = [r for r in reports if r.angles is not None]
    if linear:
        render(
            "Linear AE vs PCA (same k)",
            ["model", "MSE", "PCA MSE", "difference", "largest principal angle", "mean angle"],
            [
                [
                    r.name,
                    f"{r.mse:.5f}",
                    f"{r.pca_mse:.5f}",
                    f"{(r.mse / r.pca_mse - 1) * 100:+.2f}%",
                    f"{r.angles.max():.2f}°",
                    f"{r.angles.mean():.2f}°",
                ]
                for r in linear
            ],
            fmt,
        )
    vaes = [r for r in reports if r.elbo is not None]
    if vaes:
        render(
            f"VAE bounds on log p(x), nats per image (higher is tighter); k = {iwae_k} samples per image, "
            f"{min(iwae_images or n_test, n_test):,} test images",
            ["model", "ELBO", f"IWAE (k={iwae_k})", "IWAE - ELBO", "KL", "active units", "KL per dimension"],
            [
                [
                    r.name,
                    f"{r.elbo:.2f}",
                    f"{r.iwae:.2f}",
                    f"{r.iwae - r.elbo:.2f}",
                    f"{r.kl:.2f}",
                    f"{r.active}/{len(r.kl_per_dim)}",
                    " ".join(f"{v:.1f}" for v in sorted(r.kl_per_dim, reverse=True)),
                ]
                for r in vaes
            ],
            fmt,
        )
    vqs = [r for r in reports if r.codes_used is not None]
    if vqs:
        render(
            "VQ-VAE codes",
            ["model", "code grid", "PSNR dB", "codes in use", "perplexity", "prior NLL (nats/code)"],
            [
                [
                    r.name,
                    r.code,
                    f"{r.psnr:.2f}",
                    f"{r.codes_used:.1f}%",
                    f"{r.perplexity:.1f}",
                    "-" if r.prior_nll is None else f"{r.prior_nll:.3f}",
                ]
                for r in vqs
            ],
            fmt,
        )
    if floor is not None:
        how = {"ae": "Gaussian fitted to its codes", "linear": "Gaussian fitted to its codes", "vae": "prior N(0, I)"}
        how |= {"hvae": "prior: z2 ~ N(0, I), then z1 given z2", "vqvae": "learned prior over code grids"}
        rows = [["training images (floor)", "-", f"{floor:.2f}"]]
        rows += [[r.name, how[r.kind], f"{r.frechet:.2f}"] for r in reports]
        render(
            f"Sample quality: Fréchet distance to the test set in {classifier}'s features (not Inception FID); "
            f"{samples:,} samples each",
            ["generator", "sampled from", "Fréchet distance"],
            rows,
            fmt,
        )
    if record:
        for r in reports:
            record_metrics(nets[r.name].weights_path, r.metrics())
        console.print(f"recorded metrics in {len(reports)} weights files")
