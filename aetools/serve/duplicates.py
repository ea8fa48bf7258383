"""The near-duplicate browser: the groups of a folder's index (`aetools hash-index DIR`), and its files and
their thumbnails by index id. A request names an id, never a path: only files the index lists are ever read,
and one is served only while it is still what was indexed (`copy_verified`). With a trash folder
(`aetools serve --dedup-trash DIR`, `Trash`), an indexed file can be moved there, by id and under the same
checks, and moved back; nothing is ever deleted.

    browser = DuplicateBrowser(Path("photos/.aetools-index"), root=Path("photos"), trash=Path("dups"))
    browser.groups(radius=5)          -> [[Member(id, path, distance, exact, about)], ...]
    browser.copy_verified(id, target) -> the file's record, its bytes written to target (else ApiError)
    browser.thumbnail(id)             -> JPEG bytes, or None
    browser.move_to_trash(id)         -> Move (token, original, trashed, ...): the file is now in the trash
    browser.restore(token)            -> Move: the file is back where it was
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import secrets
import stat
import tempfile
import threading
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from aetools.index.store import FileRecord, HashIndex
from aetools.outputs import atomic_write_bytes, display_name, remove_quietly, write_atomically
from aetools.serve.errors import ApiError

CHUNK = 1 << 20  # bytes read at a time while copying and hashing a file
UPDATE = "run aetools hash-index --update"
JOURNAL = ".aetools-trash.json"  # in the trash folder: every move not yet undone, so undo survives a restart
MAX_NUMBER = 1000  # a name taken in the trash: "name (2).png" ... "name (999).png", then refused


@dataclass
class Member:
    id: int  # the file's id in the index: what the page asks for thumbnails by
    path: str
    distance: int  # code distance to the group's first member, the copy to keep (bits)
    exact: bool  # another member has the same bytes
    about: str  # "4032 x 3024, 3.1 MB, 2026-05-04 10:31; is a crop", as dedup prints it (with why it is or is not kept)


def duplicate_groups(index: HashIndex, index_dir: Path, radius: int) -> list[list[Member]]:
    """The one place that reads `aetools.index.folder.find_duplicates`: candidates by code, verified on the
    pictures (features cached in the index folder), each group led by the copy to keep."""
    from aetools.index.folder import FeatureSource, find_duplicates
    from aetools.index.report import describe

    found = find_duplicates(index, radius, FeatureSource(index_dir))
    ids = {record.path: i for i, record in index.records.items()}
    return [
        [
            Member(ids[m.path], m.path, m.distance, m.exact, "; ".join(filter(None, (describe(m), m.reason))))
            for m in group
        ]
        for group in found.groups
    ]


@dataclass
class Verified:
    """An indexed file opened for reading after the path checks (`DuplicateBrowser.open_verified`); its bytes
    are checked against the record's sha256 as they are read (`read_checked`)."""

    id: int
    record: FileRecord
    real: str  # its real path (symlinks resolved), inside `root`
    root: str
    file: BinaryIO
    info: os.stat_result  # of the open file: the inode that was checked


