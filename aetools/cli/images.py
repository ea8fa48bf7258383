"""The image-task contract, shared by every image command (denoise, upscale, colorize, inpaint):

    aetools <task> INPUT... [-o OUTPUT] [--model NAME|PATH] [--device D] [--precision P] [--tile N]
                            [--overwrite] [-r]

- INPUT: image files and/or folders (images inside; -r recurses, keeping sub-folders in the output), or `-`
  alone: one image from standard input.
- One input file and `-o FILE`: writes FILE (`-o -`: standard output). Otherwise -o is a folder (created if
  needed) holding <stem><ext> per input; several inputs with -o naming a file is a usage error. Without -o:
  beside the input as <stem>_<suffix><ext>.
- Never writes over an input; an existing output is refused unless --overwrite; writes are atomic.
- A bad file, or an output that cannot be written, is reported with its path and reason and skipped; exit
  code 1 if any failed. Warnings about a file (an `ImageWarning`, e.g. an empty mask) are printed after the
  summary, one line each. What would fail for every file is a usage error (exit 2) before any work.
- Tasks that promise untouched pixels (inpaint) write lossy inputs (JPEG, WebP, HEIC, AVIF) as PNG by default.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from aetools.cli import app
from aetools.cli.console import console, fail, prepare, progress_bar, shown
from aetools.outputs import folder_problem, name_problem

Inputs = Annotated[
    list[Path], typer.Argument(help="Image files and/or folders; - reads one image from stdin.", show_default=False)
]
Output = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Output file (one input; - for stdout) or folder. Default: beside each input."),
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
    jobs: list[tuple[Path, Path]] = field(default_factory=list)  # (input, output); STDIO for - on either side
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (input, one line): printed as warnings


STDIO = Path("-")  # as an input: standard input; as -o: standard output
LOSSY_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".heic", ".heif", ".hif", ".avif"})


def check_inputs_and_output(inputs: list[Path], output: Path | None) -> None:
    """What would go wrong for every file is a one-line usage error (exit 2) before any work: `-` used with
    other inputs, `-o` naming a file (or an image name) when there are several inputs, `-o -` for several,
    a terminal where bytes would be read or written, and an output folder that cannot be created."""
    from aetools.data.io import IMAGE_EXTENSIONS  # here: the console starts without numpy and Pillow

    several = len(inputs) > 1 or inputs[0].is_dir()
    if STDIO in inputs and len(inputs) > 1:
        raise fail("-: standard input holds one image; give it as the only input")
    if STDIO in inputs and sys.stdin.isatty():
        raise fail("-: standard input is a terminal; pipe an image in (aetools ... - < photo.jpg)")
    to_stdout = output == STDIO or (output is None and STDIO in inputs)
    if to_stdout and several:
        raise fail("-o -: standard output takes one image; give one input file, or -o a folder")
    if to_stdout and sys.stdout.isatty():
        raise fail("-o -: standard output is a terminal; redirect it (> out.png) or give -o a file name")
    if output is None or output == STDIO:
        return
    too_long = name_problem(output)  # before asking the file system anything about it
    if too_long:
        raise fail(f"-o {output}: {too_long}")
    if STDIO in inputs and output.is_dir():
        raise fail(f"-o {output}: is a folder; with standard input -o names the output file (or - for stdout)")
    if several and output.exists() and not output.is_dir():
        raise fail(f"-o {output}: is a file; with several inputs -o must be a folder")
    if several and output.suffix.lower() in IMAGE_EXTENSIONS and not output.exists():
        raise fail(f"-o {output}: with several inputs -o must be a folder, not an image file name")
    folder = output if several or output.is_dir() or not output.suffix else output.parent
    problem = folder_problem(folder)
    if problem:
        raise fail(f"-o {output}: {problem}")


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
    input folder but not to be processed (inpaint's masks). An output folder inside an input folder is not
    scanned (a second run would otherwise process its own outputs)."""
    from aetools.data.datasets import list_images
    from aetools.data.io import output_suffix

    plan = Plan()
    if inputs == [STDIO]:
        plan.jobs.append((STDIO, output or STDIO))
        return plan
    skipped = [p.resolve() for p in (exclude, output) if p is not None and p != STDIO]
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    for item in inputs:
        if item.is_dir():
            found = [
                p
                for p in list_images([item], recursive)
                if not p.stem.endswith(f"_{suffix}") and not any(p.resolve().is_relative_to(s) for s in skipped)
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
    names_file = output is not None and (output == STDIO or (not output.is_dir() and output.suffix != ""))
    file_output = single_file and names_file
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
        if dst == STDIO:
            plan.jobs.append((src, dst))
            continue
        resolved = dst.resolve()
        problem = name_problem(dst)
        if resolved in input_paths:
            plan.failures.append((str(src), f"output {dst} would overwrite an input; choose another -o"))
        elif resolved in taken:
            plan.failures.append((str(src), f"output {dst} is already the output of another input"))
        elif problem:
            plan.failures.append((str(src), f"cannot write {dst}: {problem}"))
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
    epilogue: Callable[[], str | None] | None = None,
    memory_advice: str = "try a smaller --tile",
) -> None:
    """Load, process and atomically save every input, with a progress bar (moving tile by tile within a
    large photo) and a summary; exit 1 if any file failed, 130 on Ctrl-C (after the summary).
    `process(ImageData, source path) -> ImageData` does the task; `epilogue()` may add a line at the end;
    `memory_advice`: what to do when a photo needs more memory than there is (a command option to use).
    An animated GIF, PNG or WebP, or a multi-page TIFF, has every frame processed into one output file.
    (`run_task` runs a command on either engine; this is the local one.)"""
    check_inputs_and_output(inputs, output)
    plan = plan_outputs(inputs, output, suffix, recursive, lossless, exclude)
    failures = list(plan.failures)
    notes = list(plan.notes)
    written, interrupted = 0, False
    with progress_bar(name, "{task.fields[file]}", transient=True) as progress:
        bar = progress.add_task(name, total=len(plan.jobs), file="")
        for done, (src, dst) in enumerate(plan.jobs):
            label = "standard input" if src == STDIO else src.name
            progress.update(bar, completed=done, file=label)

            def on_tile(tiles: int, total: int, done=done, label=label) -> None:
                progress.update(bar, completed=done + tiles / total, file=f"{label}: tile {tiles}/{total}")

            try:
                outcome = process_file(src, dst, process, overwrite, lossless, memory_advice, on_tile)
            except KeyboardInterrupt:
                interrupted = True
                break
            notes.extend(outcome.notes)
            if outcome.status == "written":
                written += 1
            else:
                failures.append((outcome.path, outcome.reason))
            progress.update(bar, completed=done + 1)
    summarize(name, plan, written, 0, failures, notes, epilogue() if epilogue else None, interrupted)


