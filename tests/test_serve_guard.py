"""aetools serve's origin and admission layer, over real HTTP (uvicorn on 127.0.0.1, a free port, in a
thread): the Host allow-list, Origin / Sec-Fetch-Site on the routes that run jobs or serve files, indexed
files served only while they are what was indexed, the bounded job queue, jobs dropped or stopped when
their client disconnects, stalled uploads dropped, and the groups computed outside the browser's lock."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo, run, save_tiny, tiny_model
from tests.test_serve import Reply, noisy_photo, png, start_server

pytest.importorskip("fastapi", reason='aetools serve needs its extra: pip install -e ".[serve]"')
pytest.importorskip("uvicorn", reason='aetools serve needs its extra: pip install -e ".[serve]"')

MAX_UPLOAD = 2_000_000
READ_TIMEOUT = 2.0  # seconds: the guarded server's longest pause within an upload


# ------------------------------------------------------------------------------------------- helpers


class Server:
    """A live app: `request` sends anything, with any headers, over one short-lived connection."""

    def __init__(self, app):
        self.app = app
        self.url, self._server, self._thread = start_server(app)
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def runner(self):
        return self.app.state.runner

    def request(
        self, method: str, path: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 60
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:  # a Host among the headers replaces http.client's own
            connection.request(method, path, body=body, headers=headers or {})
            reply = connection.getresponse()
            return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
        finally:
            connection.close()

    def post_image(self, path: str, image: bytes, headers: dict | None = None, timeout: float = 60, **fields):
        body, content_type = form({"image": ("a.png", image)}, **fields)
        return self.request("POST", path, {**(headers or {}), "Content-Type": content_type}, body, timeout)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def form(files: dict[str, tuple[str, bytes]], **fields) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def raw_post(port: int, path: str, body: bytes, content_type: str) -> socket.socket:
    """A POST sent whole on a socket left open (the caller reads the answer, or closes it: a disconnect)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
    sock.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.02)


def one_line_error(reply: Reply) -> str:
    message = json.loads(reply.body)["error"]
    assert message and "\n" not in message
    return message


@pytest.fixture(scope="module")
def hash_weights(tmp_path_factory) -> Path:
    model = tiny_model("hash-unet", widths=(8, 16), bits=32, size=32)
    return save_tiny(model, "hash", tmp_path_factory.mktemp("weights") / "tiny-hash.safetensors")


def indexed_folder(folder: Path, weights: Path) -> Path:
    """Three photos and an exact copy of one in `folder`, indexed; returns the index folder."""
    from aetools.index.folder import default_index_dir, index_folder
    from aetools.weights import load_model

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(photo(96, name)).save(folder / f"{name}.png")
    shutil.copy(folder / "coffee.png", folder / "coffee copy.png")
    index_folder(load_model(weights, "hash"), folder)
    return default_index_dir(folder)


def ids_by_name(index_dir: Path) -> dict[str, int]:
    from aetools.index.store import HashIndex

    return {Path(r.path).name: i for i, r in HashIndex.load(index_dir).records.items()}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, hash_weights):
    """A server with a small queue (2 waiting jobs) and a short upload pause limit, browsing an index."""
    from aetools.serve import create_app

    index_dir = indexed_folder(tmp_path_factory.mktemp("guarded") / "pictures", hash_weights)
    app = create_app(
        "cpu", index_dir, MAX_UPLOAD, max_waiting=2, read_timeout=READ_TIMEOUT, upload_timeout=READ_TIMEOUT * 8
    )
    server = Server(app)
    server.ids = ids_by_name(index_dir)
    yield server
    server.close()


# ----------------------------------------------------------------------------------------- the Host


def routes(server: Server) -> list[tuple[str, str]]:
    file_id = server.ids["astronaut.png"]
    return [
        ("GET", "/"),
        ("GET", "/v1/models"),
        ("GET", "/openapi.json"),
        ("GET", "/v1/duplicates?radius=0"),
        ("GET", f"/v1/duplicates/files/{file_id}"),
        ("GET", f"/v1/duplicates/files/{file_id}/thumbnail"),
        ("GET", "/no/such/route"),
        ("POST", "/v1/denoise"),
        ("POST", "/v1/upscale"),
    ]


def send(server: Server, method: str, path: str, headers: dict) -> Reply:
    if method == "POST":
        return server.post_image(path, png(photo(32)), headers)
    return server.request(method, path, headers)


