"""`aetools eval hash --part dedup`: what `dedup` reports at its default setting, against pHash and dHash at
imagededup's default (`PHASH_THRESHOLD`) and Meta's PDQ at its recommended threshold (`bench.hash.PDQ_THRESHOLD`,
where `pdqhash` is installed), in the same run.

1. False duplicates in a library of distinct photos (a folder the model never trained on, and a whole
   photo folder): every pair a method reports is false. Reported: the pairs per million pairs of photos,
   and the share of photos placed in any group. Rows: ours as `dedup` runs (codes within DEFAULT_RADIUS,
   quarter turns included, then each pair checked on the pictures, `index.verify`), ours from the codes
   alone (the same candidates, unchecked: what the check removes), pHash, dHash.
2. Near-duplicate Recall@1 at that same setting, on the near-duplicate benchmark of `bench.hash` (Kodak24
   + CBSD68 originals among 1,000 distractors, 12 edits): a query counts when the duplicate reported
   first is its original. Ours: the database images whose code is within DEFAULT_RADIUS of one of the
   query's quarter turns and that pass the check, nearest code first (most agreeing keypoints breaking
   ties); pHash / dHash / PDQ: the nearest code within the threshold, ties shared as in
   `bench.hash.recall_at_1`.
3. Which copy is kept (`index.keep`): each original and each of its 12 edited copies as two files, the
   original a JPEG at quality 95 and the copy at 95 too (the JPEG q30 copy at 30), both with the same file
   date and the copy first by name, so only what the pictures and files show can pick the original; the
   share of verified pairs whose original is kept, by the keep rule and by the rule before it (most
   pixels, largest file, oldest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aetools.bench.hash import PDQ_THRESHOLD
from aetools.data.augment import BENCHMARK_EDITS
from aetools.index.encode import codes_of, pil_to_tensor, trim_borders
from aetools.index.folder import DEFAULT_RADIUS, candidate_pairs, group_pairs
from aetools.index.store import FileRecord, HashIndex
from aetools.index.verify import MIN_INLIERS, Features, agreement, features_of

PHASH_THRESHOLD = 10  # imagededup's default max_distance_threshold for its hashes (PHash, DHash, ...)
LOAD_SIDE = 512  # photos are read at most this big (long side): every descriptor here needs less


@dataclass
class Described:
    """A set of images as each method sees it: ours (code, quarter-turn codes, verification features) and
    the baselines' 64-bit hashes, all packed (N, 8) uint8."""

    names: list[str]
    codes: np.ndarray
    turns: np.ndarray
    features: list[Features]
    phash: np.ndarray
    dhash: np.ndarray
    pdq: np.ndarray | None = None  # (N, 32): 256 bits; None without `pdqhash`


