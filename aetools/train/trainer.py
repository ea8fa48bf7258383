"""The one trainer, generic over tasks: `train(TrainConfig(task="denoise", data=[...], out=...))`.

Loop: batch of step s (from StepBatches) -> task loss -> Adam step, with the learning rate a pure function
of s (linear warm-up, cosine decay). Every `val_every` steps: PSNR on held-out crops. Every
`checkpoint_every` steps (and on SIGINT/SIGTERM): an atomic checkpoint. `resume=True` restores model,
optimizer, RNG and step, and the run continues exactly as if never stopped.

Multi-process: launched by `torchrun --nproc_per_node N`, each process trains on its own batches (seeded
by its rank), DDP averages the gradients (gloo on CPU, nccl on CUDA), rank 0 validates and writes files.

The trainer never prints: it calls `on_progress(TrainProgress)`; the CLI draws the progress bar.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from aetools.inference import resolve_device
from aetools.models import create_model, model_config_dict
from aetools.outputs import name_problem, output_problem
from aetools.precision import PrecisionError, autocast, resolve_precision, use_channels_last
from aetools.tasks.base import DataError, DataRequest, get_task
from aetools.train.checkpoint import load_checkpoint, read_checkpoint_header, save_checkpoint
from aetools.weights import WeightsError, count_parameters, read_weights, save_weights


@dataclass
class TrainConfig:
    """Args (None = the task's default):
    task: a registered task name.
    data: image files or folders (searched recursively), or ["fashion-mnist"] for Fashion-MNIST's idx files
        (tasks that take it: `Task.data`).
    out: where the final weights go; the checkpoint sits beside it as <out>.ckpt.safetensors.
    model: config overrides for the task's architecture, e.g. {"widths": (16, 32)}.
    options: the task's training options (`Task.options`), e.g. {"scales": (4,)} for superres.
    init: start from these weights (fine-tuning) instead of a random initialisation.
    pretrained: a file of pretrained weights for the part of the model that takes them (colorize's
        mobilenet_v2 encoder: torchvision's ImageNet .pth), loaded by the model's `load_pretrained` before
        training; training only: the trained weights are saved whole, and the file is recorded by name and
        sha256. A model may also give the optimizer parameter groups (`optimizer_groups`: per group an
        `lr_scale` of the learning rate and `frozen_steps` at the start with none).
    val_data: validation images; default: `val_images` files held out of `data`.
    exclude: files or folders inside `data` held out of training (e.g. a folder to report on as unseen);
        recorded with the weights.
    fashion_dir: where `data=["fashion-mnist"]` finds the idx files (default: $AETOOLS_FASHION_MNIST).
    cifar_dir: where `data=["cifar10"]` finds train.tar and test.tar (default: $AETOOLS_CIFAR10).
    workers: DataLoader processes preparing batches ahead (0 = in the training process).
    train_only: train only the parameters under this module name (e.g. "prior": the VQ-VAE's second stage,
        its prior fitted to the codes of a frozen, trained autoencoder); the rest stays as it is.
    """

    task: str
    data: list[str]
    out: str
    model: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    batch_size: int | None = None
    crop: int | None = None
    lr: float | None = None
    warmup: int = 200
    min_lr_ratio: float = 0.01
    val_every: int | None = None
    val_images: int | None = None
    val_data: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    fashion_dir: str | None = None
    cifar_dir: str | None = None
    checkpoint_every: int = 250
    checkpoint: str | None = None
    resume: bool = False
    init: str | None = None
    pretrained: str | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 (aetools.precision): bf16 autocast where the device has it
    workers: int = 0
    grad_clip: float = 1.0
    train_only: str | None = None
    overwrite: bool = False  # replace an existing `out` (a resumed run may always replace its own)

    def check(self) -> None:
        """Numbers out of range are a one-line TrainError before any work (0 never means "the default")."""
        for name, low in (("steps", 1), ("batch_size", 1), ("crop", 8), ("val_every", 1), ("val_images", 0)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise TrainError(f"--{name.replace('_', '-')} {value}: must be at least {low}")
        if self.lr is not None and not self.lr > 0:
            raise TrainError(f"--lr {self.lr}: must be above 0")
        if self.checkpoint_every < 1 or self.workers < 0 or self.warmup < 0:
            raise TrainError("--checkpoint-every must be at least 1, --workers at least 0")

    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else Path(str(self.out) + ".ckpt.safetensors")


@dataclass
class TrainProgress:
    step: int
    total: int
    loss: float
    lr: float
    images_per_s: float
    val_psnr: float | None
    event: str = "step"  # step | val | checkpoint | start | done | interrupted
    step_loss: float = float("nan")  # this step's loss (`loss` is a moving average)
    notes: str = ""  # with "val": the task's own validation figures (`Task.val_notes`), e.g. codebook usage
    logs: dict[str, float] = field(default_factory=dict)  # with "step": the loss's own terms (`Task.loss`)


@dataclass
class TrainResult:
    steps: int
    interrupted: bool
    val_psnr: float | None
    out: Path | None
    checkpoint: Path
    seconds: float
    model: torch.nn.Module | None = None  # this process's replica, trained
    unreadable: dict[str, str] = field(default_factory=dict)  # training files skipped, and why


class TrainError(Exception):
    """A training set-up problem; one line for the user."""


def learning_rate(step: int, total: int, peak: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up for `warmup` steps, then cosine decay from `peak` to `peak * min_ratio`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean PSNR (dB) over a batch of [0, 1] images, output rounded to 8 bits as a saved file would be."""
    from skimage.metrics import peak_signal_noise_ratio

    pred = (prediction.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    true = (target.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return float(np.mean([peak_signal_noise_ratio(t, p, data_range=255) for t, p in zip(true, pred)]))


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and stops at the end of the current step."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:  # a second signal: stop now, without the checkpoint (the last one stands)
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def load_grown(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load --init weights into `model`, which may take more input channels than they were trained with
    (colorize: a model with colour hints grown from one without). A tensor whose shape differs from the
    model's only in dimension 1 (a convolution's input channels), and is smaller there, fills the leading
    channels and the new ones start at zero: the grown network computes exactly what the old one did until
    training moves them. Any other difference in names or shapes: ValueError naming the first."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        name = (missing or unexpected)[0]
        raise ValueError(f"{name} is {'missing' if missing else 'not in this model'}")
    state = {}
    for name, target in own.items():
        value = tensors[name].float()
        if value.shape != target.shape:
            grown = (
                value.dim() == target.dim() >= 2
                and value.shape[0] == target.shape[0]
                and value.shape[2:] == target.shape[2:]
                and value.shape[1] < target.shape[1]
            )
            if not grown:
                raise ValueError(f"{name}: {tuple(value.shape)}, the model has {tuple(target.shape)}")
            extra = value.new_zeros(value.shape[0], target.shape[1] - value.shape[1], *value.shape[2:])
            value = torch.cat([value, extra], dim=1)
        state[name] = value
    model.load_state_dict(state)


def train(config: TrainConfig, on_progress: Callable[[TrainProgress], None] | None = None) -> TrainResult:
    config.check()
    task = get_task(config.task)
    d = task.train
    steps = config.steps or d.steps
    batch_size = config.batch_size or d.batch_size
    crop = config.crop or d.crop
    peak_lr = config.lr or d.lr
    val_every = config.val_every or d.val_every
    report = on_progress or (lambda p: None)

    rank, local_rank, world = _distributed()
    device = resolve_device(config.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    is_main = rank == 0
    user_options, model_settings = dict(config.options), dict(config.model)
    if task.configure is not None:  # settings that follow from others (superres: tails for the scales)
        task.configure(model_settings, user_options, [str(p) for p in config.data])
    try:
        options, degrade, val_degrade = task.degradations(user_options)
    except ValueError as e:
        raise TrainError(str(e)) from None
    loss_fn = task.make_loss(options) if task.make_loss is not None else task.loss
    # ----- model, optimizer
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    init_record, base = None, task.model_defaults
    if config.init:
        tensors, header = read_weights(config.init)
        if header["arch"] != task.arch:
            raise TrainError(
                f"{config.init}: --init weights are a {header['arch']}, task {task.name} trains a {task.arch}"
            )
        base = header["config"]  # fine-tuning keeps the initial network's size unless overridden
    try:
        model = create_model(task.arch, **{**base, **model_settings})
    except (ValueError, KeyError) as e:
        raise TrainError(f"{task.name}: {str(e).strip(chr(39))}") from None
    ckpt_path = config.checkpoint_path()
    if is_main:  # the outputs, before any work (`aetools.outputs`)
        too_long = name_problem(ckpt_path)
        if too_long:
            raise TrainError(f"--out {config.out}: its checkpoint's name is too long ({too_long})")
        if ckpt_path.exists() and not config.resume:
            raise TrainError(f"{ckpt_path} exists: add --resume to continue that run, or delete it to start over")
        problem = output_problem(
            Path(config.out),
            overwrite=config.resume or config.overwrite,
            inputs=[Path(p) for p in config.data + [f for f in (config.init, config.pretrained) if f]],
            suffix=".safetensors",
            what="weights",
        )
        if problem:
            raise TrainError(f"--out {problem}")
    try:
        precision = resolve_precision(config.precision, device)
    except PrecisionError as e:
        raise TrainError(str(e)) from None
    channels_last = use_channels_last(device, precision)
    pretrained_record = None
    if config.pretrained:
        load_pretrained = getattr(model, "load_pretrained", None)
        if config.init or load_pretrained is None:
            why = "--init gives all the weights" if config.init else "this model has no pretrained part"
            raise TrainError(f"--pretrained {config.pretrained}: {why}")
        try:
            pretrained_record = load_pretrained(config.pretrained)
        except (OSError, ValueError) as e:
            raise TrainError(f"--pretrained {e}") from None
    if config.init:
        init_record = {"file": Path(config.init).name, "training": header.get("training", {})}
        try:
            load_grown(model, tensors)
        except ValueError as e:
            raise TrainError(f"{config.init}: --init weights do not fit the model the options ask for ({e})") from None
    model.to(device)
    if channels_last:  # NHWC: the layout bf16 convolutions run fastest in; values and resume are unaffected
        model.to(memory_format=torch.channels_last)
    trainable = list(model.parameters())
    if config.train_only:  # a second stage: the rest of the network is frozen, weights and state
        prefix = config.train_only
        for name, p in model.named_parameters():
            p.requires_grad_(name == prefix or name.startswith(prefix + "."))
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise TrainError(f"--train-only {prefix}: no parameters of {task.arch} are named so")
    groups = model.optimizer_groups() if hasattr(model, "optimizer_groups") and not config.train_only else None
    optimizer = torch.optim.Adam(groups or trainable, lr=peak_lr)
    # No GradScaler: bf16 has fp32's exponent range, so gradients cannot underflow as fp16's do; the
    # weights, Adam's moments and the loss stay fp32 (autocast casts only the operations' inputs).
    scaler = None

    # ----- data: the task chooses (image folders; the generators also Fashion-MNIST's arrays)
    request = DataRequest(
        sources=[str(p) for p in config.data],
        val_sources=config.val_data,
        exclude=[str(p) for p in config.exclude],
        fashion_dir=config.fashion_dir,
        batch_size=batch_size,
        crop=crop,
        val_crop=d.val_crop,
        val_count=config.val_images or d.val_images,
        steps=steps,
        seed=config.seed,
        rank=rank,
        validate=is_main,
        cifar_dir=config.cifar_dir,
    )
    try:
        data = task.data(task, model, request, degrade, val_degrade)
    except DataError as e:
        raise TrainError(str(e)) from None
    dataset, val, train_count, crop = data.train, data.val, data.images, data.crop

    options_record = json.loads(json.dumps(options))  # as JSON gives it back (tuples -> lists)
    # what makes the data stream and the schedule: a resume with other values would not be the same run
    stream = {"batch_size": batch_size, "crop": crop, "lr": peak_lr, "seed": config.seed, "processes": world}
    if config.exclude:  # older checkpoints have no such key: not checked against them
        stream["exclude"] = sorted(str(p) for p in config.exclude)
    start, state = 0, {"seconds": 0.0, "val_psnr": None, "options": options_record, "precision": precision.name}
    state["stream"] = stream
    if config.resume:
        if not ckpt_path.exists():
            raise TrainError(f"--resume: no checkpoint at {ckpt_path}")
        header = read_checkpoint_header(ckpt_path)
        if header["task"] != task.name or header["arch"] != model.arch or header["config"] != model_config_dict(model):
            raise TrainError(f"{ckpt_path}: checkpoint is for another task or model size; remove it or change --out")
        # an option the checkpoint does not name was added since: the run was trained with its default
        defaults = json.loads(json.dumps(task.options))
        saved_options = {**defaults, **header["state"].get("options", options_record)}
        if saved_options != options_record:
            raise TrainError(f"{ckpt_path}: checkpoint was trained with options {saved_options}, not {options_record}")
        saved_stream = header["state"].get("stream", stream)  # runs before this was recorded: not checked
        changed = [f"{k} {saved_stream[k]} (now {v})" for k, v in stream.items() if saved_stream.get(k, v) != v]
        if changed:
            raise TrainError(
                f"{ckpt_path}: checkpoint was trained with {', '.join(changed)}; resume with the same values "
                "(only --steps may change), or start a new run with another --out"
            )
        saved_precision = header["state"].get("precision", "fp32")  # runs before precision was recorded: fp32
        if saved_precision != precision.name:
            if (config.precision or "auto") != "auto":
                raise TrainError(
                    f"{ckpt_path}: checkpoint was trained in {saved_precision}, not {precision.name}; "
                    f"resume with --precision {saved_precision} (or auto) to continue it exactly"
                )
            precision = resolve_precision(saved_precision, device)  # auto continues in the run's own precision
            channels_last = use_channels_last(device, precision)
            model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        header = load_checkpoint(ckpt_path, model, optimizer, scaler)
        start, state = header["step"], {**state, **header["state"]}
    out_path = Path(config.out)
    if is_main:
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrainError(f"--out {out_path}: cannot create its folder ({e.strerror or e})") from None

    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # e.g. superres: a step trains one scale's tail, the others get no gradient
            find_unused_parameters=getattr(model, "has_unused_parameters", False),
        )

    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=range(start, steps),
        num_workers=config.workers,
        persistent_workers=False,
        prefetch_factor=4 if config.workers else None,
        # its own generator: creating the iterator would otherwise draw from the global RNG, after a resume
        # has restored it, and shift the noise of stochastic models (VAE sampling, hash noise, dropout)
        generator=torch.Generator(),
    )

    def write_checkpoint(step: int) -> None:
        if is_main:
            try:
                save_checkpoint(ckpt_path, model, optimizer, step, task.name, scaler, state)
            except OSError as e:  # the previous checkpoint, if any, is intact (atomic writes)
                raise TrainError(f"{ckpt_path}: cannot write the checkpoint ({e.strerror or e})") from None
        if world > 1:
            dist.barrier()

    notes = {"val": ""}

    def to_device(batch):
        batch = batch.to(device)
        if channels_last:
            batch.inputs = {
                k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                for k, v in batch.inputs.items()
            }
        return batch

    def validate() -> float | None:
        if not val:
            return None
        model.eval()
        with torch.no_grad(), autocast(device, precision):
            outputs = [(model(**to_device(b).inputs).float(), b) for b in val]
            if task.score is not None:
                scores = [task.score(output, b) for output, b in outputs]
            else:
                scores = [psnr(*task.validation_pair(output, b)) for output, b in outputs]
            notes["val"] = task.val_notes(model, [output for output, _ in outputs]) if task.val_notes else ""
        set_training_mode()
        return float(np.mean(scores))

    def set_training_mode() -> None:
        """model.train(), except for what --train-only freezes: frozen modules stay in eval mode, so their state
        (batch-norm statistics, a VQ codebook's moving averages) does not move either."""
        model.train()
        if config.train_only:
            prefix = config.train_only
            for name, module in model.named_modules():
                inside = name == prefix or name.startswith(prefix + ".")
                module.training = name == "" or inside or prefix.startswith(name + ".")

    report(TrainProgress(start, steps, float("nan"), 0.0, 0.0, state["val_psnr"], "start"))
    set_training_mode()
    done, loss_ema, seen, interrupted = start, None, 0, False
    t0 = time.time()
    tick = t0
    with _StopFlag() as stop:
        try:
            for step, batch in enumerate(loader, start=start):
                lr = learning_rate(step, steps, peak_lr, config.warmup, config.min_lr_ratio)
                for group in optimizer.param_groups:  # a group may learn slower, or not yet
                    group["lr"] = lr * group.get("lr_scale", 1.0) * (step >= group.get("frozen_steps", 0))
                batch = to_device(batch)
                with autocast(device, precision):
                    prediction = train_model(**batch.inputs)
                loss, logs = loss_fn(prediction.float(), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()

                value = loss.item()
                loss_ema = value if loss_ema is None else 0.98 * loss_ema + 0.02 * value
                seen += batch.target.shape[0] * world
                now = time.time()
                done = step + 1
                speed = seen / max(now - t0, 1e-9)
                terms = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in logs.items()}
                report(TrainProgress(done, steps, loss_ema, lr, speed, state["val_psnr"], "step", value, logs=terms))

                if is_main and (done % val_every == 0 or done == steps):
                    state["val_psnr"] = validate()
                    speed = seen / max(now - t0, 1e-9)
                    report(
                        TrainProgress(done, steps, loss_ema, lr, speed, state["val_psnr"], "val", notes=notes["val"])
                    )
                stop_now = stop.stop
                if world > 1:  # every rank must agree to stop at the same step
                    flag = torch.tensor([float(stop_now)], device=device)
                    dist.all_reduce(flag)
                    stop_now = bool(flag.item())
                if done % config.checkpoint_every == 0 or stop_now or done == steps:
                    state["seconds"] += time.time() - tick
                    tick = time.time()
                    write_checkpoint(done)
                    report(TrainProgress(done, steps, loss_ema, lr, 0.0, state["val_psnr"], "checkpoint"))
                if stop_now and done < steps:
                    interrupted = True
                    break
        except DataError as e:
            raise TrainError(str(e)) from None

    out = None
    if not interrupted and is_main:
        out = Path(config.out)
        training = {
            "data": [str(p) for p in config.data],
            **({"exclude": [str(p) for p in config.exclude]} if config.exclude else {}),
            "images": train_count,
            "steps": steps,
            "batch_size": batch_size * world,
            "crop": crop,
            "lr": peak_lr,
            "seed": config.seed,
            "options": options_record,
            "seconds": round(state["seconds"], 1),
            "device": device.type,
            "precision": precision.name,
            "channels_last": channels_last,
            "processes": world,
            "params": count_parameters(model),
            f"val_{task.score_name.lower()}": state["val_psnr"],
            **({"val": [str(p) for p in config.val_data]} if config.val_data else {}),
            "init": init_record,  # fine-tuned from these weights (and how they were trained), if any
            **({"pretrained": pretrained_record} if pretrained_record else {}),
            "train_only": config.train_only,
        }
        try:
            save_weights(model, out, task.name, training)
        except OSError as e:  # a full disk, a folder gone: the checkpoint still holds the whole run
            raise TrainError(
                f"--out {out}: cannot write ({e.strerror or e}); the run is safe in {ckpt_path}: free the space and"
                " run the same command with --resume"
            ) from None
    if world > 1:
        dist.barrier()
    report(
        TrainProgress(
            done, steps, loss_ema or float("nan"), 0.0, 0.0, state["val_psnr"], "interrupted" if interrupted else "done"
        )
    )
    unreadable = {str(k): v for k, v in getattr(dataset, "unreadable", {}).items()}
    return TrainResult(done, interrupted, state["val_psnr"], out, ckpt_path, state["seconds"], model, unreadable)


__all__ = ["TrainConfig", "TrainError", "TrainProgress", "TrainResult", "WeightsError", "learning_rate", "train"]