@dataclass
class Outcome:
    """What became of one input: status "written", "skipped" (its output was there already: a re-run with
    the Ray engine resumes) or "failed" (`reason`, naming `path`); notes: (input, one line) to print as
    warnings; models: the models that ran on it (name -> frames), for the which-model line."""

    status: str
    path: str = ""
    reason: str = ""
    notes: list[tuple[str, str]] = field(default_factory=list)
    models: dict[str, int] = field(default_factory=dict)


def process_file(
    src: Path,
    dst: Path,
    process: Callable,
    overwrite: bool,
    lossless: bool = False,
    memory_advice: str = "try a smaller --tile",
    on_tile: Callable[[int, int], None] | None = None,
    skip_existing: bool = False,
) -> Outcome:
    """One input of the contract: read (every frame of an animation), process, write atomically -> its
    Outcome. Whatever goes wrong with this file is its one-line failure; only Ctrl-C escapes. The one
    per-file function of both engines (the local loop and each Ray actor), so their outputs are the same
    bytes. skip_existing: an output already there is "skipped" rather than failed (never replaced either
    way without `overwrite`)."""
    from aetools.data.io import (
        ImageError,
        ImageWarning,
        check_frame_budget,
        check_frames_fit,
        frame_layout,
        load_frames,
    )
    from aetools.tiling import report_tiles

    notes = []
    try:
        if dst != STDIO and dst.exists() and not overwrite:
            if skip_existing:
                return Outcome("skipped", str(dst), "output already there")
            raise ImageError(dst, "output exists (use --overwrite to replace it)")
        layout = frame_layout(src) if src != STDIO else None  # an animation or multi-page file
        if layout and dst != STDIO:
            check_frames_fit(dst, layout.count)  # before the work, not after
        if layout:
            check_frame_budget(src, layout)  # frames x pixels, before any frame is decoded
        frames = load_frames(src, layout) if layout else [_read_input(src)]
        with warnings.catch_warnings(record=True) as caught, report_tiles(on_tile or _no_tiles):
            warnings.simplefilter("always", ImageWarning)
            results = (process(frame, src) for frame in frames)  # one frame at a time
            if layout:  # every frame, in one file again: written or kept compact as it is made
                _write_frames(results, layout, dst, overwrite)
            else:
                result = next(results)
        for w in caught:
            if issubclass(w.category, ImageWarning):
                notes.append((str(src), str(w.message)))
            else:  # not ours to report per file: shown as Python would have
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        if not layout:
            _write_output(result, dst, overwrite, lossless)
        return Outcome("written", notes=notes)
    except ImageError as e:
        return Outcome("failed", e.path or str(src), e.reason, notes)
    except Exception as e:  # noqa: BLE001  (any failure is this file's, one line, and the batch goes on)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if not isinstance(e, (RuntimeError, ValueError, MemoryError, OSError)):
            reason = f"{type(e).__name__}: {reason}"
        if isinstance(e, MemoryError) or "memory" in reason.lower():
            reason = f"{reason} ({memory_advice})"
        return Outcome("failed", str(src), f"failed: {reason}", notes)