def _baseline_hashes(images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    from aetools.bench.hash import imagehash_hasher, pdq_available, pdq_hasher

    pdq = pdq_hasher()(images) if pdq_available() and images else None
    return imagehash_hasher("phash")(images), imagehash_hasher("dhash")(images), pdq


def baselines(described: Described) -> list[tuple[str, np.ndarray, int]]:
    """(label, packed codes, threshold) of each baseline described: pHash and dHash at imagededup's
    default, PDQ at Meta's."""
    from aetools.bench.hash import PDQ_THRESHOLD

    found = [
        (f"pHash (imagehash, {PHASH_THRESHOLD} bits)", described.phash, PHASH_THRESHOLD),
        (f"dHash (imagehash, {PHASH_THRESHOLD} bits)", described.dhash, PHASH_THRESHOLD),
    ]
    if described.pdq is not None:
        found.append((f"PDQ (pdqhash, {PDQ_THRESHOLD} of 256 bits)", described.pdq, PDQ_THRESHOLD))
    return found


def describe(model: torch.nn.Module, images: list[Image.Image], names: list[str], batch: int = 64) -> Described:
    """RGB images -> their Described (ours and the baselines')."""
    size = model.config.size
    views = [
        codes_of(model, torch.stack([pil_to_tensor(im, size) for im in images[i : i + batch]]), turns=True)
        for i in range(0, len(images), batch)
    ]
    views = np.concatenate(views) if views else np.zeros((0, 4, model.config.bits // 8), np.uint8)
    features = [features_of(trim_borders(np.asarray(im, dtype=np.float32) / 255)) for im in images]
    phash, dhash, pdq = _baseline_hashes(images)
    return Described(names, views[:, 0], views[:, 1:], features, phash, dhash, pdq)


def load_small(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.draft("RGB", (LOAD_SIDE, LOAD_SIDE))  # JPEGs: decoded at a reduced scale
        im = im.convert("RGB")
    im.thumbnail((LOAD_SIDE, LOAD_SIDE), Image.BILINEAR)
    return im


def describe_files(
    model: torch.nn.Module, paths: list[Path], on_step: Callable[[int], None] = lambda n: None, chunk: int = 256
) -> Described:
    """Read and describe files in chunks (memory stays flat for any number of photos)."""
    parts = []
    for at in range(0, len(paths), chunk):
        images = [load_small(p) for p in paths[at : at + chunk]]
        parts.append(describe(model, images, [str(p) for p in paths[at : at + chunk]]))
        on_step(len(images))
    pdq = np.concatenate([p.pdq for p in parts]) if parts and parts[0].pdq is not None else None
    return Described(
        [str(p) for p in paths],
        np.concatenate([p.codes for p in parts]),
        np.concatenate([p.turns for p in parts]),
        [f for p in parts for f in p.features],
        np.concatenate([p.phash for p in parts]),
        np.concatenate([p.dhash for p in parts]),
        pdq,
    )


# ----------------------------------------------------------------------------- 1. false duplicates


@dataclass
class FalseDuplicates:
    """On a library of distinct photos: pairs reported, per million pairs, and photos placed in a group."""

    pairs: int
    per_million: float
    photos_in_groups: int
    share_in_groups: float  # of the library's photos


def _summary(n: int, pairs: set[tuple[int, int]], in_groups: set[int]) -> FalseDuplicates:
    total = n * (n - 1) // 2
    return FalseDuplicates(len(pairs), 1e6 * len(pairs) / max(1, total), len(in_groups), len(in_groups) / max(1, n))


def _pairs_within(codes: np.ndarray, threshold: int) -> set[tuple[int, int]]:
    from aetools.index.folder import pairs_within

    rows, cols, _ = pairs_within(codes, codes.shape[1] * 8, threshold, "scan")
    return set(zip(rows.tolist(), cols.tolist()))


def library_index(described: Described) -> HashIndex:
    """The described photos as a HashIndex (ids = positions), as `dedup` would have built it."""
    index = HashIndex(described.codes.shape[1] * 8, "benchmark")
    records = [FileRecord(name, 0, 0, f"#{i}") for i, name in enumerate(described.names)]
    index.add(records, described.codes, described.turns)
    return index


def false_duplicates(described: Described, radius: int = DEFAULT_RADIUS) -> dict[str, FalseDuplicates]:
    """method -> what it reports on a library in which no two photos are copies."""
    n = len(described.names)
    index = library_index(described)
    candidates = candidate_pairs(index, radius)
    verified = {}
    for (a, b), distance in candidates.items():
        matches = agreement(described.features[a], described.features[b])
        if matches >= MIN_INLIERS:
            verified[(a, b)] = (distance, matches)
    position = {name: i for i, name in enumerate(described.names)}
    grouped = {position[m.path] for group in group_pairs(index.records, verified) for m in group}
    result = {
        f"ours, dedup default ({radius} bits + check)": _summary(n, set(verified), grouped),
        f"ours, codes alone ({radius} bits)": _summary(n, set(candidates), {i for p in candidates for i in p}),
    }
    for label, codes, threshold in baselines(described):
        pairs = _pairs_within(codes, threshold)
        result[label] = _summary(n, pairs, {i for p in pairs for i in p})
    return result


# ------------------------------------------------------------------------------------ 2. Recall@1


@dataclass
class RecallAtDefault:
    recall: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> edit -> Recall@1
    reported: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> edit -> share answered at all
    database: int = 0
    queries: int = 0


def _answer_ours(
    query_views: np.ndarray, query_features: Features, database: Described, radius: int
) -> tuple[int | None, int]:
    """The database image `dedup` would pair with the query first -> (its position or None, matches)."""
    from aetools.bench.hash import hamming_matrix
    from aetools.index.folder import CANDIDATES_PER_IMAGE

    distances = hamming_matrix(query_views, database.codes).min(axis=0)  # nearest over the quarter turns
    within = np.flatnonzero(distances <= radius)
    within = within[np.lexsort((within, distances[within]))][:CANDIDATES_PER_IMAGE]  # as `candidate_pairs`
    best: tuple[int, int, int] | None = None  # (distance, -matches, position)
    for j in within.tolist():
        matches = agreement(query_features, database.features[j])
        if matches >= MIN_INLIERS:
            key = (int(distances[j]), -matches, j)
            best = key if best is None or key < best else best
    return (None, 0) if best is None else (best[2], -best[1])


def recall_at_default(
    model: torch.nn.Module,
    originals: list[Path],
    distractors: list[Path],
    radius: int = DEFAULT_RADIUS,
    on_step: Callable[[], None] = lambda: None,
) -> RecallAtDefault:
    """Recall@1 of ours (dedup's default) and of the baselines (each within its threshold) per edit."""
    from aetools.bench.hash import hamming_matrix, load_rgb

    base = [load_rgb(p) for p in originals]
    database = describe_files(model, [*originals, *distractors])
    result = RecallAtDefault(database=len(database.names), queries=len(base))
    truth = np.arange(len(base))
    for edit, (fn, _) in BENCHMARK_EDITS.items():
        queries = [fn(im) for im in base]
        seen = describe(model, queries, [])
        views = np.concatenate([seen.codes[:, None], seen.turns], axis=1)  # (Q, 4, 8): the query, its quarter turns
        hits, answered = [], []
        for q in range(len(queries)):
            j, _ = _answer_ours(views[q], seen.features[q], database, radius)
            hits.append(float(j == q))
            answered.append(float(j is not None))
        name = f"ours, dedup default ({radius} bits + check)"
        result.recall.setdefault(name, {})[edit] = float(np.mean(hits))
        result.reported.setdefault(name, {})[edit] = float(np.mean(answered))
        for (label, q_codes, threshold), (_, db_codes, _) in zip(baselines(seen), baselines(database)):
            d = hamming_matrix(q_codes, db_codes)
            nearest = d.min(axis=1)
            tied = (d == nearest[:, None]).sum(axis=1)
            hit = (d[truth, truth] == nearest) & (nearest <= threshold)
            result.recall.setdefault(label, {})[edit] = float(np.mean(hit / tied))
            result.reported.setdefault(label, {})[edit] = float(np.mean(nearest <= threshold))
        on_step()
    return result


# ------------------------------------------------------------------------------- 3. the copy kept


def keep_rule_shares(
    originals: list[Path], on_step: Callable[[], None] = lambda: None
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Part 3: rule -> edit -> share of the verified (original, edited copy) pairs whose original is kept;
    and edit -> verified pairs."""
    import os
    import tempfile

    from aetools.bench.hash import load_rgb
    from aetools.index.folder import lead_order
    from aetools.index.keep import order_group, read_facts
    from aetools.index.verify import features_of_grey

    kept: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="aetools-keep-") as tmp:
        for n, path in enumerate(originals):
            image = load_rgb(path)
            for edit, (fn, _) in BENCHMARK_EDITS.items():
                files = (Path(tmp) / f"{n}-a-copy.jpg", Path(tmp) / f"{n}-b-original.jpg")
                fn(image).save(files[0], quality=30 if edit == "JPEG q30" else 95)
                image.save(files[1], quality=95)
                for f in files:
                    os.utime(f, ns=(10**18, 10**18))  # one file date for both: age cannot decide
                index = HashIndex(64, "keep")
                records = []
                for f in files:
                    with Image.open(f) as im:
                        records.append(FileRecord(str(f), f.stat().st_size, 10**18, f.name, *im.size))
                index.add(records, np.zeros((2, 8), np.uint8))
                facts = {r.path: read_facts(r) for r in records}
                features = {i: features_of_grey(facts[r.path].grey) for i, r in enumerate(records)}
                matches = agreement(features[0], features[1])
                if matches < MIN_INLIERS:  # not a group: nothing to keep
                    continue
                lead = min((0, 1), key=lambda i: lead_order(records[i]))
                ordered = order_group(
                    index, lead, [1 - lead], {1 - lead: matches}, features, lambda r, facts=facts: facts[r.path]
                )
                for rule, keep in (
                    ("keep rule (index.keep)", ordered.ids[0]),
                    ("before: most pixels, largest file, oldest", lead),
                ):
                    kept.setdefault(rule, {}).setdefault(edit, []).append(float(keep == 1))
            on_step()
    pairs = {edit: len(v) for edit, v in next(iter(kept.values()), {}).items()}
    return {rule: {e: float(np.mean(v)) for e, v in per.items()} for rule, per in kept.items()}, pairs


# ------------------------------------------------------------------------------------------ report


def dedup_report(
    net: torch.nn.Module,
    originals: list[Path],
    distractors: list[Path],
    libraries: dict[str, list[Path]],
    radius: int = DEFAULT_RADIUS,
    on_step: Callable[[], None] = lambda: None,
):
    """Parts 1 and 2 as a `Report`. libraries: name -> the files of a library of distinct photos (e.g. a
    folder held out of the model's training, and all the training photos). Metrics:
    `dedup_<library>_false_pairs_per_million`, `dedup_<library>_share_in_groups`, `dedup_recall_<edit>`."""
    from aetools.bench.hash import _edit_slug, recall_table
    from aetools.bench.report import Report, Table, metric_name

    columns, cells, metrics = ["method"], {}, {}
    for library, paths in libraries.items():
        found = false_duplicates(describe_files(net, paths, lambda n: None), radius)
        columns += [f"{library} ({len(paths)}): false pairs per million", f"{library}: photos in groups"]
        for method, f in found.items():
            cells.setdefault(method, []).extend(
                [f"{f.per_million:.2f} ({f.pairs})", f"{100 * f.share_in_groups:.2f}% ({f.photos_in_groups})"]
            )
        ours = found[next(iter(found))]
        metrics[metric_name("dedup", library, "false_pairs_per_million")] = round(ours.per_million, 3)
        metrics[metric_name("dedup", library, "share_in_groups")] = round(ours.share_in_groups, 5)
        on_step()
    false_table = Table(
        "False duplicates in libraries of distinct photos, each method at its default setting",
        columns,
        [[method, *row] for method, row in cells.items()],
        [
            f"ours: dedup's default, code candidates within {radius} bits (quarter turns included), each checked"
            f" on the pictures (at least {MIN_INLIERS} keypoint matches agreeing on one transform); codes alone:"
            f" the same candidates unchecked; pHash, dHash: within {PHASH_THRESHOLD} bits (imagededup's default);"
            f" PDQ: within {PDQ_THRESHOLD} of its 256 bits (Meta's ThreatExchange match threshold)."
        ],
    )
    recall = recall_at_default(net, originals, distractors, radius, on_step)
    answered = "; ".join(
        f"{method}: " + ", ".join(f"{e} {100 * v:.1f}" for e, v in per_edit.items())
        for method, per_edit in recall.reported.items()
    )
    title = (
        f"Near-duplicate Recall@1 (%) at the default setting: {recall.queries} originals (Kodak24 + CBSD68)"
        f" among {recall.database} images, one query per original and edit; a query counts when the duplicate"
        " reported first is its original"
    )
    ours = next(iter(recall.recall))
    for e, v in recall.recall[ours].items():
        metrics[metric_name("dedup", "recall", _edit_slug(e))] = round(v, 4)
    notes = [f"share of queries for which any duplicate was reported (%): {answered}"]
    shares, pairs = keep_rule_shares(originals)
    keep_table = Table(
        f"Which copy dedup keeps (%): each of {len(originals)} originals (Kodak24 + CBSD68) with each edited copy, a"
        " verified pair; a pair counts when its original is the one kept",
        ["rule", *BENCHMARK_EDITS, "mean"],
        [
            [
                rule,
                *(f"{100 * per.get(e, float('nan')):.1f}" for e in BENCHMARK_EDITS),
                f"{100 * np.mean(list(per.values())):.1f}",
            ]
            for rule, per in shares.items()
        ],
        [
            "both files JPEG at quality 95 (the JPEG q30 copy at 30), one file date, the copy first by name; pairs"
            " verified per edit: " + ", ".join(f"{e} {n}" for e, n in pairs.items())
        ],
    )
    return Report([false_table, recall_table(title, recall.recall, notes), keep_table], {net.weights_path: metrics})
