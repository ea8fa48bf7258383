"""aetools serve --dedup-trash: indexed files moved to a trash folder by id and moved back, over real HTTP
(uvicorn on 127.0.0.1, a free port, in a thread). The only route that changes the user's files: each test
checks the bytes on disk, where they are and where they are not, after every answer."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import photo, run, save_tiny, tiny_model
from tests.test_serve_guard import Server, one_line_error

pytest.importorskip("fastapi", reason='aetools serve needs its extra: pip install -e ".[serve]"')
pytest.importorskip("uvicorn", reason='aetools serve needs its extra: pip install -e ".[serve]"')

COPY = "album/coffee copy.png"  # an exact copy of coffee.png, in a sub-folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    model = tiny_model("hash-unet", widths=(8, 16), bits=32, size=32)
    return save_tiny(model, "hash", tmp_path_factory.mktemp("weights") / "tiny-hash.safetensors")


@pytest.fixture
def photos(tmp_path, weights) -> Path:
    """Three photos and an exact copy of one in a sub-folder, indexed (recursively)."""
    from aetools.index.folder import index_folder
    from aetools.weights import load_model

    folder = tmp_path / "photos"
    (folder / "album").mkdir(parents=True)
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(photo(96, name)).save(folder / f"{name}.png")
    shutil.copy(folder / "coffee.png", folder / COPY)
    index_folder(load_model(weights, "hash"), folder, recursive=True)
    return folder


def serve(folder: Path, trash: Path | None) -> Server:
    from aetools.index.folder import default_index_dir
    from aetools.serve import create_app

    server = Server(create_app("cpu", default_index_dir(folder), root=folder, trash=trash))
    server.ids = {os.path.relpath(r.path, folder): i for i, r in server.app.state.browser.index.records.items()}
    return server


@pytest.fixture
def live(photos, tmp_path):
    server = serve(photos, tmp_path / "trash" / "dups")  # not there yet: created at start
    yield server
    server.close()


def post(server: Server, path: str, headers: dict | None = None):
    return server.request("POST", path, headers or {}, b"")


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` but the journal, by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".aetools-trash.json"
    }


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*.png")}


def test_a_move_puts_the_exact_bytes_in_the_trash_and_a_restore_puts_them_back(live, photos, tmp_path):
    trash = tmp_path / "trash" / "dups"
    assert trash.is_dir() and files_in(trash) == {}
    original = photos / COPY
    data, mtime = original.read_bytes(), original.stat().st_mtime_ns
    file_id = live.ids[COPY]
    [group] = live.request("GET", "/v1/duplicates").json()["items"]  # as the page does first
    assert [m["moved"] for m in group] == [None, None]

    r = post(live, f"/v1/duplicates/files/{file_id}/trash")
    assert r.status == 200, r.body
    move = r.json()
    assert not original.exists()
    assert files_in(trash) == {COPY: data}  # its path relative to the folder kept, the sub-folder made
    assert move["trashed"] == str(trash / COPY) and move["original"] == str(original) and move["how"] == "rename"
    assert move["sha256"] == hashlib.sha256(data).hexdigest() and move["size"] == len(data)
    assert len(move["token"]) == 24
    assert (photos / "coffee.png").read_bytes() == data  # the copy kept is untouched

    # the duplicates list and the trash list say it is moved; the file is no longer served
    [group] = live.request("GET", "/v1/duplicates").json()["items"]
    assert {m["path"]: m["moved"] for m in group} == {str(photos / "coffee.png"): None, str(original): move["token"]}
    assert live.request("GET", "/v1/duplicates/trash").json()["moves"] == [move]
    assert live.request("GET", f"/v1/duplicates/files/{file_id}").status == 404
    assert post(live, f"/v1/duplicates/files/{file_id}/trash").status == 404  # moved once, not twice

    r = post(live, f"/v1/duplicates/trash/{move['token']}/restore")
    assert r.status == 200, r.body
    assert original.read_bytes() == data and original.stat().st_mtime_ns == mtime
    assert files_in(trash) == {}
    assert live.request("GET", "/v1/duplicates/trash").json()["moves"] == []
    served = live.request("GET", f"/v1/duplicates/files/{file_id}")  # it is what was indexed again
    assert served.status == 200 and served.body == data
    assert post(live, f"/v1/duplicates/trash/{move['token']}/restore").status == 404  # restored once


def test_a_changed_a_symlinked_and_an_unknown_file_are_refused_and_nothing_moves(live, photos, tmp_path):
    trash = tmp_path / "trash" / "dups"
    # one byte changed in place, its size and date put back: only the sha256 tells
    changed = photos / "astronaut.png"
    info, data = changed.stat(), bytearray(changed.read_bytes())
    data[-20] ^= 0xFF
    changed.write_bytes(bytes(data))
    os.utime(changed, ns=(info.st_atime_ns, info.st_mtime_ns))
    # a photo swapped for a symlink to a file outside the folder
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours" * 100)
    (photos / "chelsea.png").unlink()
    (photos / "chelsea.png").symlink_to(secret)
    before = snapshot(photos)

    r = post(live, f"/v1/duplicates/files/{live.ids['astronaut.png']}/trash")
    assert r.status == 409 and "changed since it was indexed" in one_line_error(r)
    r = post(live, f"/v1/duplicates/files/{live.ids['chelsea.png']}/trash")
    assert r.status == 403 and "outside the indexed folder" in one_line_error(r)
    r = post(live, "/v1/duplicates/files/999999/trash")
    assert r.status == 404 and "not in the index" in one_line_error(r)
    assert snapshot(photos) == before and (photos / "chelsea.png").is_symlink()
    assert secret.read_bytes() == b"not yours" * 100
    assert files_in(trash) == {}


def test_a_restore_never_replaces_a_file_that_took_the_path(live, photos, tmp_path):
    original = photos / COPY
    data = original.read_bytes()
    move = post(live, f"/v1/duplicates/files/{live.ids[COPY]}/trash").json()
    original.write_bytes(b"a new file put where the copy was")

    r = post(live, f"/v1/duplicates/trash/{move['token']}/restore")
    assert r.status == 409 and "exists now" in one_line_error(r)
    assert original.read_bytes() == b"a new file put where the copy was"
    assert Path(move["trashed"]).read_bytes() == data  # both stay; the move can still be undone later
    assert [m["token"] for m in live.request("GET", "/v1/duplicates/trash").json()["moves"]] == [move["token"]]

    original.unlink()  # (the test's own file)
    assert post(live, f"/v1/duplicates/trash/{move['token']}/restore").status == 200
    assert original.read_bytes() == data


def test_a_file_edited_in_the_trash_is_not_restored(live, photos):
    move = post(live, f"/v1/duplicates/files/{live.ids[COPY]}/trash").json()
    trashed = Path(move["trashed"])
    trashed.write_bytes(trashed.read_bytes()[:-1] + b"!")
    r = post(live, f"/v1/duplicates/trash/{move['token']}/restore")
    assert r.status == 409 and "changed in the trash" in one_line_error(r)
    assert not (photos / COPY).exists() and trashed.exists()


def test_a_name_taken_in_the_trash_gets_a_number(live, photos, tmp_path):
    trash = tmp_path / "trash" / "dups"
    (trash / "album").mkdir()
    (trash / COPY).write_bytes(b"already in the trash")
    data = (photos / COPY).read_bytes()

    move = post(live, f"/v1/duplicates/files/{live.ids[COPY]}/trash").json()
    assert move["trashed"] == str(trash / "album" / "coffee copy (2).png")
    assert files_in(trash) == {COPY: b"already in the trash", "album/coffee copy (2).png": data}
    assert post(live, f"/v1/duplicates/trash/{move['token']}/restore").status == 200
    assert (photos / COPY).read_bytes() == data and files_in(trash) == {COPY: b"already in the trash"}


def test_a_cross_site_post_is_refused_and_nothing_moves(live, photos, tmp_path):
    trash = tmp_path / "trash" / "dups"
    before = snapshot(photos)
    path = f"/v1/duplicates/files/{live.ids[COPY]}/trash"
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        r = post(live, path, headers)
        assert r.status == 403 and "refused" in one_line_error(r), headers
    assert snapshot(photos) == before and files_in(trash) == {}

    move = post(live, path, {"Origin": f"http://127.0.0.1:{live.port}", "Sec-Fetch-Site": "same-origin"}).json()
    r = post(live, f"/v1/duplicates/trash/{move['token']}/restore", {"Origin": "http://evil.example"})
    assert r.status == 403 and not (photos / COPY).exists()  # not undone by another site either


def test_without_a_trash_folder_nothing_can_be_moved(photos):
    server = serve(photos, None)
    try:
        before = snapshot(photos)
        r = post(server, f"/v1/duplicates/files/{server.ids[COPY]}/trash")
        assert r.status == 404 and "--dedup-trash" in one_line_error(r)
        assert post(server, "/v1/duplicates/trash/0123456789abcdef01234567/restore").status == 404
        assert server.request("GET", "/v1/duplicates/trash").status == 404
        assert snapshot(photos) == before
        assert server.request("GET", "/v1/models").json()["dedup_trash"] is False
        assert server.request("GET", "/v1/duplicates").json()["trash"] is None
    finally:
        server.close()


def test_the_journal_survives_a_restart(photos, tmp_path):
    trash = tmp_path / "dups"
    data = (photos / COPY).read_bytes()
    first = serve(photos, trash)
    try:
        assert first.request("GET", "/v1/duplicates").status == 200  # (the pictures' features are kept)
        move = post(first, f"/v1/duplicates/files/{first.ids[COPY]}/trash").json()
    finally:
        first.close()
    journal = json.loads((trash / ".aetools-trash.json").read_text())
    assert journal["format"] == "aetools-trash" and [m["token"] for m in journal["moves"]] == [move["token"]]

    second = serve(photos, trash)  # a new app, reading the journal
    try:
        assert second.request("GET", "/v1/models").json()["dedup_trash"] is True
        [group] = second.request("GET", "/v1/duplicates").json()["items"]
        assert [m["moved"] for m in group] == [None, move["token"]]
        assert post(second, f"/v1/duplicates/trash/{move['token']}/restore").status == 200
        assert (photos / COPY).read_bytes() == data and files_in(trash) == {}
    finally:
        second.close()


def other_file_system(tmp_path: Path) -> Path:
    """A folder on another file system than tmp_path (/dev/shm, a tmpfs), or skip."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no writable /dev/shm on another file system than the tests' temporary folder")
    folder = shm / f"aetools-trash-test-{os.getpid()}-{tmp_path.name}"
    return folder


