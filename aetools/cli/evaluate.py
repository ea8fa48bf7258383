"""`aetools eval TASK`: benchmarks that print ours beside the baselines, measured in the same run."""

from __future__ import annotations

from pathlib import Path

import typer

from aetools.cli import app
from aetools.cli.console import console, fail, out, parse_numbers, progress_bar

eval_app = typer.Typer(help="Benchmark a task's model against baselines on a public set.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

MULTI = {"allow_extra_args": True, "ignore_unknown_options": False}


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
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store the float-protocol means in the weights' metadata."),
) -> None:
    """Gaussian denoising, DnCNN/KAIR protocol: PSNR (RGB, dB), ours beside skimage baselines."""
    import torch

    from aetools.bench.denoise import (
        BASELINES,
        PUBLISHED,
        bm3d_available,
        measure_cost,
        run_denoise_benchmark,
    )
    from aetools.data.datasets import list_images
    from aetools.weights import WeightsError, load_model, record_metrics

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
    if fmt not in ("table", "markdown"):
        raise fail("--format: table or markdown")
    files = list_images([data], recursive=False) if data.is_dir() else []
    if not files:
        raise fail(f"{data}: no images found")
    files = files[:limit] if limit else files
    try:
        net = load_model(model, "denoise", "cpu")
    except WeightsError as e:
        raise fail(str(e)) from None

    with progress_bar(f"eval denoise on {data.name}", "", transient=True) as progress:
        bar = progress.add_task("eval", total=len(files))
        result = run_denoise_benchmark(
            files, sigmas, net, chosen, variant_list, on_image=lambda _: progress.advance(bar)
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
        cost_rows = measure_cost(net)
        ours = cost_rows[0].megapixels_per_s
        render(
            f"CPU cost (512x512 input, {torch.get_num_threads()} torch threads)",
            ["network", "params", "MP/s", "ours is faster by"],
            [
                [r.name, f"{r.params / 1e6:.2f} M", f"{r.megapixels_per_s:.3f}", f"{ours / r.megapixels_per_s:.1f}x"]
                for r in cost_rows
            ],
            fmt,
        )

    if record:
        metrics = {
            f"{data.name}_sigma{s:g}_psnr": round(result.mean("ours (blind)", s, "float"), 2)
            for s in sigmas
            if result.mean("ours (blind)", s, "float") is not None
        }
        record_metrics(net.weights_path, metrics)
        console.print(f"recorded {len(metrics)} metrics in {net.weights_path}")
