"""The hash index on disk: binary codes in a faiss index, the files they came from in an SQLite sidecar.

    <folder>/.aetools-index/          (the default place; --index PATH anywhere else)
        AETOOLS-INDEX.json            the manifest: every file of the folder that aetools wrote
        CURRENT                       the live generation, e.g. "7"; replaced atomically (temp + rename)
        codes-<gen>.faiss             faiss IndexBinaryIDMap2(IndexBinaryFlat(bits)): id -> code
        turns-<gen>.faiss             the same for the image turned by 90, 180, 270 degrees: 4 id + t - 1
        files-<gen>.sqlite            id -> path, size, mtime, sha256, width, height; meta: the model's
                                      identity, bits, the index format
        features-<version>.sqlite     sha256 -> the verification features of those bytes (`verify.Features`),
                                      computed when an image is first a candidate; immutable rows, so
                                      shared by every generation

Several files cannot be renamed together, so a save never touches the live generation: it writes
generation g + 1 beside it, and only then points CURRENT at it. A crash at any moment leaves CURRENT naming
a complete generation (the old one until the switch, the new one after). The previous generation is kept
until the next save, so a reader that read CURRENT just before a switch still finds every file it names
(and `load` reads again if CURRENT moved while it read); older ones are removed after the switch.

The folder is the index's own: the manifest lists every file aetools wrote there, a file is deleted only if
the manifest lists it, and a folder holding anything else (a user's photos or documents, given as --index
by mistake) is refused before anything is written (`claim_folder`). A folder written by an older aetools,
without a manifest, is adopted when it holds nothing but index files.

Bit order: code bit i (the model's unit i) is bit i % 8 of byte i // 8, least significant first, which is
how faiss packs bits itself (`faiss.fvecs2bitvecs`), so Hamming distances and faiss's hash-table indexes
see the model's bits in the model's order.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CURRENT = "CURRENT"
MANIFEST = "AETOOLS-INDEX.json"
LOCK = "LOCK"
# Names an index folder may hold (an older aetools's, without a manifest, is recognised by them alone).
INDEX_FILE = re.compile(
    r"(CURRENT|LOCK|(codes|turns)-\d+\.faiss|files-\d+\.sqlite|features-[\w.-]+\.sqlite(-journal)?)"
)
FORMAT = "2"  # 2: turned codes, pixel sizes and the features cache; 1 (no "format" key): codes only
TURNS = 3  # codes of the image turned by 90, 180 and 270 degrees, counter-clockwise
FEW_QUERIES = 16  # up to this many queries at once: one OpenMP thread (see HashIndex.search)


class HashIndexError(Exception):
    """An index that cannot be used as asked; the message is one line for the user."""


def pack_codes(bits: np.ndarray) -> np.ndarray:
    """(N, B) bools or 0/1 -> (N, B / 8) uint8, bit i of a code in bit i % 8 of byte i // 8 (faiss order)."""
    bits = np.asarray(bits)
    if bits.ndim != 2 or bits.shape[1] % 8:
        raise ValueError(f"codes of shape {bits.shape}: expected (N, bits) with bits a multiple of 8")
    return np.packbits(bits.astype(bool), axis=1, bitorder="little")


def unpack_codes(packed: np.ndarray) -> np.ndarray:
    """The inverse of `pack_codes`: (N, B / 8) uint8 -> (N, B) bool."""
    return np.unpackbits(packed, axis=1, bitorder="little").astype(bool)


