"""`aetools train TASK`: the one trainer, for any task, with a rich progress bar."""

from __future__ import annotations

from pathlib import Path

import typer

from aetools.cli import app
from aetools.cli.console import console, fail, progress_bar


@app.command(no_args_is_help=True, context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    ctx: typer.Context,
    task: str = typer.Argument(
        ..., help="Task to train: colorize, denoise, hash, inpaint, superres; ae, vae, hvae, vqvae, classifier."
    ),
    data: list[Path] = typer.Option(
        ..., "--data", "-d", help="Image folder(s) or files (recursive), or fashion-mnist (the idx files)."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Where to write the trained .safetensors (default: ./TASK.safetensors)."
    ),
    steps: int = typer.Option(None, help="Optimiser steps (task default if omitted)."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Crops per step, per process."),
    crop: int = typer.Option(None, help="Training crop side in pixels."),
    lr: float = typer.Option(None, help="Peak learning rate (Adam; warm-up then cosine decay)."),
    widths: str = typer.Option(None, help="Backbone channels per level, e.g. 32,64,128,256."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT.ckpt.safetensors exactly."),
    init: Path = typer.Option(None, help="Start from these weights (fine-tune) instead of random."),
    train_only: str = typer.Option(
        None, "--train-only", help="Train only this part (e.g. prior, with --init: the VQ-VAE's second stage)."
    ),
    val: list[Path] = typer.Option(None, "--val", help="Validation images (default: held out of --data)."),
    val_every: int = typer.Option(None, "--val-every", help="Validate every N steps."),
    checkpoint_every: int = typer.Option(250, "--checkpoint-every", help="Checkpoint every N steps."),
    workers: int = typer.Option(0, help="Data-loading processes (0: in the training process)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option(
        "auto", help="auto (bf16 autocast where the CPU or GPU computes it natively, else fp32), fp32 or bf16."
    ),
    seed: int = typer.Option(0, help="Seed for the initial weights and the data stream."),
    scale: list[int] = typer.Option(None, "--scale", help="superres: scale(s) to train (default: 2 3 4)."),
    degradation: str = typer.Option(None, help="superres: bicubic (the benchmark's) or real (blur, noise, JPEG)."),
    bits: int = typer.Option(None, help="hash: code length, 16, 32, 64 (default), 128 or 256."),
    size: int = typer.Option(
        None, help="hash: the side images are resized to (default 64); ae, vae, hvae, vqvae: the image side."
    ),
    rgb: bool = typer.Option(False, "--rgb", help="hash: encode colour, not standardised luminance."),
    fashion_dir: Path = typer.Option(
        None, "--fashion-dir", help="Folder of Fashion-MNIST's 4 idx files (default: $AETOOLS_FASHION_MNIST)."
    ),
    grey: bool = typer.Option(False, "--grey", help="ae, vae, hvae, vqvae on image folders: train on grey images."),
    latent: int = typer.Option(None, help="ae, vae, hvae: the code's dimension."),
    beta: float = typer.Option(None, help="vae, hvae: the KL weight (beta-VAE); vqvae: the commitment weight."),
    codes: int = typer.Option(None, help="vqvae: codebook size."),
    reg: str = typer.Option(None, help="ae: none, sparse, contractive or denoising."),
    lam: float = typer.Option(None, help="ae: the sparse or contractive penalty's weight."),
    linear: bool = typer.Option(False, "--linear", help="ae: linear encoder and decoder (learns PCA's subspace)."),
    corruption: str = typer.Option(None, help="ae --reg denoising: gaussian or masking."),
    level: float = typer.Option(None, help="ae --reg denoising: noise std or masking rate."),
    jacobian: str = typer.Option(None, help="ae --reg contractive: exact or hutchinson."),
    likelihood: str = typer.Option(None, help="vae, hvae: bernoulli or gaussian decoder."),
    kl_warmup: int = typer.Option(None, "--kl-warmup", help="vae, hvae: steps over which the KL weight rises to beta."),
    capacity: float = typer.Option(None, help="vae, hvae: KL capacity target in nats (Burgess et al.)."),
) -> None:
    """Train a task's model on your images; Ctrl-C writes a checkpoint, --resume continues it.

    Multi-process: torchrun --nproc_per_node N -m aetools train ... (DDP; gloo on CPU, nccl on GPU).
    """
    import os

    from aetools.cli.console import parse_numbers
    from aetools.inference import DeviceError
    from aetools.tasks import get_task, list_tasks
    from aetools.train.trainer import TrainConfig, TrainError
    from aetools.train.trainer import train as run_training
    from aetools.weights import WeightsError

    if task not in list_tasks():
        raise fail(f"unknown task {task!r}; choose from {', '.join(list_tasks())}")
    model: dict = {}
    if widths:
        try:
            model["widths"] = tuple(int(w) for w in widths.split(","))
        except ValueError:
            raise fail(f"--widths {widths!r}: expected comma-separated integers such as 32,64,128") from None
    generative = {name for name in list_tasks() if get_task(name).sized}  # ae, vae, hvae, vqvae
    for flag, key, value, tasks in (
        ("--bits", "bits", bits, {"hash"}),
        ("--size", "size", size, {"hash"} | generative),
        ("--rgb", "luma", False if rgb else None, {"hash"}),
        ("--grey", "channels", 1 if grey else None, generative),
        ("--latent", "latent", latent, {"ae", "vae", "hvae"}),
        ("--beta", "beta", beta, {"vae", "hvae", "vqvae"}),
        ("--codes", "codes", codes, {"vqvae"}),
        ("--reg", "reg", reg, {"ae"}),
        ("--lam", "lam", lam, {"ae"}),
        ("--linear", "linear", True if linear else None, {"ae"}),
        ("--corruption", "corruption", corruption, {"ae"}),
        ("--level", "level", level, {"ae"}),
        ("--jacobian", "jacobian", jacobian, {"ae"}),
        ("--likelihood", "likelihood", likelihood, {"vae", "hvae"}),
        ("--kl-warmup", "kl_warmup", kl_warmup, {"vae", "hvae"}),
        ("--capacity", "capacity", capacity, {"vae", "hvae"}),
    ):
        if value is None:
            continue
        if task not in tasks:
            raise fail(f"{flag} does not apply to task {task!r}")
        model[key] = value
    fashion = [str(p) for p in data] == ["fashion-mnist"]
    if task in generative and not fashion and "channels" not in model:
        model["channels"] = 3  # image folders: colour unless --grey
    if fashion_dir and not fashion:
        raise fail("--fashion-dir applies to --data fashion-mnist only")
    if bits is not None and bits not in (16, 32, 64, 128, 256):
        raise fail(f"--bits {bits}: choose from 16, 32, 64, 128, 256")
    options: dict = {}
    scales = parse_numbers(scale, ctx.args, "--scale", int) if scale else []
    if ctx.args and not scales:
        raise fail(f"unexpected argument {ctx.args[0]!r}")
    for flag, key, value in (("--scale", "scales", tuple(scales)), ("--degradation", "degradation", degradation)):
        if not value:
            continue
        if key not in get_task(task).options:
            raise fail(f"{flag} does not apply to task {task!r}")
        options[key] = value
    if "scales" in options:
        if any(s not in (2, 3, 4) for s in options["scales"]):
            raise fail(f"--scale {' '.join(map(str, scales))}: choose from 2, 3, 4")
        model["scales"] = options["scales"] = tuple(sorted(set(options["scales"])))
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
        fashion_dir=str(fashion_dir) if fashion_dir else None,
        val_every=val_every,
        checkpoint_every=checkpoint_every,
        resume=resume,
        init=str(init) if init else None,
        seed=seed,
        device=device,
        precision=precision,
        workers=workers,
        train_only=train_only,
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
    if result.interrupted:
        console.print(f"interrupted at step {result.steps}; checkpoint {result.checkpoint}; continue with --resume")
        raise typer.Exit(130)
    val_text = "" if result.val_psnr is None else f", validation {score} {result.val_psnr:.2f}{unit}"
    console.print(f"[green]done[/]: {result.steps} steps in {result.seconds / 60:.1f} min{val_text} -> {result.out}")