def _no_tiles(tiles: int, total: int) -> None:
    pass


def summarize(
    name: str,
    plan: Plan,
    written: int,
    skipped: int,
    failures: list[tuple[str, str]],
    notes: list[tuple[str, str]],
    epilogue: str | None,
    interrupted: bool,
    left_as: str = "not started",
) -> None:
    """The end of a batch, for both engines: what was written (and skipped), the warnings, every failure,
    the epilogue line; then exit 130 after Ctrl-C, 1 if any file failed. left_as: what the files neither
    written nor failed are called ("not started" here; on Ray, files may be written and not yet reported)."""
    if len(plan.jobs) == 1 and written == 1 and not failures:
        console.print(f"wrote {'standard output' if plan.jobs[0][1] == STDIO else shown(plan.jobs[0][1])}")
    else:
        left = len(plan.jobs) - written - skipped - (len(failures) - len(plan.failures))
        kept = f", {skipped} skipped (output already there)" if skipped else ""
        console.print(
            f"{name}: {written} written{kept}, {len(failures)} failed" + (f", {left} {left_as}" if left else "")
        )
    for path, note in notes:
        console.print(f"[yellow]warning[/] {shown(path)}: {shown(note)}", soft_wrap=True)
    for path, reason in failures:
        console.print(f"[red]failed[/] {shown(path)}: {shown(reason)}", soft_wrap=True)
    if epilogue:
        console.print(epilogue, soft_wrap=True)
    if interrupted:
        console.print("interrupted: every file counted as written is complete; no partial file was left")
        if left_as != "not started":
            console.print("(files written but not reported before the stop are skipped by the next run)")
        raise typer.Exit(130)
    if failures:
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------ the Ray engine


@dataclass
class Processor:
    """A command's work on one image, built once per process (the command's own, or each Ray actor's):
    process(ImageData, source path) -> ImageData; choice: the ModelChoice behind it (its counts make the
    which-model line), or None for a single model."""

    process: Callable
    choice: object | None = None

    def describe(self) -> str | None:
        return self.choice.describe() if self.choice is not None else None


