"""`aetools eval hash`: binary codes for search, ours beside the classical hashes in the same run.

1. Near-duplicate retrieval (issue 6 protocol)
   database = Kodak24 + CBSD68 (92 photos) + DISTRACTORS photos drawn (seeded) from the training folder
   queries  = each Kodak/CBSD68 photo under each edit of `data.augment.BENCHMARK_EDITS` (JPEG q30, resize
              0.5, blur, brightness/contrast, grey, text overlay, crop 10% and 25% (centred), pad 10%,
              rotate 5 and 90 degrees, horizontal flip)
   score    = Recall@1 per edit: the original is the nearest database code by Hamming distance. Ties are
              scored as random tie-breaking would on average: 1 / (number of codes at the nearest distance)
              when the original is among them, else 0.
   methods  = imagehash pHash (64-bit DCT hash) and dHash (64-bit gradient hash), and Meta's PDQ (256 bits,
              through `pdqhash` where installed) as the baselines, ours (64 bits); each also "+ 8
              orientations": the query's 4 turns x 2 mirrorings, nearest kept (what `hash-search` does by
              default), applied to the baselines too so the gain is attributed.

2. Semantic retrieval, CIFAR-10 (the unsupervised-hashing protocol)
   queries  = 100 test images per class (the first by file name), 1,000 in all
   database = the other 19,000 images (9,000 test + the 10,000 training images shipped)
   score    = mAP@1000: rank the database by Hamming distance (ties in database order), AP over the top
              1,000 with "same class" as relevant, AP = sum_i P(i) rel(i) / (relevant in the top 1,000),
              as in HashNet's / DeepHash's evaluation code; the mean over queries
   methods  = LSH (signs of Gaussian random projections of centred pixels, Charikar 2002), ITQ on pixels
              (PCA to b dims, then 50 iterations of iterative quantisation, Gong & Lazebnik 2011), ITQ on
              our continuous latent (the pooled encoder features), ours; at 16, 32 and 64 bits. PCA, ITQ and
              our CIFAR model are fitted on the database images without labels.

3. Speed and memory: files indexed per second (read + decode + code) by ours and by imagehash pHash on the
   same files; single-query latency over 100,000 synthetic codes; dedup's all-pairs radius search by full
   scan vs multi-hash table; bytes per indexed image.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aetools.data.augment import BENCHMARK_EDITS, hflip, rotate90
from aetools.index.encode import codes_of, pil_to_tensor
from aetools.index.store import pack_codes, unpack_codes

DISTRACTORS = 1000
NEAR_DUP_SETS = ("kodak24", "cbsd68")
QUERIES_PER_CLASS = 100
MAP_AT = 1000
ITQ_ITERATIONS = 50
CLOSE_RADII = (2, 3, 4, 6)  # dedup radii: how many pairs of different database photos fall within each

Hasher = Callable[[list[Image.Image]], np.ndarray]  # images -> packed codes (N, bytes)


# ------------------------------------------------------------------------------------------- methods


def imagehash_hasher(kind: str, trim: bool = False) -> Hasher:
    """imagehash's pHash or dHash at 64 bits (hash_size 8); trim: flat borders removed first, as ours does
    (`encode.trim_borders`), to tell what the trimming alone is worth."""
    import imagehash

    from aetools.index.encode import trim_borders

    fn = {"phash": imagehash.phash, "dhash": imagehash.dhash}[kind]

    def prepare(im: Image.Image) -> Image.Image:
        if not trim:
            return im
        pixels = trim_borders(np.asarray(im, dtype=np.float32) / 255)
        return Image.fromarray((pixels * 255 + 0.5).astype(np.uint8))

    return lambda images: pack_codes(np.stack([fn(prepare(im)).hash.ravel() for im in images]))


# Meta's ThreatExchange matches PDQ hashes at most this many bits apart (of 256; PDQ_CONFIDENT_MATCH_THRESHOLD)
PDQ_THRESHOLD = 31


def pdq_available() -> bool:
    try:
        import pdqhash  # noqa: F401
    except ImportError:
        return False
    return True


def pdq_hasher() -> Hasher:
    """Meta's PDQ: 256 bits, the 16 x 16 lowest DCT coefficients of the luminance filtered down to 64 x 64,
    each against their median (the `pdqhash` package, a binding of Meta's C++ reference). Its quality score
    is not used: every image gets its hash."""
    import pdqhash

    def encode(images: list[Image.Image]) -> np.ndarray:
        bits = [pdqhash.compute(np.ascontiguousarray(np.asarray(im.convert("RGB"))))[0] for im in images]
        return pack_codes(np.stack(bits).astype(bool))

    return encode


def model_hasher(model: torch.nn.Module, batch: int = 256, precision: str = "fp32") -> Hasher:
    """Ours: the network's codes, computed in `precision`."""
    from aetools.bench.reference import precision_named, prepared

    net, p = prepared(model, precision), precision_named(precision)

    def encode(images: list[Image.Image]) -> np.ndarray:
        packed = [
            codes_of(
                net, torch.stack([pil_to_tensor(im, net.config.size) for im in images[i : i + batch]]), precision=p
            )
            for i in range(0, len(images), batch)
        ]
        return np.concatenate(packed)

    return encode


def orientations_of(image: Image.Image) -> list[Image.Image]:
    """The 8 orientations in `encode.dihedral`'s order: 4 counter-clockwise quarter turns, then the same
    of the mirrored image."""
    return [rotate90(im, t) if t else im for im in (image, hflip(image)) for t in range(4)]


def hamming_matrix(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Packed codes (Q, bytes), (N, bytes) -> (Q, N) Hamming distances."""
    q, d = unpack_codes(queries).astype(np.int32), unpack_codes(database).astype(np.int32)
    return q.sum(1, keepdims=True) + d.sum(1)[None] - 2 * q @ d.T


# ------------------------------------------------------------------------------ 1. near-duplicates


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def near_duplicate_database(eval_root: Path, photos: Path, distractors: int = DISTRACTORS, seed: int = 0):
    """-> (originals: list of (path, image), distractor paths) for the near-duplicate benchmark."""
    from aetools.data.datasets import list_images

    folders = [eval_root / name for name in NEAR_DUP_SETS if (eval_root / name).is_dir()]
    originals = list_images(folders, recursive=False) if folders else []
    pool = list_images([photos])
    chosen = sorted(np.random.default_rng(seed).choice(len(pool), size=min(distractors, len(pool)), replace=False))
    return originals, [pool[i] for i in chosen]


def recall_at_1(distances: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """distances (Q, N), truth (Q,) database index of each query's original -> expected Recall@1 per query
    under random tie-breaking."""
    nearest = distances.min(axis=1, keepdims=True)
    tied = (distances == nearest).sum(axis=1)
    hit = distances[np.arange(len(truth)), truth] == nearest[:, 0]
    return hit / tied


@dataclass
class NearDupResult:
    recall: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> edit -> Recall@1
    distances: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> edit -> median d(query, original)
    distinct: dict[str, float] = field(default_factory=dict)  # method -> 1st percentile of d between distinct photos
    close_pairs: dict[str, dict[int, int]] = field(default_factory=dict)  # method -> r -> distinct pairs within r
    database: int = 0
    queries: int = 0


def run_near_duplicate(
    hashers: dict[str, Hasher],
    originals: list[Path],
    distractors: list[Path],
    on_step: Callable[[], None] = lambda: None,
) -> NearDupResult:
    """Recall@1 of every method on every edit; each method also with 8 query orientations."""
    base = [load_rgb(p) for p in originals]
    database_images = base + [load_rgb(p) for p in distractors]
    queries = {edit: [fn(im) for im in base] for edit, (fn, _) in BENCHMARK_EDITS.items()}
    truth = np.arange(len(base))
    result = NearDupResult(database=len(database_images), queries=len(base))
    for name, hasher in hashers.items():
        database = hasher(database_images)
        between = hamming_matrix(database, database)[np.triu_indices(len(database), 1)]
        result.distinct[name] = float(np.percentile(between, 1))
        result.close_pairs[name] = {r: int((between <= r).sum()) for r in CLOSE_RADII}
        plain, turned = {}, {}
        median_d = {}
        for edit, images in queries.items():
            views = hasher([v for im in images for v in orientations_of(im)])  # (Q * 8, bytes), as-is first
            d_views = hamming_matrix(views, database).reshape(len(images), 8, -1)
            d = d_views[:, 0]
            plain[edit] = float(recall_at_1(d, truth).mean())
            median_d[edit] = float(np.median(d[truth, truth]))
            turned[edit] = float(recall_at_1(d_views.min(axis=1), truth).mean())
        result.recall[name] = plain
        result.recall[f"{name} + 8 orientations"] = turned
        result.distances[name] = median_d
        on_step()
    return result


# --------------------------------------------------------------------------------- 2. CIFAR-10 mAP


def read_cifar(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (images (N, 32, 32, 3) uint8, labels (N,), is_query (N,) bool) from test.tar then train.tar
    (`aetools.data.cifar.read_labelled_tar`), labels numbering the class folders in sorted order; the
    queries are the first QUERIES_PER_CLASS test images of each class by member name."""
    from aetools.data.cifar import read_labelled_tar

    (test, test_classes), (train, train_classes) = (read_labelled_tar(folder / n) for n in ("test.tar", "train.tar"))
    classes = sorted(set(test_classes) | set(train_classes))
    labels = np.array([classes.index(c) for c in test_classes + train_classes])
    seen: dict[str, int] = {}
    is_query = np.zeros(len(labels), dtype=bool)
    for i, c in enumerate(test_classes):
        seen[c] = seen.get(c, 0) + 1
        is_query[i] = seen[c] <= QUERIES_PER_CLASS
    return np.concatenate([test, train]), labels, is_query


def mean_average_precision(distances: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray, at: int) -> float:
    """mAP@at over queries, Hamming ranking with ties in database order (see the module docstring)."""
    aps = []
    for row, label in zip(distances, query_labels):
        order = np.argsort(row, kind="stable")[:at]
        relevant = (db_labels[order] == label).astype(np.float64)
        found = relevant.sum()
        if found == 0:
            aps.append(0.0)
            continue
        precision = np.cumsum(relevant) / np.arange(1, len(relevant) + 1)
        aps.append(float((precision * relevant).sum() / found))
    return float(np.mean(aps))


def lsh_codes(train: np.ndarray, data: np.ndarray, bits: int, seed: int = 0) -> np.ndarray:
    mean = train.mean(axis=0)
    projection = np.random.default_rng(seed).standard_normal((train.shape[1], bits))
    return pack_codes((data - mean) @ projection > 0)


@dataclass
class PCA:
    """Principal directions of the training rows, strongest first: mean (d,), basis (d, k)."""

    mean: np.ndarray
    basis: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray, k: int) -> PCA:
        mean = train.mean(axis=0)
        x = (train - mean).astype(np.float32)
        values, vectors = np.linalg.eigh((x.T @ x).astype(np.float64))  # ascending
        return cls(mean, vectors[:, ::-1][:, :k].copy())


def itq_codes(train: np.ndarray, data: np.ndarray, bits: int, seed: int = 0, pca: PCA | None = None) -> np.ndarray:
    """Iterative quantisation (Gong & Lazebnik 2011): PCA to `bits` dimensions, then the rotation R that
    minimises the quantisation loss ||sign(VR) - VR||, alternating B = sign(VR) and R from the orthogonal
    Procrustes problem (SVD of V^T B). `pca`: a fit on `train` with at least `bits` directions."""
    pca = pca or PCA.fit(train, bits)
    mean, basis = pca.mean, pca.basis[:, :bits]
    v = (train - mean) @ basis
    r, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((bits, bits)))
    for _ in range(ITQ_ITERATIONS):
        b = np.where(v @ r >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ b)
        r = u @ wt
    return pack_codes((data - mean) @ basis @ r >= 0)


