"""The Ray engine: image jobs, index builds and dedup's picture checks spread over a Ray cluster (or a Ray
instance started on this machine), under the same file contract as the local path. Imported only when a
command runs with `--engine ray` (it imports ray; `pip install "aetools[ray]"`).

    with session(RayEngine(address)):                    connect, or start a local instance (stopped after)
        for i, result in map_items(items, make_worker, engine): ...     any per-item work, on an actor pool
        build_index(model, folder, index_dir, engine)    -> (HashIndex, IndexReport)   shards, then merged
        find_duplicates_on_ray(index, radius, features, engine) -> Duplicates

How a job runs. The driver (the machine running the command) plans the work exactly as the local path does
(the same output planner, the same file listing) and hands the list to Ray Data; `map_batches` gives
batches of it to a pool of actors. Each actor builds its worker once (`make_worker()`: the model loaded
once, on the GPU Ray assigned it or on the CPU) and runs the local path's own per-item function on every
item, so what it writes is what the local path writes, byte for byte. Results stream back to the driver,
which keeps the progress bar and the list of failures.

Faults. An actor that dies (killed, out of memory, a crash inside a decoder) is restarted by Ray, its
model loaded again (restarts unbounded), and the batch it held is retried up to MAX_TASK_RETRIES times. A
batch that kills its worker on every try is then tried again one item at a time, so only the item that
kills the worker is lost; it comes back as `Lost` and the caller lists it as failed. Nothing can loop
forever. A killed worker never leaves half a file: every write is atomic (a hidden temporary, then a link
or rename), and the temporary it may leave is removed by the next write of that output.

Assumes every node sees the files at the same paths (a shared file system: NFS, a mounted bucket), has
aetools (the same version, with its weights) installed, and that the driver can read what it plans.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import ray

MAX_TASK_RETRIES = 3  # a batch is tried at most 1 + this many times before it is retried item by item
BATCH = 8  # items per batch given to an actor (an image job: files; an index build: shards)
MAX_BLOCKS = 20_000  # blocks in one dataset; above, a block holds several batches (driver memory stays small)
SHARDS_PER_WORKER = 4  # an index build cuts the files into this many shards per actor, for balance ...
MAX_SHARD = 2_000  # ... of at most this many files (a retried shard redoes at most this much)
ENCODE_THREADS = 2  # decoding threads per index-building actor (one CPU: decoding overlaps the network)
FEATURES_KEPT = 2_048  # verification features an actor keeps for the next pairs (16 KB each)


class DistributedError(Exception):
    """The cluster could not be used (unreachable, workers that cannot start); the message is one line."""


@dataclass(frozen=True)
class RayEngine:
    """Where and how wide a job runs.

    Args:
        address: a Ray cluster (`auto`: the one started on this machine with `ray start`; `HOST:6379`;
            `ray://HOST:10001`); None: RAY_ADDRESS if set, else a Ray instance started here for the
            command, with this machine's CPUs, and stopped after it.
        workers: actors in the pool; None: one per CPU of the cluster (one per GPU when they use GPUs).
        device: the command's --device: `cuda...` gives each actor a GPU, `auto` does when the cluster has
            GPUs, anything else runs the actors on CPUs.
    """

    address: str | None = None
    workers: int | None = None
    device: str = "auto"


@dataclass(frozen=True)
class Lost:
    """An item whose worker died on every try, even when tried alone (`reason`: one line)."""

    reason: str


# --------------------------------------------------------------------------------------------- session


@contextlib.contextmanager
def session(engine: RayEngine) -> Iterator[None]:
    """Ray connected (or a local instance started) for the block, quietly: Ray's own messages go to its
    log files, not to the command's console. A local instance started here is stopped at the end, on
    Ctrl-C too (its actors die with it); a cluster's actors die when this driver disconnects."""
    started = False
    if not ray.is_initialized():
        address = engine.address or os.environ.get("RAY_ADDRESS")
        try:
            with _core_log_quiet():
                _init(address)
        except Exception as e:  # noqa: BLE001  (Ray raises many kinds here; each is this one line)
            where = f" at {address}" if address else ""
            raise DistributedError(f"cannot start or reach Ray{where}: {_first_line(e)}") from None
        started = True
    try:
        with _quiet():
            yield
    finally:
        if started:
            ray.shutdown()


