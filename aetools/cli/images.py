"""The image-task contract, shared by every image command (denoise, upscale, colorize, inpaint):

    aetools <task> INPUT... [-o OUTPUT] [--model NAME|PATH] [--device D] [--precision P] [--tile N]
                            [--overwrite] [-r]

- INPUT: image files and/or folders (images inside; -r recurses, keeping sub-folders in the output).
- One input file and `-o FILE`: writes FILE. Otherwise -o is a folder (created if needed) holding
  <stem><ext> per input. Without -o: beside the input as <stem>_<suffix><ext>.
- Never writes over an input; an existing output is refused unless --overwrite; writes are atomic.
- A bad file is reported with its path and reason and skipped; exit code 1 if any failed. Warnings about
  a file (an `ImageWarning`, e.g. an empty mask) are printed after the summary, one line each.
- Tasks that promise untouched pixels (inpaint) write lossy inputs (JPEG, WebP) as PNG by default.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from aetools.cli import app
from aetools.cli.console import console, fail, prepare, progress_bar

Inputs = Annotated[list[Path], typer.Argument(help="Image files and/or folders.", show_default=False)]
Output = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Output file (one input) or folder. Default: beside each input."),
]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Shipped model name or a .safetensors path.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
TileOpt = Annotated[
    int | None, typer.Option("--tile", min=0, help="Tile side in pixels for bounded memory (0: never; default: auto).")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Look for images in sub-folders too.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed torch (reproducible CPU runs).")]


@dataclass
class Plan:
    jobs: list[tuple[Path, Path]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (input, one line): printed as warnings


LOSSY_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".heic", ".heif", ".hif", ".avif"})


def plan_outputs(
    inputs: list[Path],
    output: Path | None,
    suffix: str,
    recursive: bool,
    lossless: bool = False,
    exclude: Path | None = None,
) -> Plan:
    """Pair every input image with its output path, following the contract above. lossless: lossy inputs
    get a .png output (unless -o names the output file). exclude: a file, or a folder's files, found in an
    input folder but not to be processed (inpaint's masks)."""
    from aetools.data.datasets import list_images
    from aetools.data.io import output_suffix

    plan = Plan()
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    for item in inputs:
        if item.is_dir():
            found = [
                p
                for p in list_images([item], recursive)
                if not p.stem.endswith(f"_{suffix}") and not (exclude and p.resolve().is_relative_to(exclude.resolve()))
            ]
            if not found:
                plan.failures.append(
                    (str(item), "no images in this folder" + ("" if recursive else " (use -r for sub-folders)"))
                )
            sources.extend((p, p.relative_to(item)) for p in found)
        elif item.exists():
            sources.append((item, Path(item.name)))
        else:
            plan.failures.append((str(item), "no such file or folder"))

    single_file = len(inputs) == 1 and len(sources) == 1 and not inputs[0].is_dir()
    file_output = single_file and output is not None and not output.is_dir() and output.suffix != ""
    input_paths = {p.resolve() for p, _ in sources}
    taken: set[Path] = set()
    for src, rel in sources:
        ext, note = output_suffix(".png" if lossless and src.suffix.lower() in LOSSY_EXTENSIONS else src.suffix)
        if note and not file_output:
            plan.notes.append((str(src), note))
        if file_output:
            dst = output
        elif output is not None:
            dst = output / rel.with_suffix(ext)
        else:
            dst = src.with_name(f"{src.stem}_{suffix}{ext}")
        resolved = dst.resolve()
        if resolved in input_paths:
            plan.failures.append((str(src), f"output {dst} would overwrite an input; choose another -o"))
        elif resolved in taken:
            plan.failures.append((str(src), f"output {dst} is already the output of another input"))
        else:
            taken.add(resolved)
            plan.jobs.append((src, dst))
    return plan


def run_image_task(
    name: str,
    inputs: list[Path],
    output: Path | None,
    suffix: str,
    overwrite: bool,
    recursive: bool,
    process: Callable,
    lossless: bool = False,
    exclude: Path | None = None,
) -> None:
    """Load, process and atomically save every input, with a progress bar and a summary; exit 1 if any
    file failed. `process(ImageData, source path) -> ImageData` does the task."""
    from aetools.data.io import ImageError, ImageWarning, load_image, save_image

    plan = plan_outputs(inputs, output, suffix, recursive, lossless, exclude)
    failures = list(plan.failures)
    notes = list(plan.notes)
    written = 0
    with progress_bar(name, "{task.fields[file]}", transient=True) as progress:
        bar = progress.add_task(name, total=len(plan.jobs), file="")
        for src, dst in plan.jobs:
            progress.update(bar, file=src.name)
            try:
                if dst.exists() and not overwrite:
                    raise ImageError(dst, "output exists (use --overwrite to replace it)")
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ImageWarning)
                    result = process(load_image(src), src)
                for w in caught:
                    if issubclass(w.category, ImageWarning):
                        notes.append((str(src), str(w.message)))
                    else:  # not ours to report per file: shown as Python would have
                        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
                dst.parent.mkdir(parents=True, exist_ok=True)
                save_image(result, dst, overwrite=overwrite)
                written += 1
            except ImageError as e:
                failures.append((e.path or str(src), e.reason))
            except (RuntimeError, ValueError, MemoryError) as e:  # e.g. out of memory on a huge image
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                failures.append((str(src), f"failed: {reason} (try a smaller --tile)"))
            progress.advance(bar)

    if len(plan.jobs) == 1 and written == 1 and not failures:
        console.print(f"wrote {plan.jobs[0][1]}")
    else:
        console.print(f"{name}: {written} written, {len(failures)} failed")
    for path, note in notes:
        console.print(f"[yellow]warning[/] {path}: {note}", soft_wrap=True)
    for path, reason in failures:
        console.print(f"[red]failed[/] {path}: {reason}", soft_wrap=True)
    if failures:
        raise typer.Exit(1)


PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="auto (bf16 where the processor computes it natively and the model's benchmark showed no loss),"
        " fp32 or bf16.",
    ),
]


def load_pipeline(name: str, model: str | None, device: str, precision: str, seed: int | None):
    """--device, --seed, --model and --precision resolved once per command into the task's pipeline; a bad
    value is a one-line usage error."""
    from aetools.precision import PrecisionError
    from aetools.tasks import get_pipeline
    from aetools.weights import WeightsError

    dev = prepare(device, seed)
    try:
        return get_pipeline(name).from_pretrained(model, dev, precision)
    except (PrecisionError, WeightsError) as e:
        raise fail(str(e)) from None


def check_options(pipe, **options) -> None:
    """Options the pipeline would refuse for every file (`ImagePipeline.check`) are a one-line usage error,
    before any file is read."""
    try:
        pipe.check(**options)
    except ValueError as e:
        raise fail(f"--{e}") from None


# ------------------------------------------------------------------------------------------ commands


@app.command(no_args_is_help=True)
def denoise(
    inputs: Inputs,
    output: Output = None,
    sigma: Annotated[
        float | None,
        typer.Option("--sigma", min=0, max=100, help="Noise level (0-255 scale) if known; default: blind."),
    ] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tile: TileOpt = None,
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    seed: SeedOpt = None,
) -> None:
    """Remove noise from photos (blind Gaussian denoiser, sigma 0-55; --sigma if you know it)."""
    pipe = load_pipeline("denoise", model, device, precision, seed)
    check_options(pipe, tile=tile)
    run_image_task(
        "denoise", inputs, output, "denoised", overwrite, recursive, lambda image, _: pipe(image, sigma, tile)
    )


@app.command(no_args_is_help=True)
def upscale(
    inputs: Inputs,
    output: Output = None,
    scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor: 2, 3 or 4.")] = 2,
    ensemble: Annotated[
        bool, typer.Option("--ensemble", help="Average the 8 flips/rotations: a little sharper, 8x slower.")
    ] = False,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tile: TileOpt = None,
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    seed: SeedOpt = None,
) -> None:
    """Upscale photos x2, x3 or x4 (super-resolution); grey stays grey, alpha is kept.

    For camera and web photos (blur, noise, JPEG) try --model upscale-real.
    """
    if scale not in (2, 3, 4):
        raise fail(f"--scale {scale}: choose 2, 3 or 4")
    pipe = load_pipeline("upscale", model, device, precision, seed)
    check_options(pipe, tile=tile, scale=scale)
    run_image_task(
        "upscale",
        inputs,
        output,
        f"x{scale}",
        overwrite,
        recursive,
        lambda image, _: pipe(image, scale=scale, tile=tile, ensemble=ensemble),
    )


