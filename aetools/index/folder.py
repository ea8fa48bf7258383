"""What the hash commands do, as library calls: index a folder (or bring its index up to date), search it,
find its near-duplicates.

    index_folder(model, folder)          -> IndexReport   encode what is new or changed, drop what is gone
    search(model, index, images, k)      -> [Match]       nearest indexed images, Hamming distances
    find_duplicates(index, radius)       -> [Group]       connected groups of codes within `radius` bits

Incremental update: a file whose size and mtime match its record keeps its code without being read. One
whose size or mtime changed is hashed (sha256): same bytes, it keeps its code (a `touch`); other bytes,
it is decoded again. A new file whose bytes equal a vanished file's (a move or rename) takes that code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aetools.data.datasets import list_images
from aetools.index.encode import encode_files
from aetools.index.store import FileRecord, HashIndex, HashIndexError

INDEX_DIR = ".aetools-index"
# Radius queries (dedup) go through a multi-hash table instead of a full scan above this many codes, when the
# table's substrings are long enough to keep its buckets sparse. Measured by `aetools eval hash` (its "dedup"
# rows, 64-bit codes): radius 3 (16-bit substrings) at 100,000 codes: table 0.19 s, scan 2.6 s; radius 6
# (9-bit substrings): table 5.8 s, scan 2.6 s, and the scan stays faster up to 300,000 codes.
MULTIHASH_ABOVE = 10_000
MIN_SUBSTRING_BITS = 12


def default_index_dir(folder: str | Path) -> Path:
    return Path(folder) / INDEX_DIR


def model_identity(model: torch.nn.Module) -> str:
    """What makes codes comparable: the network's tensors (`weights.tensors_digest` of the file it came
    from), not the file's bytes, so rewriting the weights' metadata (`eval --record`) keeps indexes valid."""
    header = getattr(model, "weights_header", None)
    if header is None or "tensors_sha256" not in header:
        raise HashIndexError("the model has no weights file to identify it by (load it with load_model)")
    return header["tensors_sha256"]


@dataclass
class IndexReport:
    """What an indexing run did. failures: (path, reason) of files that could not be indexed;
    exact: groups of indexed paths with identical bytes."""

    added: int = 0  # new files
    changed: int = 0  # files whose size or mtime changed (decoded again only if their bytes did)
    kept: int = 0  # files whose record matched: not read
    moved: int = 0  # new paths with the bytes of a vanished file
    removed: int = 0  # vanished files
    failures: list[tuple[str, str]] = field(default_factory=list)
    exact: list[list[str]] = field(default_factory=list)


def index_folder(
    model: torch.nn.Module,
    folder: str | Path,
    index_dir: str | Path | None = None,
    recursive: bool | None = None,
    update: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[], None] | None = None,
) -> tuple[HashIndex, IndexReport]:
    """Build the folder's index, or (update=True) bring an existing one up to date; saved atomically.

    recursive: include sub-folders; None: as the index being updated was built (else no).
    on_start(number of files), on_file(): progress hooks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HashIndexError(f"{folder}: not a folder")
    index_dir = Path(index_dir) if index_dir else default_index_dir(folder)
    model_id, bits = model_identity(model), model.config.bits
    index = HashIndex(bits, model_id)
    if update and (index_dir / "CURRENT").exists():
        index = HashIndex.load(index_dir, model_id)
    if recursive is None:
        recursive = index.settings.get("recursive") == "yes"
    index.settings.update(recursive="yes" if recursive else "no", root=str(folder.resolve()))
    inside = index_dir.resolve()
    files = [p.resolve() for p in list_images([folder], recursive=recursive)]
    files = [p for p in files if inside not in p.parents]
    report = IndexReport()

    by_path = {r.path: i for i, r in index.records.items()}
    present = {str(p) for p in files}
    vanished = [i for path, i in by_path.items() if path not in present]
    vanished_sha = {index.records[i].sha256 for i in vanished}

    def unchanged(path: Path) -> bool:
        i = by_path.get(str(path))
        if i is None:
            return False
        try:
            stat = path.stat()
        except OSError:  # gone since the listing: reading it will say why
            return False
        return index.records[i].size == stat.st_size and index.records[i].mtime_ns == stat.st_mtime_ns

    # A file whose record matches needs no work. The others are read and hashed; bytes the index already
    # has a code for (touched, moved or copied files) take that code, the rest are decoded and encoded.
    todo = [p for p in files if not unchanged(p)]
    report.kept = len(files) - len(todo)
    if on_start:
        on_start(len(files))
    for _ in range(report.kept if on_file else 0):
        on_file()
    code_of_sha = {r.sha256: i for i, r in index.records.items()}

    def known(sha: str) -> np.ndarray | None:
        i = code_of_sha.get(sha)
        return None if i is None else index.code(i)

    new_records, new_codes, drop = [], [], list(vanished)
    for loaded in encode_files(model, todo, known, on_file=lambda _: on_file and on_file()):
        if loaded.error:
            report.failures.append((str(loaded.path), loaded.error))
            if str(loaded.path) in by_path:  # changed and now unreadable: its old code no longer describes it
                drop.append(by_path[str(loaded.path)])
            continue
        record = FileRecord(str(loaded.path), loaded.size, loaded.mtime_ns, loaded.sha256)
        if record.path in by_path:
            drop.append(by_path[record.path])
            report.changed += 1
        elif loaded.sha256 in vanished_sha:
            report.moved += 1
        else:
            report.added += 1
        new_records.append(record)
        new_codes.append(loaded.code)
    new_sha = {r.sha256 for r in new_records}
    report.removed = sum(index.records[i].sha256 not in new_sha for i in vanished)
    index.remove(drop)
    if new_records:
        index.add(new_records, np.stack(new_codes))
    index.save(index_dir)
    report.exact = exact_duplicates(index)
    return index, report


