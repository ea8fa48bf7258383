"""The near-duplicate browser: the groups of a folder's index (`aetools hash-index DIR`), and its files and
their thumbnails by index id. A request names an id, never a path: only files the index lists are ever read,
and one is served only while it is still what was indexed (`copy_verified`).

    browser = DuplicateBrowser(Path("photos/.aetools-index"), root=Path("photos"))
    browser.groups(radius=5)          -> [[Member(id, path, distance, exact, about)], ...]
    browser.copy_verified(id, target) -> the file's record, its bytes written to target (else ApiError)
    browser.thumbnail(id)             -> JPEG bytes, or None
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aetools.index.store import FileRecord, HashIndex
from aetools.serve.errors import ApiError

CHUNK = 1 << 20  # bytes read at a time while copying and hashing a file
UPDATE = "run aetools hash-index --update"


@dataclass
class Member:
    id: int  # the file's id in the index: what the page asks for thumbnails by
    path: str
    distance: int  # code distance to the group's first member, the copy to keep (bits)
    exact: bool  # another member has the same bytes
    about: str  # "4032 x 3024, 3.1 MB, 2026-05-04 10:31", as dedup prints it


def duplicate_groups(index: HashIndex, index_dir: Path, radius: int) -> list[list[Member]]:
    """The one place that reads `aetools.index.folder.find_duplicates`: candidates by code, verified on the
    pictures (features cached in the index folder), each group led by the copy to keep."""
    from aetools.index.folder import FeatureSource, find_duplicates
    from aetools.index.report import describe

    found = find_duplicates(index, radius, FeatureSource(index_dir))
    ids = {record.path: i for i, record in index.records.items()}
    return [[Member(ids[m.path], m.path, m.distance, m.exact, describe(m)) for m in group] for group in found.groups]


class DuplicateBrowser:
    """Args:
    index_dir: an index folder written by `aetools hash-index` (FOLDER/.aetools-index). It is read again
        when it changes (`hash-index --update` while serving), and groups are kept per radius until then.
    root: the folder every served file must really be in (symlinks resolved): the one the user named
        (`aetools serve --dedup FOLDER`); None: the folder the index records it was built for.
    """

    def __init__(self, index_dir: Path, root: Path | None = None):
        self.index_dir = Path(index_dir)
        self.root = None if root is None else os.path.realpath(root)
        self._lock = threading.Lock()  # guards the swaps of _index, _version and _groups: never held for long
        self._version = self._current()
        self._index = HashIndex.load(self.index_dir)  # missing or unreadable: a HashIndexError now, not later
        self._groups: dict[int, list[list[Member]]] = {}

    def _current(self) -> int | None:
        try:
            return (self.index_dir / "CURRENT").stat().st_mtime_ns
        except OSError:
            return None

    @property
    def index(self) -> HashIndex:
        """The index as it is now: loaded again (outside the lock) when `hash-index --update` changed it."""
        version = self._current()
        with self._lock:
            if version == self._version:
                return self._index
        index = HashIndex.load(self.index_dir)
        with self._lock:
            self._index, self._version, self._groups = index, version, {}
        return index

    @property
    def bits(self) -> int:
        return self.index.bits

    @property
    def default_radius(self) -> int:
        """dedup's default radius."""
        from aetools.index.folder import DEFAULT_RADIUS

        return DEFAULT_RADIUS

    def groups(self, radius: int) -> list[list[Member]]:
        """The groups at this radius: computed outside the lock (the first look at a radius checks every
        candidate pair, seconds to minutes), so files and thumbnails are served meanwhile."""
        index = self.index
        with self._lock:
            found = self._groups.get(radius) if index is self._index else None
        if found is None:
            found = duplicate_groups(index, self.index_dir, radius)
            with self._lock:
                if index is self._index:
                    self._groups[radius] = found
        return found

    def copy_verified(self, file_id: int, target: BinaryIO) -> FileRecord:
        """Write the indexed file's bytes to `target` if it still is the file the index recorded: its real
        path (symlinks resolved) inside the root, a regular file of the recorded size and modification time,
        whose bytes have the recorded sha256 (hashed as they are copied: what is served is what was
        checked). Else ApiError: 404 (not in the index, gone), 403 (outside the root), 409 (changed)."""
        index = self.index
        record = index.records.get(file_id)
        if record is None:
            raise ApiError(404, f"file {file_id}: not in the index")
        root = self.root or index.settings.get("root")
        if not root:
            raise ApiError(
                409, "the index does not record the folder it was built for (a merged index?): serve it with --dedup"
            )
        real = os.path.realpath(record.path)
        root = os.path.realpath(root)
        if os.path.commonpath([real, root]) != root or real == root:
            raise ApiError(403, f"file {file_id}: its real path is outside the indexed folder; not served")
        try:  # O_NONBLOCK: a FIFO put in the file's place is refused below, not waited on
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise ApiError(404, f"file {file_id}: no longer on disk; {UPDATE}") from None
        except OSError as e:
            raise ApiError(409, f"file {file_id}: cannot be read ({e.strerror or e})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ApiError(409, f"file {file_id}: no longer a regular file; {UPDATE}")
            if (info.st_size, info.st_mtime_ns) != (record.size, record.mtime_ns):
                raise ApiError(409, f"file {file_id}: changed since it was indexed (size or date); {UPDATE}")
            digest, copied = hashlib.sha256(), 0
            while copied <= record.size and (chunk := f.read(CHUNK)):
                digest.update(chunk)
                target.write(chunk)
                copied += len(chunk)
        if copied != record.size or digest.hexdigest() != record.sha256:
            raise ApiError(409, f"file {file_id}: changed since it was indexed (its bytes); {UPDATE}")
        return record

    def thumbnail(self, file_id: int) -> bytes | None:
        """A small JPEG of the indexed file (as dedup's HTML report shows it), made from its verified copy;
        None if it cannot be decoded. Raises ApiError as `copy_verified` does."""
        from aetools.index.report import thumbnail_uri

        with tempfile.TemporaryDirectory(prefix="aetools-serve-") as tmp:
            copy = Path(tmp) / "image"
            with open(copy, "wb") as f:
                self.copy_verified(file_id, f)
            uri = thumbnail_uri(str(copy))
        return None if uri is None else base64.b64decode(uri.split(",", 1)[1])
