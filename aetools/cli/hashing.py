"""`aetools hash-index`, `hash-search`, `dedup`: binary codes of photos in a faiss index, searched by
Hamming distance. The work is in `aetools.index`; these commands draw progress, tables and files.

    aetools hash-index FOLDER [-r] [--update] [--index DIR]     default index: FOLDER/.aetools-index/
    aetools hash-search QUERY... [--index DIR] [-k 10] [--json]
    aetools dedup FOLDER [--radius R] [--html F] [--json F]

hash-index and dedup take --engine ray [--address ADDR] [--workers N] (`aetools.distributed`): a new index
is built on a Ray cluster in shards, merged into the index a single machine would build; an existing index
is brought up to date here (only new and changed files are read); dedup's picture checks run on the cluster.
"""

from __future__ import annotations

import contextlib
import json
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from aetools.cli import app
from aetools.cli.console import console, fail, out, prepare, progress_bar, shown
from aetools.cli.images import AddressOpt, DeviceOpt, Engine, EngineOpt, ModelOpt, PrecisionOpt, WorkersOpt, engine_for
from aetools.outputs import display_name

IndexOpt = Annotated[
    Path | None, typer.Option("--index", help="Index folder (default: FOLDER/.aetools-index).", show_default=False)
]
RecursiveFlag = Annotated[
    bool | None,
    typer.Option(
        "--recursive/--no-recursive", "-r", help="Include sub-folders (default: as the index was built, else no)."
    ),
]


def _load_hash_model(model: str | None, device: str, precision: str = "auto"):
    from aetools.index.encode import load_hash_model
    from aetools.precision import PrecisionError
    from aetools.weights import WeightsError

    try:
        return load_hash_model(model, prepare(device, None), precision)
    except (WeightsError, PrecisionError) as e:
        raise fail(str(e)) from None


def _build_index(folder: Path, index: Path | None, recursive: bool | None, update: bool, model, title: str):
    from aetools.index.folder import index_folder
    from aetools.index.store import HashIndexError

    with progress_bar(title, "{task.fields[note]}", transient=True) as progress:
        bar = progress.add_task(title, total=None, note="")

        def on_start(n: int) -> None:
            progress.update(bar, total=n, note=f"{n} images")

        try:
            return index_folder(model, folder, index, recursive, update, on_start, lambda: progress.advance(bar))
        except HashIndexError as e:
            raise fail(str(e)) from None


def _index_stage(folder: Path, index: Path | None, recursive, update: bool, net, title: str, ray, model, precision):
    """The index brought to where the command needs it: built on the cluster when `ray` is an engine and
    there is no index to update (`build_index`), else here as always (`_build_index`)."""
    from aetools.index.folder import default_index_dir

    where = index or default_index_dir(folder)
    if ray is None:
        return _build_index(folder, index, recursive, update, net, title)
    if update and (where / "CURRENT").exists():
        console.print(f"{title}: the index exists; bringing it up to date here reads only new and changed files")
        return _build_index(folder, index, recursive, update, net, title)
    return _build_on_ray(folder, where, recursive, net, title, ray, model, precision)


def _build_on_ray(folder: Path, where: Path, recursive, net, title: str, ray, model, precision):
    from aetools.distributed import DistributedError, build_index
    from aetools.index.store import HashIndexError

    with progress_bar(title, "{task.fields[note]}", transient=True) as progress:
        bar = progress.add_task(title, total=None, note="on Ray")

        def on_start(n: int) -> None:
            progress.update(bar, total=n, note=f"{n} images, on Ray")

        try:
            return build_index(
                net, folder, where, ray, model, precision, recursive, on_start, lambda: progress.advance(bar)
            )
        except (HashIndexError, DistributedError) as e:
            raise fail(str(e)) from None


def _check_report_path(path: Path | None, folder: Path, overwrite: bool) -> None:
    """A report (--json, --html) is checked before any work (`aetools.outputs`): never a photo being
    deduplicated, never inside the index, an existing file only with --overwrite."""
    from aetools.outputs import output_problem

    if path is None or str(path) == "-":
        return
    if ".aetools-index" in path.resolve().parts:
        raise fail(f"{path}: is inside the index; name another file for the report")
    problem = output_problem(path, overwrite, read_folders=[folder], what="report")
    if problem:
        raise fail(problem)