@dataclass(frozen=True)
class FileRecord:
    """What the sidecar knows about an indexed file: enough to tell, without decoding it, whether it changed
    (size and mtime), to find exact copies (sha256 of the bytes), and to choose which copy to keep (its
    pixel size, as displayed: EXIF orientation applied)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int = 0
    height: int = 0


class HashIndex:
    """Codes and their files, in memory; `save` and `load` move them to and from disk.

    Args:
        bits: code length (a multiple of 8).
        model_id: identifies the model that made the codes (its weights' sha256); codes from different
            models are not comparable, so an index is refused by any other model.
    """

    def __init__(self, bits: int, model_id: str, settings: dict[str, str] | None = None):
        import faiss

        self.bits, self.model_id = bits, model_id
        self.settings = dict(settings or {})  # how the index was built (e.g. recursive), kept in the sidecar
        self.faiss = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(bits))
        self.turned = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(bits))  # id 4 i + t - 1: image i turned t
        self.records: dict[int, FileRecord] = {}
        self.next_id = 0

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: list[FileRecord], codes: np.ndarray, turns: np.ndarray | None = None) -> np.ndarray:
        """records, their packed codes (N, bits / 8) uint8 and, optionally, the codes of each image turned
        by 90, 180 and 270 degrees (N, TURNS, bits / 8) -> the new ids (N,) int64."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.shape != (len(records), self.bits // 8):
            raise ValueError(f"codes of shape {codes.shape} for {len(records)} records of {self.bits} bits")
        ids = np.arange(self.next_id, self.next_id + len(records), dtype=np.int64)
        if len(records):
            self.faiss.add_with_ids(codes, ids)
        if turns is not None and len(records):
            turns = np.ascontiguousarray(turns, dtype=np.uint8).reshape(len(records) * TURNS, -1)
            self.turned.add_with_ids(turns, (4 * ids[:, None] + np.arange(TURNS)).ravel())
        self.records.update(zip(ids.tolist(), records))
        self.next_id += len(records)
        return ids

    def remove(self, ids: list[int]) -> None:
        if ids:
            self.faiss.remove_ids(np.asarray(ids, dtype=np.int64))
            self.turned.remove_ids((4 * np.asarray(ids, dtype=np.int64)[:, None] + np.arange(TURNS)).ravel())
        for i in ids:
            self.records.pop(i, None)

    def code(self, id_: int) -> np.ndarray:
        """The packed code stored for `id_`, (bits / 8,) uint8."""
        return self.faiss.reconstruct(int(id_))

    def turns(self, id_: int) -> np.ndarray | None:
        """The codes of image `id_` turned by 90, 180, 270 degrees, (TURNS, bits / 8), if stored."""
        try:
            return np.stack([self.turned.reconstruct(4 * int(id_) + t) for t in range(TURNS)])
        except RuntimeError:  # not stored (an index filled without them)
            return None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Everything stored, as arrays: (ids (N,), codes (N, bytes), turned codes (M, bytes), the id of the
        image each turned code belongs to (M,))."""
        import faiss

        def unpack(table) -> tuple[np.ndarray, np.ndarray]:
            ids = faiss.vector_to_array(table.id_map)
            codes = faiss.vector_to_array(faiss.downcast_IndexBinary(table.index).xb)
            return ids, codes.reshape(len(ids), table.code_size)  # the width given: no codes is (0, bytes)

        ids, codes = unpack(self.faiss)
        turned_ids, turned = unpack(self.turned)
        return ids, codes, turned, turned_ids // 4

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Packed query codes (Q, bits / 8) -> (Hamming distances (Q, k) int32, ids (Q, k) int64), nearest
        first; -1 ids pad the rows when the index holds fewer than k codes.

        A few queries run on one OpenMP thread: faiss would split each over all cores, and waking the
        threads costs far more than a scan of a million 64-bit codes (tens of ms instead of under 1 ms on a
        small machine). Many queries are spread over the cores."""
        import faiss

        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if len(codes) <= FEW_QUERIES else threads)
        try:
            return self.faiss.search(codes, k)
        finally:
            faiss.omp_set_num_threads(threads)

    # ---------------------------------------------------------------------------------------- disk

    def save(self, folder: str | Path) -> None:
        """Write a new generation into `folder` and switch to it atomically (see the module docstring).
        A failed write (a full disk) removes what it wrote of the new generation and raises a one-line
        HashIndexError; the live generation is untouched."""
        import faiss

        folder = Path(folder)
        manifest = claim_folder(folder)
        previous = _current_generation(folder)
        generation = previous + 1
        codes_path, turns_path, files_path = paths = _paths(folder, generation)
        manifest.record(folder, [CURRENT, *(p.name for p in paths)])  # before they exist: a crash leaves them ours
        try:
            for stale in paths:  # left by a crash before an earlier switch
                stale.unlink(missing_ok=True)
            faiss.write_index_binary(self.faiss, str(codes_path))
            faiss.write_index_binary(self.turned, str(turns_path))
            self._write_files(files_path)
            for path in paths:
                _fsync(path)
            _write_current(folder, generation)
        except (OSError, RuntimeError, sqlite3.Error) as e:
            for path in paths:
                _unlink_quietly(path)
            reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
            raise HashIndexError(
                f"{folder}: could not write the index ({reason}); the previous one is unchanged"
            ) from None
        # Generations other than the new and the previous one are unreachable: a reader holds at most the one
        # it read CURRENT for (and reads again if that one went while it read).
        retired = [name for name in manifest.files if _generation_of(name) not in (None, generation, previous)]
        for name in retired:
            _unlink_quietly(folder / name)
        manifest.forget(folder, retired)

    def _write_files(self, files_path: Path) -> None:
        """The SQLite sidecar of a generation: meta and the file records."""
        with sqlite3.connect(files_path) as db:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,"
                " mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL)"
            )
            db.execute("CREATE INDEX files_sha256 ON files (sha256)")
            meta = {
                **self.settings,
                "format": FORMAT,
                "bits": str(self.bits),
                "model_id": self.model_id,
                "next_id": str(self.next_id),
            }
            db.executemany("INSERT INTO meta VALUES (?, ?)", ((k, _to_db(v)) for k, v in meta.items()))
            db.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((i, _to_db(r.path), r.size, r.mtime_ns, r.sha256, r.width, r.height) for i, r in self.records.items()),
            )
        db.close()

    @classmethod
    def load(cls, folder: str | Path, model_id: str | None = None) -> HashIndex:
        """Read the live generation; with `model_id`, refuse an index made by another model. If an update
        switched generations while this read (and retired the one being read), read the new one."""
        folder = Path(folder)
        for attempt in range(3):
            generation = _current_generation(folder)
            try:
                return cls._load_generation(folder, generation, model_id)
            except HashIndexError:
                if attempt == 2 or _current_generation(folder) == generation:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _load_generation(cls, folder: Path, generation: int, model_id: str | None) -> HashIndex:
        import faiss

        if generation == 0:
            raise HashIndexError(f"{folder}: no index here (build one with aetools hash-index)")
        codes_path, turns_path, files_path = _paths(folder, generation)
        try:
            db = sqlite3.connect(f"file:{files_path}?mode=ro", uri=True)
            with db:
                meta = {k: _from_db(v) for k, v in db.execute("SELECT key, value FROM meta")}
                if meta.get("format") != FORMAT:
                    raise HashIndexError(
                        f"{folder}: made by an older aetools (index format {meta.get('format', '1')}, now {FORMAT});"
                        " rebuild it with aetools hash-index"
                    )
                rows = db.execute("SELECT id, path, size, mtime_ns, sha256, width, height FROM files").fetchall()
            db.close()
            index = faiss.read_index_binary(str(codes_path))
            turned = faiss.read_index_binary(str(turns_path))
            bits, next_id, stored_model = int(meta.pop("bits")), int(meta.pop("next_id")), meta.pop("model_id")
        except (sqlite3.Error, RuntimeError, KeyError, ValueError) as e:
            raise HashIndexError(f"{folder}: unreadable index ({str(e).splitlines()[0]}); rebuild it") from None
        if model_id is not None and stored_model != model_id:
            raise HashIndexError(
                f"{folder}: built with another model ({stored_model[:12]}), not this one ({model_id[:12]});"
                " use the same --model, or rebuild the index"
            )
        meta.pop("format")
        result = cls.__new__(cls)
        result.bits, result.model_id, result.next_id, result.settings = bits, stored_model, next_id, meta
        result.faiss, result.turned = index, turned  # read back as the IndexBinaryIDMap2s they were written as
        result.records = {row[0]: FileRecord(_from_db(row[1]), *row[2:]) for row in rows}
        if result.faiss.ntotal != len(result.records):
            raise HashIndexError(f"{folder}: the codes and the file list disagree; rebuild the index")
        return result