def _init(address: str | None) -> None:
    if address:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    else:
        ray.init(
            address="local",
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )


@contextlib.contextmanager
def _core_log_quiet() -> Iterator[None]:
    """Ray's C++ core on this process logs to the console: at every actor pool Ray Data makes, an error-level
    line that its own default of actor restarts (with arguments in the object store) may not restart (Ray
    2.60). Its level is set from RAY_BACKEND_LOG_LEVEL when ray.init starts it: fatal here unless the user
    set one, and the one line announcing that, written during ray.init, goes to /dev/null with anything else
    written to this process's standard error meanwhile. The processes of a local instance inherit the level;
    Ray's Python logs and its log files are unaffected."""
    if "RAY_BACKEND_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        del os.environ["RAY_BACKEND_LOG_LEVEL"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Ray Data's progress bars, start banners and per-block error logs off; the raylet's notices (a worker
    died, a task retried), which Ray prints on the driver's standard output, dropped: the command reports
    what became of each item itself, and Ray keeps them in its logs."""
    import ray._private.worker as ray_worker
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = {name: getattr(context, name) for name in ("enable_progress_bars", "print_on_execution_start")}
    for name in saved:
        setattr(context, name, False)
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.CRITICAL)
    printer = getattr(ray_worker, "print_to_stdstream", None)  # Ray's private API: if it moves, only noise returns
    if printer is not None:
        ray_worker.print_to_stdstream = partial(_drop_raylet_notices, printer)
    try:
        with warnings.catch_warnings():  # (Ray Data warns from its executor's thread, as the job runs)
            warnings.filterwarnings("ignore", message=".*minimum number of concurrent actors.*")  # a short list
            yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        data_logger.setLevel(level)
        if printer is not None:
            ray_worker.print_to_stdstream = printer


def _drop_raylet_notices(printer: Callable, data: dict, *args: Any, **kwargs: Any) -> None:
    if data.get("pid") != "raylet":
        printer(data, *args, **kwargs)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _root_cause(e: BaseException) -> str:
    """What Ray's error says went wrong at its root, in one line: the last line of the worker's traceback
    it carries ("RuntimeError: error: --device mps: ..." -> "--device mps: ..."), else its first line."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if line.strip()]
    last = re.fullmatch(r"(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit)): (.+)", lines[-1]) if lines else None
    if last:
        return last.group(1).removeprefix("error: ")
    return lines[0] if lines else type(e).__name__


# ----------------------------------------------------------------------------------------- the actor pool


class AetoolsWorker:
    """A Ray Data actor: builds its worker once (the model loaded once per actor), then maps every item of
    each batch through it. Items and results travel pickled, so any path (any bytes in a name) and any
    result object survive the trip."""

    def __init__(self, make_worker: Callable[[], Callable[[Any], Any]]):
        self.work = make_worker()

    def __call__(self, batch):
        import pyarrow as pa

        results = [pickle.dumps(self.work(pickle.loads(blob))) for blob in batch.column("item").to_pylist()]
        return pa.table({"i": batch.column("i"), "result": pa.array(results, pa.binary())})


def map_items(
    items: Sequence[Any],
    make_worker: Callable[[], Callable[[Any], Any]],
    engine: RayEngine,
    batch_size: int = BATCH,
) -> Iterator[tuple[int, Any]]:
    """Each item through the worker `make_worker()` builds once per actor -> (the item's index, its result),
    as results arrive (in no set order), every index exactly once. An item whose batch killed its worker on
    every try is tried again alone; if that kills it too, its result is `Lost`. `make_worker` must pickle
    (a module-level function, or a functools.partial of one with plain arguments). Needs a `session`."""
    pending = list(range(len(items)))
    for size in [batch_size] + ([1] if batch_size > 1 else []):
        if not pending:
            return
        returned = set()
        for i, result in _run_pass(items, pending, make_worker, engine, size):
            returned.add(i)
            yield i, result
        pending = [i for i in pending if i not in returned]
    tries = MAX_TASK_RETRIES + 1
    for i in pending:
        yield i, Lost(f"its worker died on each of {tries} tries, even when given it alone")