def test_across_file_systems_the_file_is_copied_verified_and_only_then_removed(photos, tmp_path):
    trash = other_file_system(tmp_path)
    original = photos / COPY
    data, mtime = original.read_bytes(), original.stat().st_mtime_ns
    server = serve(photos, trash)
    try:
        move = post(server, f"/v1/duplicates/files/{server.ids[COPY]}/trash").json()
        assert move["how"] == "copy" and not original.exists()
        assert files_in(trash) == {COPY: data} and (trash / COPY).stat().st_mtime_ns == mtime
        assert post(server, f"/v1/duplicates/trash/{move['token']}/restore").status == 200
        assert original.read_bytes() == data and original.stat().st_mtime_ns == mtime
        assert files_in(trash) == {}
        assert server.request("GET", f"/v1/duplicates/files/{server.ids[COPY]}").body == data
    finally:
        server.close()
        shutil.rmtree(trash, ignore_errors=True)  # the test's own folder


def test_a_copy_that_reads_back_wrong_leaves_the_original(photos, tmp_path, monkeypatch):
    import aetools.serve.duplicates as duplicates

    trash = other_file_system(tmp_path)
    before = snapshot(photos)
    monkeypatch.setattr(duplicates, "file_sha256", lambda path: "0" * 64)  # the published copy is bad
    server = serve(photos, trash)
    try:
        r = post(server, f"/v1/duplicates/files/{server.ids[COPY]}/trash")
        assert r.status == 500 and "reads back wrong" in one_line_error(r)
        assert snapshot(photos) == before and files_in(trash) == {}
        assert server.request("GET", "/v1/duplicates/trash").json()["moves"] == []
    finally:
        server.close()
        shutil.rmtree(trash, ignore_errors=True)


