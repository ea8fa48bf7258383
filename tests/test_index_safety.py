"""The index folder is the index's own (a manifest of what aetools wrote; nothing else is ever deleted or
truncated), readers survive an update, a failed save leaves the live index and nothing half-written, any
name the file system allows can be indexed, and every printed name stays on one line."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aetools.index.store as store
from aetools.index.store import MANIFEST, FileRecord, HashIndex, HashIndexError, pack_codes
from tests.conftest import photo, run
from tests.test_hash_index import pictures, tiny_hash  # noqa: F401  (fixtures)

USERS_FILES = {  # names that start the way an index's files do, and a lock file of the user's
    "turns-left.png": b"a photo",
    "files-holiday.png": b"another photo",
    "codes-beach.png": b"a third",
    "files-budget-2026.xlsx": b"spreadsheet",
    "codes-of-conduct.txt": b"text",
    "LOCK": b"the user's own lock file\n",
}


def records(n: int, start: int = 0) -> list[FileRecord]:
    return [FileRecord(f"/photos/{i}.jpg", 100 + i, 1000 + i, f"{i:064x}") for i in range(start, start + n)]


def small_index(n: int = 3) -> HashIndex:
    index = HashIndex(16, "m")
    index.add(records(n), pack_codes(np.eye(n, 16, dtype=bool)))
    return index


def users_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in USERS_FILES.items():
        (folder / name).write_bytes(data)
    return folder


def assert_untouched(folder: Path) -> None:
    for name, data in USERS_FILES.items():
        assert (folder / name).read_bytes() == data, name


# --------------------------------------------------------------------------- the folder is the index's own


@pytest.mark.parametrize("command", ["hash-index", "dedup"])
def test_an_index_folder_holding_the_users_files_is_refused_and_nothing_is_touched(pictures, tiny_hash, command):  # noqa: F811
    for name in ("turns-left.png", "files-holiday.png", "codes-beach.png"):  # photos being deduplicated, too
        Image.fromarray(photo(96, "coffee")).save(pictures / name)
    users_folder(pictures)
    r = run(command, pictures, "-m", tiny_hash, "--index", pictures)
    assert r.exit_code == 2, r.output
    assert "not an aetools index" in r.output and len(r.output.strip().splitlines()) == 1
    assert_untouched(pictures)
    assert not (pictures / MANIFEST).exists() and not (pictures / "CURRENT").exists()


def test_an_index_folder_elsewhere_with_documents_is_refused(pictures, tiny_hash, tmp_path):  # noqa: F811
    docs = users_folder(tmp_path / "docs")
    r = run("hash-index", pictures, "-m", tiny_hash, "--index", docs)
    assert r.exit_code == 2 and "not an aetools index" in r.output
    assert_untouched(docs)
    assert sorted(os.listdir(docs)) == sorted(USERS_FILES)  # nothing added either


def test_save_and_lock_refuse_a_folder_of_the_users_directly(tmp_path):
    docs = users_folder(tmp_path / "docs")
    with pytest.raises(HashIndexError, match="not an aetools index"):
        small_index().save(docs)
    with pytest.raises(HashIndexError, match="not an aetools index"):
        store.IndexLock(docs).__enter__()
    assert_untouched(docs)


def test_a_save_deletes_only_files_its_manifest_lists(tmp_path):
    folder = tmp_path / "index"
    index = small_index()
    index.save(folder)
    strangers = {"codes-of-conduct.txt": b"x", "codes-7.faiss": b"not ours", "notes.md": b"y"}
    for name, data in strangers.items():  # put into the index folder by someone else, after it was made
        (folder / name).write_bytes(data)
    for _ in range(3):
        index.save(folder)  # each save retires generations
    for name, data in strangers.items():
        assert (folder / name).read_bytes() == data
    listed = json.loads((folder / MANIFEST).read_text())["files"]
    assert "codes-7.faiss" not in listed and "codes-4.faiss" in listed and "codes-1.faiss" not in listed


def test_an_edited_manifest_cannot_make_the_index_delete_other_files(tmp_path):
    folder = tmp_path / "index"
    small_index().save(folder)
    (folder / "holiday.png").write_bytes(b"photo")
    data = json.loads((folder / MANIFEST).read_text())
    data["files"] += ["holiday.png", "../outside.txt"]
    (folder / MANIFEST).write_text(json.dumps(data))
    (tmp_path / "outside.txt").write_text("keep")
    small_index().save(folder)
    small_index().save(folder)
    assert (folder / "holiday.png").read_bytes() == b"photo" and (tmp_path / "outside.txt").read_text() == "keep"


def test_an_index_written_before_manifests_is_adopted(pictures, tiny_hash):  # noqa: F811
    assert run("hash-index", pictures, "-m", tiny_hash).exit_code == 0
    index_dir = pictures / ".aetools-index"
    (index_dir / MANIFEST).unlink()  # as an older aetools left it: index files only
    r = run("hash-index", pictures, "-m", tiny_hash, "--update")
    assert r.exit_code == 0, r.output
    assert "LOCK" in json.loads((index_dir / MANIFEST).read_text())["files"]


# ------------------------------------------------------------------------------- readers, full disks


def test_readers_never_fail_while_the_index_is_updated(tmp_path):
    folder = tmp_path / "index"
    index = small_index(20)
    index.save(folder)
    errors, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                assert len(HashIndex.load(folder)) == 20
            except Exception as e:  # noqa: BLE001  (any failure is the finding)
                errors.append(repr(e))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(60):
            index.save(folder)
    finally:
        stop.set()
        reader.join(30)
    assert errors == []


def test_a_reader_that_loses_its_generation_mid_read_reads_the_new_one(tmp_path, monkeypatch):
    folder = tmp_path / "index"
    small_index(3).save(folder)
    real = HashIndex._load_generation.__func__
    calls = []

    def racing(cls, where, generation, model_id):
        calls.append(generation)
        if len(calls) == 1:  # an update switches and retires this generation while we read it
            small_index(5).save(folder)
            small_index(5).save(folder)
            for path in store._paths(where, generation):
                path.unlink(missing_ok=True)
        return real(cls, where, generation, model_id)

    monkeypatch.setattr(HashIndex, "_load_generation", classmethod(racing))
    assert len(HashIndex.load(folder)) == 5 and calls == [1, 3]


@pytest.mark.parametrize(
    "target, error",
    [
        ("faiss", RuntimeError("Error in faiss::FileIOWriter: No space left on device")),
        ("sqlite", sqlite3.OperationalError("database or disk is full")),
        ("fsync", OSError(28, "No space left on device")),
    ],
)
def test_a_full_disk_during_save_leaves_the_live_index_and_no_partial_generation(tmp_path, monkeypatch, target, error):
    import faiss

    folder = tmp_path / "index"
    small_index(3).save(folder)
    before = sorted(os.listdir(folder))

    def fail(*args, **kwargs):
        raise error

    if target == "faiss":
        written = []
        real = faiss.write_index_binary

        def second_fails(index, path):  # the codes are written, then the disk fills
            if written:
                raise error
            written.append(path)
            real(index, path)

        monkeypatch.setattr(faiss, "write_index_binary", second_fails)
    elif target == "sqlite":
        monkeypatch.setattr(HashIndex, "_write_files", fail)
    else:
        monkeypatch.setattr(store, "_fsync", fail)
    with pytest.raises(HashIndexError, match="could not write the index") as caught:
        small_index(5).save(folder)
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    assert sorted(os.listdir(folder)) == before  # the new generation's files are gone, the old one stands
    assert len(HashIndex.load(folder)) == 3


# ------------------------------------------------------------------------------------ names of any kind


def test_a_name_that_is_not_utf8_is_indexed_searched_and_shown_escaped(tmp_path, tiny_hash):  # noqa: F811
    folder = tmp_path / "archive"
    folder.mkdir()
    latin1 = os.fsdecode(b"caf\xe9.png")  # a Latin-1 name from an old archive: not valid UTF-8
    Image.fromarray(photo(96, "coffee")).save(folder / latin1)
    Image.fromarray(photo(96, "chelsea")).save(folder / "cat.png")
    r = run("hash-index", folder, "-m", tiny_hash)
    assert r.exit_code == 0, r.output
    assert "indexed 2 images" in r.output
    back = HashIndex.load(folder / ".aetools-index")
    assert str(folder / latin1) in {rec.path for rec in back.records.values()}
    r = run("hash-search", folder / latin1, "-m", tiny_hash, "--index", folder / ".aetools-index", "-k", "1")
    assert r.exit_code == 0, r.output
    assert "caf\\xe9.png" in r.stdout  # escaped, never a surrogate or a raw byte
    r = run("hash-search", folder / latin1, "-m", tiny_hash, "--index", folder / ".aetools-index", "-k", "1", "--json")
    assert json.loads(r.stdout)["results"][0]["distance"] == 0


def test_a_newline_or_markup_in_a_name_cannot_split_or_fake_a_line(tmp_path, tiny_weights):
    folder = tmp_path / "in"
    folder.mkdir()
    tricky = folder / "x.png\ndenoise: 9 written, 0 failed [bold]y.png"
    tricky.write_bytes(b"not an image")
    Image.fromarray(photo(32)).save(folder / "good.png")
    r = run("denoise", folder, "-o", tmp_path / "out", "-m", tiny_weights)
    assert r.exit_code == 1
    failed = [line for line in r.output.splitlines() if "x.png" in line]
    assert len(failed) == 1 and failed[0].startswith("failed ") and "x.png\\ndenoise: 9 written" in failed[0]
    assert "[bold]y.png" in failed[0]  # shown as typed, not taken as markup
    assert [line for line in r.output.splitlines() if line.startswith("denoise:")] == ["denoise: 1 written, 1 failed"]


def test_results_per_query_are_bounded(pictures, tiny_hash):  # noqa: F811
    assert run("hash-index", pictures, "-m", tiny_hash).exit_code == 0
    r = run("hash-search", next(pictures.glob("*.jpg")), "-m", tiny_hash, "--index", pictures, "-k", "100000000")
    assert r.exit_code == 2 and "-k" in r.output
    from aetools.index.folder import search_codes

    index = HashIndex.load(pictures / ".aetools-index")
    with pytest.raises(ValueError, match="1 to 1000"):
        search_codes(index, np.zeros((1, 4), np.uint8), 10**8)
    assert len(search_codes(index, np.zeros((1, 4), np.uint8), 1000)[0]) == 4  # k above the index size: all


def test_a_link_out_of_the_folder_is_not_indexed(pictures, tiny_hash, tmp_path):  # noqa: F811
    outside = tmp_path / "private"
    outside.mkdir()
    Image.fromarray(photo(96, "rocket")).save(outside / "secret.png")
    (pictures / "link.png").symlink_to(outside / "secret.png")
    r = run("hash-index", pictures, "-m", tiny_hash)
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "outside the folder" in r.output
    paths = {rec.path for rec in HashIndex.load(pictures / ".aetools-index").records.values()}
    assert len(paths) == 4 and not any("private" in p for p in paths)
