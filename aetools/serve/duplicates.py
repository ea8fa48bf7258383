"""The near-duplicate browser: the groups of a folder's index (`aetools hash-index DIR`), and thumbnails of
its files by index id. A request names an id, never a path: only files the index lists are ever read.

    browser = DuplicateBrowser(Path("photos/.aetools-index"))
    browser.groups(radius=5)          -> [[Member(id, path, distance, exact, about)], ...]
    browser.thumbnail(id)             -> JPEG bytes, or None
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from pathlib import Path

from aetools.index.store import HashIndex


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
    """

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self._lock = threading.Lock()
        self._version: int | None = None
        self._index = self._load()  # a missing or unreadable index is a HashIndexError now, not at a request
        self._groups: dict[int, list[list[Member]]] = {}

    def _load(self) -> HashIndex:
        self._version = self._current()
        return HashIndex.load(self.index_dir)

    def _current(self) -> int | None:
        try:
            return (self.index_dir / "CURRENT").stat().st_mtime_ns
        except OSError:
            return None

    @property
    def index(self) -> HashIndex:
        with self._lock:
            if self._current() != self._version:
                self._index, self._groups = self._load(), {}
            return self._index

    @property
    def bits(self) -> int:
        return self.index.bits

    @property
    def default_radius(self) -> int:
        """dedup's default radius."""
        from aetools.index.folder import DEFAULT_RADIUS

        return DEFAULT_RADIUS

    def groups(self, radius: int) -> list[list[Member]]:
        index = self.index
        with self._lock:
            if radius not in self._groups:
                self._groups[radius] = duplicate_groups(index, self.index_dir, radius)
            return self._groups[radius]

    def path(self, file_id: int) -> Path | None:
        """The indexed file with this id, or None (not in the index, or gone since)."""
        record = self.index.records.get(file_id)
        if record is None or not Path(record.path).is_file():
            return None
        return Path(record.path)

    def thumbnail(self, file_id: int) -> bytes | None:
        """A small JPEG of the indexed file (as dedup's HTML report shows it), or None if it cannot be read."""
        from aetools.index.report import thumbnail_uri

        path = self.path(file_id)
        uri = None if path is None else thumbnail_uri(str(path))
        return None if uri is None else base64.b64decode(uri.split(",", 1)[1])