def test_a_host_that_is_not_this_servers_name_is_refused_on_every_route(guarded):
    started = guarded.runner.counts["started"]
    for host in ("rebind.attacker.example", f"rebind.attacker.example:{guarded.port}", "localhost.", "127.0.0.2"):
        for method, path in routes(guarded):
            r = send(guarded, method, path, {"Host": host})
            assert r.status == 403, (host, method, path, r.body[:200])
            assert "is not a name of this server" in one_line_error(r) and "--allow-host" in one_line_error(r)
    assert guarded.runner.counts["started"] == started  # no job ran
    for host in (f"127.0.0.1:{guarded.port}", f"localhost:{guarded.port}", f"LocalHost:{guarded.port}", "[::1]"):
        assert guarded.request("GET", "/v1/models", {"Host": host}).status == 200, host


def test_allow_host_lets_a_name_chosen_on_purpose_in_and_only_that(hash_weights):
    from aetools.serve import create_app

    server = Server(create_app("cpu", allow_hosts=["Photos.LAN"]))
    try:
        assert server.request("GET", "/v1/models", {"Host": f"photos.lan:{server.port}"}).status == 200
        assert server.request("GET", "/", {"Host": "photos.lan"}).status == 200
        assert server.request("GET", "/v1/models", {"Host": "other.lan"}).status == 403
        own = {"Host": f"photos.lan:{server.port}", "Origin": f"http://photos.lan:{server.port}"}
        r = server.request("POST", "/v1/denoise", own, b"")  # past the guard: the form's own error
        assert r.status == 422 and "image" in one_line_error(r)
    finally:
        server.close()


def test_cli_allow_host_refuses_a_name_with_a_port():
    r = run("serve", "--allow-host", "photos.lan:8000", "--port", 8765)
    assert r.exit_code == 2 and "--allow-host 'photos.lan:8000'" in r.output


# ------------------------------------------------------------------------------- Origin, Sec-Fetch-Site