def run_on_ray(
    name: str,
    inputs: list[Path],
    output: Path | None,
    suffix: str,
    overwrite: bool,
    recursive: bool,
    build: Callable[[], Processor],
    engine,
    lossless: bool = False,
    exclude: Path | None = None,
    memory_advice: str = "try a smaller --tile",
    choice=None,
) -> None:
    """`run_image_task` on a Ray cluster (`aetools.distributed`): the same plan (paths made absolute, for
    workers whose working folder is not this one), outputs already there skipped before any work (a re-run
    resumes), every other file through `process_file` on an actor that built its Processor with `build`
    once. The summary counts what came back; `choice`: the command's ModelChoice, for the which-model line."""
    from aetools.distributed import DistributedError, Lost, map_items, session

    if STDIO in inputs or output == STDIO:
        raise fail("-: standard input and output are this machine's; with --engine ray give files or folders")
    inputs = [p.absolute() for p in inputs]
    output = output.absolute() if output is not None else None
    exclude = exclude.absolute() if exclude is not None else None
    check_inputs_and_output(inputs, output)
    plan = plan_outputs(inputs, output, suffix, recursive, lossless, exclude)
    failures, notes, models = list(plan.failures), list(plan.notes), {}
    todo = [job for job in plan.jobs if overwrite or not job[1].exists()]
    written, skipped, interrupted = 0, len(plan.jobs) - len(todo), False
    worker = partial(_image_worker, build, overwrite, lossless, memory_advice)
    with progress_bar(name, "{task.fields[file]}", transient=True) as progress:
        bar = progress.add_task(name, total=len(plan.jobs), completed=skipped, file="on Ray")
        try:
            with session(engine) if todo else contextlib.nullcontext():  # nothing left to do: no cluster needed
                for i, outcome in map_items(todo, worker, engine) if todo else ():
                    if isinstance(outcome, Lost):
                        outcome = Outcome("failed", str(todo[i][0]), f"failed: {outcome.reason}")
                    notes.extend(outcome.notes)
                    for model, n in outcome.models.items():
                        models[model] = models.get(model, 0) + n
                    if outcome.status == "written":
                        written += 1
                    elif outcome.status == "skipped":
                        skipped += 1
                    else:
                        failures.append((outcome.path, outcome.reason))
                    progress.update(bar, advance=1, file=todo[i][0].name)
        except KeyboardInterrupt:
            interrupted = True
        except DistributedError as e:
            raise fail(str(e)) from None
    if choice is not None:
        choice.used = models
    epilogue = choice.describe() if choice is not None else None
    summarize(name, plan, written, skipped, failures, notes, epilogue, interrupted, "not reported")


def _image_worker(build: Callable[[], Processor], overwrite: bool, lossless: bool, memory_advice: str):
    """A Ray actor's worker: its Processor built once (the model loaded once), then (input, output) ->
    Outcome through `process_file`, with the models that ran on that input."""
    with console.capture() as said:  # a usage error on this node (a model file it lacks): its one line, raised
        try:
            processor = build()
        except typer.Exit:
            processor = None
    if processor is None:
        raise RuntimeError(" ".join(said.get().split()) or "the task could not be set up on a Ray worker")

    def run(job: tuple[Path, Path]) -> Outcome:
        src, dst = job
        before = dict(processor.choice.used) if processor.choice is not None else {}
        outcome = process_file(src, dst, processor.process, overwrite, lossless, memory_advice, skip_existing=True)
        if processor.choice is not None:
            outcome.models = {
                m: n - before.get(m, 0) for m, n in processor.choice.used.items() if n != before.get(m, 0)
            }
        return outcome

    return run


def _read_input(src: Path):
    import io

    from aetools.data.io import ImageError, frame_layout, load_image, load_image_bytes, read_stream

    if src != STDIO:
        return load_image(src)
    data = read_stream(sys.stdin.buffer)  # at most AETOOLS_MAX_STDIN_MB: /dev/zero is refused, not read forever
    layout = frame_layout(io.BytesIO(data))
    if layout:
        raise ImageError("-", f"{layout.count} frames (an animation or pages): give the file by name to process all")
    return load_image_bytes(data)


def _write_frames(frames, layout, dst: Path, overwrite: bool) -> None:
    """An animation's or multi-page file's frames, processed as they are asked for, in one file (not to
    standard output): a TIFF page by page, other formats kept compact until the save, within the memory free."""
    from aetools.data.io import ImageError, save_frames
    from aetools.inference import available_memory

    if dst == STDIO:
        raise ImageError(dst, f"{layout.count} frames cannot go to standard output; name an output file")
    _make_parent(dst)
    save_frames(frames, dst, layout, overwrite=overwrite, memory=available_memory())


def _make_parent(dst: Path) -> None:
    """Create dst's folder; one that cannot be made fails this file only."""
    from aetools.data.io import ImageError

    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in dst.parents if p.is_file()), None)
        reason = f"{blocker} is a file" if blocker else (e.strerror or str(e))
        raise ImageError(dst, f"cannot create folder {dst.parent} ({reason})") from None


