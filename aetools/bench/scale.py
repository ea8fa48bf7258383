"""How the hash index scales: a simulated photo library of N synthetic 64-bit codes, measured as `hash-search`
and `dedup` would use it (issue 17, item 5).

    library      N images: random codes, and DUPLICATE_SHARE of them replaced by near copies of another
                 image (code 0..DEFAULT_RADIUS bits from the original's; TURNED_SHARE of the copies are
                 quarter-turned, so their code is near one of the original's turned codes); every image has
                 its 3 turned codes, as `index_folder` stores them; file records as a camera names them
                 (/home/someone/Pictures/2026/07/IMG_00001234.jpg, sizes, mtimes, sha256, 4032 x 3024)
    search       one `HashIndex.search` (k = 10) of one code, and of the 8 orientations of a query (what
                 `hash-search` sends by default), on one thread as shipped: p50 and p99
    dedup        its candidate stage, `folder.candidate_pairs(index, DEFAULT_RADIUS)` (multi-hash table,
                 exact) on THREADS threads: seconds, pairs found, planted pairs among them (all, or the
                 table is wrong), pairs the random codes add
    memory       peak resident size of the process (VmHWM) while building and holding the index, and during
                 the candidate stage; each size in a fresh process (`in_fresh_process`) so one size's peak
                 is not another's; and the resident size a saved index takes once loaded (`loaded_memory`)

The verification stage (`verify.agreement`) needs pictures, which synthetic codes do not have; its cost is
measured on real ones (`verification_cost`: skimage's sample photos and edited copies of them), and dedup's
time follows the model of `dedup_seconds`:

    dedup = candidate stage + candidate pairs x seconds per check + images to describe x seconds per
            extraction / threads

(features are computed in a thread pool and cached by content in the index, so only a first dedup pays
the extraction; the checks run in one thread.)
"""

from __future__ import annotations

import gc
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aetools.bench.report import Table
from aetools.index.store import TURNS, FileRecord, HashIndex

DUPLICATE_SHARE = 0.01  # of the images, near copies of another image
TURNED_SHARE = 0.25  # of the copies, turned by a quarter turn
BITS = 64
K = 10
QUERIES = 500  # timed queries per kind (p99: the 5th slowest)
THREADS = 2  # the candidate stage's OpenMP threads (issue 17: dedup on 2 cores)
CHUNK = 250_000  # images generated and added at a time
SEARCH_TARGET_S = 0.005  # issue 17: search p50 of 1M codes under 5 ms on one thread
DEDUP_TARGET_S = 600.0  # dedup of 1M under 10 minutes on 2 cores
MEMORY_TARGET = 2 * 1024**3  # a loaded index of 1M photos within 2 GB


# ------------------------------------------------------------------------------------------- memory


def _status(field: str) -> int:
    """A `/proc/self/status` figure in bytes (VmRSS: resident now; VmHWM: the peak since start or the last
    `reset_peak`); 0 where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def resident_bytes() -> int:
    return _status("VmRSS")


def peak_bytes() -> int:
    """Peak resident size of this process: VmHWM, else getrusage's ru_maxrss (Linux: KiB)."""
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Start the peak (VmHWM) over from the current resident size (Linux >= 4.0: `clear_refs` 5), so a stage's
    peak can be read on its own; False where that is not possible (then peaks include earlier stages)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------- library


@dataclass
class SyntheticCodes:
    """The codes of a simulated library. codes (N, BITS / 8) and turns (N, TURNS, BITS / 8) packed uint8;
    planted (P, 2) int64: (original, copy) rows of the near copies; row i is the image given id i."""

    codes: np.ndarray
    turns: np.ndarray
    planted: np.ndarray


