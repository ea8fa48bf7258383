"""`aetools train TASK`: the one trainer, for any task, with a rich progress bar."""

from __future__ import annotations

from pathlib import Path

import typer

from aetools.cli import app
from aetools.cli.console import console, fail, progress_bar


def parse_setting(text: str) -> tuple[str, object]:
    """ "KEY=VALUE" -> (key, value): true/false, an integer, a number, integers separated by commas (a tuple),
    or text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise fail(f"--set {text!r}: expected KEY=VALUE, e.g. --set bits=32")
    raw = raw.strip()
    if raw.lower() in ("true", "false"):
        return key.strip(), raw.lower() == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(raw)
        except ValueError:
            pass
    if "," in raw:
        try:
            return key.strip(), tuple(int(v) for v in raw.split(","))
        except ValueError:
            raise fail(f"--set {text!r}: a list must be integers separated by commas") from None
    return key.strip(), raw


def split_settings(task, settings: list[str]) -> tuple[dict, dict]:
    """--set values -> (the model's config overrides, the task's training options). A key is a task option
    (`Task.options`) or a field of the task's model config; anything else is a one-line error."""
    from aetools.models import config_defaults

    model_fields, model, options = config_defaults(task.arch), {}, {}
    for text in settings:
        key, value = parse_setting(text)
        default = task.options.get(key, model_fields.get(key))
        if key not in task.options and key not in model_fields:
            known = ", ".join(sorted(set(task.options) | set(model_fields)))
            raise fail(f"--set {key}: does not apply to task {task.name!r} (its settings: {known})")
        if isinstance(default, tuple) and not isinstance(value, tuple):
            value = (value,)  # --set scales=4
        (options if key in task.options else model)[key] = value
    return model, options


