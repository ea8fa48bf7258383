"""Reference network shapes from the literature, for timing only (no trained weights are needed to
measure how fast a network of that shape runs)."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from aetools.precision import Precision, autocast

# Every cost table times ours and the reference shapes in both, in the same run.
PRECISIONS = ("fp32", "bf16")
# `auto` may use bf16 for a head whose benchmark loses at most this much PSNR in it (dB).
BF16_PSNR_TOLERANCE = 0.02


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


def bf16_verdict(pairs: list[tuple[float, float]], tolerance: float = BF16_PSNR_TOLERANCE) -> tuple[bool, float]:
    """pairs of (fp32 figure, bf16 figure), higher is better -> (bf16 costs at most `tolerance` on every
    one, the largest loss)."""
    loss = max((a - b for a, b in pairs), default=0.0)
    return loss <= tolerance, loss
