"""What a task is: a small recipe the trainer, the evaluator and the CLI are generic over.

    Task(name, arch, degrade, loss, ...)

`degrade` turns a batch of clean crops into a training pair, on the fly, from a seeded generator: the
batch at step s is a pure function of (seed, rank, s), which is what makes `--resume` exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from aetools.data.batch import Batch  # noqa: F401  (tasks build batches; re-exported for them)


@dataclass
class TrainDefaults:
    crop: int = 96
    batch_size: int = 16
    steps: int = 20_000
    lr: float = 1e-3
    val_every: int = 500
    val_images: int = 16
    val_crop: int = 256


@dataclass
class Task:
    """Args:
    name: the CLI name (`aetools train <name>`).
    arch: the registered model architecture trained by default (`aetools.nn.registry`).
    degrade: (clean (B, C, H, W) in [0, 1], generator) -> Batch.
    loss: (prediction, target) -> scalar.
    channels: 3 for colour crops, 1 for grey.
    model_defaults: config overrides for the default model.
    train: the trainer's defaults for this task.
    val_degrade: like degrade but deterministic settings for validation (defaults to degrade).
    options: task-specific training options and their defaults (superres: scales, degradation);
        `aetools train` records them in the weights.
    make_degrade: options -> (degrade, val_degrade), for tasks whose degradation depends on options.
    validation_pair: (model output, Batch) -> (predicted image, true image) for the validation PSNR, for
        tasks whose output is not an image (default: (output, batch.target): the output is the image).
    score: (model output, Batch) -> the validation number, for tasks not scored by PSNR (the classifier's
        accuracy); score_name, score_unit: what it is called and its unit, for logs and the weights' record.
    labels: the task trains on labelled arrays; `degrade` then takes (clean, generator, labels).
    val_notes: (model, validation outputs) -> a short text logged with each validation (VQ-VAE: codebook
        usage and perplexity; VAE: KL and its weight).
    sized: the model works at one image size, its config's `size`: training and validation crops from
        image folders are that size (the generative models).
    """

    name: str
    arch: str
    degrade: Callable[[torch.Tensor, torch.Generator], Batch]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    channels: int = 3
    model_defaults: dict[str, Any] = field(default_factory=dict)
    train: TrainDefaults = field(default_factory=TrainDefaults)
    val_degrade: Callable[[torch.Tensor, torch.Generator], Batch] | None = None
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    make_degrade: Callable[[dict[str, Any]], tuple[Callable, Callable]] | None = None
    validation_pair: Callable[[torch.Tensor, Batch], tuple[torch.Tensor, torch.Tensor]] = field(
        default=lambda output, batch: (output, batch.target)  # the output is the image
    )
    score: Callable[[Any, Batch], float] | None = None
    score_name: str = "PSNR"
    score_unit: str = " dB"
    labels: bool = False
    sized: bool = False
    val_notes: Callable[[Any, list[Any]], str] | None = None

    def degradations(self, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], Callable, Callable]:
        """-> (the options in force, training degrade, validation degrade). Unknown options: ValueError."""
        unknown = set(options or {}) - set(self.options)
        if unknown:
            raise ValueError(f"task {self.name!r} has no option {', '.join(sorted(unknown))}")
        merged = {**self.options, **(options or {})}
        if self.make_degrade is not None:
            return (merged, *self.make_degrade(merged))
        return merged, self.degrade, self.val_degrade or self.degrade


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    import aetools.tasks  # noqa: F401  (registers the tasks)

    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


def list_tasks() -> list[str]:
    import aetools.tasks  # noqa: F401

    return sorted(_TASKS)