class Manifest:
    """AETOOLS-INDEX.json: the names of the files aetools wrote in an index folder, the only ones it may
    delete there. Written atomically; changed only under the index's update lock (or by a lone save)."""

    def __init__(self, files: list[str]):
        self.files = sorted(set(files))

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        try:
            data = json.loads((folder / MANIFEST).read_text())
            files = data["files"]
            if data.get("kind") != "aetools-index" or not all(isinstance(f, str) for f in files):
                raise ValueError
            files = [f for f in files if INDEX_FILE.fullmatch(f)]  # an edited manifest cannot name other files
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise HashIndexError(f"{folder / MANIFEST}: damaged; delete the index folder and rebuild it") from None
        return cls(files)

    def write(self, folder: Path) -> None:
        from aetools.outputs import atomic_write_bytes

        text = json.dumps({"kind": "aetools-index", "format": FORMAT, "files": self.files}, indent=1)
        atomic_write_bytes(folder / MANIFEST, text.encode())

    def record(self, folder: Path, names: list[str]) -> None:
        if not set(names) <= set(self.files):
            self.files = sorted(set(self.files) | set(names))
            self.write(folder)

    def forget(self, folder: Path, names: list[str]) -> None:
        if set(names) & set(self.files):
            self.files = sorted(set(self.files) - set(names))
            self.write(folder)