def _flip(packed: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    """Packed codes (..., bytes) with 0..most distinct bits flipped in each, the number uniform."""
    from aetools.index.store import pack_codes, unpack_codes

    shape = packed.shape
    flat = packed.reshape(-1, shape[-1])
    bits = flat.shape[1] * 8
    count = rng.integers(0, most + 1, len(flat))
    rank = np.argsort(np.argsort(rng.random((len(flat), bits)), axis=1), axis=1)  # a random order of the bits
    flipped = unpack_codes(flat) ^ (rank < count[:, None])
    return pack_codes(flipped).reshape(shape)


def synthetic_codes(
    n: int, radius: int, bits: int = BITS, duplicate_share: float = DUPLICATE_SHARE, seed: int = 0
) -> SyntheticCodes:
    """n random codes (+ 3 turned codes each), of which duplicate_share are near copies of another image:
    a plain copy's code and turned codes lie 0..radius bits from the original's; a copy turned by t quarter
    turns has the code of the original turned by t (0..radius bits off), and its own turns follow round."""
    rng = np.random.default_rng(seed)
    width = bits // 8
    codes = rng.integers(0, 256, (n, width), dtype=np.uint8)
    turns = rng.integers(0, 256, (n, TURNS, width), dtype=np.uint8)
    copies = np.sort(rng.choice(n, size=round(n * duplicate_share), replace=False))
    is_copy = np.zeros(n, dtype=bool)
    is_copy[copies] = True
    originals = rng.choice(np.flatnonzero(~is_copy), size=len(copies), replace=False)  # one copy each
    # orientation r of the original (0: as it is, 1-3: turned r quarter turns); a copy turned by t, turned
    # again by s, shows the original turned by (t + s) % 4
    oriented = np.concatenate([codes[originals][:, None], turns[originals]], axis=1)  # (P, 4, bytes)
    turn = np.where(rng.random(len(copies)) < TURNED_SHARE, rng.integers(1, 4, len(copies)), 0)
    order = (turn[:, None] + np.arange(4)) % 4  # (P, 4): the copy's orientation s -> the original's
    seen = np.take_along_axis(oriented, order[:, :, None], axis=1)
    seen = _flip(seen, radius, rng)
    codes[copies], turns[copies] = seen[:, 0], seen[:, 1:]
    planted = np.stack([np.minimum(originals, copies), np.maximum(originals, copies)], axis=1).astype(np.int64)
    return SyntheticCodes(codes, turns, planted)


def synthetic_records(start: int, n: int, rng: np.random.Generator) -> list[FileRecord]:
    """File records as a phone camera's library would have them, for image numbers start .. start + n."""
    shas = rng.bytes(32 * n).hex()
    sizes = rng.integers(1_500_000, 6_000_000, n).tolist()
    mtimes = (1_600_000_000 * 10**9 + rng.integers(0, 200_000_000 * 10**9, n)).tolist()
    portrait = (rng.random(n) < 0.3).tolist()
    records = []
    for k in range(n):
        i = start + k
        year, month = 2010 + (i // 600_000) % 17, 1 + (i // 50_000) % 12
        width, height = (3024, 4032) if portrait[k] else (4032, 3024)
        path = f"/home/someone/Pictures/{year}/{month:02d}/IMG_{i:08d}.jpg"
        records.append(FileRecord(path, sizes[k], mtimes[k], shas[64 * k : 64 * k + 64], width, height))
    return records


def build_index(library: SyntheticCodes, seed: int = 0, chunk: int = CHUNK) -> HashIndex:
    """A HashIndex of the library, filled a chunk at a time as `HashIndex.add(records, codes, turns)`; ids are
    the library's rows."""
    rng = np.random.default_rng(seed + 1)
    index = HashIndex(library.codes.shape[1] * 8, "synthetic")
    for start in range(0, len(library.codes), chunk):
        stop = min(start + chunk, len(library.codes))
        index.add(synthetic_records(start, stop - start, rng), library.codes[start:stop], library.turns[start:stop])
    return index


# -------------------------------------------------------------------------------------- measurements


def search_latency(index: HashIndex, probes: np.ndarray, k: int = K) -> np.ndarray:
    """Seconds of each `index.search(probe, k)`, probes (Q, codes per query, bytes): one query at a time."""
    for probe in probes[:5]:  # warm up: first-call allocations, page faults
        index.search(probe, k)
    times = np.empty(len(probes))
    for i, probe in enumerate(probes):
        start = time.perf_counter()
        index.search(probe, k)
        times[i] = time.perf_counter() - start
    return times


@dataclass
class ScaleResult:
    """One simulated library, measured in one process. Times in seconds, memory in bytes (process resident
    sizes: `baseline` after the imports, before any code was made)."""

    codes: int
    planted: int  # planted near-copy pairs
    threads: int  # the candidate stage's
    build_seconds: float  # codes generated, records made, index filled
    search_p50: float  # one code, k = 10, one thread
    search_p99: float
    search8_p50: float  # the 8 orientations of a query at once (hash-search's default), one thread
    search8_p99: float
    candidate_seconds: float  # folder.candidate_pairs(index, radius), wall time
    candidate_cpu_seconds: float  # its processor time, all threads: wall time x threads on idle cores
    candidates: int  # candidate pairs found
    planted_found: int  # planted pairs among them
    candidate_images: int  # distinct images in the candidate pairs: those whose features dedup needs
    baseline_bytes: int
    held_bytes: int  # resident while holding the built index
    build_peak_bytes: int  # peak while building and holding it
    candidate_peak_bytes: int  # peak during the candidate stage (the index held throughout)
    peak_resettable: bool  # False: candidate_peak_bytes includes the build's peak

    @property
    def random_candidates(self) -> int:
        """Pairs found that were not planted: random codes that happen to lie within the radius."""
        return self.candidates - self.planted_found


def simulate(
    n: int,
    radius: int | None = None,
    threads: int = THREADS,
    queries: int = QUERIES,
    seed: int = 0,
    save_to: str | Path | None = None,
) -> ScaleResult:
    """Build a simulated library of n images and measure it (see the module docstring). save_to: also save
    the index there (for `loaded_memory`)."""
    import faiss

    from aetools.index import folder

    radius = folder.DEFAULT_RADIUS if radius is None else radius
    gc.collect()
    baseline = resident_bytes()
    reset_peak()
    start = time.perf_counter()
    library = synthetic_codes(n, radius, seed=seed)
    index = build_index(library, seed)
    build_seconds = time.perf_counter() - start
    planted = library.planted
    del library
    gc.collect()
    held, build_peak = resident_bytes(), peak_bytes()

    rng = np.random.default_rng(seed + 2)
    width = index.bits // 8
    single = search_latency(index, rng.integers(0, 256, (queries, 1, width), dtype=np.uint8))
    oriented = search_latency(index, rng.integers(0, 256, (queries, 8, width), dtype=np.uint8))

    resettable = reset_peak()
    threads_before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        pairs = folder.candidate_pairs(index, radius)
        candidate_seconds, candidate_cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        faiss.omp_set_num_threads(threads_before)
    candidate_peak = peak_bytes()
    found = sum(pair in pairs for pair in map(tuple, planted.tolist()))
    if save_to is not None:
        index.save(save_to)
    return ScaleResult(
        codes=n,
        planted=len(planted),
        threads=threads,
        build_seconds=build_seconds,
        search_p50=float(np.percentile(single, 50)),
        search_p99=float(np.percentile(single, 99)),
        search8_p50=float(np.percentile(oriented, 50)),
        search8_p99=float(np.percentile(oriented, 99)),
        candidate_seconds=candidate_seconds,
        candidate_cpu_seconds=candidate_cpu,
        candidates=len(pairs),
        planted_found=found,
        candidate_images=len({i for pair in pairs for i in pair}),
        baseline_bytes=baseline,
        held_bytes=held,
        build_peak_bytes=build_peak,
        candidate_peak_bytes=candidate_peak,
        peak_resettable=resettable,
    )


@dataclass
class LoadedIndex:
    """A saved index loaded by a fresh process (`HashIndex.load`), as `hash-search` and `dedup` start.
    Memory in bytes."""

    codes: int
    disk_bytes: int  # the live generation's files
    load_seconds: float
    baseline_bytes: int  # resident before loading (the imports)
    resident_bytes: int  # resident after loading
    peak_bytes: int  # the process's peak, loading included

    @property
    def bytes_per_image(self) -> float:
        """What holding the loaded index costs per image: resident growth / images."""
        return (self.resident_bytes - self.baseline_bytes) / self.codes

    @property
    def load_peak_bytes(self) -> int:
        """The peak above the baseline: what loading needs at its most (the rows read before the records)."""
        return self.peak_bytes - self.baseline_bytes


def loaded_memory(folder: str | Path) -> LoadedIndex:
    """Load the index saved in `folder` and measure what it holds (run it in a fresh process)."""
    import faiss  # noqa: F401  (imported before the baseline: every process that loads an index has it)

    folder = Path(folder)
    gc.collect()
    baseline = resident_bytes()
    reset_peak()
    start = time.perf_counter()
    index = HashIndex.load(folder)
    seconds = time.perf_counter() - start
    gc.collect()
    live = (folder / "CURRENT").read_text().strip()
    disk = sum(p.stat().st_size for p in folder.iterdir() if p.stem.endswith(f"-{live}"))
    return LoadedIndex(len(index), disk, seconds, baseline, resident_bytes(), peak_bytes())


def in_fresh_process(fn: Callable, *args, **kwargs):
    """fn(*args, **kwargs) in a new Python process (spawned, not forked: it starts with no memory of this
    one), so its peak resident size is its own; fn and its result must pickle."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


# -------------------------------------------------------------------------------- verification cost

SAMPLE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field", "coins", "clock")
CAMERA_SIDE = 4032  # a phone camera's 12 MP JPEG (4032 x 3024): what extraction decodes in a real library


@dataclass
class VerificationCost:
    """What dedup's second stage costs per unit, on one thread, in seconds (medians).

    check_same: `verify.agreement` of a picture and an edited copy (one RANSAC fit when it agrees);
    check_different: of two different pictures (what a random candidate is: a second fit, against the
    mirror image, follows the failed first); extraction: `folder.file_features` of a 12 MP camera JPEG
    (stat, draft decoding at 1/8, border trim, ORB on the plain and mirrored image); extraction_pixels:
    `verify.features_of` alone, from decoded pixels (up to 1000 px)."""

    check_same: float
    check_different: float
    extraction: float
    extraction_pixels: float
    same_pairs: int
    same_verified: int  # of the same-picture pairs, those agreeing on at least MIN_INLIERS matches
    different_pairs: int
    different_verified: int  # of the different-picture pairs, those (wrongly) agreeing


def _sample_photos() -> list[np.ndarray]:
    """skimage's bundled sample photos, (H, W, 3) uint8 (grey ones repeated to 3 channels)."""
    import skimage.data

    photos = []
    for name in SAMPLE_PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        photos.append(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3])
    return photos


def verification_cost(repeats: int = 3, tmp: str | Path | None = None) -> VerificationCost:
    """Time the checks on pairs of skimage sample photos and their benchmark edits (`BENCHMARK_EDITS`), and
    the extraction of features from camera-sized JPEGs written to a temporary folder."""
    from PIL import Image

    from aetools.data.augment import BENCHMARK_EDITS
    from aetools.index.folder import file_features
    from aetools.index.verify import MIN_INLIERS, agreement, features_of

    def pixels(image: Image.Image) -> np.ndarray:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255

    def best_time(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    photos = [Image.fromarray(p) for p in _sample_photos()]
    originals = [features_of(pixels(im)) for im in photos]
    extraction_pixels = float(np.median([best_time(lambda im=im: features_of(pixels(im))) for im in photos]))
    same, same_ok = [], 0
    for im, base in zip(photos, originals):
        for edit, _ in BENCHMARK_EDITS.values():
            copy = features_of(pixels(edit(im)))
            same.append(best_time(lambda a=base, b=copy: agreement(a, b)))
            same_ok += agreement(base, copy) >= MIN_INLIERS
    different, different_ok = [], 0
    for i in range(len(originals)):
        for j in range(i + 1, len(originals)):
            different.append(best_time(lambda a=originals[i], b=originals[j]: agreement(a, b)))
            different_ok += agreement(originals[i], originals[j]) >= MIN_INLIERS

    with tempfile.TemporaryDirectory(dir=tmp) as folder:
        extraction = []
        for k, im in enumerate(photos[:4]):
            w, h = im.size
            factor = CAMERA_SIDE / max(w, h)
            path = Path(folder) / f"IMG_{k:04d}.jpg"
            im.resize((round(w * factor), round(h * factor)), Image.BICUBIC).save(path, quality=92)
            stat = path.stat()
            record = FileRecord(str(path), stat.st_size, stat.st_mtime_ns, "")
            extraction.append(best_time(lambda r=record: file_features(r)))
    return VerificationCost(
        check_same=float(np.median(same)),
        check_different=float(np.median(different)),
        extraction=float(np.median(extraction)),
        extraction_pixels=extraction_pixels,
        same_pairs=len(same),
        same_verified=int(same_ok),
        different_pairs=len(different),
        different_verified=int(different_ok),
    )


def dedup_seconds(
    candidate_seconds: float,
    pairs: int,
    images: int,
    cost: VerificationCost,
    threads: int = THREADS,
    different_share: float = 0.0,
    cached: bool = False,
) -> float:
    """dedup's wall time by the model: candidate stage + pairs x seconds per check + images x seconds per
    extraction / threads (features are extracted in a pool of threads, `FeatureSource`; checks run in one).
    different_share: of the pairs, those of different pictures (each a costlier check); cached: the
    features are in the index's cache already (a second dedup)."""
    check = (1 - different_share) * cost.check_same + different_share * cost.check_different
    extraction = 0.0 if cached else images * cost.extraction / threads
    return candidate_seconds + pairs * check + extraction


# ------------------------------------------------------------------------------------------ report


@dataclass
class ScaleReport:
    results: list[ScaleResult]
    loaded: LoadedIndex | None
    cost: VerificationCost | None


def run_scale(
    sizes: list[int],
    threads: int = THREADS,
    queries: int = QUERIES,
    load_size: int | None = 1_000_000,
    verification: bool = True,
    tmp: str | Path | None = None,
    on_step: Callable[[str], None] = lambda _: None,
) -> ScaleReport:
    """Every size simulated in its own fresh process; the size `load_size` (if among sizes) also saved and
    loaded by another fresh process; then the verification cost. on_step(what is starting): progress."""
    results, loaded = [], None
    with tempfile.TemporaryDirectory(dir=tmp) as folder:
        for n in sizes:
            on_step(f"simulating {n:,} codes")
            save = folder if n == load_size else None
            results.append(in_fresh_process(simulate, n, threads=threads, queries=queries, save_to=save))
            if save:
                on_step(f"loading the saved index of {n:,} codes")
                loaded = in_fresh_process(loaded_memory, folder)
    cost = None
    if verification:
        on_step("timing the verification")
        cost = verification_cost(tmp=tmp)
    return ScaleReport(results, loaded, cost)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n:,}"


def _mb(n: float) -> str:
    return f"{n / 1024**2:,.0f} MB"


def scale_tables(report: ScaleReport) -> list[Table]:
    """The report as tables: one row per simulated size, the loaded index, the verification cost and the
    dedup time model; notes say which target each figure meets."""
    tables = []
    columns = [
        "codes",
        "search p50 / p99 (1 code)",
        "search p50 / p99 (8 orientations)",
        "candidate stage: wall (processor)",
        "candidates (planted found / planted, random)",
        "peak: build + hold",
        "peak: candidate stage",
        "build",
    ]
    rows = []
    for r in report.results:
        rows.append(
            [
                _size(r.codes),
                f"{_ms(r.search_p50)} / {_ms(r.search_p99)}",
                f"{_ms(r.search8_p50)} / {_ms(r.search8_p99)}",
                f"{r.candidate_seconds:.0f} s ({r.candidate_cpu_seconds:.0f} s)",
                f"{r.candidates:,} ({r.planted_found:,} / {r.planted:,}, {r.random_candidates:,})",
                _mb(r.build_peak_bytes),
                _mb(r.candidate_peak_bytes),
                f"{r.build_seconds:.0f} s",
            ]
        )
    notes = []
    if report.results:
        r = report.results[0]
        notes.append(
            f"Search: HashIndex.search, k = {K}, one query at a time on one thread, {QUERIES} queries per kind. "
            f"Candidate stage: folder.candidate_pairs at the default radius on {r.threads} threads; in brackets its "
            f"processor time over all threads (on {r.threads} idle cores, about {r.threads}x the wall time). Peaks "
            f"are the whole process's resident size (VmHWM), each size in a fresh process; its baseline after the "
            f"imports (Python, numpy, faiss, torch) was {_mb(r.baseline_bytes)}."
        )
    tables.append(
        Table("Scale: synthetic 64-bit codes, 1% planted near copies, 3 turned codes per image", columns, rows, notes)
    )

    if report.loaded is not None:
        lo = report.loaded
        rows = [
            ["images", f"{lo.codes:,}"],
            ["on disk", f"{_mb(lo.disk_bytes)} ({lo.disk_bytes / lo.codes:.0f} bytes per image)"],
            [
                "held in memory once loaded",
                f"{_mb(lo.resident_bytes - lo.baseline_bytes)} ({lo.bytes_per_image:.0f} bytes per image)",
            ],
            ["peak while loading (above the baseline)", _mb(lo.load_peak_bytes)],
            ["load time", f"{lo.load_seconds:.1f} s"],
        ]
        tables.append(Table("A saved index loaded by a fresh process (HashIndex.load)", ["measure", "value"], rows))

    if report.cost is not None:
        c = report.cost
        rows = [
            ["check, same picture (verify.agreement)", _ms(c.check_same)],
            ["check, different pictures", _ms(c.check_different)],
            ["features of a 12 MP camera JPEG (file_features)", _ms(c.extraction)],
            ["features from decoded pixels (features_of)", _ms(c.extraction_pixels)],
        ]
        notes = [
            f"Medians on one thread over skimage's sample photos: {c.same_pairs} pairs of a photo and an edited copy "
            f"({c.same_verified} verified), {c.different_pairs} pairs of different photos ({c.different_verified} "
            f"wrongly verified)."
        ]
        tables.append(Table("Verification cost per unit", ["unit", "seconds"], rows, notes))
        rows = []
        for r in report.results:
            first = dedup_seconds(r.candidate_seconds, r.candidates, r.candidate_images, c, r.threads)
            again = dedup_seconds(r.candidate_seconds, r.candidates, r.candidate_images, c, r.threads, cached=True)
            rows.append(
                [_size(r.codes), f"{r.candidates:,}", f"{r.candidate_images:,}", f"{first:.0f} s", f"{again:.0f} s"]
            )
        notes = [
            "dedup = candidate stage + pairs x check (same picture) + images x extraction / threads; a second run "
            "finds the features in the index's cache."
        ]
        columns = ["codes", "candidate pairs", "images to describe", "dedup, first run", "dedup, features cached"]
        tables.append(Table("dedup wall time by the model", columns, rows, notes))
    return tables