def _run_pass(items, indices: list[int], make_worker, engine: RayEngine, batch_size: int):
    import pyarrow as pa
    import ray.data

    gpus, size = _pool(engine)
    # A block per batch, and batches small enough that every actor gets one (a few items on many actors);
    # a long list has blocks of several batches, so that the driver keeps at most MAX_BLOCKS of them.
    batch_size = max(1, min(batch_size, math.ceil(len(indices) / abs(size))))
    rows = max(batch_size, math.ceil(len(indices) / MAX_BLOCKS))
    blobs = pa.array([pickle.dumps(items[i]) for i in indices], pa.binary())
    table = pa.table({"i": pa.array(indices, pa.int64()), "item": blobs})
    blocks = [table.slice(at, rows) for at in range(0, len(indices), rows)]
    compute = ray.data.ActorPoolStrategy(size=size) if size else ray.data.ActorPoolStrategy(min_size=1, max_size=-size)
    context = ray.data.DataContext.get_current()
    errored = context.max_errored_blocks
    context.max_errored_blocks = -1  # a batch that failed every retry is left out (and retried item by item)
    try:
        with warnings.catch_warnings():  # these two have no named form in map_batches yet (Ray 2.60)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            dataset = ray.data.from_arrow(blocks).map_batches(
                AetoolsWorker,
                fn_constructor_args=(make_worker,),
                batch_size=batch_size,
                batch_format="pyarrow",
                compute=compute,
                num_cpus=1,
                num_gpus=gpus,
                max_restarts=-1,  # an actor always comes back (preempted nodes, OOM kills) ...
                max_task_retries=MAX_TASK_RETRIES,  # ... but a batch that kills it is not retried forever
            )
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for i, blob in zip(batch.column("i").to_pylist(), batch.column("result").to_pylist()):
                yield i, pickle.loads(blob)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001  (what escapes Ray Data: workers that could not start, a lost cluster)
        raise DistributedError(f"the Ray job failed: {_root_cause(e)}") from None
    finally:
        context.max_errored_blocks = errored


def _pool(engine: RayEngine) -> tuple[float, int]:
    """(GPUs per actor, pool size): a fixed pool of `workers` actors where the cluster has room for them now,
    else (negative size) a pool that grows from 1 to `workers` as an autoscaling cluster adds nodes."""
    resources = ray.cluster_resources()
    cluster_gpus = int(resources.get("GPU", 0))
    device = engine.device.lower()
    gpus = 1.0 if device.startswith("cuda") or (device == "auto" and cluster_gpus) else 0.0
    if gpus and not cluster_gpus:  # actors asking for a GPU would wait for one forever
        raise DistributedError(f"--device {engine.device}: the Ray cluster has no GPU (ray start --num-gpus N)")
    room = max(1, cluster_gpus if gpus else int(resources.get("CPU", 1)))
    wanted = engine.workers or room
    return gpus, wanted if wanted <= room else -wanted


# ------------------------------------------------------------------------------------ index: shards, merged


@dataclass
class Shard:
    """What an actor returns for a shard of files: its shard index (the files `HashIndex.save` wrote, by
    name), the files that could not be indexed (path, reason), and how many it indexed."""

    files: dict[str, bytes]
    failures: list[tuple[str, str]] = field(default_factory=list)
    indexed: int = 0