def claim_folder(folder: str | Path) -> Manifest:
    """Make sure `folder` is an index folder aetools may write in, and return its manifest; a one-line
    HashIndexError otherwise, before anything is written.

    A new or empty folder becomes one (its manifest written). A folder with a manifest is one. A folder
    without one is adopted only if every name in it is an index file's (an index from an older aetools);
    anything else there (photos, documents: --index given a folder of the user's) is refused, so nothing of
    the user's is ever deleted, truncated or replaced."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        manifest = Manifest.read(folder)
        names = sorted(n for n in os.listdir(folder) if not _own_temporary(n))
    except OSError as e:
        if folder.exists() and not folder.is_dir():
            raise HashIndexError(f"{folder}: is a file, not an index folder") from None
        raise HashIndexError(f"{folder}: cannot create the index there ({e.strerror or e})") from None
    foreign = [n for n in names if n != MANIFEST and not INDEX_FILE.fullmatch(n)]
    if manifest is None and foreign:  # (with a manifest, a stranger's file there is left alone, never deleted)
        shown = ", ".join(_shown(n) for n in foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise HashIndexError(
            f"{folder}: holds files that are not an aetools index ({shown}); give --index a new or empty folder"
        )
    if manifest is None:
        manifest = Manifest([n for n in names if INDEX_FILE.fullmatch(n)])
        try:
            manifest.write(folder)
        except OSError as e:
            raise HashIndexError(f"{folder}: cannot create the index there ({e.strerror or e})") from None
    return manifest


class IndexLock:
    """An exclusive lock on an index folder while it is being updated (`index_folder`), so two updates of
    one index cannot interleave (each would otherwise delete the other's unfinished generation as stale).
    Taken without waiting: a second updater gets a one-line HashIndexError naming the holder. Readers need
    no lock: CURRENT always names a complete generation. The lock dies with its process (flock), so a
    killed run leaves nothing to clean up."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK
        self.file = None

    def __enter__(self) -> IndexLock:
        import fcntl

        claim_folder(self.path.parent).record(self.path.parent, [LOCK])  # never a LOCK file of the user's
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise HashIndexError(
                f"{self.path.parent}: being updated by {holder}; run again when it has finished"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"aetools process {os.getpid()}\n")
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()  # closing releases the lock


class FeatureCache:
    """features.sqlite in an index folder: sha256 of a file's bytes -> its verification features. Rows never
    change (the same bytes have the same features), so it needs no generations: a crash can only leave rows
    no generation uses yet, and concurrent writers are serialised by SQLite's lock."""

    def __init__(self, folder: Path):
        from aetools.index.verify import FEATURES_VERSION

        self.path = Path(folder) / f"features-{FEATURES_VERSION}.sqlite"  # other settings: another file

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():  # a cache file only in a folder that is an index's, recorded as its file
            claim_folder(self.path.parent).record(self.path.parent, [self.path.name])
        db = sqlite3.connect(self.path, timeout=60)
        db.execute("CREATE TABLE IF NOT EXISTS features (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL)")
        return db

    def get(self, shas: set[str]):
        """-> {sha256: verify.Features} for those cached."""
        from aetools.index.verify import Features

        if not shas or not self.path.exists():
            return {}
        found = {}
        db = self._connect()
        try:
            wanted = sorted(shas)
            for at in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
                chunk = wanted[at : at + 500]
                query = f"SELECT sha256, data FROM features WHERE sha256 IN ({','.join('?' * len(chunk))})"
                found.update((sha, Features.from_bytes(data)) for sha, data in db.execute(query, chunk))
        except sqlite3.Error:
            return {}  # a damaged cache is only lost work: the features are computed again
        finally:
            db.close()
        return found

    def put(self, items: dict) -> None:
        """Cache {sha256: verify.Features}; a cache that cannot be written is skipped (only speed is lost)."""
        if not items:
            return
        try:
            db = self._connect()
            with db:
                db.executemany(
                    "INSERT OR IGNORE INTO features VALUES (?, ?)", ((k, v.to_bytes()) for k, v in items.items())
                )
            db.close()
        except (sqlite3.Error, OSError, HashIndexError):
            pass


def _generation_of(name: str) -> int | None:
    """The generation a file of the index belongs to (codes-7.faiss -> 7), None for the others."""
    match = re.fullmatch(r"(?:codes|turns|files)-(\d+)\.(?:faiss|sqlite)", name)
    return int(match.group(1)) if match else None


def _own_temporary(name: str) -> bool:
    """A temporary of `outputs.temporary_beside` for one of the index's files (`.CURRENT.123-ab12cd34.tmp`)."""
    match = re.fullmatch(r"\.(.+)\.\d+-[0-9a-f]+\.tmp", name)
    return bool(match) and (match.group(1) == MANIFEST or bool(INDEX_FILE.fullmatch(match.group(1))))


def _shown(name: str) -> str:
    """A file name as a one-line message can show it: control characters and undecodable bytes escaped."""
    from aetools.outputs import display_name

    return display_name(name)


def _to_db(text: str) -> str | bytes:
    """A path for SQLite: a str, or its bytes when the name is not valid UTF-8 (os.listdir decodes such bytes
    to lone surrogates, which SQLite refuses); a TEXT column keeps either, and `_from_db` gives it back."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text)


def _from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _paths(folder: Path, generation: int) -> tuple[Path, Path, Path]:
    return (
        folder / f"codes-{generation}.faiss",
        folder / f"turns-{generation}.faiss",
        folder / f"files-{generation}.sqlite",
    )


def _current_generation(folder: Path) -> int:
    try:
        return int((folder / CURRENT).read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0


def _write_current(folder: Path, generation: int) -> None:
    from aetools.outputs import atomic_write_bytes

    atomic_write_bytes(folder / CURRENT, f"{generation}\n".encode())


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