def open_unfollowed(path: str | os.PathLike, subject: str, gone: str) -> BinaryIO:
    """Open a file of the user's for reading, never through a link put in its place (O_NOFOLLOW) and never
    waiting on a FIFO (O_NONBLOCK; the caller checks it is a regular file). ApiError `{subject} {gone}` (404)
    if it is not there, `{subject} cannot be read (...)` (409) otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ApiError(404, f"{subject} {gone}") from None
    except OSError as e:
        raise ApiError(409, f"{subject} cannot be read ({e.strerror or e})") from None
    return os.fdopen(fd, "rb")


def read_checked(verified: Verified, target: BinaryIO | None) -> None:
    """Read the open file to its end, copying it to `target` (None: only hashing); ApiError 409 unless its
    bytes are the recorded ones."""
    f, record = verified.file, verified.record
    digest, copied = hashlib.sha256(), 0
    while copied <= record.size and (chunk := f.read(CHUNK)):
        digest.update(chunk)
        if target is not None:
            target.write(chunk)
        copied += len(chunk)
    if copied != record.size or digest.hexdigest() != record.sha256:
        raise ApiError(409, f"file {verified.id}: changed since it was indexed (its bytes); {UPDATE}")


class DuplicateBrowser:
    """Args:
    index_dir: an index folder written by `aetools hash-index` (FOLDER/.aetools-index). It is read again
        when it changes (`hash-index --update` while serving), and groups are kept per radius until then.
    root: the folder every served file must really be in (symlinks resolved): the one the user named
        (`aetools serve --dedup FOLDER`); None: the folder the index records it was built for.
    trash: the folder files may be moved to (`aetools serve --dedup-trash DIR`; created if missing); None:
        nothing is moved. A folder that cannot serve is a TrashError now.
    """

    def __init__(self, index_dir: Path, root: Path | None = None, trash: Path | None = None):
        self.index_dir = Path(index_dir)
        self.root = None if root is None else os.path.realpath(root)
        self._lock = threading.Lock()  # guards the swaps of _index, _version and _groups: never held for long
        self._version = self._current()
        self._index = HashIndex.load(self.index_dir)  # missing or unreadable: a HashIndexError now, not later
        self._groups: dict[int, list[list[Member]]] = {}
        self.trash = None
        if trash is not None:
            root_now = self.root or self._index.settings.get("root")
            if not root_now:
                raise TrashError(
                    "the index does not record the folder it was built for (a merged index?): name it with --dedup"
                )
            self.trash = Trash(Path(trash), self.index_dir, os.path.realpath(root_now))

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

    def open_verified(self, file_id: int) -> Verified:
        """The indexed file, opened, if it still is the file the index recorded as far as its path and
        inode tell: its real path (symlinks resolved) inside the root, a regular file of the recorded size and
        modification time. Its bytes are checked as they are read (`read_checked`). Else ApiError: 404 (not
        in the index, gone), 403 (outside the root), 409 (changed). The caller closes `.file`."""
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
        f = open_unfollowed(real, f"file {file_id}:", f"no longer on disk; {UPDATE}")
        try:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ApiError(409, f"file {file_id}: no longer a regular file; {UPDATE}")
            if (info.st_size, info.st_mtime_ns) != (record.size, record.mtime_ns):
                raise ApiError(409, f"file {file_id}: changed since it was indexed (size or date); {UPDATE}")
        except BaseException:
            f.close()
            raise
        return Verified(file_id, record, real, root, f, info)

    def copy_verified(self, file_id: int, target: BinaryIO) -> FileRecord:
        """Write the indexed file's bytes to `target` if it still is the file the index recorded: its real
        path (symlinks resolved) inside the root, a regular file of the recorded size and modification time,
        whose bytes have the recorded sha256 (hashed as they are copied: what is served is what was
        checked). Else ApiError: 404 (not in the index, gone), 403 (outside the root), 409 (changed)."""
        verified = self.open_verified(file_id)
        with verified.file:
            read_checked(verified, target)
        return verified.record

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

    # ------------------------------------------------------------------------------------------- the trash

    def _need_trash(self) -> Trash:
        if self.trash is None:
            raise ApiError(404, "no trash folder: start the server with aetools serve --dedup-trash DIR")
        return self.trash

    def move_to_trash(self, file_id: int) -> Move:
        """Move the indexed file into the trash folder, at its path relative to the indexed folder, if it
        still is the file that was indexed (the checks of `copy_verified`). ApiError as those checks raise;
        409 when the trash cannot take it (a sub-folder there is a link out, every numbered name taken)."""
        trash = self._need_trash()
        with trash.lock:  # one move or restore at a time: two asks for one file move it once
            verified = self.open_verified(file_id)
            with verified.file:
                return trash.move(verified)

    def restore(self, token: str) -> Move:
        """Move a file back from the trash to where it was (`Trash.restore`)."""
        trash = self._need_trash()
        with trash.lock:
            return trash.restore(token)

    def trash_moves(self) -> list[Move]:
        """The moves not yet undone whose file is still in the trash."""
        return self._need_trash().moves()

    def moved(self) -> dict[tuple[str, str], Move]:
        """(path as indexed, sha256) -> its move, for the files now in the trash; empty without one."""
        return {} if self.trash is None else {(m.path, m.sha256): m for m in self.trash.moves()}


# ------------------------------------------------------------------------------------------------ trash


class TrashError(ValueError):
    """The trash folder cannot be used (a file, not writable, inside the index folder, ...): one line."""


@dataclass
class Move:
    """A file moved to the trash: one entry of the journal, and what the routes answer."""

    token: str  # names the move (restore by it): 24 random hex digits
    id: int  # the file's id in the index when it was moved
    path: str  # its path as the index lists it
    original: str  # its real path when it was moved: where a restore puts it
    trashed: str  # where it is now
    size: int
    sha256: str
    mtime_ns: int
    moved_at: str  # ISO 8601, UTC
    how: str  # "rename" (one file system) or "copy" (copied, verified, then the original removed)


class Trash:
    """The folder files are moved to, and its journal (`.aetools-trash.json`: the moves not yet undone).

    A move keeps the file's path relative to the indexed folder (sub-folders recreated) and never lands on
    a file: a name taken is numbered, "name (2).png". On one file system it is a rename (an empty name of
    ours claimed first, so that the rename replaces nothing else); across file systems the file is copied to
    a temporary, flushed, published without overwriting, its copy hashed again, and only then is the
    original removed. Whatever fails, the original stays.

    Args:
        folder: the trash (`aetools serve --dedup-trash DIR`): created if missing; not the indexed folder,
            a folder holding it, or inside the index folder.
        index_dir: the index folder; root: the indexed folder (real path).
    """

    def __init__(self, folder: Path, index_dir: Path, root: str):
        self.root = root
        self.lock = threading.Lock()
        problem = trash_problem(folder, index_dir, root)
        if problem:
            raise TrashError(problem)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe, name = tempfile.mkstemp(prefix=".aetools-trash-probe-", dir=folder)  # writable, really?
            os.close(probe)
            os.unlink(name)
        except OSError as e:
            raise TrashError(f"cannot create files there ({e.strerror or e})") from None
        self.folder = Path(os.path.realpath(folder))
        self.journal = self.folder / JOURNAL
        try:
            self._read()
        except ApiError as e:
            raise TrashError(e.message) from None

    # ----------------------------------------------------------------------------------- the journal

    def _read(self) -> list[Move]:
        try:
            text = self.journal.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as e:
            raise ApiError(500, f"{self.journal}: cannot be read ({e.strerror or e})") from None
        try:
            data = json.loads(text)
            names = {f.name for f in fields(Move)}
            if data.get("format") != "aetools-trash":
                raise ValueError("not an aetools trash journal")
            return [Move(**{k: v for k, v in entry.items() if k in names}) for entry in data["moves"]]
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ApiError(500, f"{self.journal}: not a readable trash journal ({e}); move it away") from None

    def _write(self, moves: list[Move]) -> None:
        data = {"format": "aetools-trash", "version": 1, "root": self.root, "moves": [asdict(m) for m in moves]}
        atomic_write_bytes(self.journal, (json.dumps(data, indent=1) + "\n").encode())  # ASCII: any name

    def moves(self) -> list[Move]:
        """The moves not yet undone whose file is still in the trash."""
        return [m for m in self._read() if os.path.lexists(m.trashed)]

    # ------------------------------------------------------------------------------------------ move

    def move(self, verified: Verified) -> Move:
        """Move the verified (open, path-checked) file here; see the class. Holds `lock` (the caller)."""
        moves = self._read()  # a journal that cannot be read: refused before anything moves
        relative = os.path.relpath(verified.real, verified.root)
        same_device = os.stat(self.folder).st_dev == verified.info.st_dev
        trashed = None
        if same_device:
            read_checked(verified, None)  # its bytes are the indexed ones (409 else), then the inode moves
            trashed = self._rename_here(verified, relative)  # None: another mount of the device (EXDEV)
        how = "rename" if trashed is not None else "copy"
        if trashed is None:
            verified.file.seek(0)
            trashed = self._copy_here(verified, relative)
        record = verified.record
        move = Move(
            secrets.token_hex(12),
            verified.id,
            record.path,
            verified.real,
            str(trashed),
            record.size,
            record.sha256,
            record.mtime_ns,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
            how,
        )
        try:
            self._write([*moves, move])
        except (OSError, ValueError) as e:  # no record, no undo: the move is taken back
            if how == "rename":
                where = self._put_back(trashed, verified.real)
            else:
                remove_quietly(trashed)  # our copy; the original was not touched yet
                where = verified.real
            why = getattr(e, "strerror", None) or e
            raise ApiError(
                500, f"file {verified.id}: not moved: the journal cannot be written ({why}); {where}"
            ) from None
        if how == "copy":
            try:
                self._remove_original(verified)
            except BaseException:
                remove_quietly(trashed)  # our copy
                try:
                    self._write(moves)
                except OSError:
                    pass  # the entry names a file no longer there: it is not listed as moved
                raise
        return move

    def _target(self, relative: str, file_id: int) -> Path:
        """Where `relative` goes in the trash, its folders made: refused (409) if one of them leads out of
        the trash (a link put there)."""
        target = self.folder / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ApiError(409, f"file {file_id}: the trash cannot take it ({e.strerror or e})") from None
        parent = os.path.realpath(target.parent)
        if os.path.commonpath([parent, str(self.folder)]) != str(self.folder):
            raise ApiError(409, f"file {file_id}: {display_name(target.parent)} leads out of the trash folder")
        return Path(parent) / target.name

    @staticmethod
    def _numbered(target: Path):
        """target, then "stem (2).ext", "stem (3).ext", ..."""
        yield target
        for n in range(2, MAX_NUMBER):
            yield target.with_name(f"{target.stem} ({n}){target.suffix}")

    def _rename_here(self, verified: Verified, relative: str) -> Path | None:
        """Rename the file into the trash over an empty name of ours claimed with O_EXCL (so that nothing
        else is ever replaced); then check that what moved is the inode that was verified, else put it back
        (409). None if the rename crosses file systems (nothing moved)."""
        target = self._claim(self._target(relative, verified.id), verified.id)
        try:
            os.replace(verified.real, target)
        except OSError as e:
            remove_quietly(target)  # our empty claim
            if e.errno == errno.EXDEV:
                return None
            if isinstance(e, FileNotFoundError):
                raise ApiError(404, f"file {verified.id}: no longer on disk; {UPDATE}") from None
            raise ApiError(409, f"file {verified.id}: not moved ({e.strerror or e})") from None
        if identity(os.lstat(target)) != identity(verified.info):  # swapped meanwhile (or edited)
            where = self._put_back(target, verified.real)
            raise ApiError(409, f"file {verified.id}: replaced while it was being moved; {where}")
        return target

    @staticmethod
    def _claim(target: Path, file_id: int) -> Path:
        for name in Trash._numbered(target):
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return name
            except FileExistsError:
                continue
            except OSError as e:
                raise ApiError(409, f"file {file_id}: the trash cannot take it ({e.strerror or e})") from None
        raise ApiError(409, f"file {file_id}: {MAX_NUMBER} names like {display_name(target)} taken in the trash")

    def _copy_here(self, verified: Verified, relative: str) -> Path:
        """Copy the file into the trash (hashed as it is read: 409 if its bytes are not the indexed ones),
        flushed and published without overwriting (a taken name: the next number), with its date and mode;
        then hash the published copy. Any failure leaves no copy."""
        target = self._target(relative, verified.id)
        for name in self._numbered(target):
            if os.path.lexists(name):
                continue
            verified.file.seek(0)
            try:
                write_atomically(name, lambda tmp: copy_with_metadata(verified, tmp), overwrite=False)
            except FileExistsError:  # appeared meanwhile: the next number
                continue
            except OSError as e:
                raise ApiError(500, f"file {verified.id}: not moved: the copy failed ({e.strerror or e})") from None
            if file_sha256(name) != verified.record.sha256:
                remove_quietly(name)
                raise ApiError(500, f"file {verified.id}: not moved: its copy in the trash reads back wrong")
            return name
        raise ApiError(409, f"file {verified.id}: {MAX_NUMBER} names like {display_name(target)} taken in the trash")

    @staticmethod
    def _remove_original(verified: Verified) -> None:
        """Remove the original once its copy is safe: it is first renamed aside in its own folder (atomic),
        and only the inode that was verified, unchanged since, is unlinked; anything else is put back (409)."""
        real = Path(verified.real)
        stem = os.fsencode(real.name)[:200].decode("utf-8", "ignore")
        aside = real.with_name(f".{stem}.aetools-moving-{os.getpid()}")
        try:
            os.rename(real, aside)
        except OSError as e:
            raise ApiError(409, f"file {verified.id}: not moved ({e.strerror or e})") from None
        if identity(os.lstat(aside)) != identity(verified.info):
            where = Trash._put_back(aside, str(real))
            raise ApiError(409, f"file {verified.id}: changed while it was being moved; {where}")
        try:
            os.unlink(aside)
        except OSError as e:  # (a file system turned read-only)
            where = Trash._put_back(aside, str(real))
            raise ApiError(
                500, f"file {verified.id}: not moved: cannot be removed ({e.strerror or e}); {where}"
            ) from None

    @staticmethod
    def _put_back(moved: Path, original: str) -> str:
        """Move `moved` back to `original` without overwriting; says where the file is now."""
        try:
            rename_no_clobber(Path(moved), Path(original))
            return f"it is still at {display_name(original)}"
        except OSError:
            return f"it is now at {display_name(moved)}"

    # --------------------------------------------------------------------------------------- restore

    def restore(self, token: str) -> Move:
        """Move the file of move `token` back to where it was, if that path is free (409 if a file is there
        now: both stay) and the file in the trash still has its sha256 (409 if not); 404 for an unknown
        token or a file no longer in the trash. Holds `lock` (the caller)."""
        moves = self._read()
        move = next((m for m in moves if m.token == token), None)
        if move is None:
            raise ApiError(404, f"move {token[:64]!r}: none such in the trash")
        trashed, original = Path(move.trashed), Path(move.original)
        inside = [(str(trashed), str(self.folder)), (str(original), self.root)]
        if any(os.path.commonpath([os.path.abspath(p), folder]) != folder for p, folder in inside):
            raise ApiError(403, f"move {token}: the journal names a path outside the trash or the indexed folder")
        with open_unfollowed(trashed, f"move {token}: {display_name(trashed)}", "is no longer in the trash") as f:
            info = os.fstat(f.fileno())
            record = FileRecord(move.path, move.size, info.st_mtime_ns, move.sha256)
            verified = Verified(move.id, record, str(trashed), str(self.folder), f, info)
            if not stat.S_ISREG(info.st_mode) or info.st_size != move.size:
                raise ApiError(409, f"move {token}: {display_name(trashed)} changed in the trash; not restored")
            try:
                read_checked(verified, None)
            except ApiError:
                raise ApiError(409, f"move {token}: {display_name(trashed)} changed in the trash") from None
            if os.path.lexists(original):
                raise ApiError(409, f"move {token}: {display_name(original)} exists now; not restored over it")
            try:
                original.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ApiError(409, f"move {token}: {display_name(original.parent)}: {e.strerror or e}") from None
            if os.path.realpath(original.parent) != str(original.parent):
                raise ApiError(409, f"move {token}: {display_name(original.parent)} is a link now; not restored")
            f.seek(0)
            self._place_back(verified, original, token)
        remaining = [m for m in moves if m.token != token]
        try:
            self._write(remaining)
        except OSError:
            pass  # the file is back: its entry names a file no longer in the trash, which is not listed as moved
        return move

    @staticmethod
    def _place_back(verified: Verified, original: Path, token: str) -> None:
        """Put the verified file of the trash at `original`, never over a file there (409)."""
        trashed, info = Path(verified.real), verified.info
        if os.stat(original.parent).st_dev == info.st_dev:
            try:
                rename_no_clobber(trashed, original)
                return
            except FileExistsError:
                raise ApiError(409, f"move {token}: {display_name(original)} exists now; not restored") from None
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise ApiError(409, f"move {token}: not restored ({e.strerror or e})") from None
        try:
            write_atomically(original, lambda tmp: copy_with_metadata(verified, tmp), overwrite=False)
        except FileExistsError:
            raise ApiError(409, f"move {token}: {display_name(original)} exists now; not restored over it") from None
        except OSError as e:
            raise ApiError(500, f"move {token}: not restored: the copy failed ({e.strerror or e})") from None
        if file_sha256(original) != verified.record.sha256:
            remove_quietly(original)  # our copy, published where the name was free: the file stays in the trash
            raise ApiError(500, f"move {token}: not restored: its copy reads back wrong")
        remove_quietly(trashed)  # ours: the copy back is complete and checked


def trash_problem(folder: Path, index_dir: Path, root: str) -> str | None:
    """Why `folder` cannot be the trash, or None: a file; the indexed folder itself or a folder holding it
    (a move would land among the photos); inside the index folder (the index's own files)."""
    if folder.exists() and not folder.is_dir():
        return "is a file; name a folder"
    real = os.path.realpath(folder)
    index_real = os.path.realpath(index_dir)
    if os.path.commonpath([real, index_real]) == index_real:
        return f"is inside the index folder {index_dir}; name another folder"
    if os.path.commonpath([real, root]) == real:
        return f"is the indexed folder or holds it ({root}); name another folder"
    return None


def rename_no_clobber(src: Path, dst: Path) -> None:
    """Move `src` to `dst` on one file system, never over a file at `dst` (FileExistsError): a hard link,
    which the file system refuses if the name exists, then `src` unlinked; where links are not supported
    (FAT, some network mounts), an empty name claimed with O_EXCL and renamed over."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # the name is ours, or refused
        try:
            os.replace(src, dst)
        except OSError:
            remove_quietly(dst)  # our empty claim
            raise
        return
    try:
        os.unlink(src)
    except OSError:
        remove_quietly(dst)  # the name we just linked: the file stays at src alone, as before
        raise


def copy_with_metadata(verified: Verified, path: Path) -> None:
    """The verified file's bytes to the new file `path` (checked against its sha256 as they are read: 409 if
    not), with its permissions and dates, so that a file moved back matches its index record again."""
    with open(path, "wb") as out:
        read_checked(verified, out)
    os.chmod(path, stat.S_IMODE(verified.info.st_mode))
    os.utime(path, ns=(verified.info.st_atime_ns, verified.info.st_mtime_ns))


def identity(info: os.stat_result) -> tuple[int, int, int, int]:
    """What tells that a name still holds the inode that was checked, unchanged: device, inode, size, date."""
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