def _write_output(image, dst: Path, overwrite: bool, lossless: bool) -> None:
    """save_image, or the encoded bytes to standard output (in the input's format, PNG where it cannot be
    written or, for a lossless task, where it is lossy). A folder that cannot be made fails this file only."""
    from aetools.data.io import LOSSY_FORMATS, can_write, encode_image, save_image

    if dst == STDIO:
        fmt = image.format or "PNG"
        if not can_write(fmt) or (lossless and fmt in LOSSY_FORMATS):
            fmt = "PNG"
        data = encode_image(image, fmt)
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    _make_parent(dst)
    save_image(image, dst, overwrite=overwrite)


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


def load_choice(name: str, model: str | None, device: str, precision: str, seed: int | None):
    """The task run with --model on every input, or else with the model its pipeline chooses for each
    input (`aetools.pipeline.ModelChoice`: a JPEG gets the real-photo model where the task has one). The
    named model, or the task's default, is loaded now (a bad one is a usage error before any file is read;
    `check_options` checks the options on it); another is loaded when the first input needing it comes."""
    from aetools.pipeline import ModelChoice
    from aetools.tasks import get_pipeline
    from aetools.weights import WeightsError, default_weights_for

    try:
        first = model if model is not None else default_weights_for(get_pipeline(name).task).name
    except WeightsError as e:
        raise fail(str(e)) from None
    pipe = load_pipeline(name, first, device, precision, seed)
    choice = ModelChoice(get_pipeline(name), model, lambda m: load_pipeline(name, m, device, precision, seed))
    choice.loaded[first] = pipe
    return choice


def check_options(pipe, **options) -> None:
    """Options the pipeline would refuse for every file (`ImagePipeline.check`) are a one-line usage error,
    before any file is read. pipe: a pipeline, or a ModelChoice (checked on the model it loaded first)."""
    if not hasattr(pipe, "check"):
        pipe = next(iter(pipe.loaded.values()))
    try:
        pipe.check(**options)
    except ValueError as e:
        raise fail(f"--{e}") from None


# ------------------------------------------------------------------------------------------ commands


class Engine(str, Enum):
    local = "local"
    ray = "ray"


EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local: in this process. ray: on a Ray cluster (--address), or a Ray instance started here; the same"
        " outputs, and a re-run skips those already written. Needs pip install 'aetools[ray]'.",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="--engine ray: the cluster (auto: the one `ray start` runs here; HOST:6379). Default: RAY_ADDRESS,"
        " else a Ray instance started for the command.",
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="--engine ray: actors, each loading the model once. Default: one per CPU of the cluster (per GPU"
        " when the device is cuda, or auto on a cluster with GPUs).",
        show_default=False,
    ),
]


def engine_for(engine: Engine, address: str | None, workers: int | None, device: str):
    """--engine, --address and --workers -> None (this process) or an `aetools.distributed.RayEngine`; ray
    is imported only here, and only for --engine ray. A missing Ray or a stray option is a usage error."""
    import importlib.util

    if engine == Engine.local:
        if address is not None or workers is not None:
            raise fail(f"{'--address' if address is not None else '--workers'} is for --engine ray")
        return None
    if importlib.util.find_spec("ray") is None:
        raise fail("--engine ray: Ray is not installed; pip install 'aetools[ray]'")
    from aetools.distributed import RayEngine

    return RayEngine(address, workers, device)


def run_task(
    name: str,
    build: Callable[..., Processor],
    engine,
    inputs: list[Path],
    output: Path | None,
    suffix: str,
    overwrite: bool,
    recursive: bool,
    lossless: bool = False,
    exclude: Path | None = None,
    memory_advice: str = "try a smaller --tile",
) -> None:
    """A command's files on its engine. `build()` makes the command's Processor (model loaded, options
    checked: anything wrong is a usage error before any work); it is a functools.partial of a module-level
    function with plain arguments, so that each Ray actor can build its own from it. With Ray, the one built
    here (on the CPU: this machine may have no GPU) only checks, and makes the which-model line."""
    if engine is None:
        check_inputs_and_output(inputs, output)
        processor = build()
        run_image_task(
            name,
            inputs,
            output,
            suffix,
            overwrite,
            recursive,
            processor.process,
            lossless,
            exclude,
            processor.describe,
            memory_advice,
        )
        return
    if STDIO in inputs or output == STDIO:
        raise fail("-: standard input and output are this machine's; with --engine ray give files or folders")
    check_inputs_and_output(inputs, output)
    processor = partial(build, device="cpu")()
    run_on_ray(
        name,
        inputs,
        output,
        suffix,
        overwrite,
        recursive,
        build,
        engine,
        lossless,
        exclude,
        memory_advice,
        processor.choice,
    )


