"""`aetools models`: the shipped weights, one line each (name, task, size, one headline figure).

It reads only `manifest.json` (no torch import), so it answers at once.
"""

from __future__ import annotations

import json

import typer

from aetools.cli import app
from aetools.cli.console import out

# The figure that best says what each kind of model achieves, as recorded by `aetools eval ... --record`:
# the first key a model has wins (so upscale-real shows its real-photo benchmark, upscale the classic one;
# both hashing models the one benchmark they share).
HEADLINES: tuple[tuple[str, str], ...] = (
    ("cbsd68_sigma25_psnr", "CBSD68 σ=25: {:.2f} dB"),
    ("set14_real_x4_y_psnr", "Set14 real-photo x4: {:.2f} dB"),
    ("set5_x4_y_psnr", "Set5 x4: {:.2f} dB"),
    ("kodak24_psnr", "Kodak24: {:.2f} dB"),
    ("kodak24_holes20_psnr", "Kodak24 20% holes: {:.2f} dB"),
    ("cifar10_map1000_64bits", "CIFAR-10 mAP@1000: {:.3f}"),
    ("fashion_test_mse", "Fashion-MNIST MSE: {:.5f}"),
)


def headline(metrics: dict) -> str:
    """One measured figure for a model, or '-' if none was recorded."""
    for key, text in HEADLINES:
        if isinstance(metrics.get(key), (int, float)):
            return text.format(metrics[key])
    key = next((k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)), None)
    return "-" if key is None else f"{key}: {_number(metrics[key])}"


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"  # SSIM, recall, MSE / dB
    return str(value)


@app.command()
def models(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list every recorded metric of each model."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest entries (all metrics) as JSON."),
) -> None:
    """List the shipped weights: name, task, parameters, file size and one measured figure each."""
    from dataclasses import asdict

    from aetools.weights import read_manifest, weights_dir

    entries = sorted(read_manifest(), key=lambda e: (e.task, not e.default, e.name))
    if as_json:
        out.print_json(json.dumps([asdict(e) for e in entries]))
        return
    rows = [("name", "task", "default", "params", "size", "headline")]
    for e in entries:
        size = f"{e.path.stat().st_size / 1e6:.1f} MB" if e.path.exists() else "missing"
        rows.append((e.name, e.task, "yes" if e.default else "", f"{e.params / 1e6:.2f} M", size, headline(e.metrics)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out.print(f"shipped weights in {weights_dir()}", soft_wrap=True)
    for i, row in enumerate(rows):  # plain aligned lines: one per model, never wrapped or cut
        cells = [cell.rjust(w) if c in (3, 4) else cell.ljust(w) for c, (cell, w) in enumerate(zip(row, widths))]
        line = "  ".join([*cells, row[5]])
        out.print(f"[bold]{line}[/]" if i == 0 else line, soft_wrap=True, markup=i == 0)
    if not verbose:
        out.print("every recorded metric: --verbose or --json")
        return
    for e in entries:
        out.print(f"\n[bold]{e.name}[/]: {e.description}", soft_wrap=True)
        for key, value in e.metrics.items():
            out.print(f"  {key} {_number(value)}")
