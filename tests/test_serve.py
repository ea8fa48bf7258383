"""aetools serve: the HTTP API over real HTTP (uvicorn on a free port, in a thread), with images made here or
taken from skimage.data, and the page driven in headless Chromium (Debian's package, through Playwright)."""

from __future__ import annotations

import http.client
import io
import json
import shutil
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo, run, save_tiny, tiny_model

pytest.importorskip("fastapi", reason='aetools serve needs its extra: pip install -e ".[serve]"')
pytest.importorskip("uvicorn", reason='aetools serve needs its extra: pip install -e ".[serve]"')

MAX_UPLOAD = 2_000_000  # bytes: the served app's limit in these tests


# ------------------------------------------------------------------------------------- a live server


@dataclass
class Live:
    url: str
    app: object

    def get(self, path: str) -> Reply:
        return _send(urllib.request.Request(self.url + path))

    def post(
        self, path: str, files: dict[str, tuple[str, bytes]] | None = None, headers: dict | None = None, **fields
    ) -> Reply:
        """multipart/form-data: files name -> (file name, bytes); fields name -> value."""
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, content) in (files or {}).items():
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            )
            parts.append(head.encode() + content + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers = {**(headers or {}), "Content-Type": f"multipart/form-data; boundary={boundary}"}
        return _send(urllib.request.Request(self.url + path, data=body, headers=headers, method="POST"))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.body))


def _send(request: urllib.request.Request) -> Reply:
    try:
        with urllib.request.urlopen(request, timeout=600) as r:
            return Reply(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers), e.read())