@torch.inference_mode()
def latent_features(model: torch.nn.Module, images: np.ndarray, batch: int = 500) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float() / 255.0
        out.append(model.features(x).numpy())
    return np.concatenate(out).astype(np.float64)


@torch.inference_mode()
def model_codes(model: torch.nn.Module, images: np.ndarray, batch: int = 500) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float() / 255.0
        out.append(pack_codes(model.codes(x).numpy()))
    return np.concatenate(out)


def run_semantic(
    images: np.ndarray,
    labels: np.ndarray,
    is_query: np.ndarray,
    models: dict[str, torch.nn.Module],
    latent_model: torch.nn.Module | None,
    bit_lengths: tuple[int, ...] = (16, 32, 64),
    on_step: Callable[[], None] = lambda: None,
) -> dict[str, dict[int, float]]:
    """-> method -> bits -> mAP@1000. A model whose code is longer than `bits` is scored by its prefix."""
    pixels = images.reshape(len(images), -1).astype(np.float64) / 255.0
    db, q = ~is_query, is_query
    scores: dict[str, dict[int, float]] = {}

    def score(name: str, bits: int, codes: np.ndarray) -> None:
        d = hamming_matrix(codes[q], codes[db])
        scores.setdefault(name, {})[bits] = mean_average_precision(d, labels[q], labels[db], MAP_AT)

    latent = latent_features(latent_model, images) if latent_model is not None else None
    full = {name: model_codes(m, images) for name, m in models.items()}
    pixel_pca = PCA.fit(pixels[db], max(bit_lengths))
    latent_pca = PCA.fit(latent[db], min(max(bit_lengths), latent.shape[1])) if latent is not None else None
    for bits in bit_lengths:
        score("LSH, pixels", bits, lsh_codes(pixels[db], pixels, bits))
        score("ITQ, pixels", bits, itq_codes(pixels[db], pixels, bits, pca=pixel_pca))
        if latent is not None and latent.shape[1] >= bits:  # PCA cannot give more directions than dimensions
            score("ITQ, our latent", bits, itq_codes(latent[db], latent, bits, pca=latent_pca))
        for name, codes in full.items():
            if codes.shape[1] * 8 >= bits:
                score(name, bits, codes[:, : bits // 8])
        on_step()
    return scores


# ------------------------------------------------------------------------------------- 3. speed


def files_per_second(fn: Callable[[list[Path]], object], files: list[Path], repeats: int = 2) -> float:
    """Best of `repeats` passes (the first pass also warms the page cache for the second)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(files)
        best = min(best, time.perf_counter() - t)
    return len(files) / best


def phash_files(files: list[Path]) -> None:
    import imagehash

    for path in files:
        with Image.open(path) as im:
            imagehash.phash(im)


def api_one_call_per_file(model: torch.nn.Module) -> Callable[[list[Path]], None]:
    """`aetools.hash_code(path)` called once per file, as a script looping over files would."""
    from aetools.api import hash_code

    return lambda files: [hash_code(path, model=model) for path in files]


def api_list_of_files(model: torch.nn.Module) -> Callable[[list[Path]], None]:
    """`aetools.hash_code([paths])`: one call, decoding in threads, the network in batches."""
    from aetools.api import hash_code

    return lambda files: hash_code(files, model=model)


def ours_files(model: torch.nn.Module, precision: str = "fp32") -> Callable[[list[Path]], None]:
    from aetools.bench.reference import precision_named, prepared
    from aetools.index.encode import encode_files

    net, p = prepared(model, precision), precision_named(precision)

    def run(files: list[Path]) -> None:
        for item in encode_files(net, files, precision=p):
            if item.error:
                raise RuntimeError(f"{item.path}: {item.error}")

    return run


def camera_sized_copies(sources: list[Path], folder: Path, long_side: int = 4032, quality: int = 92) -> list[Path]:
    """JPEGs of the sources enlarged to a phone camera's 12 MP (4032 x 3024 for 4:3): decoding cost as for
    camera originals, which no benchmark folder has."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, src in enumerate(sources):
        im = load_rgb(src)
        w, h = im.size
        factor = long_side / max(w, h)
        path = folder / f"camera_{i:03d}.jpg"
        im.resize((round(w * factor), round(h * factor)), Image.BICUBIC).save(path, quality=quality)
        out.append(path)
    return out


def query_latency(n: int = 100_000, bits: int = 64, queries: int = 2000, seed: int = 0) -> dict[str, float]:
    """Median seconds of one `HashIndex.search` (k = 10) over n random codes: as shipped (one OpenMP
    thread for a single query) and with faiss's default threads."""
    import faiss

    from aetools.index.store import FileRecord, HashIndex

    rng = np.random.default_rng(seed)
    index = HashIndex(bits, "synthetic")
    index.add([FileRecord(f"p{i}", 0, 0, "") for i in range(n)], rng.integers(0, 256, (n, bits // 8), dtype=np.uint8))
    probes = rng.integers(0, 256, (queries, bits // 8), dtype=np.uint8)
    result = {}
    times = []
    for row in probes:
        t = time.perf_counter()
        index.search(row[None], 10)
        times.append(time.perf_counter() - t)
    result["one thread"] = float(np.median(times))
    times = []
    for row in probes[:200]:
        t = time.perf_counter()
        index.faiss.search(row[None], 10)  # faiss's own threading
        times.append(time.perf_counter() - t)
    result[f"{faiss.omp_get_max_threads()} threads"] = float(np.median(times))
    return result


def radius_search_seconds(n: int, radius: int, bits: int = 64, seed: int = 0) -> dict[str, float]:
    """Seconds for all pairs within `radius` among n random codes (plus a planted near copy of every 10th):
    full scan vs multi-hash table, checked to find the same pairs."""
    from aetools.index import folder

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, bits // 8), dtype=np.uint8)
    flips = rng.integers(0, bits, (n // 10, radius))
    bits_view = unpack_codes(codes[: n // 10])
    for row, f in zip(bits_view, flips):
        row[f] ^= True
    codes[n - n // 10 :] = pack_codes(bits_view)
    result, found = {}, {}
    for kind, method in (("full scan", "scan"), ("multi-hash", "multihash")):
        t = time.perf_counter()
        rows, cols, _ = folder.pairs_within(codes, bits, radius, method)
        result[kind] = time.perf_counter() - t
        found[kind] = set(zip(rows.tolist(), cols.tolist()))
    if found["full scan"] != found["multi-hash"]:
        raise AssertionError("the multi-hash table and the full scan found different pairs")
    result["pairs"] = len(found["full scan"])
    return result


def bytes_per_image(n: int = 100_000, bits: int = 64, tmp: Path | None = None) -> dict[str, float]:
    """Disk: the saved index (codes + SQLite list of files, 60-character paths) per image. Memory: the
    resident-size growth from holding that index loaded (Python's file records included)."""
    import tempfile

    from aetools.index.store import FileRecord, HashIndex

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=tmp) as folder:
        index = HashIndex(bits, "synthetic")
        index.add(
            [
                FileRecord(f"/home/someone/Pictures/2026/holiday/IMG_{i:08d}.jpg", 3_000_000, 10**18, f"{i:064x}")
                for i in range(n)
            ],
            rng.integers(0, 256, (n, bits // 8), dtype=np.uint8),
        )
        index.save(folder)
        del index
        disk = sum(p.stat().st_size for p in Path(folder).iterdir())
        before = rss()
        loaded = HashIndex.load(folder)
        after = rss()
        del loaded
    return {"disk": disk / n, "memory": max(0, after - before) / n}


# ------------------------------------------------------------------------------------------- reports


def _edit_slug(edit: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "_", edit.lower()).strip("_")


def recall_table(title: str, recall: dict[str, dict[str, float]], notes: list[str] | None = None):
    """Rows of Recall@1 (%) per edit, with the photometric and geometric means -> a `Table`."""
    from aetools.bench.report import Table

    edits = list(BENCHMARK_EDITS)
    rows = []
    for name, per_edit in recall.items():
        photometric = [per_edit[e] for e in edits if BENCHMARK_EDITS[e][1] == "photometric"]
        geometric = [per_edit[e] for e in edits if BENCHMARK_EDITS[e][1] == "geometric"]
        rows.append(
            [name]
            + [f"{100 * per_edit[e]:.1f}" for e in edits]
            + [f"{100 * np.mean(photometric):.1f}", f"{100 * np.mean(geometric):.1f}"]
        )
    return Table(title, ["method", *edits, "photometric mean", "geometric mean"], rows, notes or [])


def near_duplicate_report(
    net: torch.nn.Module,
    originals: list[Path],
    distractors: list[Path],
    precisions: list[str],
    on_step: Callable[[], None] = lambda: None,
):
    """Part 1 as a `Report`: the Recall@1 table (ours in each precision beside pHash and dHash), the
    distances in notes, `neardup_<edit>[_orientations]` metrics and the bf16 check (0.5 points, either way)."""
    from aetools.bench.reference import in_precision
    from aetools.bench.report import Bf16Check, Report

    hashers = {
        "pHash (imagehash)": imagehash_hasher("phash"),
        "dHash (imagehash)": imagehash_hasher("dhash"),
        "pHash, borders trimmed as ours": imagehash_hasher("phash", trim=True),
    }
    if pdq_available():
        hashers["PDQ (pdqhash, 256 bits)"] = pdq_hasher()
    for p in precisions:
        hashers[in_precision(f"ours ({net.config.bits} bits)", p)] = model_hasher(net, 256, p)
    result = run_near_duplicate(hashers, originals, distractors, on_step)
    edits = list(BENCHMARK_EDITS)
    pairs_total = result.database * (result.database - 1) // 2
    notes = [
        "median Hamming distance from an edited query to its original: "
        + "; ".join(f"{name}: " + ", ".join(f"{e} {d[e]:.0f}" for e in edits) for name, d in result.distances.items())
        + "\n1st percentile of the distance between two different database photos: "
        + ", ".join(f"{name} {d:.0f}" for name, d in result.distinct.items())
        + f"\npairs of different database photos (of {pairs_total:,}) within 2 / 3 / 4 / 6 bits: "
        + "; ".join(f"{name} " + " / ".join(str(v) for v in p.values()) for name, p in result.close_pairs.items())
    ]
    title = (
        f"Near-duplicate Recall@1 (%): {result.queries} originals (Kodak24 + CBSD68) among {result.database}"
        f" images ({result.database - result.queries} distractors), one query per original and edit"
    )
    ours = f"ours ({net.config.bits} bits)"
    metrics = {}
    for suffix, key in (("", ours), ("_orientations", f"{ours} + 8 orientations")):
        if key in result.recall:
            for e in edits:
                metrics[f"neardup_{_edit_slug(e)}{suffix}"] = round(result.recall[key][e], 4)
    report = Report([recall_table(title, result.recall, notes)], {net.weights_path: metrics} if metrics else {})
    if "bf16" in precisions and ours in result.recall:  # auto may use bf16 if no edit moves by over 0.5 points
        pairs = [(100 * result.recall[ours][e], 100 * result.recall[f"{ours}, bf16"][e]) for e in edits]
        report.bf16[net.weights_path] = Bf16Check.of(pairs + [(b, a) for a, b in pairs], "neardup", 0.5)
    return report


def semantic_report(
    images: np.ndarray,
    labels: np.ndarray,
    is_query: np.ndarray,
    models: dict[str, torch.nn.Module],
    on_step: Callable[[], None] = lambda: None,
):
    """Part 2 as a `Report`: CIFAR-10 mAP@1000 at 16/32/64 bits, `cifar10_map1000_<b>bits` per model."""
    from aetools.bench.report import Report, Table

    latent_model = next(iter(models.values()))
    scores = run_semantic(images, labels, is_query, models, latent_model, on_step=on_step)
    rows = [[name] + [f"{scores[name].get(b, float('nan')):.4f}" for b in (16, 32, 64)] for name in scores]
    title = (
        f"CIFAR-10 mAP@1000: {is_query.sum()} queries, {(~is_query).sum()} database images"
        f" (ITQ on our latent: {next(iter(models))})"
    )
    metrics = {
        m.weights_path: {f"cifar10_map1000_{b}bits": round(v, 4) for b, v in scores[name].items()}
        for name, m in models.items()
    }
    return Report([Table(title, ["method", "16 bits", "32 bits", "64 bits"], rows)], metrics)


def speed_report(
    net: torch.nn.Module, originals: list[Path], distractors: list[Path], precisions: list[str], tmp: Path
):
    """Part 3 as a `Report`: files indexed per second against pHash, then query latency, dedup's pair search
    by full scan and multi-hash table, and bytes per indexed image."""
    from aetools.bench.reference import precision_line
    from aetools.bench.report import Report, Table
    from aetools.pipeline import bf16_measured_safe

    threads = torch.get_num_threads()
    timed = distractors[:1000]
    camera = camera_sized_copies(originals[:24], tmp / "camera")
    rows = []
    for label, files in (
        (f"{len(timed)} photos (JPEG, up to 400 px)", timed),
        (f"{len(camera)} camera-sized JPEGs (12 MP)", camera),
    ):
        p = files_per_second(phash_files, files)
        ours = [files_per_second(ours_files(net, q), files) for q in precisions]
        one = files_per_second(api_one_call_per_file(net), files)
        many = files_per_second(api_list_of_files(net), files)
        rows.append([label, f"{p:.0f}", *[f"{o:.0f}" for o in ours], *[f"{o / p:.2f}x" for o in ours]])
        rows[-1] += [f"{one:.0f}", f"{many:.0f}"]
    columns = [
        "files",
        "pHash (imagehash, 1 process)",
        *[f"ours (hash-index pipeline, {threads} threads), {q}" for q in precisions],
        *[f"ours / pHash, {q}" for q in precisions],
        "aetools.hash_code(path), a call per file",
        "aetools.hash_code(list of paths)",
    ]
    chosen = "bf16" if bf16_measured_safe(net) else "fp32 (its benchmark record)"
    indexing = Table(
        "Indexing speed (files/s: read, decode, code; best of 2 passes)",
        columns,
        rows,
        [precision_line()[:-1] + f"; this model under auto: {chosen}."],
    )
    rows = [[f"one query, 100,000 codes, {k}", f"{v * 1e3:.3f} ms"] for k, v in query_latency().items()]
    for radius, n in ((3, 10_000), (3, 100_000), (3, 300_000), (6, 10_000), (6, 100_000), (6, 300_000)):
        r = radius_search_seconds(n, radius)
        rows.append(
            [
                f"dedup all pairs within {radius} bits, {n:,} codes: full scan / multi-hash",
                f"{r['full scan']:.2f} s / {r['multi-hash']:.2f} s",
            ]
        )
    memory = bytes_per_image()
    rows.append(["index on disk per image (codes + SQLite file list)", f"{memory['disk']:.0f} bytes"])
    rows.append(["index in memory per image (loaded, file list included)", f"{memory['memory']:.0f} bytes"])
    search = Table("Search speed and size (synthetic random 64-bit codes)", ["measure", "value"], rows)
    return Report([indexing, search])