def test_cross_site_requests_to_jobs_and_files_are_refused(guarded):
    file_id = guarded.ids["coffee.png"]
    guarded_routes = [
        ("POST", "/v1/denoise"),
        ("GET", "/v1/duplicates?radius=0"),
        ("GET", f"/v1/duplicates/files/{file_id}"),
        ("GET", f"/v1/duplicates/files/{file_id}/thumbnail"),
    ]
    cross_site = [
        {"Origin": "http://evil.example"},
        {"Origin": f"http://127.0.0.1:{guarded.port + 1}"},  # another server on this machine
        {"Origin": f"https://127.0.0.1:{guarded.port}"},
        {"Origin": "null"},  # a sandboxed frame, a file:// page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port or subdomain of this host
        {"Origin": f"http://127.0.0.1:{guarded.port}", "Sec-Fetch-Site": "cross-site"},
    ]
    started = guarded.runner.counts["started"]
    for method, path in guarded_routes:
        for headers in cross_site:
            r = send(guarded, method, path, headers)
            assert r.status == 403, (method, path, headers, r.body[:200])
            assert "refused" in one_line_error(r) and "this server's page" in one_line_error(r)
    assert guarded.runner.counts["started"] == started  # no job ran

    # the page's own requests, and clients that are no browser's (no Origin, no Sec-Fetch-Site), are served
    own = {"Origin": f"http://127.0.0.1:{guarded.port}", "Sec-Fetch-Site": "same-origin"}
    for headers in (own, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        for method, path in guarded_routes:
            assert send(guarded, method, path, headers).status == 200, (method, path, headers)
    # a job's state (what someone is working on) is not for other sites either; the page's own ask is answered
    for headers in cross_site:
        assert send(guarded, "GET", "/v1/jobs/abcdef0123456789", headers).status == 403, headers
    assert send(guarded, "GET", "/v1/jobs/abcdef0123456789", own).status == 404  # unknown here, but not refused
    # the page itself and the model list may be opened from anywhere (a link): they run and serve nothing
    for path in ("/", "/v1/models"):
        assert (
            guarded.request("GET", path, {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}).status
            == 200
        )


# ------------------------------------------------------------------------ indexed files, verified


def test_an_indexed_file_is_served_only_while_it_is_what_was_indexed(tmp_path, hash_weights):
    from aetools.serve import create_app

    folder = tmp_path / "pictures"
    index_dir = indexed_folder(folder, hash_weights)
    ids = ids_by_name(index_dir)
    secret = tmp_path / "secret.txt"  # outside the indexed folder: stands in for /etc/passwd
    secret.write_bytes(b"root:x:0:0:the secret\n" * 40)
    server = Server(create_app("cpu", index_dir))
    try:
        path = f"/v1/duplicates/files/{ids['astronaut.png']}"
        r = server.request("GET", path)
        assert r.status == 200 and r.body == (folder / "astronaut.png").read_bytes()
        assert r.headers["content-type"] == "image/png"

        # a photo swapped for a symlink to a file outside the folder
        (folder / "chelsea.png").unlink()
        (folder / "chelsea.png").symlink_to(secret)
        for suffix in ("", "/thumbnail"):
            r = server.request("GET", f"/v1/duplicates/files/{ids['chelsea.png']}{suffix}")
            assert r.status == 403 and "outside the indexed folder" in one_line_error(r), r.body[:200]
            assert b"secret" not in r.body

        # a photo swapped for a symlink to another photo of the folder: its bytes are not the recorded ones
        (folder / "coffee.png").unlink()
        (folder / "coffee.png").symlink_to(folder / "astronaut.png")
        r = server.request("GET", f"/v1/duplicates/files/{ids['coffee.png']}")
        assert r.status == 409 and "changed since it was indexed" in one_line_error(r)

        # one byte changed in place, the size and the date put back: only the sha256 tells
        photo_path = folder / "astronaut.png"
        info = photo_path.stat()
        data = bytearray(photo_path.read_bytes())
        data[-20] ^= 0xFF
        photo_path.write_bytes(bytes(data))
        os.utime(photo_path, ns=(info.st_atime_ns, info.st_mtime_ns))
        for suffix in ("", "/thumbnail"):
            r = server.request("GET", path + suffix)
            assert r.status == 409 and "(its bytes)" in one_line_error(r) and "hash-index --update" in r.json()["error"]

        (folder / "coffee copy.png").unlink()
        r = server.request("GET", f"/v1/duplicates/files/{ids['coffee copy.png']}")
        assert r.status == 404 and "no longer on disk" in one_line_error(r)
    finally:
        server.close()


def test_an_edited_index_naming_a_file_outside_the_folder_is_refused(tmp_path, hash_weights):
    from aetools.index.store import FileRecord, HashIndex
    from aetools.serve import create_app

    folder = tmp_path / "pictures"
    index_dir = indexed_folder(folder, hash_weights)
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$secret-hash:19000:0:99999:7:::\n")
    info = secret.stat()
    forged = FileRecord(str(secret), info.st_size, info.st_mtime_ns, hashlib.sha256(secret.read_bytes()).hexdigest())

    index = HashIndex.load(index_dir)
    target = ids_by_name(index_dir)["chelsea.png"]
    index.records[target] = forged  # size, date and sha256 all match the file: only its place gives it away
    index.save(index_dir)
    server = Server(create_app("cpu", index_dir))  # the root the index records
    try:
        r = server.request("GET", f"/v1/duplicates/files/{target}")
        assert r.status == 403 and "outside the indexed folder" in one_line_error(r) and b"secret" not in r.body
    finally:
        server.close()

    index.settings["root"] = "/"  # the recorded root edited too: the folder named to the server still bounds it
    index.save(index_dir)
    server = Server(create_app("cpu", index_dir, root=folder))  # aetools serve --dedup FOLDER
    try:
        r = server.request("GET", f"/v1/duplicates/files/{target}")
        assert r.status == 403 and b"secret" not in r.body
        ok = server.request("GET", f"/v1/duplicates/files/{ids_by_name(index_dir)['astronaut.png']}")
        assert ok.status == 200 and ok.body == (folder / "astronaut.png").read_bytes()
    finally:
        server.close()


# ----------------------------------------------------------------------------------------- admission


def test_a_full_queue_answers_503_with_retry_after_at_once(guarded):
    runner = guarded.runner
    _, noisy = noisy_photo(32, seed=4)
    replies: list[Reply] = []
    refused = runner.counts["refused"]
    with runner._queue:  # a job is running
        waiting = [threading.Thread(target=lambda: replies.append(guarded.post_image("/v1/denoise", png(noisy))))]
        waiting.append(threading.Thread(target=lambda: replies.append(guarded.post_image("/v1/denoise", png(noisy)))))
        for w in waiting:
            w.start()
        wait_until(lambda: runner.waiting == 2, 20, "two jobs waiting")
        started = time.monotonic()
        r = guarded.post_image("/v1/denoise", png(noisy), timeout=10)
        assert time.monotonic() - started < 5
        assert r.status == 503, r.body[:200]
        assert int(r.headers["retry-after"]) >= 1
        assert "busy: 2 jobs are waiting" in one_line_error(r) and "--max-queue" in r.json()["error"]
        assert runner.counts["refused"] == refused + 1
        models = guarded.request("GET", "/v1/models").json()
        assert models["queue"] == {"waiting": 2, "running": True} and models["limits"]["max_waiting_jobs"] == 2
    for w in waiting:
        w.join(timeout=120)
    assert [r.status for r in replies] == [200, 200]  # the queued ones ran once the queue moved
    assert runner.waiting == 0


def test_a_queued_job_whose_client_disconnects_never_runs(guarded):
    runner = guarded.runner
    body, content_type = form({"image": ("n.png", png(photo(32)))})
    before = dict(runner.counts)
    with runner._queue:  # a job is running
        sock = raw_post(guarded.port, "/v1/denoise", body, content_type)
        wait_until(lambda: runner.waiting == 1, 20, "the job queued")
        sock.close()  # the client gives up
        wait_until(lambda: runner.counts["dropped"] == before.get("dropped", 0) + 1, 10, "the job dropped")
        assert runner.waiting == 0
    time.sleep(0.5)
    assert runner.counts["started"] == before.get("started", 0)  # it never ran
    assert guarded.post_image("/v1/denoise", png(photo(32))).status == 200  # and the queue goes on


def test_a_running_job_stops_at_its_next_tile_when_its_client_disconnects(guarded):
    runner = guarded.runner
    body, content_type = form({"image": ("big.png", png(photo(128)))}, tile=16)  # 64 tiles
    before = runner.counts["cancelled"]
    sock = raw_post(guarded.port, "/v1/denoise", body, content_type)
    seen: list[tuple[int, int]] = []

    def tiles_running() -> bool:
        if runner.progress is not None:
            seen.append(runner.progress)
        return bool(seen)

    wait_until(tiles_running, 120, "the job's first tile")
    sock.close()
    disconnected = time.monotonic()
    wait_until(lambda: tiles_running() and runner.counts["cancelled"] == before + 1, 30, "the job stopped")
    done, total = max(seen)
    assert total == 64 and done < total, seen[-3:]
    print(f"stopped {time.monotonic() - disconnected:.1f} s after the disconnect, at tile {done} of {total}")
    assert guarded.post_image("/v1/denoise", png(photo(32))).status == 200  # the queue is free again


def _deleted_temporaries() -> set[str]:
    """This process's open files that are unnamed temporaries (a spooled upload on disk), by fd."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)"):
            found.add(f"{fd} {target}")
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_a_stalled_upload_is_spooled_to_disk_then_dropped_within_the_timeout(guarded):
    image = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    body, content_type = form({"image": ("big.png", png(image))})
    assert len(body) > 400_000
    before = _deleted_temporaries()
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=READ_TIMEOUT + 10)
    try:
        head = f"POST /v1/denoise HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        sock.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:300_000])
        stalled = time.monotonic()
        # past 256 KB the file part is on disk, not in memory (Starlette's default kept 1 MB in memory)
        wait_until(lambda: len(_deleted_temporaries() - before) == 1, READ_TIMEOUT, "the part spooled to disk")
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            answer += chunk
        waited = time.monotonic() - stalled
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"upload stalled: nothing received for 2 s" in answer
    assert waited < READ_TIMEOUT + 3
    wait_until(lambda: not (_deleted_temporaries() - before), 5, "the spooled part freed")
    assert guarded.request("GET", "/v1/models").status == 200


def test_files_and_thumbnails_answer_while_groups_are_computed(guarded, monkeypatch):
    import aetools.serve.duplicates as duplicates

    computing, finish = threading.Event(), threading.Event()
    real = duplicates.duplicate_groups

    def slow_groups(*args, **kwargs):
        computing.set()
        assert finish.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(duplicates, "duplicate_groups", slow_groups)
    replies: list[Reply] = []
    worker = threading.Thread(target=lambda: replies.append(guarded.request("GET", "/v1/duplicates?radius=3")))
    worker.start()
    try:
        assert computing.wait(20)
        file_id = guarded.ids["coffee.png"]
        for path in (f"/v1/duplicates/files/{file_id}/thumbnail", f"/v1/duplicates/files/{file_id}"):
            started = time.monotonic()
            assert guarded.request("GET", path, timeout=10).status == 200
            assert time.monotonic() - started < 5
        assert not replies  # the groups are still being computed
    finally:
        finish.set()
        worker.join(timeout=60)
    assert replies[0].status == 200 and replies[0].json()["radius"] == 3