def exact_duplicates(index: HashIndex) -> list[list[str]]:
    """Groups of indexed paths whose bytes are identical (same sha256), each sorted, largest groups first."""
    groups: dict[str, list[str]] = {}
    for record in index.records.values():
        groups.setdefault(record.sha256, []).append(record.path)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g))


# ------------------------------------------------------------------------------------------------ search


@dataclass
class Match:
    path: str
    distance: int  # Hamming distance between the codes, in bits


@dataclass
class Query:
    """A query file and its nearest indexed images, or why it could not be read."""

    path: str
    matches: list[Match] = field(default_factory=list)
    error: str | None = None


def search_codes(index: HashIndex, codes: np.ndarray, k: int) -> list[list[Match]]:
    """Packed codes (Q, bytes), or (Q, 8, bytes) for the 8 orientations of each query -> the k nearest
    indexed images per query, nearest first. With orientations, an image's distance is its smallest to any
    orientation of the query."""
    q = codes.shape[0]
    distances, ids = index.search(codes.reshape(-1, codes.shape[-1]), k)
    results = []
    for row_d, row_i in zip(distances.reshape(q, -1).tolist(), ids.reshape(q, -1).tolist()):
        best: dict[int, int] = {}  # each image's nearest distance over the query's orientations
        for d, i in zip(row_d, row_i):
            if i >= 0 and d < best.get(i, 1 << 30):
                best[i] = d
        nearest = sorted(best.items(), key=lambda item: (item[1], index.records[item[0]].path))[:k]
        results.append([Match(index.records[i].path, d) for i, d in nearest])
    return results


def search_files(
    model: torch.nn.Module, index: HashIndex, paths: list[Path], k: int, orientations: bool = False
) -> list[Query]:
    """Encode each query file (which need not be indexed) and find its k nearest indexed images."""
    from aetools.data.io import ImageError
    from aetools.index.encode import codes_of, tensor_for_code

    queries, tensors = [Query(str(p)) for p in paths], {}
    for i, path in enumerate(paths):
        try:
            tensors[i] = tensor_for_code(Path(path), model.config.size)
        except ImageError as e:
            queries[i].error = e.reason
    if tensors:
        codes = codes_of(model, torch.stack(list(tensors.values())), orientations)
        for i, matches in zip(tensors, search_codes(index, codes, k)):
            queries[i].matches = matches
    return queries


# ------------------------------------------------------------------------------------------------- dedup


@dataclass
class Member:
    path: str
    distance: int  # to the group's first member
    exact: bool  # same bytes as another member of the group


def pairs_within(codes: np.ndarray, bits: int, radius: int, method: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) of packed codes (N, bytes) at most `radius` bits apart -> (i, j) index arrays.

    method "scan": compare every pair (IndexBinaryFlat). "multihash": cut the code into radius + 1
    substrings; by the pigeonhole principle two codes within `radius` bits agree exactly on at least one,
    so only codes sharing a bucket are compared (IndexBinaryMultiHash; exact, not approximate). None: the
    faster of the two as measured (`aetools eval hash`): the table above MULTIHASH_ABOVE codes when its
    substrings have at least MIN_SUBSTRING_BITS bits (sparse buckets), the scan otherwise."""
    import faiss

    substring = bits // (radius + 1)
    if method is None:
        method = "multihash" if len(codes) > MULTIHASH_ABOVE and substring >= MIN_SUBSTRING_BITS else "scan"
    if method == "multihash":
        table = faiss.IndexBinaryMultiHash(bits, radius + 1, substring)
        table.nflip = 0
    else:
        table = faiss.IndexBinaryFlat(bits)
    table.add(codes)
    lims, _, found = table.range_search(codes, radius + 1)  # faiss keeps distances < its radius
    rows = np.repeat(np.arange(len(codes)), np.diff(lims).astype(np.int64))
    keep = rows < found
    return rows[keep], found[keep].astype(np.int64)


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def find_duplicates(index: HashIndex, radius: int) -> list[list[Member]]:
    """Groups of indexed images linked by codes at most `radius` bits apart (connected components), each
    led by its first path in sorted order; members whose bytes another member shares (same sha256) marked
    exact. Largest groups first."""
    import faiss

    if len(index) == 0:
        return []
    ids = faiss.vector_to_array(index.faiss.id_map)
    codes = faiss.vector_to_array(faiss.downcast_IndexBinary(index.faiss.index).xb).reshape(len(ids), -1)
    rows, cols = pairs_within(codes, index.bits, radius)
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(rows.tolist(), cols.tolist()):
        parent[root(i)] = root(j)
    components: dict[int, list[int]] = {}
    for i in range(len(ids)):
        components.setdefault(root(i), []).append(i)
    groups = []
    for members in components.values():
        if len(members) < 2:
            continue
        records = sorted(((index.records[int(ids[m])], m) for m in members), key=lambda item: item[0].path)
        shas = [r.sha256 for r, _ in records]
        groups.append(
            [Member(r.path, hamming(codes[records[0][1]], codes[m]), shas.count(r.sha256) > 1) for r, m in records]
        )
    return sorted(groups, key=lambda g: (-len(g), g[0].path))