def _write_report(path: Path, text: str, overwrite: bool) -> None:
    """Atomically, its folder created if need be (checked before the work by `_check_report_path`); without
    --overwrite never over a file that appeared meanwhile."""
    from aetools.outputs import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"), overwrite)  # odd bytes of names escaped
    except FileExistsError:
        raise fail(f"{path}: appeared while dedup ran; not replaced (use --overwrite to replace it)") from None
    except OSError as e:
        raise fail(f"{path}: cannot write the report ({e.strerror or e})") from None
    console.print(f"wrote {shown(path)}")


@contextlib.contextmanager
def _session(ray):
    """`aetools.distributed.session` for the command (none for the local engine); a cluster that cannot be
    reached, or a job that fails there, is a one-line error."""
    if ray is None:
        yield
        return
    from aetools.distributed import DistributedError, session

    try:
        with session(ray):
            yield
    except DistributedError as e:
        raise fail(str(e)) from None


def _hint_subfolders(report) -> None:
    if report.in_subfolders:
        raise fail(f"no images in the folder itself, but {report.in_subfolders} in its sub-folders: add -r")


def _report_failures(failures: list[tuple[str, str]], skipped: list[tuple[str, str]] = ()) -> None:
    for path, reason in skipped:
        console.print(f"[yellow]skipped[/] {shown(path)}: {shown(reason)}", soft_wrap=True)
    for path, reason in failures:
        console.print(f"[red]failed[/] {shown(path)}: {shown(reason)}", soft_wrap=True)


