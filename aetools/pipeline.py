"""Pipelines: a trained network plus everything between a user's image and it (diffusers' split of models
and pipelines).

    pipe = DenoisePipeline.from_pretrained()             # shipped weights, device and precision resolved once
    clean = pipe(load_image("noisy.png"), sigma=25)      # ImageData in -> ImageData out

A pipeline owns: the device, the numeric precision (`aetools.precision`), the memory layout, and the
image-level work of its task (grey and alpha, tiling, output size and dpi). The network stays a plain
nn.Module, tensors in and tensors out. Each task file defines its pipeline next to its training recipe and
registers it here by name; the Python API and the CLI find it with `aetools.tasks.get_pipeline(name)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from aetools.data.io import ImageData
from aetools.precision import Precision, resolve_precision, use_channels_last

# Recorded by `aetools eval <task> --record` when the head's benchmark loses at most this much in bf16.
BF16_METRIC = "bf16_auto"


def bf16_measured_safe(model: nn.Module) -> bool:
    """Whether the weights' own benchmark record says bf16 costs nothing measurable (`eval ... --record`
    writes `bf16_auto`). Weights without that record (e.g. freshly trained) run fp32 under `auto`."""
    header = getattr(model, "weights_header", None) or {}
    return bool(header.get("metrics", {}).get(BF16_METRIC, False))


class ImagePipeline:
    """Args:
    model: the task's network (an nn.Module of the task's architecture).
    device: where it runs (default: where the model is).
    precision: auto, fp32 or bf16 (`aetools.precision.resolve_precision`); auto takes bf16 only where the
        device computes it natively and the weights' benchmark showed the cost negligible.
    """

    name: ClassVar[str]  # the verb: denoise, upscale, colorize, inpaint
    task: ClassVar[str]  # the task whose weights it runs (`weights.load_model(..., task)`)
    # The shipped model for lossy camera and web photos (JPEG, WebP, HEIC, AVIF), trained on their noise and
    # compression, run on such an input when no model is named (`default_model`); None: one model for all.
    real_photo_model: ClassVar[str | None] = None

    @classmethod
    def default_model(cls, input_format: str | None) -> str:
        """The shipped model this task runs on an input of `input_format` (Pillow's name: "JPEG", "PNG")
        when the user names none: the real-photo model for a lossy file if it is shipped, else the task's
        default. The one rule the Python API, the CLI and the web app follow (`ModelChoice`)."""
        from aetools.data.formats import LOSSY_FORMATS
        from aetools.weights import default_weights_for, read_manifest

        real = cls.real_photo_model
        if real and input_format in LOSSY_FORMATS and any(e.name == real for e in read_manifest()):
            return real
        return default_weights_for(cls.task).name

    def __init__(self, model: nn.Module, device: str | torch.device | None = None, precision: str = "auto"):
        from aetools.inference import model_device, resolve_device

        self.device = resolve_device(device) if device is not None else model_device(model)
        self.model = model.to(self.device).eval()
        self.precision: Precision = resolve_precision(precision, self.device, bf16_measured_safe(model))
        if use_channels_last(self.device, self.precision):
            self.model.to(memory_format=torch.channels_last)

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path | nn.Module | None = None,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
    ) -> ImagePipeline:
        """model: a shipped name, a .safetensors path, an nn.Module, or None for the task's default weights."""
        from aetools.inference import resolve_device
        from aetools.weights import load_model

        if isinstance(model, nn.Module):
            return cls(model, device if device != "auto" else None, precision)
        dev = resolve_device(device or "auto")
        return cls(load_model(None if model is None else str(model), cls.task, dev), dev, precision)

    def __call__(self, image: ImageData, **options: Any) -> ImageData:
        raise NotImplementedError

    def check(self, tile: int | None = None, **options: Any) -> None:
        """Refuse, with a ValueError naming the option, what would fail on every image: called by __call__,
        and by the CLI once before any file is read. Pipelines with more options extend it."""
        check_tile(tile)


class ModelChoice:
    """A task run on each input with the model the user named, or else the one its pipeline's
    `default_model` picks for that input (JPEG -> the real-photo model). Each model's pipeline is loaded
    the first time an input needs it and kept, so a batch of PNGs never loads the JPEG model.

    Args:
        pipeline: the task's pipeline class. model: the model named (a shipped name or a path), or None.
        load: (model name or path) -> a pipeline of that model (the caller decides device, precision, cache).
    """

    def __init__(self, pipeline: type[ImagePipeline], model: str | None, load):
        self.pipeline, self.model, self.load = pipeline, model, load
        self.loaded: dict[str, ImagePipeline] = {}
        self.used: dict[str, int] = {}  # model -> inputs it ran on, for "which model" lines

    def name_for(self, image: ImageData) -> str:
        return self.model if self.model is not None else self.pipeline.default_model(image.format)

    def pipeline_for(self, image: ImageData) -> tuple[str, ImagePipeline]:
        name = self.name_for(image)
        if name not in self.loaded:
            self.loaded[name] = self.load(name)
        return name, self.loaded[name]

    def __call__(self, image: ImageData, **options: Any) -> ImageData:
        name, pipe = self.pipeline_for(image)
        self.used[name] = self.used.get(name, 0) + 1
        return pipe(image, **options)

    def describe(self) -> str | None:
        """One line saying which model ran on how many inputs, when the choice was the task's (None if the
        user named the model, or nothing ran)."""
        if self.model is not None or not self.used:
            return None
        real = self.pipeline.real_photo_model
        kind = {real: "JPEG/WebP/HEIC/AVIF (camera or web photo) "} if real else {}
        plural = {True: "inputs", False: "input"}
        parts = [
            f"{name} for {n} {kind.get(name, 'lossless ' if real else '')}{plural[n > 1]}"
            for name, n in self.used.items()
        ]
        return f"model: {', '.join(parts)}; --model NAME chooses one"


# ------------------------------------------------------------------------- pixels <-> network tensors

MIN_TILE = 16  # px: below this the margins of context dwarf the tiles (a 1-px tile ran 25x slower)


def check_tile(tile: int | None) -> None:
    """tile: None (automatic), 0 (never tile) or a side of at least MIN_TILE pixels."""
    if tile is not None and tile != 0 and not MIN_TILE <= tile:
        raise ValueError(f"tile {tile}: use 0 (no tiling) or a side of at least {MIN_TILE} pixels")


def to_network_input(pixels: np.ndarray) -> tuple[torch.Tensor, bool]:
    """(H, W, C) float in [0, 1], C = 1 or 3 -> ((1, 3, H, W) float32, was grey). Grey images go through
    the colour networks as three equal channels."""
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    grey = x.shape[1] == 1
    return (x.expand(-1, 3, -1, -1) if grey else x), grey


def from_network_output(y: torch.Tensor, grey: bool) -> np.ndarray:
    """(1, 3, H, W) -> (H, W, C) float32 numpy, the three channels averaged back to one for a grey input."""
    if grey:
        y = y.mean(dim=1, keepdim=True)
    return y[0].permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------------------- registry

_PIPELINES: dict[str, type[ImagePipeline]] = {}


def register_pipeline(cls: type[ImagePipeline]) -> type[ImagePipeline]:
    """Class decorator: the task file's pipeline, found by its verb (`get_pipeline("denoise")`)."""
    _PIPELINES[cls.name] = cls
    return cls


def get_pipeline(name: str) -> type[ImagePipeline]:
    """The pipeline registered as `name`. A leaf lookup: importing `aetools.tasks` (which the API and the CLI
    do) is what registers the task files' pipelines."""
    if name not in _PIPELINES:
        raise KeyError(f"unknown image task {name!r}; known: {', '.join(sorted(_PIPELINES))}")
    return _PIPELINES[name]


def list_pipelines() -> list[str]:
    return sorted(_PIPELINES)