def build_index(
    model,
    folder: str | Path,
    index_dir: str | Path | None,
    engine: RayEngine,
    model_ref: str | None = None,
    precision: str = "auto",
    recursive: bool | None = None,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[], None] | None = None,
):
    """Build the folder's index on the cluster -> (HashIndex, IndexReport), saved atomically in index_dir
    (default FOLDER/.aetools-index) as the index's next generation, as `hash-index` without --update does.

    The driver lists the files as `index_folder` does and cuts the list into shards; each actor encodes a
    shard (`encode_files`, the model loaded once per actor: `model_ref` and `precision`, on
    `engine.device`) into a shard index; the driver joins them with `merge_indexes`, in the order of the
    list. The result equals a single-machine build: the same records, ids, codes and turned codes, the same
    settings and manifest. `model` (loaded here) identifies the model: an actor that loads another is
    refused. One build or update at a time per index (`IndexLock`)."""
    from aetools.index.folder import IndexReport, exact_duplicates, folder_files, locked_index, model_identity
    from aetools.index.merge import merge_indexes
    from aetools.index.store import HashIndex

    with locked_index(folder, index_dir) as (folder, index_dir):
        report = IndexReport()
        files = folder_files(folder, index_dir, bool(recursive), report)
        settings = {"recursive": "yes" if recursive else "no", "root": str(folder.resolve())}
        model_id = model_identity(model)
        if on_start:
            on_start(len(files))
        make_worker = partial(_shard_worker, model_ref, engine.device, precision, settings, model_id)
        shards: dict[int, Shard] = {}  # the position of its first file in `files` -> the shard
        size = max(1, min(MAX_SHARD, math.ceil(len(files) / (SHARDS_PER_WORKER * _pool_width(engine)))))
        starts = list(range(0, len(files), size))
        lost: list[int] = []
        for k, result in map_items([[str(p) for p in files[at : at + size]] for at in starts], make_worker, engine, 1):
            if isinstance(result, Lost):
                lost.extend(range(starts[k], min(starts[k] + size, len(files))))
            else:
                shards[starts[k]] = result
                for _ in range(len(result.failures) + result.indexed if on_file else 0):
                    on_file()
        # a shard that killed its worker on every try: its files again, each a shard of its own
        for k, result in map_items([[str(files[at])] for at in lost], make_worker, engine, BATCH):
            if isinstance(result, Lost):
                report.failures.append((str(files[lost[k]]), f"not indexed: {result.reason}"))
            else:
                shards[lost[k]] = result
            if on_file:
                on_file()
        with tempfile.TemporaryDirectory(prefix="aetools-shards-") as scratch:
            sources = []
            for at in sorted(shards):
                report.failures.extend(shards[at].failures)
                sources.append(Path(scratch) / f"shard-{at:09d}")
                sources[-1].mkdir()
                for name, data in shards[at].files.items():
                    (sources[-1] / name).write_bytes(data)
            if sources:
                index = merge_indexes(sources, Path(scratch) / "merged")
                index.settings = dict(settings)  # not the scratch folders it was merged from
            else:
                index = HashIndex(model.config.bits, model_id, settings)
        report.failures.sort(key=lambda failure: failure[0])
        report.added = len(index)
        index.save(index_dir)
        report.exact = exact_duplicates(index)
        return index, report


def _pool_width(engine: RayEngine) -> int:
    _, size = _pool(engine)
    return abs(size)


def _shard_worker(model_ref, device: str, precision: str, settings: dict, model_id: str):
    """An actor's worker for index shards: the hashing model loaded once; -> encode(paths) -> Shard."""
    import numpy as np

    from aetools.index.encode import encode_files, load_hash_model
    from aetools.index.folder import model_identity
    from aetools.index.store import FileRecord, HashIndex, HashIndexError
    from aetools.inference import resolve_device

    model = load_hash_model(model_ref, resolve_device(device), precision)
    if model_identity(model) != model_id:
        raise HashIndexError(f"this worker's {model_ref or 'hash'} model is not the driver's; install the same weights")

    def encode(paths: list[str]) -> Shard:
        records, codes, turns, failures = [], [], [], []
        for loaded in encode_files(model, [Path(p) for p in paths], workers=ENCODE_THREADS, turns=True):
            if loaded.error:
                failures.append((str(loaded.path), loaded.error))
                continue
            records.append(
                FileRecord(str(loaded.path), loaded.size, loaded.mtime_ns, loaded.sha256, loaded.width, loaded.height)
            )
            codes.append(loaded.coded.code)
            turns.append(loaded.coded.turns)
        shard = HashIndex(model.config.bits, model_id, settings)
        if records:
            shard.add(records, np.stack(codes), np.stack(turns))
        with tempfile.TemporaryDirectory(prefix="aetools-shard-") as folder:
            shard.save(folder)
            files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
        return Shard(files, failures, len(records))

    return encode