def _denoise(model, device, precision, seed, sigma, tile) -> Processor:
    choice = load_choice("denoise", model, device, precision, seed)
    check_options(choice, tile=tile)
    return Processor(lambda image, _: choice(image, sigma=sigma, tile=tile), choice)


def _upscale(model, device, precision, seed, scale, tile, ensemble) -> Processor:
    choice = load_choice("upscale", model, device, precision, seed)
    check_options(choice, tile=tile, scale=scale)
    return Processor(lambda image, _: choice(image, scale=scale, tile=tile, ensemble=ensemble), choice)


def _colorize(model, device, precision, seed, strength, hints, points) -> Processor:
    from aetools.tasks.colorize import Hints

    hint_images = CompanionFiles(hints, "hint image")
    pipe = load_pipeline("colorize", model, device, precision, seed)
    if (hints or points) and not getattr(pipe.model.config, "hints", False):
        raise fail(f"{pipe.model.weights_path}: this colorize model takes no colour hints (trained without them)")

    def process(image, src: Path):
        from aetools.data.io import ImageError

        try:
            given = Hints.from_points(points, image.size)
            side = hint_images.for_input(src, image)
            if side is not None:
                given = given + Hints.from_image(side, image.size, f"hint image {hint_images.path}")
        except ValueError as e:
            raise ImageError(src, str(e)) from None
        return pipe(image, strength=strength, hints=given)

    return Processor(process)


def _inpaint(model, device, precision, seed, mask, tile, ensemble) -> Processor:
    masks = CompanionFiles(mask, "mask")
    pipe = load_pipeline("inpaint", model, device, precision, seed)
    check_options(pipe, tile=tile)
    return Processor(lambda image, src: pipe(image, mask=masks.for_input(src, image), tile=tile, ensemble=ensemble))


