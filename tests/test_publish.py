"""Publishing a finished file: atomic, never over a file that appeared during the work unless overwriting,
and cleanup that never hides the real error."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import aetools.outputs as outputs
from aetools.outputs import atomic_write_bytes, write_atomically


def test_a_file_that_appears_during_the_write_is_never_replaced(tmp_path):
    target = tmp_path / "out.png"

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"ours")
        target.write_bytes(b"someone else's, written meanwhile")  # checked absent before the work; here now

    with pytest.raises(FileExistsError):
        write_atomically(target, write, overwrite=False)
    assert target.read_bytes() == b"someone else's, written meanwhile"
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary left


def test_overwrite_replaces_and_a_new_name_is_written(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"one", overwrite=False)
    assert target.read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"two", overwrite=False)
    atomic_write_bytes(target, b"three", overwrite=True)
    assert target.read_bytes() == b"three" and os.listdir(tmp_path) == ["out.bin"]


def test_without_hard_links_the_name_is_still_claimed_exclusively(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")  # FAT, some FUSE mounts

    monkeypatch.setattr(outputs.os, "link", no_links)
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"one", overwrite=False)
    assert target.read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"two", overwrite=False)
    assert target.read_bytes() == b"one" and os.listdir(tmp_path) == ["out.bin"]


def test_a_read_only_file_system_reports_the_write_error_not_the_cleanup_one(tmp_path, monkeypatch):
    real_unlink = os.unlink

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(outputs.os, "replace", read_only)
    monkeypatch.setattr(outputs.os, "unlink", read_only)
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert caught.value.errno == errno.EROFS and "Read-only" in str(caught.value)
    monkeypatch.setattr(outputs.os, "unlink", real_unlink)
    # the original error reached the caller, not a second one from the cleanup; the next write cleans up
    monkeypatch.undo()
    atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert (tmp_path / "out.bin").read_bytes() == b"data"


def test_a_failure_before_the_publish_leaves_nothing(tmp_path):
    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomically(tmp_path / "out.bin", write, overwrite=False)
    assert os.listdir(tmp_path) == []


def test_an_unexpected_exception_is_one_line_and_exit_1(monkeypatch, capsys):
    import aetools.cli as cli

    def broken():
        raise KeyError("a bug\nwith a second line")

    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.delenv("AETOOLS_DEBUG", raising=False)
    with pytest.raises(SystemExit) as caught:
        cli.main()
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: KeyError: 'a bug\\nwith a second line'")
    monkeypatch.setenv("AETOOLS_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main()


def test_any_failure_of_one_file_is_its_line_and_the_batch_goes_on(tmp_path, tiny_weights, monkeypatch):
    import numpy as np
    from PIL import Image

    from aetools.tasks import get_pipeline
    from tests.conftest import photo, run

    for name in ("a.png", "b.png"):
        Image.fromarray(photo(32)).save(tmp_path / name)
    pipeline = get_pipeline("denoise")
    real_call = pipeline.__call__

    def flaky(self, image, **options):
        if np.asarray(image.pixels).mean() < 2:  # every image: the first call fails as no command foresaw
            flaky.calls += 1
            if flaky.calls == 1:
                raise KeyError("unforeseen")
        return real_call(self, image, **options)

    flaky.calls = 0
    monkeypatch.setattr(pipeline, "__call__", flaky)
    r = run("denoise", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "out", "-m", tiny_weights)
    assert r.exit_code == 1
    assert "failed" in r.output and "KeyError: 'unforeseen'" in r.output and "1 written, 1 failed" in r.output
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_a_file_that_appears_at_the_output_during_the_work_is_kept(tmp_path, tiny_weights, monkeypatch):
    from PIL import Image

    from aetools.tasks import get_pipeline
    from tests.conftest import photo, run

    Image.fromarray(photo(32)).save(tmp_path / "a.png")
    out = tmp_path / "out.png"
    pipeline = get_pipeline("denoise")
    real_call = pipeline.__call__

    def racing(self, image, **options):
        out.write_bytes(b"another run's result")  # checked absent before the work; written meanwhile
        return real_call(self, image, **options)

    monkeypatch.setattr(pipeline, "__call__", racing)
    r = run("denoise", tmp_path / "a.png", "-o", out, "-m", tiny_weights)
    assert r.exit_code == 1 and "out.png" in r.output
    assert out.read_bytes() == b"another run's result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "out.png", "tiny.safetensors"]


def test_a_disk_turned_read_only_mid_batch_names_the_error_and_tries_every_file(tmp_path, tiny_weights, monkeypatch):
    from PIL import Image

    import aetools.outputs as outputs
    from tests.conftest import photo, run

    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(photo(32)).save(tmp_path / name)
    published = []
    real_link = os.link

    def read_only_after_first(src, dst):
        if published:
            raise OSError(errno.EROFS, "Read-only file system")
        published.append(dst)
        return real_link(src, dst)

    def unlink(path, *args, **kwargs):  # the cleanup fails too, as it does on a read-only mount
        if published and str(path).endswith(".tmp"):
            raise OSError(errno.EROFS, "Read-only file system")
        return os.remove(path)

    monkeypatch.setattr(outputs.os, "link", read_only_after_first)
    monkeypatch.setattr(outputs.os, "unlink", unlink)
    names = [tmp_path / n for n in ("a.png", "b.png", "c.png")]
    r = run("denoise", *names, "-o", tmp_path / "out", "-m", tiny_weights)
    assert r.exit_code == 1, r.output
    assert "1 written, 2 failed" in r.output
    lines = [line for line in r.output.splitlines() if line.startswith("failed")]
    assert len(lines) == 2 and all("Read-only file system" in line for line in lines)
    assert "Traceback" not in r.output
