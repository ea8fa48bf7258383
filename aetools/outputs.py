"""Where a command may write: the one set of rules every file a user names as an output is checked by,
before any work (image outputs, dedup reports, trained weights, generated grids).

Paths and the file system only (no torch, numpy or Pillow), so the CLI checks outputs before loading
anything; a leaf that `aetools.data.io`, `weights`, the trainer, the index and the CLI import.

    output_problem(path, ...) -> None, or one line saying why `path` must not be written

Refused:
- a folder where a file is to be written;
- an existing file, unless the user said --overwrite (or is resuming the run that wrote it);
- one of the command's inputs, or an image inside a folder the command reads (it would replace a photo);
- a name without the suffix the content needs (weights: .safetensors);
- a folder that cannot be created (a file in the way) or written (permissions);
- a name longer than the file system allows (the temporary name beside it, ~25 bytes more, is cut to fit).
Writes themselves are atomic (a temporary file beside the target, then a rename, `write_atomically`): an
interrupted command leaves the old file or the new one, never half of one. Without --overwrite the last step
is a hard link, which the file system refuses if the name exists by then (`publish`), so "never
overwritten" holds even against a file that appears during the work.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from aetools.data.formats import IMAGE_EXTENSIONS


def display_name(path: str | os.PathLike) -> str:
    """A path as one line of text can show it, whatever bytes its name holds: control characters (a newline
    would split a one-line error, or fake a summary line) and bytes that are not UTF-8 (a Latin-1 name from
    an old archive, which os.listdir turns into lone surrogates) are written as escapes, `\\n`, `\\xe9`."""
    text = os.fspath(path)
    if text.isprintable() and not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    shown = []
    for c in text:
        if "\udc80" <= c <= "\udcff":  # a byte surrogateescape could not decode
            shown.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c.isprintable() and not "\ud800" <= c <= "\udfff":
            shown.append(c)
        else:
            shown.append(repr(c)[1:-1])
    return "".join(shown)


def nearest_existing(path: Path) -> Path:
    """`path` or the nearest of its parents that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot hold new files (cannot be created, or is not writable), or None."""
    existing = nearest_existing(folder)
    if not existing.is_dir():
        return f"cannot create folder {folder}: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot create files in {existing}: permission denied"
    return None


def name_problem(path: Path) -> str | None:
    """Why the file system would refuse `path`'s name (too long), or None."""
    try:
        limit = os.pathconf(nearest_existing(path.parent), "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows): the common limit
        limit = 255
    size = len(os.fsencode(path.name))
    return f"output name is {size} bytes; the file system allows {limit}" if size > limit else None


def output_problem(
    path: Path,
    overwrite: bool = False,
    inputs: Sequence[Path] = (),
    read_folders: Sequence[Path] = (),
    suffix: str | None = None,
    what: str = "output",
) -> str | None:
    """Why the file `path` must not be written (one line, naming it), or None; see the module's rules.

    overwrite: an existing file may be replaced. inputs: files the command reads. read_folders: folders it
    reads images from (an image inside one is refused; other files there, e.g. a report, are not).
    suffix: the suffix the file must have. what: how messages name it ("report", "weights")."""
    path = Path(path)
    too_long = name_problem(path)  # first: asking the file system about such a name is itself an error
    if too_long:
        return f"{path}: {too_long}"
    if path.is_dir():
        return f"{path}: is a folder; name a file for the {what}"
    if suffix and path.suffix.lower() != suffix:
        return f"{path}: the {what} must be written as a {suffix} file"
    target = path.resolve()
    if any(target == Path(p).resolve() for p in inputs):
        return f"{path}: is an input; name another file for the {what}"
    if target.suffix.lower() in IMAGE_EXTENSIONS and any(Path(f).resolve() in target.parents for f in read_folders):
        return f"{path}: is an image in a folder being read; name another file for the {what}"
    if path.exists() and not overwrite:
        return f"{path}: exists (use --overwrite to replace it)"
    problem = folder_problem(path.parent)
    return f"{path}: {problem}" if problem else None


# ------------------------------------------------------------------------------------ atomic writes


def temporary_beside(path: Path) -> Path:
    """A hidden temporary name in path's folder, `.NAME.PID-RANDOM.tmp`, for writing and then renaming onto
    `path` (atomic: the rename either happened or not). NAME is cut to 200 bytes, so the ~25 bytes added
    never push a long name past the file system's limit. Temporaries a killed writer left for the same
    target (their process no longer exists) are removed first."""
    stem = os.fsencode(path.name)[:200].decode("utf-8", "ignore")
    remove_stale_temporaries(path.parent, stem)
    return path.with_name(f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def remove_stale_temporaries(folder: Path, stem: str) -> None:
    """Delete `.STEM.PID-RANDOM.tmp` files in `folder` whose process is gone (a kill -9 mid-write)."""
    try:
        candidates = list(folder.glob(f".{glob_escape(stem)}.*-*.tmp"))
    except OSError:
        return
    for candidate in candidates:
        pid_text = candidate.name[len(stem) + 2 :].split("-", 1)[0]
        if pid_text.isdigit() and not process_alive(int(pid_text)):
            try:
                candidate.unlink()
            except OSError:
                pass


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or not ours to know: leave its file alone
    return True


def publish(tmp: Path, path: Path, overwrite: bool = True) -> None:
    """Put the finished temporary `tmp` at `path`, atomically: a reader sees the old file or the new one.

    overwrite=False means never replace a file at `path`, even one that appeared after the command checked
    (another run writing the same name, a file copied in meanwhile): the temporary is hard-linked to the
    name, which the file system refuses if the name exists (FileExistsError), and then unlinked. Where a
    file system has no hard links (FAT, some network and FUSE mounts), the name is first created with
    O_EXCL, which is refused the same way, and the temporary renamed over that empty placeholder."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except OSError as e:  # (FileExistsError, EEXIST, is the refusal: raised as it is)
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))  # the name is ours, or refused
        os.replace(tmp, path)
        return
    remove_quietly(tmp)


def write_atomically(path: Path, write: Callable[[Path], None], overwrite: bool = True) -> None:
    """write(temporary path) into a hidden temporary beside `path`, flushed to disk, then `publish`ed onto
    `path` (overwrite=False: never over a file that exists by then). Any failure propagates as it was
    raised; the temporary is gone either way, and its removal never raises over the real error (a file
    system that turned read-only mid-batch refuses the unlink too)."""
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        publish(tmp, path, overwrite)
    finally:
        remove_quietly(tmp)


def atomic_write_bytes(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Write `data` to `path` through `write_atomically`."""
    write_atomically(Path(path), lambda tmp: Path(tmp).write_bytes(data), overwrite)


def remove_quietly(path: Path) -> None:
    """Delete a file of ours if it is there; a failure to (read-only, gone) is never the error to report."""
    try:
        os.unlink(path)
    except OSError:
        pass
