"""`aetools eval hash`: binary codes for search, ours beside the classical hashes in the same run (its own
module while near-duplicate search is rewritten; it prints its tables itself rather than returning a
`bench.report.Report` as the other benchmarks do)."""

from __future__ import annotations

from pathlib import Path

import typer

from aetools.cli.console import console, fail, load_task_model, progress_bar
from aetools.cli.evaluate import bf16_record, eval_app, parse_precisions, render


@eval_app.command("hash", no_args_is_help=True)
def eval_hash(
    eval_root: Path = typer.Option(
        ..., "--eval", help="Folder holding kodak24/ and cbsd68/ (near-duplicate originals)."
    ),
    photos: Path = typer.Option(None, "--photos", help="Folder of photos to draw the distractors from."),
    cifar: Path = typer.Option(None, "--cifar", help="Folder holding CIFAR-10's test.tar and train.tar."),
    model: str = typer.Option(None, "--model", "-m", help="Near-duplicate model: shipped name or .safetensors path."),
    cifar_model: list[str] = typer.Option(
        None, "--cifar-model", help="Model(s) scored on CIFAR-10 (default: hash-cifar and the near-duplicate one)."
    ),
    distractors: int = typer.Option(1000, help="Distractor photos in the near-duplicate database."),
    parts: list[str] = typer.Option(None, "--part", help="near-dup, semantic, speed (default: all three)."),
    precisions: str = typer.Option("fp32,bf16", "--precisions", help="Run ours in these: fp32, bf16 or both."),
    fmt: str = typer.Option("table", "--format", help="table or markdown."),
    record: bool = typer.Option(False, "--record", help="Store ours' scores in the weights' metadata."),
) -> None:
    """Binary codes for search: near-duplicate Recall@1 per edit beside imagehash pHash/dHash; CIFAR-10
    mAP@1000 beside LSH and ITQ; indexing and query speed."""
    import re
    import tempfile

    import numpy as np
    import torch

    from aetools.bench import hash as bench
    from aetools.bench.reference import in_precision
    from aetools.weights import WeightsError, load_model, read_manifest, record_metrics

    if fmt not in ("table", "markdown"):
        raise fail("--format: table or markdown")
    parts = parts or ["near-dup", "semantic", "speed"]
    if set(parts) - {"near-dup", "semantic", "speed"}:
        raise fail("--part: near-dup, semantic or speed")
    try:
        import imagehash  # noqa: F401
    except ImportError:
        raise fail("the baselines need imagehash: pip install imagehash") from None
    precision_list = parse_precisions(precisions)
    net = load_task_model(model, "hash", "cpu")
    threads = torch.get_num_threads()
    metrics: dict[Path, dict[str, float]] = {}  # weights file -> its measured scores

    if "near-dup" in parts or "speed" in parts:
        if photos is None:
            raise fail("--photos: the folder the distractors (and the speed test's files) come from")
        originals, others = bench.near_duplicate_database(eval_root, photos, distractors)
        if not originals:
            raise fail(f"{eval_root}: no kodak24/ or cbsd68/ images")

    if "near-dup" in parts:
        hashers = {
            "pHash (imagehash)": bench.imagehash_hasher("phash"),
            "dHash (imagehash)": bench.imagehash_hasher("dhash"),
            "pHash, borders trimmed as ours": bench.imagehash_hasher("phash", trim=True),
        }
        for p in precision_list:
            hashers[in_precision(f"ours ({net.config.bits} bits)", p)] = bench.model_hasher(net, 256, p)
        with progress_bar("eval hash: near-duplicates", "", transient=True) as progress:
            bar = progress.add_task("near-dup", total=len(hashers))
            result = bench.run_near_duplicate(hashers, originals, others, lambda: progress.advance(bar))
        edits = list(bench.BENCHMARK_EDITS)
        rows = []
        for name, recall in result.recall.items():
            photometric = [recall[e] for e in edits if bench.BENCHMARK_EDITS[e][1] == "photometric"]
            geometric = [recall[e] for e in edits if bench.BENCHMARK_EDITS[e][1] == "geometric"]
            rows.append(
                [name]
                + [f"{100 * recall[e]:.1f}" for e in edits]
                + [f"{100 * np.mean(photometric):.1f}", f"{100 * np.mean(geometric):.1f}"]
            )
        render(
            f"Near-duplicate Recall@1 (%): {result.queries} originals (Kodak24 + CBSD68) among {result.database}"
            f" images ({result.database - result.queries} distractors), one query per original and edit",
            ["method", *edits, "photometric mean", "geometric mean"],
            rows,
            fmt,
        )
        ours_name = f"ours ({net.config.bits} bits)"
        typer.echo(
            "median Hamming distance from an edited query to its original: "
            + "; ".join(
                f"{name}: " + ", ".join(f"{e} {d[e]:.0f}" for e in edits) for name, d in result.distances.items()
            )
            + "\n1st percentile of the distance between two different database photos: "
            + ", ".join(f"{name} {d:.0f}" for name, d in result.distinct.items())
            + f"\npairs of different database photos (of {result.database * (result.database - 1) // 2:,}) within"
            + " 2 / 3 / 4 / 6 bits: "
            + "; ".join(
                f"{name} " + " / ".join(str(v) for v in pairs.values()) for name, pairs in result.close_pairs.items()
            )
            + "\n"
        )
        for suffix, key in (("", ours_name), ("_orientations", f"{ours_name} + 8 orientations")):
            for e in edits:
                slug = re.sub(r"[^a-z0-9]+", "_", e.lower()).strip("_")
                metrics.setdefault(net.weights_path, {})[f"neardup_{slug}{suffix}"] = round(result.recall[key][e], 4)
        if "bf16" in precision_list:  # auto may use bf16 if no edit's Recall@1 moves by more than 0.5 points
            bf16 = f"{ours_name}, bf16"
            pairs = [(100 * result.recall[ours_name][e], 100 * result.recall[bf16][e]) for e in edits]
            pairs += [(b, a) for a, b in pairs]  # a change either way counts
            if record:
                metrics[net.weights_path].update(bf16_record(pairs, net, "neardup", tolerance=0.5))

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
        latent_model = next(iter(models.values()))
        console.print("eval hash: reading CIFAR-10 ...")
        images, labels, is_query = bench.read_cifar(cifar)
        with progress_bar("eval hash: CIFAR-10 mAP@1000", "", transient=True) as progress:
            bar = progress.add_task("semantic", total=3)
            scores = bench.run_semantic(
                images, labels, is_query, models, latent_model, on_step=lambda: progress.advance(bar)
            )
        rows = [[name] + [f"{scores[name].get(b, float('nan')):.4f}" for b in (16, 32, 64)] for name in scores]
        render(
            f"CIFAR-10 mAP@1000: {is_query.sum()} queries, {(~is_query).sum()} database images"
            f" (ITQ on our latent: {next(iter(models))})",
            ["method", "16 bits", "32 bits", "64 bits"],
            rows,
            fmt,
        )
        for name, m in models.items():
            found = {f"cifar10_map1000_{b}bits": round(v, 4) for b, v in scores[name].items()}
            metrics.setdefault(m.weights_path, {}).update(found)

    if "speed" in parts:
        timed = others[:1000]
        with tempfile.TemporaryDirectory() as tmp:
            camera = bench.camera_sized_copies(originals[:24], Path(tmp) / "camera")
            rows = []
            for label, files in (
                (f"{len(timed)} photos (JPEG, up to 400 px)", timed),
                (f"{len(camera)} camera-sized JPEGs (12 MP)", camera),
            ):
                console.print(f"eval hash: timing {label} ...")
                p = bench.files_per_second(bench.phash_files, files)
                ours = [bench.files_per_second(bench.ours_files(net, q), files) for q in precision_list]
                one = bench.files_per_second(bench.api_one_call_per_file(net), files)
                many = bench.files_per_second(bench.api_list_of_files(net), files)
                cells = [f"{o:.0f}" for o in ours] + [f"{o / p:.2f}x" for o in ours]
                rows.append([label, f"{p:.0f}", *cells, f"{one:.0f}", f"{many:.0f}"])
        render(
            "Indexing speed (files/s: read, decode, code; best of 2 passes)",
            [
                "files",
                "pHash (imagehash, 1 process)",
                *[f"ours (hash-index pipeline, {threads} threads), {q}" for q in precision_list],
                *[f"ours / pHash, {q}" for q in precision_list],
                "aetools.hash_code(path), a call per file",
                "aetools.hash_code(list of paths)",
            ],
            rows,
            fmt,
        )
        from aetools.pipeline import bf16_measured_safe
        from aetools.precision import capability_line

        chosen = "bf16" if bf16_measured_safe(net) else "fp32 (its benchmark record)"
        typer.echo(f"Precision: {capability_line(torch.device('cpu'))}; this model under auto: {chosen}.\n")
        latency = bench.query_latency()
        rows = [[f"one query, 100,000 codes, {k}", f"{v * 1e3:.3f} ms"] for k, v in latency.items()]
        for radius, n in ((3, 10_000), (3, 100_000), (3, 300_000), (6, 10_000), (6, 100_000), (6, 300_000)):
            r = bench.radius_search_seconds(n, radius)
            rows.append(
                [
                    f"dedup all pairs within {radius} bits, {n:,} codes: full scan / multi-hash",
                    f"{r['full scan']:.2f} s / {r['multi-hash']:.2f} s",
                ]
            )
        memory = bench.bytes_per_image()
        rows.append(["index on disk per image (codes + SQLite file list)", f"{memory['disk']:.0f} bytes"])
        rows.append(["index in memory per image (loaded, file list included)", f"{memory['memory']:.0f} bytes"])
        render("Search speed and size (synthetic random 64-bit codes)", ["measure", "value"], rows, fmt)
    if record:
        for path, found in metrics.items():
            record_metrics(path, found)
            console.print(f"recorded {len(found)} metrics in {path}")