@app.command(no_args_is_help=True)
def train(
    task: str = typer.Argument(
        ..., help="Task to train: colorize, denoise, hash, inpaint, superres; ae, vae, hvae, vqvae, classifier."
    ),
    data: list[Path] = typer.Option(
        ..., "--data", "-d", help="Image folders or files (recursive), fashion-mnist or cifar10 (their files)."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Where to write the trained .safetensors (default: ./TASK.safetensors)."
    ),
    steps: int = typer.Option(None, help="Optimiser steps (task default if omitted)."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Crops per step, per process."),
    crop: int = typer.Option(None, help="Training crop side in pixels."),
    lr: float = typer.Option(None, help="Peak learning rate (Adam; warm-up then cosine decay)."),
    widths: str = typer.Option(None, help="Backbone channels per level, e.g. 32,64,128,256 (= --set widths=...)."),
    settings: list[str] = typer.Option(
        None,
        "--set",
        help="KEY=VALUE, repeatable: a model setting or a task option, checked against the task's model, e.g."
        " hash: bits=32, luma=false; superres: scales=4, degradation=real; vae: latent=10, beta=4.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT.ckpt.safetensors exactly."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT (a resumed run may)."),
    init: Path = typer.Option(None, help="Start from these weights (fine-tune) instead of random."),
    pretrained: Path = typer.Option(
        None,
        "--pretrained",
        help="Pretrained weights for the model's pretrained part, training only (colorize with --set"
        " encoder=mobilenet_v2: torchvision's ImageNet mobilenet_v2 .pth); the result holds them.",
    ),
    train_only: str = typer.Option(
        None, "--train-only", help="Train only this part (e.g. prior, with --init: the VQ-VAE's second stage)."
    ),
    val: list[Path] = typer.Option(None, "--val", help="Validation images (default: held out of --data)."),
    exclude: list[Path] = typer.Option(
        None, "--exclude", help="A file or folder inside --data to leave out of training (repeatable)."
    ),
    val_every: int = typer.Option(None, "--val-every", help="Validate every N steps."),
    checkpoint_every: int = typer.Option(250, "--checkpoint-every", help="Checkpoint every N steps."),
    workers: int = typer.Option(0, help="Data-loading processes (0: in the training process)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option(
        "auto", help="auto (bf16 autocast where the CPU or GPU computes it natively, else fp32), fp32 or bf16."
    ),
    seed: int = typer.Option(0, help="Seed for the initial weights and the data stream."),
    fashion_dir: Path = typer.Option(
        None, "--fashion-dir", help="Folder of Fashion-MNIST's 4 idx files (default: $AETOOLS_FASHION_MNIST)."
    ),
    cifar_dir: Path = typer.Option(
        None, "--cifar-dir", help="Folder of CIFAR-10's train.tar and test.tar (default: $AETOOLS_CIFAR10)."
    ),
) -> None:
    """Train a task's model on your images; Ctrl-C writes a checkpoint, --resume continues it.

    Multi-process: torchrun --nproc_per_node N -m aetools train ... (DDP; gloo on CPU, nccl on GPU).
    """
    import os

    from aetools.inference import DeviceError
    from aetools.tasks import get_task, list_tasks
    from aetools.train.trainer import TrainConfig, TrainError
    from aetools.train.trainer import train as run_training
    from aetools.weights import WeightsError

    if task not in list_tasks():
        raise fail(f"unknown task {task!r}; choose from {', '.join(list_tasks())}")
    recipe = get_task(task)
    if widths:
        settings = [*(settings or []), f"widths={widths}"]
    model, options = split_settings(recipe, settings or [])
    if "widths" in model and not isinstance(model["widths"], tuple):
        model["widths"] = (model["widths"],)
    fashion = [str(p) for p in data] == ["fashion-mnist"]
    if fashion_dir and not fashion:
        raise fail("--fashion-dir applies to --data fashion-mnist only")
    if cifar_dir and [str(p) for p in data] != ["cifar10"]:
        raise fail("--cifar-dir applies to --data cifar10 only")
    out = out or Path(f"{task}.safetensors")
    config = TrainConfig(
        task=task,
        data=[str(p) for p in data],
        out=str(out),
        model=model,
        options=options,
        steps=steps,
        batch_size=batch_size,
        crop=crop,
        lr=lr,
        val_data=[str(p) for p in val] if val else None,
        exclude=[str(p) for p in exclude or []],
        fashion_dir=str(fashion_dir) if fashion_dir else None,
        cifar_dir=str(cifar_dir) if cifar_dir else None,
        val_every=val_every,
        checkpoint_every=checkpoint_every,
        resume=resume,
        init=str(init) if init else None,
        pretrained=str(pretrained) if pretrained else None,
        seed=seed,
        device=device,
        precision=precision,
        workers=workers,
        train_only=train_only,
        overwrite=overwrite,
    )
    quiet = int(os.environ.get("RANK", "0")) != 0
    score, unit = get_task(task).score_name, get_task(task).score_unit
    progress = progress_bar(
        f"train {task}",
        "loss {task.fields[loss]:.4f}  {task.fields[speed]:.1f} img/s  val {task.fields[val]}",
        disable=quiet,
    )
    bar = None

    def on_progress(p) -> None:
        nonlocal bar
        val_text = "-" if p.val_psnr is None else f"{p.val_psnr:.2f}{unit}"
        if bar is None:
            bar = progress.add_task(
                "train", total=p.total, completed=p.step, loss=float("nan"), speed=0.0, val=val_text
            )
        fields = {"val": val_text}
        if p.event == "step":
            fields.update(loss=p.loss, speed=p.images_per_s)
        progress.update(bar, completed=p.step, **fields)
        plain_log = not console.is_terminal and p.event == "step" and p.step % 100 == 0
        if plain_log and not quiet:  # progress lines for a log file, where no bar is drawn
            progress.console.log(
                f"step {p.step}/{p.total}: loss {p.loss:.4f}, {p.images_per_s:.1f} img/s, lr {p.lr:.2e}"
            )
        if p.event == "val" and not quiet:
            notes = f", {p.notes}" if p.notes else ""
            progress.console.log(
                f"step {p.step}: validation {score} {val_text}{notes}, loss {p.loss:.4f}, lr {p.lr:.2e}"
            )

    try:
        with progress:
            result = run_training(config, on_progress)
    except (TrainError, WeightsError, DeviceError) as e:
        raise fail(str(e)) from None
    if quiet:
        return
    for path, reason in list(result.unreadable.items())[:20]:
        console.print(f"[yellow]skipped[/] {path}: {reason}", soft_wrap=True)
    if len(result.unreadable) > 20:
        console.print(f"[yellow]skipped[/] {len(result.unreadable) - 20} more unreadable training files")
    if result.interrupted:
        console.print(f"interrupted at step {result.steps}; checkpoint {result.checkpoint}; continue with --resume")
        raise typer.Exit(130)
    val_text = "" if result.val_psnr is None else f", validation {score} {result.val_psnr:.2f}{unit}"
    console.print(f"[green]done[/]: {result.steps} steps in {result.seconds / 60:.1f} min{val_text} -> {result.out}")