@app.command("hash-index", no_args_is_help=True)
def hash_index(
    folder: Annotated[Path, typer.Argument(help="Folder of images to index.", show_default=False)],
    recursive: RecursiveFlag = None,
    update: Annotated[
        bool, typer.Option("--update", help="Only encode new and changed files, drop deleted ones.")
    ] = False,
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    engine: EngineOpt = Engine.local,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Index a folder's images by their binary codes (faiss + an SQLite list of files), for hash-search
    and dedup. Exit 1 if some files could not be read (they are listed; the rest is indexed).

    --engine ray builds the index on a Ray cluster (shards merged: the index this machine would build)."""
    from aetools.index.folder import default_index_dir

    ray = engine_for(engine, address, workers, device)
    net = _load_hash_model(model, "cpu" if ray else device, precision)  # with Ray: to check it, and name it
    with _session(ray):
        result, report = _index_stage(folder, index, recursive, update, net, "hash-index", ray, model, precision)
    where = index or default_index_dir(folder)
    parts = [f"{report.added} added"]
    if update:
        parts += [
            f"{report.changed} changed",
            f"{report.moved} moved",
            f"{report.removed} removed",
            f"{report.kept} unchanged",
        ]
    console.print(f"indexed {len(result)} images in {shown(where)} ({', '.join(parts)}; {len(report.failures)} failed)")
    _hint_subfolders(report)
    if report.exact:
        copies = sum(len(g) for g in report.exact)
        console.print(f"{copies} files in {len(report.exact)} groups are exact copies (same bytes):")
        for group in report.exact[:10]:
            console.print("  " + "  =  ".join(map(shown, group)), soft_wrap=True)
        if len(report.exact) > 10:
            console.print(f"  ... and {len(report.exact) - 10} more groups (aetools dedup lists them all)")
    _report_failures(report.failures, report.skipped)
    if report.failures:
        raise typer.Exit(1)


@app.command("hash-search", no_args_is_help=True)
def hash_search(
    queries: Annotated[list[Path], typer.Argument(help="Query images (need not be indexed).", show_default=False)],
    index: IndexOpt = None,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="Results per query (at most 1000).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per query per line, on stdout.")] = False,
    orientations: Annotated[
        bool,
        typer.Option(
            "--orientations/--no-orientations",
            help="Also try the query turned by 90/180/270 degrees and mirrored: finds turned copies, at the cost"
            " of more wrong matches for other edits (see the README's benchmark).",
        ),
    ] = False,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
) -> None:
    """Find the indexed images nearest each query, with their Hamming distances (bits that differ)."""
    from aetools.index.folder import find_index, model_identity, search_files
    from aetools.index.store import HashIndex, HashIndexError

    try:
        where = find_index(queries, index)
    except HashIndexError as e:
        raise fail(str(e)) from None
    net = _load_hash_model(model, device, precision)
    try:
        loaded = HashIndex.load(where, model_identity(net))
    except HashIndexError as e:
        raise fail(str(e)) from None
    results = search_files(net, loaded, queries, k, orientations)
    failed = [r for r in results if r.error]
    for result in results:
        if as_json:
            record = {
                "query": result.path,
                "results": [{"path": m.path, "distance": m.distance} for m in result.matches],
            }
            if result.error:
                record["error"] = result.error
            out.print(json.dumps(record), soft_wrap=True, markup=False)
        elif not result.error:
            out.print(f"[bold]{shown(result.path)}[/]", soft_wrap=True)
            for rank, m in enumerate(result.matches, 1):
                out.print(f"  {rank:>3}  {m.distance:>3}  {display_name(m.path)}", soft_wrap=True, markup=False)
    _report_failures([(r.path, r.error) for r in failed])
    if failed:
        raise typer.Exit(1)


@app.command(no_args_is_help=True)
def dedup(
    folder: Annotated[Path, typer.Argument(help="Folder of images (its index is built or updated first).")],
    radius: Annotated[
        int | None,
        typer.Option(
            "--radius", min=0, help="Most bits two codes may differ in to be checked as copies.", show_default=False
        ),
    ] = None,
    recursive: RecursiveFlag = None,
    index: IndexOpt = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write a page of the groups with thumbnails.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the groups as JSON ('-': stdout).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing report files.")] = False,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    engine: EngineOpt = Engine.local,
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Group near-duplicate images: copies resized, re-compressed, cropped, turned, recoloured, captioned,
    mirrored. Candidates come from the codes; each is checked on the pictures before it is reported. Every
    group starts with the copy to keep, the original (no caption, not cropped, least compressed, largest,
    oldest; each line says why); the rest are suggested for removal. Nothing is deleted. The folder's index
    is brought up to date first.

    --engine ray: a folder without an index has it built on a Ray cluster, and the pictures of the candidate
    pairs are checked there (the candidates are found here, from the codes)."""
    from aetools.index.folder import DEFAULT_RADIUS, FeatureSource, default_index_dir, find_duplicates
    from aetools.index.report import describe, duplicates_html, duplicates_json

    radius = DEFAULT_RADIUS if radius is None else radius
    for report_path in (html, json_path):
        _check_report_path(report_path, folder, overwrite)
    ray = engine_for(engine, address, workers, device)
    net = _load_hash_model(model, "cpu" if ray else device, precision)
    find = find_duplicates
    if ray is not None:
        from aetools.distributed import find_duplicates_on_ray

        find = partial(find_duplicates_on_ray, engine=ray)
    with _session(ray):
        result, report = _index_stage(folder, index, recursive, True, net, "dedup: indexing", ray, model, precision)
        _hint_subfolders(report)
        with progress_bar("dedup: checking", "{task.fields[note]}", transient=True) as progress:
            bar = progress.add_task("dedup: checking", total=None, note="")
            found = find(
                result,
                radius,
                FeatureSource(index or default_index_dir(folder)),
                on_start=lambda n: progress.update(bar, total=n, note=f"{n} candidate pairs"),
                on_pair=lambda: progress.advance(bar),
            )
    groups = found.groups
    copies = sum(len(g) - 1 for g in groups)
    console.print(
        f"{len(result)} images, {len(groups)} groups of near-duplicates ({copies} copies suggested for removal);"
        f" {found.candidates} candidate pairs within {radius} bits checked"
    )
    if json_path is None or str(json_path) != "-":
        for n, group in enumerate(groups, 1):
            out.print(f"[bold]group {n}[/] ({len(group)} images)")
            for m in group:
                tag = "keep" if m is group[0] else f"{m.distance} bits"
                exact = ", exact copy" if m.exact else ""
                why = f"; {m.reason}" if m.reason else ""
                line = f"  {tag:>8}  {display_name(m.path)}  ({describe(m)}{exact}{why})"
                out.print(line, soft_wrap=True, markup=False)
    if json_path is not None:
        text = duplicates_json(found)
        if str(json_path) == "-":
            out.print(text, soft_wrap=True, markup=False)
        else:
            _write_report(json_path, text, overwrite)
    if html is not None:
        _write_report(html, duplicates_html(found, radius), overwrite)
    failures = report.failures + found.failures
    _report_failures(failures, report.skipped)
    if failures:
        raise typer.Exit(1)
