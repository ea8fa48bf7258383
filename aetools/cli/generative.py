"""Commands for the generative and classic autoencoders: generate, interpolate, reconstruct, traverse,
latent-plot. The models are chosen by shipped name (ae-fashion, ae3-fashion, vae-fashion, betavae-fashion,
vqvae-fashion, linear-fashion) or by a .safetensors path from `aetools train ae|vae|hvae|vqvae`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aetools.cli import app
from aetools.cli.console import console, fail
from aetools.cli.images import DeviceOpt, OverwriteOpt, RecursiveOpt, run_image_task

GenModel = Annotated[str, typer.Option("--model", "-m", help="Shipped model name or a .safetensors path.")]
OutFile = Annotated[Path, typer.Option("--output", "-o", help="The image to write (PNG).")]
InvertOpt = Annotated[
    bool,
    typer.Option("--invert", help="Dark things on a light background: invert (Fashion-MNIST is light on black)."),
]
ZoomOpt = Annotated[int, typer.Option("--zoom", min=1, max=16, help="Enlarge each cell N times (nearest).")]


def _load(model: str, device: str):
    from aetools.cli.console import prepare
    from aetools.generative.pipeline import load_generative
    from aetools.weights import WeightsError

    dev = prepare(device, None)
    try:
        return load_generative(model, dev)
    except WeightsError as e:
        raise fail(str(e)) from None


def _check_output(path: Path, overwrite: bool, *inputs: Path) -> None:
    from aetools.outputs import output_problem

    problem = output_problem(path, overwrite, inputs, what="image")
    if problem:
        raise fail(problem)


def _save_grid(images, output: Path, nrow: int, zoom: int, overwrite: bool) -> None:
    """save_grid into a folder made if need be; a write that fails is one line (exit 2)."""
    from aetools.data.io import ImageError
    from aetools.generative.pipeline import save_grid

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        save_grid(images, output, nrow, zoom, overwrite)
    except (ImageError, OSError) as e:
        raise fail(str(e) if isinstance(e, ImageError) else f"{output}: cannot write ({e.strerror or e})") from None


def _read(path: Path, model, invert: bool):
    from aetools.data.io import ImageError, load_image
    from aetools.generative.pipeline import image_to_input

    try:
        return image_to_input(load_image(path), model, invert)
    except ImageError as e:
        raise fail(str(e)) from None


@app.command(no_args_is_help=True)
def generate(
    model: Annotated[str, typer.Argument(help="Shipped model name or .safetensors path (ae, vae, hvae, vqvae).")],
    n: Annotated[int, typer.Option("-n", min=1, max=10_000, help="How many images.")] = 64,
    output: OutFile = Path("samples.png"),
    nrow: Annotated[int | None, typer.Option("--nrow", min=1, help="Images per row (default: square).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    temperature: Annotated[
        float | None,
        typer.Option("--temperature", min=0.01, help="VQ-VAE: the prior's softmax temperature (default: the model's)."),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", min=0, help="VQ-VAE: draw each code from the K likeliest (0: all; default: the model's)."
        ),
    ] = None,
    zoom: ZoomOpt = 1,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """New images from a model: VAE from its prior, VQ-VAE through its learned prior, AE from a Gaussian
    fitted to its training codes. Written as one grid."""
    import math

    from aetools.generative.pipeline import sample_images

    _check_output(output, overwrite)
    net = _load(model, device)
    try:
        with console.status(f"sampling {n} images"):
            images = sample_images(net, n, seed, temperature, top_k)
    except ValueError as e:
        raise fail(f"{model}: {e}") from None
    _save_grid(images, output, nrow or math.ceil(math.sqrt(n)), zoom, overwrite)
    console.print(f"wrote {output} ({n} samples from {model})")


@app.command(no_args_is_help=True)
def interpolate(
    a: Annotated[Path, typer.Argument(help="First image.")],
    b: Annotated[Path, typer.Argument(help="Second image.")],
    model: GenModel = "vae-fashion",
    steps: Annotated[int, typer.Option("--steps", min=2, max=100, help="Images in the strip, ends included.")] = 10,
    output: OutFile = Path("strip.png"),
    invert: InvertOpt = False,
    zoom: ZoomOpt = 1,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """Decode the straight line between two images' codes: a strip from A's reconstruction to B's."""
    from aetools.generative.pipeline import interpolate as blend

    _check_output(output, overwrite, a, b)
    net = _load(model, device)
    strip = blend(net, _read(a, net, invert), _read(b, net, invert), steps)
    if invert:
        strip = 1 - strip
    _save_grid(strip, output, steps, zoom, overwrite)
    console.print(f"wrote {output} ({steps} steps from {a.name} to {b.name})")


@app.command(no_args_is_help=True)
def reconstruct(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders.", show_default=False)],
    model: GenModel = "ae-fashion",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output file (one input) or folder. Default: beside each input."),
    ] = None,
    invert: InvertOpt = False,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
) -> None:
    """Each image passed through the model's code and back (at the model's size, resized to the input's)."""
    from aetools.generative.pipeline import reconstruct_image

    net = _load(model, device)
    run_image_task(
        "reconstruct",
        inputs,
        output,
        "recon",
        overwrite,
        recursive,
        lambda image, _: reconstruct_image(net, image, invert),
    )


@app.command(no_args_is_help=True)
def traverse(
    model: GenModel = "betavae-fashion",
    output: OutFile = Path("traversal.png"),
    steps: Annotated[int, typer.Option("--steps", min=2, max=50, help="Images per row.")] = 9,
    span: Annotated[float, typer.Option("--span", min=0.1, help="Sweep +-SPAN standard deviations.")] = 3.0,
    zoom: ZoomOpt = 1,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """One row per code dimension, swept from -span to +span standard deviations (others held at the centre)."""
    from aetools.generative.pipeline import traverse as sweep

    _check_output(output, overwrite)
    net = _load(model, device)
    try:
        images = sweep(net, steps, span)
    except ValueError as e:
        raise fail(f"{model}: {e}") from None
    _save_grid(images, output, steps, zoom, overwrite)
    console.print(f"wrote {output} ({len(images) // steps} dimensions x {steps} steps)")


@app.command("latent-plot", no_args_is_help=True)
def latent_plot(
    model: GenModel = "ae3-fashion",
    data: Annotated[str, typer.Option("--data", help="fashion-mnist (its test set).")] = "fashion-mnist",
    fashion_dir: Annotated[
        Path | None, typer.Option("--fashion-dir", help="Folder of the idx files (default: $AETOOLS_FASHION_MNIST).")
    ] = None,
    output: OutFile = Path("latent.png"),
    limit: Annotated[int, typer.Option("--limit", min=10, help="Test images plotted.")] = 10_000,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """Scatter the codes of labelled test images, coloured by class: 2-D and 3-D codes as they are, longer
    ones on their first two principal components."""
    from aetools.data.fashion import CLASSES, DatasetError, load_fashion_mnist
    from aetools.generative.pipeline import encode_all
    from aetools.generative.pipeline import latent_plot as plot

    if data != "fashion-mnist":
        raise fail(f"--data {data}: latent-plot needs labels; only fashion-mnist is supported")
    _check_output(output, overwrite)
    net = _load(model, device)
    try:
        test = load_fashion_mnist("test", fashion_dir)
    except DatasetError as e:
        raise fail(str(e)) from None
    images = test.tensors(0, limit)
    codes = encode_all(net, images)
    note = plot(codes, test.labels[:limit], CLASSES, output, title=f"{model}: {len(images)} Fashion-MNIST test images")
    console.print(f"wrote {output} ({note})")
