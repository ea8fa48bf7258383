"""What the hash commands do, as library calls: index a folder (or bring its index up to date), search it,
find its near-duplicates.

    index_folder(model, folder)          -> IndexReport   encode what is new or changed, drop what is gone
    search_files(model, index, paths, k) -> [Query]       nearest indexed images, Hamming distances
    find_duplicates(index, radius, ...)  -> Duplicates    groups of verified copies, led by the one to keep

Near-duplicates in two stages: codes at most `radius` bits apart (an image's quarter turns included) make
a candidate pair, cheap to find among millions; a candidate is a duplicate only when the two pictures agree
on dozens of keypoints under one transform (`verify`), which different photos practically never do. Groups
are stars around the copy to keep, so a chain of look-alikes never merges unrelated photos.

Incremental update: a file whose size and mtime match its record keeps its code without being read. One
whose size or mtime changed is hashed (sha256): same bytes, it keeps its code (a `touch`); other bytes,
it is decoded again. A new file whose bytes equal a vanished file's (a move or rename) takes that code.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aetools.data.datasets import list_images
from aetools.index.encode import Coded, encode_files
from aetools.index.store import FeatureCache, FileRecord, HashIndex, HashIndexError, IndexLock
from aetools.index.verify import Features

INDEX_DIR = ".aetools-index"
# Radius queries (dedup) go through a multi-hash table instead of a full scan above this many codes, with
# substrings long enough to keep its buckets sparse (flipping a bit of each substring when the radius needs
# it). Measured by `aetools eval hash --part speed` (64-bit codes): radius 3 (4 substrings of 16 bits) at
# 100,000 codes: table 0.37 s, scan 4.3 s.
MULTIHASH_ABOVE = 10_000
# dedup's candidate radius (bits, 64-bit codes): wide enough that edited copies' codes fall within it (the
# verification, not the radius, rules out different photos), narrow enough that a multi-hash table finds
# the pairs among millions of codes fast. Chosen by `aetools eval hash --part dedup` (docs/benchmarks.md).
DEFAULT_RADIUS = 7  # the widest an exact multi-hash table of 4 x 16 bits with 1 flipped bit covers
# An image's copies are among its nearest codes: each image's candidates are limited to this many nearest, so
# a crowded region of code space cannot make the checks grow with the square of the library.
CANDIDATES_PER_IMAGE = 10
MIN_SUBSTRING_BITS = 16
MAX_RESULTS = 1000  # results per query (hash-search -k): each costs memory per query and orientation


def default_index_dir(folder: str | Path) -> Path:
    return Path(folder) / INDEX_DIR


def is_index(folder: Path) -> bool:
    return (folder / "CURRENT").is_file()


def find_index(queries: list[Path], given: str | Path | None = None) -> Path:
    """The index a search uses, as `dedup` finds a folder's: `given` (an index folder, or a folder indexed
    by hash-index: its INDEX_DIR), else the nearest INDEX_DIR in a query's folder or above it, the same for
    every query that lies under one (a query outside any index is searched in it too). Raises
    HashIndexError with what to pass when there is none, or when the queries lie under different ones."""
    if given is not None:
        given = Path(given)
        return given / INDEX_DIR if is_index(given / INDEX_DIR) else given
    found: dict[Path, Path] = {}  # index -> the first query under it
    for query in queries:
        start = Path(query).resolve().parent
        above = next((f / INDEX_DIR for f in (start, *start.parents) if is_index(f / INDEX_DIR)), None)
        if above is not None:
            found.setdefault(above, Path(query))
    if len(found) > 1:
        (a, qa), (b, qb) = list(found.items())[:2]
        raise HashIndexError(f"{qa} lies under {a} but {qb} under {b}: pass --index FOLDER to choose one")
    if not found:
        first = Path(queries[0]) if queries else Path(".")
        raise HashIndexError(
            f"{first}: no {INDEX_DIR} in its folder or above it; pass --index FOLDER (a folder indexed by"
            f" aetools hash-index, or its {INDEX_DIR})"
        )
    return next(iter(found))


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
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why): not indexed, on purpose
    exact: list[list[str]] = field(default_factory=list)
    in_subfolders: int = 0  # images found in sub-folders when the folder itself had none (not recursive)


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
    on_start(number of files), on_file(): progress hooks. One update at a time per index (`IndexLock`)."""
    with locked_index(folder, index_dir) as (folder, index_dir):
        return _index_folder(model, folder, index_dir, recursive, update, on_start, on_file)


