"""One index from several built separately: one per disk, per folder or per machine (the route beyond one
machine, docs/scale.md: index each shard where its files are, then merge).

    merge_indexes([a, b, ...], destination) -> HashIndex

- The sources must have been built by one model (the same identity, hence the same bits): codes of two
  models are not comparable, so any other mix is refused.
- Every image keeps its code, its turned codes and its file record; ids are renumbered 0, 1, ... in the
  order of the sources, each source's images in id order (images without turned codes, from an index filled
  without them, come after those with).
- A path in two sources: with the same bytes (sha256) it is one file indexed twice (overlapping shards) and
  is kept once, with the record of the first source listing it; with different bytes the merge is refused,
  since one record is stale or two machines have different files at one path (index them under distinct
  roots, e.g. mount points named after the machine).
- The features caches (features-<version>.sqlite: rows keyed by the bytes' sha256, never changed) are merged
  row by row (INSERT OR IGNORE), so a dedup of the merged index recomputes nothing the shards had.
- The destination is a folder holding no index, or one of the sources (the merge is then its next
  generation); an index there that is not a source is refused rather than replaced. The merged index is
  written by `HashIndex.save`: atomically.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np

from aetools.index.store import CURRENT, TURNS, FileRecord, HashIndex, HashIndexError


def merge_indexes(sources: list[str | Path], destination: str | Path) -> HashIndex:
    """Merge the indexes saved in `sources` into one saved in `destination` (see the module docstring)."""
    sources = [Path(s) for s in sources]
    destination = Path(destination)
    if not sources:
        raise HashIndexError("no indexes to merge")
    resolved = [s.resolve() for s in sources]
    if (destination / CURRENT).exists() and destination.resolve() not in resolved:
        raise HashIndexError(
            f"{destination}: holds an index that is not among the sources; merge into an empty folder, or list it"
        )

    model_id, bits, settings = None, 0, {}  # the first source's
    kept: dict[str, tuple[Path, str]] = {}  # path -> (source, sha256) of the record kept
    with_turns: list[tuple[list[FileRecord], np.ndarray, np.ndarray]] = []  # (records, codes, turned codes)
    without: list[tuple[list[FileRecord], np.ndarray, np.ndarray]] = []
    for source in sources:  # one source in memory at a time, beside what is kept of the others
        index = HashIndex.load(source)
        if model_id is None:
            model_id, bits, settings = index.model_id, index.bits, dict(index.settings)
        elif (index.model_id, index.bits) != (model_id, bits):
            raise HashIndexError(
                f"{source}: built with another model ({index.model_id[:12]}, {index.bits} bits) than {sources[0]}"
                f" ({model_id[:12]}, {bits} bits); only indexes of one model can be merged"
            )
        else:  # a setting the sources disagree on (e.g. the root folder) describes none of them
            settings = {k: v for k, v in settings.items() if index.settings.get(k) == v}
        ids, codes, turns, has_turns = _images(index)
        keep = np.array([_keep(index.records[i], source, kept) for i in ids.tolist()], dtype=bool)
        for part, into in ((keep & has_turns, with_turns), (keep & ~has_turns, without)):
            into.append(([index.records[i] for i in ids[part].tolist()], codes[part], turns[part]))
        del index

    settings["sources"] = os.pathsep.join(str(s) for s in resolved)
    merged = HashIndex(bits, model_id, settings)
    for parts, turned in ((with_turns, True), (without, False)):
        records = [r for part in parts for r in part[0]]
        codes = np.concatenate([part[1] for part in parts])
        merged.add(records, codes, np.concatenate([part[2] for part in parts]) if turned else None)
    merge_feature_caches(sources, destination)
    merged.save(destination)
    return merged


def _images(index: HashIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An index's images in id order: ids (N,), codes (N, bytes), turned codes (N, TURNS, bytes) (zeros where
    the index holds none) and whether it holds them (N,) bool."""
    import faiss

    ids, codes, turned, _ = index.arrays()
    order = np.argsort(ids)
    ids, codes = ids[order], codes[order]
    turned_ids = faiss.vector_to_array(index.turned.id_map)  # 4 id + t - 1, as HashIndex.add numbers them
    order = np.argsort(turned_ids)
    turned, turned_ids = turned[order], turned_ids[order]
    if len(turned_ids) % TURNS or np.any(turned_ids.reshape(-1, TURNS) % 4 != np.arange(TURNS)):
        raise HashIndexError("an index whose turned codes are incomplete; rebuild it with aetools hash-index")
    owners = turned_ids[::TURNS] // 4  # ascending, as ids are
    rows = np.searchsorted(owners, ids)
    has_turns = rows < len(owners)
    has_turns[has_turns] = owners[rows[has_turns]] == ids[has_turns]
    turns = np.zeros((len(ids), TURNS, codes.shape[1]), dtype=np.uint8)
    turns[has_turns] = turned.reshape(-1, TURNS, codes.shape[1])[rows[has_turns]]
    return ids, codes, turns, has_turns


def _keep(record: FileRecord, source: Path, kept: dict[str, tuple[Path, str]]) -> bool:
    """Whether `record` joins the merge: not when an earlier source holds its path with the same bytes; a
    path held with other bytes is refused."""
    earlier = kept.get(record.path)
    if earlier is None:
        kept[record.path] = (source, record.sha256)
        return True
    if earlier[1] == record.sha256:
        return False
    raise HashIndexError(
        f"{record.path}: indexed with different contents in {earlier[0]} and {source}; update the stale index"
        " (hash-index --update), or index each machine's files under a distinct root"
    )


def merge_feature_caches(sources: list[Path], destination: Path) -> None:
    """Copy the rows of every features-*.sqlite in the sources into the destination's file of the same name
    (rows are keyed by content and never change: INSERT OR IGNORE). A cache that cannot be read is skipped:
    it only holds work that a dedup would redo."""
    destination.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for cache in sorted(source.glob("features-*.sqlite")):
            target = destination / cache.name
            if target.exists() and target.resolve() == cache.resolve():
                continue
            try:
                if not target.exists():  # a first copy: SQLite's backup keeps the table as FeatureCache made it
                    _copy_database(cache, target)
                    continue
                db = sqlite3.connect(target.resolve().as_uri(), uri=True, timeout=60)
                try:
                    db.execute("ATTACH DATABASE ? AS source", (cache.resolve().as_uri() + "?mode=ro",))
                    with db:
                        db.execute("INSERT OR IGNORE INTO features SELECT sha256, data FROM source.features")
                    db.execute("DETACH DATABASE source")
                finally:
                    db.close()
            except sqlite3.Error:
                continue


def _copy_database(source: Path, target: Path) -> None:
    """source -> target through a temporary file and a rename, so a crash leaves no half-written cache."""
    from aetools.outputs import temporary_beside

    tmp = temporary_beside(target)
    try:
        src = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
