"""The hash index on disk: binary codes in a faiss index, the files they came from in an SQLite sidecar.

    <folder>/.aetools-index/          (the default place; --index PATH anywhere else)
        CURRENT                       the live generation, e.g. "7"; replaced atomically (temp + rename)
        codes-<gen>.faiss             faiss IndexBinaryIDMap2(IndexBinaryFlat(bits)): id -> code
        files-<gen>.sqlite            id -> path, size, mtime, sha256; meta: the model's identity, bits

Two files cannot be renamed together, so a save never touches the live pair: it writes generation g + 1
beside it, and only then points CURRENT at it. A crash at any moment leaves CURRENT naming a complete
pair (the old one until the switch, the new one after); stale generations are removed after the switch.

Bit order: code bit i (the model's unit i) is bit i % 8 of byte i // 8, least significant first, which is
how faiss packs bits itself (`faiss.fvecs2bitvecs`), so Hamming distances and faiss's hash-table indexes
see the model's bits in the model's order.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CURRENT = "CURRENT"
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
    (size and mtime), and to find exact copies (sha256 of the bytes)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


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
        self.records: dict[int, FileRecord] = {}
        self.next_id = 0

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: list[FileRecord], codes: np.ndarray) -> np.ndarray:
        """records and their packed codes (N, bits / 8) uint8 -> the new ids (N,) int64."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.shape != (len(records), self.bits // 8):
            raise ValueError(f"codes of shape {codes.shape} for {len(records)} records of {self.bits} bits")
        ids = np.arange(self.next_id, self.next_id + len(records), dtype=np.int64)
        if len(records):
            self.faiss.add_with_ids(codes, ids)
        self.records.update(zip(ids.tolist(), records))
        self.next_id += len(records)
        return ids

    def remove(self, ids: list[int]) -> None:
        if ids:
            self.faiss.remove_ids(np.asarray(ids, dtype=np.int64))
        for i in ids:
            self.records.pop(i, None)

    def code(self, id_: int) -> np.ndarray:
        """The packed code stored for `id_`, (bits / 8,) uint8."""
        return self.faiss.reconstruct(int(id_))

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
        """Write a new generation into `folder` and switch to it atomically (see the module docstring)."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        generation = _current_generation(folder) + 1
        codes_path, files_path = _paths(folder, generation)
        for stale in (codes_path, files_path):  # left by a crash before an earlier switch
            stale.unlink(missing_ok=True)
        faiss.write_index_binary(self.faiss, str(codes_path))
        with sqlite3.connect(files_path) as db:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,"
                " mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX files_sha256 ON files (sha256)")
            meta = {**self.settings, "bits": str(self.bits), "model_id": self.model_id, "next_id": str(self.next_id)}
            db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            db.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?)",
                ((i, r.path, r.size, r.mtime_ns, r.sha256) for i, r in self.records.items()),
            )
        db.close()
        _fsync(codes_path)
        _fsync(files_path)
        _write_current(folder, generation)
        for path in folder.iterdir():  # earlier generations, now unreachable
            if path.name.startswith(("codes-", "files-")) and path not in (codes_path, files_path):
                path.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: str | Path, model_id: str | None = None) -> HashIndex:
        """Read the live generation; with `model_id`, refuse an index made by another model."""
        import faiss

        folder = Path(folder)
        generation = _current_generation(folder)
        if generation == 0:
            raise HashIndexError(f"{folder}: no index here (build one with aetools hash-index)")
        codes_path, files_path = _paths(folder, generation)
        try:
            db = sqlite3.connect(f"file:{files_path}?mode=ro", uri=True)
            with db:
                meta = dict(db.execute("SELECT key, value FROM meta"))
                rows = db.execute("SELECT id, path, size, mtime_ns, sha256 FROM files").fetchall()
            db.close()
            index = faiss.read_index_binary(str(codes_path))
        except (sqlite3.Error, RuntimeError) as e:
            raise HashIndexError(f"{folder}: unreadable index ({str(e).splitlines()[0]})") from None
        if model_id is not None and meta["model_id"] != model_id:
            raise HashIndexError(
                f"{folder}: built with another model ({meta['model_id'][:12]}), not this one ({model_id[:12]});"
                " use the same --model, or rebuild the index"
            )
        result = cls.__new__(cls)
        result.bits, result.model_id, result.next_id = (
            int(meta.pop("bits")),
            meta.pop("model_id"),
            int(meta.pop("next_id")),
        )
        result.settings = meta
        result.faiss = index  # read back as the IndexBinaryIDMap2 it was written as
        result.records = {i: FileRecord(p, s, m, h) for i, p, s, m, h in rows}
        if result.faiss.ntotal != len(result.records):
            raise HashIndexError(f"{folder}: the codes and the file list disagree; rebuild the index")
        return result


def _paths(folder: Path, generation: int) -> tuple[Path, Path]:
    return folder / f"codes-{generation}.faiss", folder / f"files-{generation}.sqlite"


def _current_generation(folder: Path) -> int:
    try:
        return int((folder / CURRENT).read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0


def _write_current(folder: Path, generation: int) -> None:
    tmp = folder / f".{CURRENT}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(f"{generation}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / CURRENT)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