@contextmanager
def locked_index(folder: str | Path, index_dir: str | Path | None):
    """-> (folder, index_dir) as Paths, the index folder (default FOLDER/.aetools-index) locked for one build
    or update at a time (`IndexLock`) until the block ends. The lock is taken before any work, so an index
    that cannot be written fails at once, in one line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HashIndexError(f"{folder}: not a folder")
    index_dir = Path(index_dir) if index_dir else default_index_dir(folder)
    try:
        lock = IndexLock(index_dir).__enter__()
    except OSError as e:
        raise HashIndexError(f"{index_dir}: cannot create the index there ({e.strerror or e})") from None
    try:
        yield folder, index_dir
    finally:
        lock.__exit__()


def _index_folder(model, folder: Path, index_dir: Path, recursive, update, on_start, on_file):
    model_id, bits = model_identity(model), model.config.bits
    index = HashIndex(bits, model_id)
    if update and (index_dir / "CURRENT").exists():
        index = HashIndex.load(index_dir, model_id)
    if recursive is None:
        recursive = index.settings.get("recursive") == "yes"
    index.settings.update(recursive="yes" if recursive else "no", root=str(folder.resolve()))
    report = IndexReport()
    files = folder_files(folder, index_dir, recursive, report)

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

    def known(sha: str) -> Coded | None:
        i = code_of_sha.get(sha)
        if i is None:
            return None
        return Coded(index.code(i), index.turns(i), index.records[i].width, index.records[i].height)

    new_records, new_codes, new_turns, drop = [], [], [], list(vanished)
    for loaded in encode_files(model, todo, known, on_file=lambda _: on_file and on_file(), turns=True):
        if loaded.error:
            report.failures.append((str(loaded.path), loaded.error))
            if str(loaded.path) in by_path:  # changed and now unreadable: its old code no longer describes it
                drop.append(by_path[str(loaded.path)])
            continue
        record = FileRecord(str(loaded.path), loaded.size, loaded.mtime_ns, loaded.sha256, loaded.width, loaded.height)
        if record.path in by_path:
            drop.append(by_path[record.path])
            report.changed += 1
        elif loaded.sha256 in vanished_sha:
            report.moved += 1
        else:
            report.added += 1
        new_records.append(record)
        new_codes.append(loaded.coded.code)
        new_turns.append(loaded.coded.turns)
    new_sha = {r.sha256 for r in new_records}
    report.removed = sum(index.records[i].sha256 not in new_sha for i in vanished)
    index.remove(drop)
    with_turns = [i for i, t in enumerate(new_turns) if t is not None]
    without = [i for i, t in enumerate(new_turns) if t is None]  # codes reused from an index filled without them
    for part, turns in ((with_turns, True), (without, False)):
        if part:
            index.add(
                [new_records[i] for i in part],
                np.stack([new_codes[i] for i in part]),
                np.stack([new_turns[i] for i in part]) if turns else None,
            )
    index.save(index_dir)
    report.exact = exact_duplicates(index)
    return index, report


def folder_files(folder: Path, index_dir: Path, recursive: bool, report: IndexReport) -> list[Path]:
    """The images an index of `folder` holds, resolved, in listing order: the index's own folder left out, a
    link to a file outside the folder skipped (noted in report.skipped); when the folder itself has none
    and recursive is off, report.in_subfolders counts those below. (Shared by the Ray engine's build.)"""
    inside, root = Path(index_dir).resolve(), Path(folder).resolve()
    files = []
    for listed in list_images([folder], recursive=recursive):
        path = listed.resolve()
        if inside in path.parents:
            continue
        if root not in path.parents:  # a link out of the folder: its target is not the folder's to report
            report.skipped.append((str(listed), f"a link to {path}, outside the folder; not indexed"))
            continue
        files.append(path)
    if not files and not recursive:
        below = list_images([folder], recursive=True)
        report.in_subfolders = sum(inside not in p.resolve().parents for p in below)
    return files


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
    if not 1 <= k <= MAX_RESULTS:
        raise ValueError(f"k = {k}: results per query must be 1 to {MAX_RESULTS}")
    q = codes.shape[0]
    distances, ids = index.search(codes.reshape(-1, codes.shape[-1]), min(k, max(len(index), 1)))
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


def pairs_within(
    codes: np.ndarray, bits: int, radius: int, method: str | None = None, queries: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of packed codes at most `radius` bits apart -> (i, j, distance) arrays: among `codes` (N, bytes)
    the pairs i < j, or with `queries` (Q, bytes) every (query i, code j).

    method "scan": compare every pair (IndexBinaryFlat). "multihash": cut the code into h substrings and
    look up each query's substrings with up to f bits flipped; by the pigeonhole principle two codes within
    h (f + 1) - 1 bits agree on one substring up to f bits, so only codes found that way are compared
    (IndexBinaryMultiHash; exact, not approximate). None: the faster of the two as measured (`aetools eval
    hash`): the table above MULTIHASH_ABOVE codes, the scan below."""
    import faiss

    if method is None:
        method = "multihash" if len(codes) > MULTIHASH_ABOVE else "scan"
    if method == "multihash":
        nhash, nflip = multihash_shape(bits, radius)
        table = faiss.IndexBinaryMultiHash(bits, nhash, bits // nhash)
        table.nflip = nflip
    else:
        table = faiss.IndexBinaryFlat(bits)
    table.add(codes)
    probes = codes if queries is None else queries
    lims, distances, found = table.range_search(probes, radius + 1)  # faiss keeps distances < its radius
    rows = np.repeat(np.arange(len(probes)), np.diff(lims).astype(np.int64))
    keep = rows < found if queries is None else np.ones(len(rows), dtype=bool)
    return rows[keep], found[keep].astype(np.int64), distances[keep].astype(np.int64)


def multihash_shape(bits: int, radius: int) -> tuple[int, int]:
    """(substrings h, bits flipped f) for an exact multi-hash search within `radius`: h (f + 1) > radius,
    substrings of at least MIN_SUBSTRING_BITS bits (sparse buckets), as few flips as that allows."""
    for nflip in range(0, 4):
        nhash = -(-(radius + 1) // (nflip + 1))
        if bits // nhash >= MIN_SUBSTRING_BITS:
            return nhash, nflip
    raise ValueError(f"radius {radius} is too large for a multi-hash table over {bits}-bit codes")


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def candidate_pairs(index: HashIndex, radius: int, per_image: int | None = None) -> dict[tuple[int, int], int]:
    """Pairs of indexed ids (a < b) whose codes, or the code of one turned by a quarter turn and the other's,
    are at most `radius` bits apart -> their smallest such distance. per_image (default CANDIDATES_PER_IMAGE):
    a pair is kept only if it is among the nearest `per_image` of one of its two images, so the checks grow
    with the number of images, not with the square of it, where codes crowd together."""
    ids, codes, turned, owners = index.arrays()
    pairs: dict[tuple[int, int], int] = {}

    def add(a: np.ndarray, b: np.ndarray, d: np.ndarray) -> None:
        for x, y, dist in zip(a.tolist(), b.tolist(), d.tolist()):
            if x != y:
                key = (x, y) if x < y else (y, x)
                pairs[key] = min(dist, pairs.get(key, dist))

    if len(ids) < 2:
        return pairs
    rows, cols, d = pairs_within(codes, index.bits, radius)
    add(ids[rows], ids[cols], d)
    if len(turned):
        rows, cols, d = pairs_within(codes, index.bits, radius, queries=turned)
        add(owners[rows], ids[cols], d)
    return nearest_pairs(pairs, CANDIDATES_PER_IMAGE if per_image is None else per_image)


def nearest_pairs(pairs: dict[tuple[int, int], int], per_image: int) -> dict[tuple[int, int], int]:
    """The pairs that are among the `per_image` nearest (smallest distance, then id) of either image."""
    partners: dict[int, list[tuple[int, int]]] = {}
    for (a, b), d in pairs.items():
        partners.setdefault(a, []).append((d, b))
        partners.setdefault(b, []).append((d, a))
    kept = set()
    for a, near in partners.items():
        for _, b in sorted(near)[:per_image]:
            kept.add((a, b) if a < b else (b, a))
    return {pair: pairs[pair] for pair in sorted(kept)}


@dataclass
class Member:
    """An image in a group of near-duplicates; the group's first member is the copy to keep."""

    path: str
    distance: int  # code distance to the group's first member (bits; its smallest over quarter turns)
    matches: int  # keypoint matches agreeing with the first member (`verify.agreement`); the first: 0
    exact: bool  # same bytes as another member of the group
    width: int = 0
    height: int = 0
    size: int = 0  # bytes
    mtime_ns: int = 0
    reason: str = ""  # the keep: why it is the original; another member: what puts it behind (`index.keep`)


def lead_order(record: FileRecord) -> tuple:
    """Which image leads a group as it is formed: most pixels, then the largest file, then the oldest, then by
    path. (Which member is kept is decided afterwards, on the pictures: `index.keep`.)"""
    return (-record.width * record.height, -record.size, record.mtime_ns, record.path)


def star_groups(
    records: dict[int, FileRecord], verified: dict[tuple[int, int], tuple[int, int]]
) -> list[tuple[int, list[int]]]:
    """Groups from verified pairs ((a, b) -> (code distance, agreeing matches)) that cannot chain: images
    are taken in `lead_order`; an image not yet in a group leads a new one, joined by every image not yet in
    a group that is verified against it directly. So each member is a verified copy of its lead, never a
    copy of a copy of it. -> [(lead, members in lead order)]."""
    neighbours: dict[int, dict[int, tuple[int, int]]] = {}
    for (a, b), value in verified.items():
        neighbours.setdefault(a, {})[b] = value
        neighbours.setdefault(b, {})[a] = value
    placed: set[int] = set()
    stars = []
    for lead in sorted(neighbours, key=lambda i: lead_order(records[i])):
        if lead in placed:
            continue
        members = [j for j in neighbours[lead] if j not in placed]
        if not members:
            continue
        placed.update([lead, *members])
        stars.append((lead, sorted(members, key=lambda j: lead_order(records[j]))))
    return stars


def _members(records: dict[int, FileRecord], ids: list[int], scores: list[tuple[int, int]], reasons=None):
    shas = [records[i].sha256 for i in ids]
    return [
        Member(r.path, d, n, shas.count(r.sha256) > 1, r.width, r.height, r.size, r.mtime_ns, why)
        for r, (d, n), why in zip((records[i] for i in ids), scores, reasons or [""] * len(ids))
    ]


def group_pairs(records: dict[int, FileRecord], verified: dict[tuple[int, int], tuple[int, int]]) -> list[list[Member]]:
    """`star_groups` as Members, each group led by its lead (no keep rule: for counting groups); largest
    groups first."""
    neighbours: dict[int, dict[int, tuple[int, int]]] = {}
    for (a, b), value in verified.items():
        neighbours.setdefault(a, {})[b] = value
        neighbours.setdefault(b, {})[a] = value
    groups = [
        _members(records, [lead, *members], [(0, 0), *(neighbours[lead][j] for j in members)])
        for lead, members in star_groups(records, verified)
    ]
    return sorted(groups, key=lambda g: (-len(g), g[0].path))


def code_distance(index: HashIndex, a: int, b: int) -> int:
    """Bits between two indexed images' codes, the smallest over either one's quarter turns."""
    distances = [hamming(index.code(a), index.code(b))]
    for x, y in ((a, b), (b, a)):
        turns = index.turns(x)
        if turns is not None:
            distances += [hamming(t, index.code(y)) for t in turns]
    return min(distances)


def keep_originals(
    index: HashIndex, verified: dict[tuple[int, int], tuple[int, int]], features: dict[int, Features]
) -> list[list[Member]]:
    """The groups of verified pairs, each ordered by the keep rule (`index.keep.order_group`: the original
    first, the others behind it with their reasons; distances and matches against the keep). Largest groups
    first. features: the members' verification features where already known (the rest are read)."""
    from aetools.index.keep import order_group

    records = index.records
    groups = []
    for lead, members in star_groups(records, verified):
        lead_scores = {j: verified[(min(lead, j), max(lead, j))] for j in members}
        ordered = order_group(index, lead, members, {j: n for j, (_, n) in lead_scores.items()}, features)
        keep, rest = ordered.ids[0], ordered.ids[1:]
        scores = [(0, 0)]
        for j in rest:
            distance = lead_scores[j][0] if keep == lead else code_distance(index, keep, j)
            scores.append((distance, ordered.matches[j]))
        groups.append(_members(records, ordered.ids, scores, ordered.reasons))
    return sorted(groups, key=lambda g: (-len(g), g[0].path))


@dataclass
class Duplicates:
    """What `find_duplicates` found. groups: led by the copy to keep; candidates: pairs whose codes were
    close enough to check; failures: (path, reason) of files that could not be checked."""

    groups: list[list[Member]]
    candidates: int
    failures: list[tuple[str, str]] = field(default_factory=list)

    def suggested_removals(self) -> list[str]:
        """Every member but the first of each group: the copies a person may delete after a look."""
        return [m.path for group in self.groups for m in group[1:]]


def find_duplicates(
    index: HashIndex,
    radius: int,
    features: FeatureSource,
    on_start: Callable[[int], None] | None = None,
    on_pair: Callable[[], None] | None = None,
) -> Duplicates:
    """Near-duplicate groups of an index: candidate pairs by code (`candidate_pairs`, quarter turns
    included), each checked on the pictures themselves (`verify.agreement`), grouped without chaining
    (`star_groups`), each led by the copy to keep (`keep_originals`). on_start(number of candidate pairs),
    on_pair(): progress."""
    from aetools.index.verify import MIN_INLIERS, agreement

    candidates = candidate_pairs(index, radius)
    if on_start:
        on_start(len(candidates))
    needed = sorted({i for pair in candidates for i in pair})
    found, failures = features.get(index, needed)
    verified = {}
    for (a, b), distance in sorted(candidates.items()):
        if a in found and b in found:
            matches = agreement(found[a], found[b])
            if matches >= MIN_INLIERS:
                verified[(a, b)] = (distance, matches)
        if on_pair:
            on_pair()
    return Duplicates(keep_originals(index, verified, found), len(candidates), failures)


class FeatureSource:
    """The verification features of indexed images: from the index's features cache (keyed by the bytes'
    sha256), else computed from the file (and cached), if it is still the file that was indexed.

    cache: the index folder, whose features.sqlite is used; None: computed every time."""

    def __init__(self, cache: str | Path | None, workers: int | None = None):
        self.cache = FeatureCache(Path(cache)) if cache is not None else None
        self.workers = workers

    def get(self, index: HashIndex, ids: list[int]) -> tuple[dict[int, Features], list[tuple[str, str]]]:
        """-> ({id: Features}, [(path, reason) for the images that could not be read or have changed])."""
        import os
        from concurrent.futures import ThreadPoolExecutor

        records = {i: index.records[i] for i in ids}
        stored = self.cache.get({r.sha256 for r in records.values()}) if self.cache else {}
        found = {i: stored[r.sha256] for i, r in records.items() if r.sha256 in stored}
        todo = [i for i in ids if i not in found]
        failures = []
        with ThreadPoolExecutor(self.workers or min(8, os.cpu_count() or 1)) as pool:
            for i, result in zip(todo, pool.map(lambda i: file_features(records[i]), todo)):
                if isinstance(result, str):
                    failures.append((records[i].path, result))
                else:
                    found[i] = result
        if self.cache and todo:
            self.cache.put({records[i].sha256: found[i] for i in todo if i in found})
        return found, failures


def file_features(record: FileRecord) -> Features | str:
    """The verification features of an indexed file, or why they cannot be had: unreadable, or changed since
    it was indexed (then its code no longer describes it)."""
    from aetools.data.io import ImageError, load_image
    from aetools.index.encode import trim_borders
    from aetools.index.verify import SIDE, features_of

    path = Path(record.path)
    try:
        stat = path.stat()
    except OSError as e:
        return f"cannot read ({e.strerror or e})"
    if (stat.st_size, stat.st_mtime_ns) != (record.size, record.mtime_ns):
        return "changed since it was indexed (run hash-index --update)"
    try:
        return features_of(trim_borders(load_image(path, draft=SIDE).pixels))
    except ImageError as e:
        return e.reason
