"""`aetools eval hash`: binary codes for search, ours beside the classical hashes in the same run. Each part
is a benchmark in `aetools.bench.hash` / `aetools.bench.dedup` returning a `Report`; this command parses
the options, calls them and publishes the reports."""

from __future__ import annotations

from pathlib import Path

import typer

from aetools.cli.console import console, fail, load_task_model, progress_bar
from aetools.cli.evaluate import check_format, eval_app, parse_precisions, publish

PARTS = ("near-dup", "dedup", "semantic", "speed")


@eval_app.command("hash", no_args_is_help=True)
def eval_hash(
    eval_root: Path = typer.Option(
        ..., "--eval", help="Folder holding kodak24/ and cbsd68/ (near-duplicate originals)."
    ),
    photos: Path = typer.Option(None, "--photos", help="Folder of photos to draw the distractors from."),
    held_out: list[Path] = typer.Option(
        None, "--held-out", help="dedup part: a folder of distinct photos the model never trained on (repeatable)."
    ),
    cifar: Path = typer.Option(None, "--cifar", help="Folder holding CIFAR-10's test.tar and train.tar."),
    model: str = typer.Option(None, "--model", "-m", help="Near-duplicate model: shipped name or .safetensors path."),
    cifar_model: list[str] = typer.Option(
        None, "--cifar-model", help="Model(s) scored on CIFAR-10 (default: hash-cifar and the near-duplicate one)."
    ),
    distractors: int = typer.Option(1000, help="Distractor photos in the near-duplicate database."),
    radius: int = typer.Option(None, "--radius", help="dedup part: the candidate radius (default: dedup's)."),
    parts: list[str] = typer.Option(None, "--part", help=f"{', '.join(PARTS)} (default: all)."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store ours' scores in the weights' metadata."),
) -> None:
    """Binary codes for search: near-duplicate Recall@1 per edit beside imagehash pHash/dHash; what dedup
    reports at its default (false duplicates among distinct photos, Recall@1); CIFAR-10 mAP@1000 beside LSH
    and ITQ; indexing and query speed."""
    import tempfile

    from aetools.bench import hash as bench
    from aetools.weights import WeightsError, load_model, read_manifest

    check_format(fmt)
    parts = parts or list(PARTS)
    if set(parts) - set(PARTS):
        raise fail(f"--part: {', '.join(PARTS)}")
    try:
        import imagehash  # noqa: F401
    except ImportError:
        raise fail("the baselines need imagehash: pip install imagehash") from None
    precision_list = parse_precisions(precisions)
    net = load_task_model(model, "hash", "cpu")

    if {"near-dup", "dedup", "speed"} & set(parts):
        if photos is None:
            raise fail("--photos: the folder the distractors (and the speed test's files) come from")
        originals, others = bench.near_duplicate_database(eval_root, photos, distractors)
        if not originals:
            raise fail(f"{eval_root}: no kodak24/ or cbsd68/ images")

    if "near-dup" in parts:
        with progress_bar("eval hash: near-duplicates", "", transient=True) as progress:
            bar = progress.add_task("near-dup", total=3 + len(precision_list))
            report = bench.near_duplicate_report(net, originals, others, precision_list, lambda: progress.advance(bar))
        publish(report, fmt, record)

    if "dedup" in parts:
        from aetools.bench.dedup import dedup_report
        from aetools.data.datasets import list_images
        from aetools.index.folder import DEFAULT_RADIUS

        libraries = {folder.name: list_images([folder]) for folder in held_out or []}
        libraries[photos.name] = list_images([photos])
        with progress_bar("eval hash: dedup", "", transient=True) as progress:
            bar = progress.add_task("dedup", total=len(libraries) + len(bench.BENCHMARK_EDITS))
            report = dedup_report(
                net,
                originals,
                others,
                libraries,
                DEFAULT_RADIUS if radius is None else radius,
                lambda: progress.advance(bar),
            )
        publish(report, fmt, record)

    if "semantic" in parts:
        if cifar is None:
            raise fail("--cifar: the folder holding test.tar and train.tar")
        names = cifar_model or [e.name for e in read_manifest() if e.name.startswith("hash-cifar")]
        models = {}
        try:
            for name in names:
                models[f"ours ({name})"] = load_model(name, "hash")
        except WeightsError as e:
            raise fail(str(e)) from None
        models[f"ours ({model or 'hash'}: the near-duplicate model, grey, trained on photos)"] = net
        console.print("eval hash: reading CIFAR-10 ...")
        images, labels, is_query = bench.read_cifar(cifar)
        with progress_bar("eval hash: CIFAR-10 mAP@1000", "", transient=True) as progress:
            bar = progress.add_task("semantic", total=3)
            report = bench.semantic_report(images, labels, is_query, models, lambda: progress.advance(bar))
        publish(report, fmt, record)

    if "speed" in parts:
        console.print("eval hash: timing indexing, search and dedup ...")
        with tempfile.TemporaryDirectory() as tmp:
            report = bench.speed_report(net, originals, others, precision_list, Path(tmp))
        publish(report, fmt, record)