def start_server(app) -> tuple[str, object, threading.Thread]:
    """uvicorn serving `app` on a free port of 127.0.0.1, in a thread (the socket is bound first: no race)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """Three photos and an exact copy of one, indexed with a tiny hashing model."""
    from aetools.index.folder import index_folder

    folder = tmp_path_factory.mktemp("pictures")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(photo(160, name)).save(folder / f"{name}.png")
    shutil.copy(folder / "coffee.png", folder / "coffee copy.png")
    model = tiny_model("hash-unet", widths=(8, 16), bits=32, size=32)
    weights = save_tiny(model, "hash", tmp_path_factory.mktemp("weights") / "tiny-hash.safetensors")
    from aetools.weights import load_model

    index_folder(load_model(weights, "hash"), folder)
    return folder


@pytest.fixture(scope="module")
def live(pictures) -> Live:
    from aetools.index.folder import default_index_dir
    from aetools.serve import create_app

    app = create_app("cpu", default_index_dir(pictures), max_upload_bytes=MAX_UPLOAD)
    url, server, thread = start_server(app)
    yield Live(url, app)
    server.should_exit = True
    thread.join(timeout=30)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def noisy_photo(size: int = 96, sigma: float = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    clean = photo(size)
    noise = np.random.default_rng(seed).normal(0, sigma, clean.shape)
    return clean, np.clip(clean + noise, 0, 255).round().astype(np.uint8)


# --------------------------------------------------------------------------------------------- the API


def test_models_lists_the_shipped_models_of_every_image_task_and_the_limits(live):
    r = live.get("/v1/models")
    assert r.status == 200
    body = r.json()
    assert set(body["tasks"]) == {"denoise", "upscale", "colorize", "inpaint"}
    assert body["tasks"]["upscale"]["default"] == "upscale"
    assert "upscale-real" in body["tasks"]["upscale"]["models"]
    assert body["limits"]["max_upload_bytes"] == MAX_UPLOAD
    from aetools.data.io import MAX_PIXELS

    assert body["limits"]["max_pixels"] == MAX_PIXELS
    assert body["duplicates"] is True and body["device"] == "cpu"
    from aetools.serve.runner import OUTPUT_FORMATS

    assert body["formats"] == ["same", *OUTPUT_FORMATS] and body["precisions"] == ["auto", "fp32", "bf16"]


def test_the_bundled_examples_are_listed_and_served_by_name_only(live):
    from aetools.serve.examples import EXAMPLES

    listed = live.get("/v1/examples").json()["examples"]
    assert [e["name"] for e in listed] == [e.name for e in EXAMPLES] and len(listed) >= 2
    total = 0
    for example in listed:
        assert example["task"] in ("denoise", "upscale", "colorize", "inpaint") and example["credit"]
        r = live.get(example["url"])
        assert r.status == 200 and r.headers["content-type"].startswith("image/")
        image = r.image()
        assert 100 <= max(image.size) <= 400
        total += len(r.body)
    assert total < 400_000  # small: package data
    assert live.get("/v1/examples/__init__.py").status == 404  # names in the list only, never a path
    assert live.get("/v1/examples/..%2F..%2Fapp.py").status == 404


def test_page_loads_nothing_from_the_internet(live):
    r = live.get("/")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    page = r.body.decode()
    assert "http://" not in page and "https://" not in page and "//cdn" not in page and "@import" not in page
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert live.get("/docs").status == 404  # FastAPI's docs pages would load scripts from a CDN


def test_denoise_returns_an_image_closer_to_the_clean_photo_than_the_noisy_upload(live):
    clean, noisy = noisy_photo()
    r = live.post("/v1/denoise", {"image": ("../../astro noisy.png", png(noisy))})
    assert r.status == 200, r.body[:200]
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'attachment; filename="astro_noisy_denoised.png"'
    out = np.asarray(r.image().convert("RGB"))
    assert out.shape == clean.shape
    assert psnr(out, clean) > psnr(noisy, clean) + 4  # about 20 -> 28 dB


def test_denoise_with_a_known_sigma_and_fp32(live):
    clean, noisy = noisy_photo(64, seed=1)
    r = live.post("/v1/denoise", {"image": ("n.png", png(noisy))}, sigma=25, precision="fp32", tile=32)
    assert r.status == 200, r.body[:200]
    assert psnr(np.asarray(r.image().convert("RGB")), clean) > psnr(noisy, clean) + 3


def test_upscale_returns_exactly_scale_times_the_size_in_the_inputs_format(live):
    small = photo(96)[:45, :60]
    for scale in (2, 3):
        r = live.post("/v1/upscale", {"image": ("small.png", png(small))}, scale=scale)
        assert r.status == 200, r.body[:200]
        assert r.image().size == (60 * scale, 45 * scale)
        assert r.headers["content-disposition"] == f'attachment; filename="small_x{scale}.png"'
        assert r.headers["x-aetools-model"] == "upscale"  # a lossless input: the CLI's default for it
    jpeg = io.BytesIO()
    Image.fromarray(small).save(jpeg, "JPEG", quality=90)
    r = live.post("/v1/upscale", {"image": ("photo.jpg", jpeg.getvalue())})
    assert r.status == 200 and r.headers["content-type"] == "image/jpeg" and r.image().size == (120, 90)
    assert r.headers["x-aetools-model"] == "upscale-real"  # a JPEG: the real-photo model, as the CLI picks
    r = live.post("/v1/upscale", {"image": ("photo.jpg", jpeg.getvalue())}, model="upscale", format="png")
    assert r.headers["content-type"] == "image/png" and r.image().format == "PNG"
    assert r.headers["x-aetools-model"] == "upscale"
    assert live.get("/v1/models").json()["upscale_lossy_default"] == "upscale-real"


def test_colorize_returns_colour_with_the_greys_lightness(live):
    grey = np.asarray(Image.fromarray(photo(64, "coffee")).convert("L"))
    r = live.post("/v1/colorize", {"image": ("old.png", png(grey))}, strength=1.0)
    assert r.status == 200, r.body[:200]
    out = r.image()
    assert out.mode == "RGB" and out.size == (64, 64)
    rgb = np.asarray(out).astype(np.float64)
    assert np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean() > 2  # not grey
    lightness = np.asarray(out.convert("L")).astype(np.float64)
    assert np.abs(lightness - grey).mean() < 4  # the model colours; the lightness stays the input's


def test_colorize_takes_colour_hints_and_refuses_bad_ones(live):
    grey = np.asarray(Image.fromarray(photo(64, "coffee")).convert("L"))
    r = live.post("/v1/colorize", {"image": ("old.png", png(grey))}, hints="20,30,#2050e0; 40,10,#20b040")
    assert r.status == 200, r.body[:200]
    out = np.asarray(r.image().convert("RGB")).astype(int)
    assert out[30, 20, 2] > out[30, 20, 0] and out[10, 40, 1] > out[10, 40, 0]  # blue there, green there
    for bad, words in [("20,30,blue", "hints: colour 'blue'"), ("500,5,#ffffff", "outside the 64x64 image")]:
        r = live.post("/v1/colorize", {"image": ("old.png", png(grey))}, hints=bad)
        assert r.status == 422 and words in r.json()["error"], r.body[:200]
    r = live.post("/v1/colorize", {"image": ("old.png", png(grey))}, hints="/etc/passwd")
    assert r.status == 422  # a string is points, never a file on the server


def test_inpaint_fills_the_mask_and_keeps_every_other_pixel(live):
    image = photo(96, "chelsea")
    mask = np.zeros((96, 96), np.uint8)
    mask[30:60, 40:70] = 255
    damaged = image.copy()
    damaged[mask > 0] = 0
    r = live.post("/v1/inpaint", {"image": ("cat.png", png(damaged)), "mask": ("mask.png", png(mask))})
    assert r.status == 200, r.body[:200]
    out = np.asarray(r.image().convert("RGB"))
    assert np.array_equal(out[mask == 0], damaged[mask == 0])  # bit for bit
    assert psnr(out[mask > 0], image[mask > 0]) > psnr(damaged[mask > 0], image[mask > 0]) + 6

    r = live.post("/v1/inpaint", {"image": ("cat.png", png(image)), "mask": ("m.png", png(mask * 0))})
    assert r.status == 200 and "empty" in r.headers["x-aetools-warning"]
    assert np.array_equal(np.asarray(r.image().convert("RGB")), image)


def _animation() -> bytes:
    """An animated GIF of two frames: the page takes still images (never a silent first frame)."""
    frames = [Image.fromarray(photo(32, name)) for name in ("astronaut", "coffee")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose data is a few bytes: the pixel guard's test."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "files, fields, status, words",
    [
        ({"image": ("a.png", b"")}, {}, 400, "image: empty file"),
        ({"image": ("a.png", b"hello, not an image")}, {}, 415, "image: not an image"),
        ({"image": ("a.png", png(photo(64))[:600])}, {}, 422, "image: corrupt or truncated"),
        ({"image": ("bomb.png", _png_header_only(20_000, 20_000))}, {}, 413, "limit"),
        ({}, {"sigma": 25}, 422, "image: missing"),
        ({"image": ("a.png", png(photo(32)))}, {"sigma": 500}, 422, "sigma"),
        ({"image": ("a.png", png(photo(32)))}, {"precision": "fp16"}, 422, "precision"),
        ({"image": ("a.png", png(photo(32)))}, {"model": "/etc/passwd"}, 422, "not a shipped denoise model"),
        ({"image": ("a.png", png(photo(32)))}, {"tile": 4}, 422, "tile 4"),
        ({"image": ("a.png", png(photo(32)))}, {"sigmaa": 25}, 422, "sigmaa: extra inputs are not permitted"),
        ({"image": ("moving.gif", _animation())}, {}, 422, "image: 2 frames (an animation or pages)"),
    ],
)
def test_a_bad_upload_or_option_gets_a_json_error_naming_the_problem(live, files, fields, status, words):
    r = live.post("/v1/denoise", files, **fields)
    assert r.status == status, r.body
    message = r.json()["error"]
    assert words in message and "\n" not in message
    assert live.get("/v1/models").status == 200  # and the server keeps serving


def test_other_refusals_are_json_too(live):
    big = live.post("/v1/denoise", {"image": ("big.png", b"\0" * (MAX_UPLOAD + 1))})
    assert big.status == 413 and "MB limit" in big.json()["error"]
    r = live.post("/v1/upscale", {"image": ("a.png", png(photo(32)))}, scale=5)
    assert r.status == 422 and "scale" in r.json()["error"]
    r = live.post(
        "/v1/inpaint", {"image": ("a.png", png(photo(32))), "mask": ("m.png", png(np.zeros((8, 8), np.uint8)))}
    )
    assert r.status == 422 and "mask is 8x8 but the image is 32x32" in r.json()["error"]
    r = live.post("/v1/inpaint", {"image": ("a.png", png(photo(32)))})
    assert r.status == 422 and "no mask given" in r.json()["error"]
    r = live.post("/v1/sharpen", {"image": ("a.png", png(photo(32)))})
    assert r.status == 404 and r.json()["error"]
    connection = http.client.HTTPConnection(live.url.removeprefix("http://"), timeout=60)
    connection.request("POST", "/v1/denoise", body=iter([b"chunked ", b"body"]), encode_chunked=True)
    reply = connection.getresponse()
    assert reply.status == 411 and "Content-Length" in json.loads(reply.read())["error"]
    connection.close()


def test_a_running_job_does_not_block_the_server_and_jobs_queue_on_one_loaded_network(live):
    runner = live.app.state.runner
    _, noisy = noisy_photo(48, seed=2)
    replies: list[Reply] = []

    def job() -> None:
        replies.append(live.post("/v1/denoise", {"image": ("n.png", png(noisy))}))

    with runner._queue:  # a job is running: new ones wait in the queue
        workers = [threading.Thread(target=job) for _ in range(3)]
        for w in workers:
            w.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert live.get("/v1/models").status == 200 and live.get("/").status == 200
        assert time.monotonic() - started < 10
        assert not replies  # still queued
    for w in workers:
        w.join(timeout=300)
    assert [r.status for r in replies] == [200, 200, 200]
    assert len({r.body for r in replies}) == 1
    assert [key for key in runner.loaded() if key[0] == "denoise"] == [("denoise", "denoise")]


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.02)


def test_jobs_in_line_report_their_place_and_a_cancelled_one_is_dropped(live):
    runner = live.app.state.runner
    _, noisy = noisy_photo(32, seed=4)
    replies: dict[str, Reply] = {}

    def job(name: str) -> None:
        replies[name] = live.post("/v1/denoise", {"image": ("n.png", png(noisy))}, {"X-Aetools-Job": name})

    workers = {}
    with runner._queue:  # a job is running
        for name in ("first-in-line", "second-in-line"):
            workers[name] = threading.Thread(target=job, args=(name,))
            workers[name].start()
            wait_until(lambda n=name: live.get(f"/v1/jobs/{n}").status == 200, 20, f"{name} in line")
        first, second = live.get("/v1/jobs/first-in-line").json(), live.get("/v1/jobs/second-in-line").json()
        assert (first["state"], first["ahead"]) == ("waiting", 1)  # the running job is ahead of it
        assert (second["state"], second["ahead"]) == ("waiting", 2)
        assert live.post("/v1/jobs/second-in-line/cancel").json()["state"] == "waiting"
        workers["second-in-line"].join(timeout=20)
        assert replies["second-in-line"].status == 499 and "cancelled" in replies["second-in-line"].json()["error"]
        assert live.get("/v1/jobs/second-in-line").json()["state"] == "cancelled" and runner.waiting == 1
        assert live.get("/v1/jobs/first-in-line").json()["ahead"] == 1
    workers["first-in-line"].join(timeout=120)
    assert replies["first-in-line"].status == 200
    done = live.get("/v1/jobs/first-in-line").json()
    assert done["state"] == "finished" and done["ahead"] is None
    assert live.get("/v1/jobs/never-submitted").status == 404
    assert live.post("/v1/jobs/never-submitted/cancel").status == 404
    r = live.post("/v1/denoise", {"image": ("n.png", png(noisy))}, {"X-Aetools-Job": "../x"})
    assert r.status == 422 and "job id" in r.json()["error"]


def test_a_running_job_reports_its_tiles_and_stops_at_the_next_one_when_cancelled(live):
    runner = live.app.state.runner
    big = png(photo(256))
    reply: list[Reply] = []
    worker = threading.Thread(
        target=lambda: reply.append(
            live.post("/v1/denoise", {"image": ("b.png", big)}, {"X-Aetools-Job": "tiled-job"}, tile=16)
        )
    )
    worker.start()
    wait_until(lambda: (live.get("/v1/jobs/tiled-job").json().get("fraction") or 0) > 0, 120, "the first tile")
    status = live.get("/v1/jobs/tiled-job").json()
    assert status["state"] == "running" and status["stage"] == "computing" and status["tiles"] == 256  # 256/16 squared
    assert 0 < status["fraction"] < 1 and status["fraction"] == pytest.approx(status["tiles_done"] / 256, abs=0.02)
    assert status["eta_s"] > 0 and status["elapsed_s"] > 0
    # a cancel from another site is refused (the origin policy covers every POST) and changes nothing
    foreign = urllib.request.Request(
        live.url + "/v1/jobs/tiled-job/cancel", method="POST", headers={"Origin": "http://evil.example"}
    )
    assert _send(foreign).status == 403 and live.get("/v1/jobs/tiled-job").json()["state"] == "running"
    cancelled = runner.counts["cancelled"]
    asked = time.monotonic()
    assert live.post("/v1/jobs/tiled-job/cancel").status == 200
    worker.join(timeout=30)
    assert reply[0].status == 499 and runner.counts["cancelled"] == cancelled + 1
    assert time.monotonic() - asked < 5  # a tile of 16 px takes milliseconds; the job did not run on
    wait_until(lambda: not runner.running, 5, "the queue free")
    ended = live.get("/v1/jobs/tiled-job").json()
    assert ended["state"] == "cancelled" and ended["tiles_done"] < 256


def test_duplicates_lists_the_groups_of_the_index_with_thumbnails_by_id(live, pictures):
    r = live.get("/v1/duplicates?radius=0")
    assert r.status == 200, r.body
    body = r.json()
    assert body["images"] == 4 and body["radius"] == 0
    paths = [sorted(Path(m["path"]).name for m in group) for group in body["items"]]
    assert ["coffee copy.png", "coffee.png"] in paths
    group = next(g for g in body["items"] if Path(g[0]["path"]).name.startswith("coffee"))
    assert all(m["exact"] for m in group) and group[1]["distance"] == 0
    thumb = live.get(f"/v1/duplicates/files/{group[0]['id']}/thumbnail")
    assert thumb.status == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.body)).size) <= 160
    original = live.get(f"/v1/duplicates/files/{group[0]['id']}")
    assert original.status == 200 and original.body == Path(group[0]["path"]).read_bytes()
    assert live.get("/v1/duplicates/files/999999/thumbnail").status == 404
    assert live.get("/v1/duplicates/files/..%2F..%2Fetc%2Fpasswd").status in (404, 422)  # ids only, never paths
    assert live.get("/v1/duplicates?radius=999").status == 422


def test_duplicates_without_an_index_is_a_404_saying_how_to_serve_one():
    from aetools.serve import create_app

    app = create_app("cpu")
    url, server, thread = start_server(app)
    try:
        r = Live(url, app).get("/v1/duplicates")
        assert r.status == 404 and "--dedup" in r.json()["error"]
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_cli_serve_refuses_a_folder_without_an_index(tmp_path):
    r = run("serve", "--dedup", tmp_path, "--port", 8765)
    assert r.exit_code == 2
    assert "no index here" in r.output


# ------------------------------------------------------------------------------------------ the page


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_page_in_a_real_browser_denoises_an_upload_and_inpaints_two_rounds(live, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium executable on PATH (Debian: apt-get install chromium); .ci/run installs it as root")
    sync_api = pytest.importorskip("playwright.sync_api", reason='Playwright for Python: pip install -e ".[dev]"')

    clean, noisy = noisy_photo(96, seed=3)
    upload = tmp_path / "noisy.png"
    Image.fromarray(noisy).save(upload)
    elsewhere: list[str] = []

    def stroke(page, points: list[tuple[float, float]]) -> None:
        """Drag the mouse through these pixels of the image shown."""
        view = page.evaluate("() => aetoolsEditor.view()")
        box = page.locator("#stage").bounding_box()
        left, top = box["x"] + view["x"], box["y"] + view["y"]
        screen = [(left + x * view["scale"], top + y * view["scale"]) for x, y in points]
        page.mouse.move(*screen[0])
        page.mouse.down()
        for point in screen[1:]:
            page.mouse.move(*point, steps=12)
        page.mouse.up()

    def run_step(page, steps: int) -> np.ndarray:
        """Run the open tab's task, wait for its result (step `steps`) and download it."""
        page.click("#run")
        page.wait_for_function(f"() => aetoolsEditor.steps().length === {steps}", timeout=300_000)
        with page.expect_download() as download:
            page.click("#download")
        return np.asarray(Image.open(download.value.path()).convert("RGB")), download.value.suggested_filename

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(accept_downloads=True)
            page.on("request", lambda r: r.url.startswith((live.url, "blob:", "data:")) or elsewhere.append(r.url))
            page.goto(live.url + "/")
            page.wait_for_function("() => document.querySelector('#device').textContent !== ''")  # models listed

            # a bad upload: the API's message in the page
            page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"notes"}])
            page.click("#run")
            page.wait_for_function("() => document.querySelector('#status').className === 'error'")
            assert "not an image" in page.inner_text("#status")

            # denoise: upload, run, the result is the image now, the download is the result
            page.set_input_files("#file", str(upload))
            denoised, name = run_step(page, 2)
            assert name == "noisy_denoised.png" and denoised.shape == (96, 96, 3)
            assert "after 96x96" in page.inner_text("#after-label")
            assert psnr(denoised, clean) > psnr(noisy, clean) + 4

            # inpaint, twice on the same image: a horizontal stroke, then a vertical one on the first result
            page.click("nav button[data-tab=inpaint]")
            page.fill("#brush", "12")
            stroke(page, [(24, 48), (72, 48)])
            filled, name = run_step(page, 3)
            assert name == "noisy_denoised_filled.png"
            stroke(page, [(12, 70), (12, 90)])
            twice, _ = run_step(page, 4)
        finally:
            browser.close()
    changed = np.any(filled != denoised, axis=2)
    assert changed[48, 30:66].all()  # along the stroke
    assert not changed[:30].any() and not changed[66:].any()  # far from it, bit for bit
    changed = np.any(twice != filled, axis=2)  # the second round worked on the first one's result
    assert changed[72:88, 12].all()
    assert not changed[:55].any() and not changed[:, 30:].any()
    assert not elsewhere, f"the page asked for {elsewhere}"
