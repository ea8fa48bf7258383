"""Timing: reference network shapes from the literature (no trained weights are needed to measure how fast
a network of that shape runs), the timing loop, and the cost table every `eval` prints."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from aetools.bench.report import Table
from aetools.precision import Precision, autocast

# Every cost table times ours and the reference shapes in both, in the same run.
PRECISIONS = ("fp32", "bf16")


def dncnn_shaped(channels: int = 3, depth: int = 17, width: int = 64) -> nn.Module:
    """DnCNN (Zhang et al. 2017): conv+ReLU, (depth - 2) x conv+BN+ReLU, conv; 64 channels, 17 layers."""
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(width, channels, 3, padding=1))
    return nn.Sequential(*layers).eval()


def in_precision(label: str, precision: str) -> str:
    """A table row of ours in a precision: the label as is for fp32 (the reference), ", bf16" appended else."""
    return label if precision == "fp32" else f"{label}, {precision}"


def precision_named(name: str) -> Precision:
    """A benchmark's precision, asked for by name (the benchmark measures both, whatever `auto` would pick)."""
    return Precision(name, "benchmark")


def prepared(model: nn.Module, precision: str) -> nn.Module:
    """A copy of `model` on the CPU, in eval mode, in the layout the precision runs fastest in."""
    net = copy.deepcopy(model).cpu().eval()
    return net.to(memory_format=torch.channels_last) if precision == "bf16" else net


def median_seconds(fn: Callable[[], object], repeats: int, precision: str = "fp32") -> float:
    """Median wall time of fn() after one warm-up call, under the precision's autocast, without autograd."""
    with torch.inference_mode(), autocast(torch.device("cpu"), precision_named(precision)):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def megapixels_per_second(fn, x: torch.Tensor, repeats: int = 5, precision: str = "fp32") -> float:
    """Median throughput of fn(x) in input megapixels per second (one warm-up run first)."""
    if precision == "bf16":
        x = x.contiguous(memory_format=torch.channels_last)
    return x.shape[0] * x.shape[-2] * x.shape[-1] / 1e6 / median_seconds(lambda: fn(x), repeats, precision)


def torch_threads() -> str:
    """ "1 torch thread" / "2 torch threads": the threads a timing ran on."""
    n = torch.get_num_threads()
    return f"{n} torch thread" + ("" if n == 1 else "s")


def precision_line() -> str:
    """The processor's capability line under a timing: what it computes natively, what `auto` picks here."""
    from aetools.precision import capability_line

    return f"Precision: {capability_line(torch.device('cpu'))}."


@dataclass
class CostRow:
    """megapixels_per_s: {precision: megapixels per second} (input or output pixels, as the table says)."""

    name: str
    params: int
    megapixels_per_s: dict[str, float]


def cost_table(title: str, rows: list[CostRow], precisions: Sequence[str], what: str) -> Table:
    """One MP/s column per precision, the bf16 speed-up, and each network against the reference shape (the
    last row) in the same precision; the processor's capability line below."""
    reference = rows[-1]
    columns = ["network", "params"] + [f"{what} {p}" for p in precisions]
    if len(precisions) > 1:
        columns.append("bf16 / fp32")
    columns += [f"vs {reference.name.split(' (')[0]}, {p}" for p in precisions]
    cells = []
    for r in rows:
        speeds = r.megapixels_per_s
        row = [r.name, f"{r.params / 1e6:.2f} M"] + [f"{speeds[p]:.3f}" for p in precisions]
        if len(precisions) > 1:
            row.append(f"{speeds['bf16'] / speeds['fp32']:.1f}x")
        cells.append(row + [f"{speeds[p] / reference.megapixels_per_s[p]:.1f}x" for p in precisions])
    return Table(f"{title} ({torch_threads()})", columns, cells, [precision_line()])
