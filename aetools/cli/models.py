"""`aetools models`: the shipped weights, their size and measured metrics."""

from __future__ import annotations

import json

import typer

from aetools.cli import app
from aetools.cli.console import out


def _metric_summary(metrics: dict) -> str:
    """The headline numbers recorded by `aetools eval ... --record`."""
    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:.4f}" if abs(value) < 1 else f"{key} {value:.2f}")  # SSIM / dB
        elif isinstance(value, (int, str)):
            parts.append(f"{key} {value}")
    return ", ".join(parts) or "-"


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print the manifest entries as JSON.")) -> None:
    """List the shipped weights: name, task, parameters and measured metrics."""
    from rich.table import Table

    from aetools.weights import read_manifest, weights_dir

    entries = read_manifest()
    if as_json:
        from dataclasses import asdict

        out.print_json(json.dumps([asdict(e) for e in entries]))
        return
    table = Table(title=f"shipped weights ({weights_dir()})")
    for column in ("name", "task", "params", "default", "metrics"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(e.name, e.task, f"{e.params / 1e6:.2f} M", "yes" if e.default else "", _metric_summary(e.metrics))
    out.print(table)