# ------------------------------------------------------------------------------- dedup: the picture checks


def find_duplicates_on_ray(index, radius: int, features, engine: RayEngine, on_start=None, on_pair=None):
    """`aetools.index.folder.find_duplicates` with the picture checks on the cluster -> Duplicates.

    The candidate stage runs here (codes are 8 bytes an image: one machine holds millions). Pairs whose two
    images' features are in the index's cache are checked here too (a check is about a millisecond); the
    others go to the cluster as a second map, over candidate pairs: each actor reads the pictures it lacks
    features for (`file_features`, kept for its next pairs), runs `verify.agreement`, and returns the
    features it computed, which are cached here for the next dedup. The groups, and the copy each keeps,
    are made here as locally (`keep_originals`)."""
    from aetools.index.folder import Duplicates, candidate_pairs, keep_originals
    from aetools.index.verify import MIN_INLIERS, Features, agreement

    candidates = candidate_pairs(index, radius)
    if on_start:
        on_start(len(candidates))
    needed = sorted({i for pair in candidates for i in pair})
    cache = features.cache
    stored = cache.get({index.records[i].sha256 for i in needed}) if cache else {}
    known = {i: stored[index.records[i].sha256] for i in needed if index.records[i].sha256 in stored}
    matches: dict[tuple[int, int], int] = {}
    remote = []
    for a, b in sorted(candidates):
        if a in known and b in known:
            matches[(a, b)] = agreement(known[a], known[b])
            if on_pair:
                on_pair()
        else:
            blob = {i: known[i].to_bytes() for i in (a, b) if i in known}
            remote.append((a, b, index.records[a], index.records[b], blob.get(a), blob.get(b)))
    failed: dict[int, str] = {}
    computed: dict[str, bytes] = {}
    for k, result in map_items(remote, _pair_worker, engine, batch_size=64):
        a, b = remote[k][:2]
        if isinstance(result, Lost):
            failed.setdefault(a, f"not checked: {result.reason}")
            failed.setdefault(b, f"not checked: {result.reason}")
        else:
            count, errors, fresh = result
            if count is not None:
                matches[(a, b)] = count
            for i, reason in errors.items():
                failed.setdefault(i, reason)
            computed.update(fresh)
        if on_pair:
            on_pair()
    fresh_features = {sha: Features.from_bytes(data) for sha, data in computed.items()}
    if cache and fresh_features:
        cache.put(fresh_features)
    for i in needed:
        if i not in known and index.records[i].sha256 in fresh_features:
            known[i] = fresh_features[index.records[i].sha256]
    verified = {pair: (candidates[pair], count) for pair, count in sorted(matches.items()) if count >= MIN_INLIERS}
    failures = [(index.records[i].path, failed[i]) for i in sorted(failed)]
    return Duplicates(keep_originals(index, verified, known), len(candidates), failures)


def _pair_worker():
    """An actor's worker for candidate pairs: (a, b, record a, record b, features a or None, features b or
    None) -> (agreeing matches or None, {id: why it could not be read}, {sha256: features it computed})."""
    from aetools.index.folder import file_features
    from aetools.index.verify import Features, agreement

    kept: dict[int, Features | str] = {}

    def features_of(i: int, record, blob: bytes | None, fresh: dict) -> Features | str:
        if blob is not None:
            return Features.from_bytes(blob)
        if i not in kept:
            if len(kept) >= FEATURES_KEPT:
                kept.clear()
            kept[i] = file_features(record)
            if not isinstance(kept[i], str):
                fresh[record.sha256] = kept[i].to_bytes()
        return kept[i]

    def check(pair):
        a, b, record_a, record_b, blob_a, blob_b = pair
        fresh: dict[str, bytes] = {}
        found = {a: features_of(a, record_a, blob_a, fresh), b: features_of(b, record_b, blob_b, fresh)}
        errors = {i: f for i, f in found.items() if isinstance(f, str)}
        count = None if errors else agreement(found[a], found[b])
        return count, errors, fresh

    return check
