"""What a task is: a small recipe the trainer, the evaluator and the CLI are generic over.

    Task(name, arch, degrade, loss, data, ...)

`degrade` turns a batch of clean crops into a training pair, on the fly, from a seeded generator: the
batch at step s is a pure function of (seed, rank, s), which is what makes `--resume` exact. `loss` sees the
model's output and the whole batch and returns `(loss, logs)`. `data` chooses what the task trains on
(image folders by default; the generative models also take Fashion-MNIST's arrays).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aetools.data.batch import Batch  # noqa: F401  (tasks build batches; re-exported for them)
from aetools.data.datasets import DataError
from aetools.data.fashion import FASHION_MNIST  # --data fashion-mnist: the idx files

LossFn = Callable[[Any, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def against_target(fn: Callable[[Any, torch.Tensor], torch.Tensor]) -> LossFn:
    """A loss of (output, target) as a task loss: (fn(output, batch.target), no logs)."""

    def loss(output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return fn(output, batch.target), {}

    loss.__doc__ = fn.__doc__
    return loss


@dataclass
class DataRequest:
    """What the trainer asks a task's `data` for. sources: --data (folders, files or "fashion-mnist")."""

    sources: list[str]
    val_sources: list[str] | None
    exclude: list[str]  # files, or folders whose files, are held out of training (and validation)
    fashion_dir: str | None
    batch_size: int
    crop: int
    val_crop: int
    val_count: int
    steps: int
    seed: int
    rank: int
    validate: bool  # this process validates (rank 0)
    cifar_dir: str | None = None  # --data cifar10: the folder of its tar files


@dataclass
class TrainingData:
    """train: item s is the Batch of step s; val: fixed validation batches; images: how many trained on;
    crop: the side the training crops have (recorded with the weights)."""

    train: torch.utils.data.Dataset
    val: list[Batch]
    images: int
    crop: int


def exclude_files(files: list[Path], exclude: list[str]) -> list[Path]:
    """`files` without those named in `exclude` or lying under a folder it names (a held-out set)."""
    held = [Path(e).resolve() for e in exclude]
    return [f for f in files if not any(h == f.resolve() or h in f.resolve().parents for h in held)]


def image_folders(task: Task, model: Any, request: DataRequest, degrade: Callable, val_degrade: Callable):
    """Random crops of the image files found in `request.sources` (whole images at the model's size for
    `sized` tasks), `val_count` of them held out for validation unless `val_sources` names others."""
    from aetools.data.datasets import StepBatches, list_images, split_validation, validation_batches

    if request.sources == [FASHION_MNIST]:
        raise DataError(f"task {task.name} trains on image folders; --data {FASHION_MNIST} is for the generators")
    if task.labels:
        raise DataError(f"task {task.name} needs labelled data: --data {FASHION_MNIST}")
    missing = [s for s in request.sources + (request.val_sources or []) if not Path(s).exists()]
    if missing:
        raise DataError(f"{missing[0]}: no such file or folder")
    files = exclude_files(list_images(request.sources), request.exclude)
    if not files:
        raise DataError(f"no images found in {', '.join(map(str, request.sources))}")
    if request.val_sources:
        train_files, val_files = files, list_images(request.val_sources)
    else:
        train_files, val_files = split_validation(files, request.val_count, seed=request.seed)
    channels = getattr(model.config, "channels", task.channels)
    crop = model.config.size if task.sized else request.crop  # sized: whole images at the model's size
    train = StepBatches(
        train_files, crop, request.batch_size, degrade, channels, request.seed, request.rank, request.steps
    )
    val_crop = crop if task.sized else request.val_crop
    val = validation_batches(val_files, val_crop, val_degrade, channels) if request.validate else []
    return TrainingData(train, val, len(train_files), crop)


def fashion_mnist_or_folders(
    task: Task, model: Any, request: DataRequest, degrade: Callable, val_degrade: Callable
) -> TrainingData:
    """`--data fashion-mnist`: epochs of shuffled batches of Fashion-MNIST's training arrays (val_count held
    out); anything else: image folders."""
    from aetools.data.fashion import (
        ArrayBatches,
        DatasetError,
        array_validation_batches,
        load_fashion_mnist,
        split_arrays,
    )

    if request.sources != [FASHION_MNIST]:
        return image_folders(task, model, request, degrade, val_degrade)
    try:
        arrays = load_fashion_mnist("train", request.fashion_dir)
    except DatasetError as e:
        raise DataError(str(e)) from None
    shape = arrays.images.shape[1:]  # (28, 28, 1)
    if task.sized and (model.config.size, model.config.channels) != (shape[0], shape[2]):
        raise DataError(
            f"Fashion-MNIST images are {shape[0]}x{shape[1]} grey; the model is set for size "
            f"{model.config.size} with {model.config.channels} channels"
        )
    train_arrays, val_arrays = split_arrays(arrays, request.val_count, seed=request.seed)
    train = ArrayBatches(
        train_arrays, request.batch_size, degrade, request.seed, request.rank, request.steps, labels=task.labels
    )
    val = array_validation_batches(val_arrays, val_degrade, task.labels) if request.validate else []
    return TrainingData(train, val, len(train_arrays), shape[0])


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
    loss: (model output, Batch) -> (scalar loss, {name: scalar} logs); `against_target(fn)` adapts a plain
        (output, target) loss.
    data: (task, model, DataRequest, degrade, val_degrade) -> TrainingData: what the task trains on
        (default: image folders).
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
    configure: (model settings, task options, --data) -> None, adjusting in place the settings that follow
        from others (superres: the model's tails are the scales trained), before the model is built.
    make_loss: options -> loss, for tasks whose loss depends on options (colorize: the rebalancing mix).
    """

    name: str
    arch: str
    degrade: Callable[[torch.Tensor, torch.Generator], Batch]
    loss: LossFn
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
    data: Callable[..., TrainingData] = image_folders
    configure: Callable[[dict[str, Any], dict[str, Any], list[str]], None] | None = None
    make_loss: Callable[[dict[str, Any]], LossFn] | None = None

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