@app.command(no_args_is_help=True)
def colorize(
    inputs: Inputs,
    output: Output = None,
    strength: Annotated[
        float, typer.Option("--strength", min=0.0, max=1.0, help="0 = grey, 1 = the model's colours; between: a blend.")
    ] = 1.0,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    seed: SeedOpt = None,
) -> None:
    """Colour grey photos; the output's lightness is the input's, at full resolution.

    Colour and tinted (sepia, blue-cast) scans are desaturated first. Output is RGB; alpha is kept.
    """
    pipe = load_pipeline("colorize", model, device, precision, seed)
    run_image_task(
        "colorize", inputs, output, "color", overwrite, recursive, lambda image, _: pipe(image, strength=strength)
    )


@app.command(no_args_is_help=True)
def inpaint(
    inputs: Inputs,
    output: Output = None,
    mask: Annotated[
        Path | None,
        typer.Option(
            "--mask",
            "-k",
            help="Mask image (white = fill; the same size as the photo) for every input, or a folder of masks"
            " matched to the inputs by file name stem. Default: the inputs' fully transparent pixels.",
        ),
    ] = None,
    ensemble: Annotated[bool, typer.Option("--ensemble", help="Average the 8 flips/rotations: 8x slower.")] = False,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tile: TileOpt = None,
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    seed: SeedOpt = None,
) -> None:
    """Fill holes in photos: the white pixels of a mask, or the transparent pixels of a cut-out.

    Pixels outside the holes are kept exactly; JPEG and WebP inputs are therefore written as PNG
    (name an output file with -o to choose another format).
    """
    if mask is not None and not mask.exists():
        raise fail(f"--mask {mask}: no such file or folder")
    masks = MaskFinder(mask)
    pipe = load_pipeline("inpaint", model, device, precision, seed)
    check_options(pipe, tile=tile)
    run_image_task(
        "inpaint",
        inputs,
        output,
        "filled",
        overwrite,
        recursive,
        lambda image, src: pipe(image, mask=masks.mask_for(src, image), tile=tile, ensemble=ensemble),
        lossless=True,
        exclude=mask,  # masks kept inside the photo folder are not photos to fill
    )


class MaskFinder:
    """--mask as given: None (use transparency), one mask file for every input, or a folder of masks found
    by the input's file stem. Masks are loaded once each; a problem is an ImageError naming the mask."""

    def __init__(self, mask: Path | None):
        from aetools.data.datasets import list_images

        self.mask = mask
        self.by_stem: dict[str, list[Path]] = {}
        if mask is not None and mask.is_dir():
            for path in list_images([mask], recursive=True):
                self.by_stem.setdefault(path.stem, []).append(path)
        self.loaded: dict[Path, object] = {}

    def mask_for(self, src: Path, image):
        """-> the mask ImageData for input `src` (loaded as `image`), or None (the input's transparency)."""
        from aetools.data.io import ImageError, load_image

        if self.mask is None:
            return None
        path = self.mask
        if self.mask.is_dir():
            found = self.by_stem.get(src.stem, [])
            if not found:
                raise ImageError(src, f"no mask named {src.stem}.* in {self.mask}")
            if len(found) > 1:
                raise ImageError(src, f"several masks named {src.stem}.* in {self.mask}: {', '.join(map(str, found))}")
            path = found[0]
        if path not in self.loaded:
            self.loaded = {path: load_image(path)}  # keep one: a folder of masks is used once each
        mask = self.loaded[path]
        if mask.size != image.size:
            (mw, mh), (w, h) = mask.size, image.size
            raise ImageError(src, f"the mask {path} is {mw}x{mh} but the image is {w}x{h}")
        return mask