def _absolute(path: Path | None, engine) -> Path | None:
    """A side file's path as an actor on another machine can open it (the same path on a shared file system)."""
    return path.absolute() if path is not None and engine is not None else path


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
    engine: EngineOpt = Engine.local,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Remove noise from photos (blind, sigma 0-55; --sigma if you know it). Without --model, JPEG, WebP,
    HEIC and AVIF inputs get the real-photo model where one is shipped (camera noise, compression), the
    others the Gaussian denoiser; the command says which it used."""
    ray = engine_for(engine, address, workers, device)
    build = partial(_denoise, model=model, device=device, precision=precision, seed=seed, sigma=sigma, tile=tile)
    run_task("denoise", build, ray, inputs, output, "denoised", overwrite, recursive)


@app.command(no_args_is_help=True)
def upscale(
    inputs: Inputs,
    output: Output = None,
    scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor: 2, 3 or 4.")] = 2,
    ensemble: Annotated[
        bool, typer.Option("--ensemble", help="Average the 8 flips/rotations: a little sharper, 8x slower.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Shipped model name or a .safetensors path. Default: upscale-real for JPEG, WebP, HEIC and AVIF"
            " inputs (camera and web photos), upscale for the others.",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tile: TileOpt = None,
    overwrite: OverwriteOpt = False,
    recursive: RecursiveOpt = False,
    seed: SeedOpt = None,
    engine: EngineOpt = Engine.local,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Upscale photos x2, x3 or x4 (super-resolution); grey stays grey, alpha is kept.

    Without --model, lossy inputs (JPEG, WebP, HEIC, AVIF: camera and web photos, with their blur, noise and
    compression blocks) get upscale-real, and lossless ones (PNG, TIFF, ...) the sharper upscale; the
    command says which it used.
    """
    if scale not in (2, 3, 4):
        raise fail(f"--scale {scale}: choose 2, 3 or 4")
    ray = engine_for(engine, address, workers, device)
    build = partial(
        _upscale, model=model, device=device, precision=precision, seed=seed, scale=scale, tile=tile, ensemble=ensemble
    )
    run_task("upscale", build, ray, inputs, output, f"x{scale}", overwrite, recursive)


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
    hints: Annotated[
        Path | None,
        typer.Option(
            "--hints",
            help="Hint image (the photo's size; its opaque pixels are colours to use) for every input, or a"
            " folder of them matched to the inputs by file name stem.",
        ),
    ] = None,
    hint: Annotated[
        list[str] | None,
        typer.Option(
            "--hint", help="X,Y,#RRGGBB: this colour at pixel (X, Y) from the top-left; repeat for more points."
        ),
    ] = None,
    engine: EngineOpt = Engine.local,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Colour grey photos; the output's lightness is the input's, at full resolution.

    Colour and tinted (sepia, blue-cast) scans are desaturated first. Output is RGB; alpha is kept.
    Colour hints (--hints, --hint) say what colour a few places are; the model spreads them.
    """
    from aetools.tasks.colorize import parse_hint

    if hints is not None and not hints.exists():
        raise fail(f"--hints {hints}: no such file or folder")
    try:
        points = [parse_hint(text) for text in hint or []]
    except ValueError as e:
        raise fail(f"--hint: {e}") from None
    ray = engine_for(engine, address, workers, device)
    hints = _absolute(hints, ray)
    build = partial(
        _colorize,
        model=model,
        device=device,
        precision=precision,
        seed=seed,
        strength=strength,
        hints=hints,
        points=points,
    )
    run_task(
        "colorize",
        build,
        ray,
        inputs,
        output,
        "color",
        overwrite,
        recursive,
        exclude=hints,
        memory_advice="colour is computed at a working size, but the photo itself must fit: close other programs "
        "or colorize a smaller copy",
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
    engine: EngineOpt = Engine.local,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Fill holes in photos: the white pixels of a mask, or the transparent pixels of a cut-out.

    Pixels outside the holes are kept exactly; JPEG and WebP inputs are therefore written as PNG
    (name an output file with -o to choose another format).
    """
    if mask is not None and not mask.exists():
        raise fail(f"--mask {mask}: no such file or folder")
    ray = engine_for(engine, address, workers, device)
    mask = _absolute(mask, ray)
    build = partial(
        _inpaint, model=model, device=device, precision=precision, seed=seed, mask=mask, tile=tile, ensemble=ensemble
    )
    # masks kept inside the photo folder are not photos to fill
    run_task("inpaint", build, ray, inputs, output, "filled", overwrite, recursive, lossless=True, exclude=mask)


class CompanionFiles:
    """A per-photo side file as given (an inpainting --mask, colorize's --hints): None (none given), one file
    for every input, or a folder of them found by the input's file stem. Each is loaded once; a problem is an
    ImageError naming it. `kind` names them in messages ("mask")."""

    def __init__(self, path: Path | None, kind: str):
        from aetools.data.datasets import list_images

        self.path, self.kind = path, kind
        self.by_stem: dict[str, list[Path]] = {}
        if path is not None and path.is_dir():
            for found in list_images([path], recursive=True):
                self.by_stem.setdefault(found.stem, []).append(found)
        self.loaded: dict[Path, object] = {}

    def for_input(self, src: Path, image):
        """-> the side file's ImageData for input `src` (loaded as `image`), checked to be its size, or None."""
        from aetools.data.io import ImageError, load_image

        if self.path is None:
            return None
        path, kind = self.path, self.kind
        if self.path.is_dir():
            found = self.by_stem.get(src.stem, [])
            if not found:
                raise ImageError(src, f"no {kind} named {src.stem}.* in {self.path}")
            if len(found) > 1:
                raise ImageError(
                    src, f"several {kind}s named {src.stem}.* in {self.path}: {', '.join(map(str, found))}"
                )
            path = found[0]
        if path not in self.loaded:
            self.loaded = {path: load_image(path)}  # keep one: a folder of them is used once each
        side = self.loaded[path]
        if side.size != image.size:
            (mw, mh), (w, h) = side.size, image.size
            raise ImageError(src, f"the {kind} {path} is {mw}x{mh} but the image is {w}x{h}")
        return side
