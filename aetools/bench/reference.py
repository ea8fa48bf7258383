"""Reference network shapes from the literature, for timing only (no trained weights are needed to
measure how fast a network of that shape runs)."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def dncnn_shaped(channels: int = 3, depth: int = 17, width: int = 64) -> nn.Module:
    """DnCNN (Zhang et al. 2017): conv+ReLU, (depth - 2) x conv+BN+ReLU, conv; 64 channels, 17 layers."""
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(width, channels, 3, padding=1))
    return nn.Sequential(*layers).eval()


@torch.inference_mode()
def megapixels_per_second(fn, x: torch.Tensor, repeats: int = 5) -> float:
    """Median throughput of fn(x) in input megapixels per second (one warm-up run first)."""
    fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return x.shape[0] * x.shape[-2] * x.shape[-1] / 1e6 / statistics.median(times)