def test_a_file_replaced_during_the_move_is_put_back(live, photos, tmp_path, monkeypatch):
    import aetools.serve.duplicates as duplicates

    original = photos / COPY
    checked = duplicates.read_checked

    def then_replaced(verified, target):  # after the bytes are checked, another program swaps the file
        checked(verified, target)
        replacement = original.with_name("replacement")
        replacement.write_bytes(b"another file now")
        os.replace(replacement, original)

    monkeypatch.setattr(duplicates, "read_checked", then_replaced)
    r = post(live, f"/v1/duplicates/files/{live.ids[COPY]}/trash")
    assert r.status == 409 and "replaced while it was being moved" in one_line_error(r)
    assert original.read_bytes() == b"another file now"  # put back where it was, not left in the trash
    assert files_in(tmp_path / "trash" / "dups") == {}


def test_a_journal_that_cannot_be_written_takes_the_move_back(live, photos, monkeypatch):
    import aetools.serve.duplicates as duplicates

    before = snapshot(photos)

    def full_disk(self, moves):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(duplicates.Trash, "_write", full_disk)
    r = post(live, f"/v1/duplicates/files/{live.ids[COPY]}/trash")
    assert r.status == 500 and "journal cannot be written" in one_line_error(r)
    assert snapshot(photos) == before  # the file is where it was, with its date


@pytest.mark.parametrize(
    "case",
    ["a file", "the index folder", "the folder", "holds the folder", "no index", "not creatable", "not writable"],
)
def test_cli_refuses_a_trash_folder_that_cannot_serve(photos, tmp_path, case):
    index_dir = photos / ".aetools-index"
    (tmp_path / "a-file").write_bytes(b"x")
    trash = {
        "a file": tmp_path / "a-file",
        "the index folder": index_dir / "trash",
        "the folder": photos,
        "holds the folder": tmp_path,
        "no index": tmp_path / "dups",
        "not creatable": Path("/proc/aetools-trash"),  # even by root
        "not writable": Path("/proc"),  # a folder where no file can be created, even by root
    }[case]
    args = ["serve", "--dedup-trash", trash, "--port", 8765, "--device", "cpu"]
    r = run(*(args if case == "no index" else [*args, "--dedup", photos]))
    assert r.exit_code == 2, r.output
    [line] = r.output.strip().splitlines()
    assert line.startswith("error: --dedup-trash")
    assert not (index_dir / "trash").exists() and not list(photos.rglob(".aetools-trash*"))
