"""The page of `aetools serve` as an editor, driven in headless Chromium (Debian's package, through Playwright):
the upload drawn at once, zoom to 1:1 with the before/after slider, results that become the image with undo
and redo. The networks are stood in for by `Invert` (the result is 1 - the image, so every pixel the canvas
shows can be checked); the real networks are the browser test's in tests/test_serve.py."""

from __future__ import annotations

import io
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo, save_tiny, tiny_model
from tests.test_serve import find_chromium, start_server

pytest.importorskip("fastapi", reason='aetools serve needs its extra: pip install -e ".[serve]"')
pytest.importorskip("uvicorn", reason='aetools serve needs its extra: pip install -e ".[serve]"')

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/aetools-editor-shots")  # screenshots to look at (not checked by the tests)


class Invert:
    """Stands in for every task's pipeline: the result is 1 - the image. With `tile_seconds`, it first runs
    the real tiling routine over 16 px tiles, sleeping that long per tile (a long job that reports tiles)."""

    def __init__(self):
        self.inputs: list[tuple[np.ndarray, dict]] = []
        self.tile_seconds = 0.0

    def __call__(self, data, **options):
        import torch

        from aetools.tiling import run_tiled

        self.inputs.append((data.pixels.copy(), options))
        if self.tile_seconds:
            x = torch.from_numpy(np.ascontiguousarray(data.pixels)).permute(2, 0, 1)[None]
            run_tiled(lambda piece: time.sleep(self.tile_seconds) or piece, x, tile=16, margin=0)
        return data.with_pixels(1.0 - data.pixels)


@pytest.fixture(scope="module")
def server():
    from aetools.serve import create_app

    app = create_app("cpu")
    invert = Invert()
    app.state.runner._pipeline = lambda task, model, precision: invert  # the networks are not what is tested
    url, uvicorn_server, thread = start_server(app)
    yield url, app, invert
    uvicorn_server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def chromium():
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium executable on PATH (Debian: apt-get install chromium); .ci/run installs it as root")
    sync_api = pytest.importorskip("playwright.sync_api", reason='Playwright for Python: pip install -e ".[dev]"')
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@contextmanager
def opened(chromium, url: str):
    """The page of the server at `url` in a fresh browser context; it must ask for nothing elsewhere."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    elsewhere = []
    page.on("request", lambda r: r.url.startswith((url, "blob:", "data:")) or elsewhere.append(r.url))
    page.goto(url + "/")
    page.wait_for_function("() => document.querySelector('#device').textContent !== ''")
    yield page
    assert not elsewhere, f"the page asked for {elsewhere}"
    context.close()


@pytest.fixture
def page(chromium, server):
    url, _, invert = server
    invert.inputs.clear()
    invert.tile_seconds = 0.0
    with opened(chromium, url) as page:
        yield page


def png_file(tmp_path: Path, pixels: np.ndarray, name: str = "image.png") -> Path:
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    return path


def settle(page) -> None:
    """Two animation frames: the canvas is drawn in one."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def canvas_pixel(page, x: float, y: float) -> tuple[int, int, int]:
    """The canvas's RGB at (x, y) CSS pixels of the stage."""
    return tuple(
        page.evaluate(
            """([x, y]) => { const c = document.getElementById('view'), d = window.devicePixelRatio || 1;
                const px = c.getContext('2d').getImageData(Math.floor(x * d), Math.floor(y * d), 1, 1);
                return Array.from(px.data); }""",
            [x, y],
        )[:3]
    )


def on_screen(page, ix: float, iy: float) -> tuple[float, float]:
    """Where pixel (ix, iy) of the current step is drawn (its centre), in CSS pixels of the stage."""
    v = page.evaluate("() => aetoolsEditor.view()")
    return v["x"] + (ix + 0.5) * v["scale"], v["y"] + (iy + 0.5) * v["scale"]


def upload(page, path: Path, steps: int = 1) -> None:
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"() => aetoolsEditor.steps().length === {steps}")
    settle(page)


def run_and_wait(page, steps: int) -> None:
    page.click("#run")
    page.wait_for_function(f"() => aetoolsEditor.steps().length === {steps} && !aetoolsEditor.busy()", timeout=60_000)
    settle(page)


def test_the_upload_is_drawn_at_once_before_any_job(page, tmp_path, server):
    _, app, invert = server
    quads = np.zeros((80, 120, 3), np.uint8)
    colours = {(0, 0): (230, 20, 20), (0, 1): (20, 200, 40), (1, 0): (30, 60, 220), (1, 1): (240, 220, 30)}
    for (row, col), colour in colours.items():
        quads[row * 40 : row * 40 + 40, col * 60 : col * 60 + 60] = colour
    started = app.state.runner.counts["started"]
    upload(page, png_file(tmp_path, quads))

    assert page.is_hidden("#empty")
    v = page.evaluate("() => aetoolsEditor.view()")
    assert v["scale"] > 3  # fitted to the stage, far larger than 120 px
    for (row, col), colour in colours.items():
        assert canvas_pixel(page, *on_screen(page, col * 60 + 30, row * 40 + 20)) == colour
    assert page.inner_text("#status") == ""  # no "Choose an image and press Run"
    assert app.state.runner.counts["started"] == started and not invert.inputs  # no job ran
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "upload.png"))


def test_zoom_to_one_to_one_and_the_slider_still_reveals_the_result(page, tmp_path):
    image = photo(1024, "coffee")[:768]
    upload(page, png_file(tmp_path, image, "coffee.png"))
    fit = page.evaluate("() => aetoolsEditor.view()")
    assert fit["scale"] < 0.9  # fitted: the whole 1024 x 768 in the stage

    run_and_wait(page, 2)
    assert page.evaluate("() => aetoolsEditor.view().comparing")
    page.click("#zoom-1")
    settle(page)
    one = page.evaluate("() => aetoolsEditor.view()")
    assert one["scale"] * one["dpr"] == 1 and one["x"] != fit["x"]
    assert page.inner_text("#zoom-value") == "100%"

    stage = page.locator("#stage").bounding_box()
    page.fill("#slider", "40")
    settle(page)
    divider = stage["width"] * 0.4
    for dx in (-30, -6, 6, 30):  # left of the divider: before; right of it: after (1 - the image)
        sx, sy = divider + dx, stage["height"] * 0.5
        ix, iy = int(sx - one["x"]), int(sy - one["y"])
        expected = image[iy, ix] if dx < 0 else 255 - image[iy, ix]
        assert canvas_pixel(page, sx, sy) == tuple(int(c) for c in expected), (dx, ix, iy)

    # the wheel zooms at the pointer: the pixel under it stays under it
    page.mouse.move(stage["x"] + 500, stage["y"] + 200)
    page.mouse.wheel(0, -300)
    settle(page)
    zoomed = page.evaluate("() => aetoolsEditor.view()")
    assert zoomed["scale"] > one["scale"] * 1.3
    assert abs((500 - zoomed["x"]) / zoomed["scale"] - (500 - one["x"]) / one["scale"]) < 1
    # a drag pans by as much as the pointer moved
    page.mouse.move(stage["x"] + 600, stage["y"] + 300)
    page.mouse.down()
    page.mouse.move(stage["x"] + 650, stage["y"] + 270, steps=5)
    page.mouse.up()
    panned = page.evaluate("() => aetoolsEditor.view()")
    assert (round(panned["x"] - zoomed["x"]), round(panned["y"] - zoomed["y"])) == (50, -30)
    page.screenshot(path=str(SHOTS / "zoomed-compare.png"))
    page.click("#zoom-fit")
    settle(page)
    assert page.evaluate("() => aetoolsEditor.view().scale") == pytest.approx(fit["scale"])


def test_a_result_becomes_the_image_and_undo_brings_the_previous_one_back(page, tmp_path, server):
    _, _, invert = server
    image = photo(96, "chelsea")
    upload(page, png_file(tmp_path, image, "cat.png"))
    run_and_wait(page, 2)
    assert page.evaluate("() => aetoolsEditor.at()") == 1
    page.click("#compare")  # the result alone
    settle(page)
    centre = on_screen(page, 40, 50)
    assert canvas_pixel(page, *centre) == tuple(int(c) for c in 255 - image[50, 40])

    page.keyboard.press("Control+z")  # undo: the image before the result
    settle(page)
    assert page.evaluate("() => aetoolsEditor.at()") == 0
    assert canvas_pixel(page, *centre) == tuple(int(c) for c in image[50, 40])
    page.click("#step-forward")  # redo
    settle(page)
    assert canvas_pixel(page, *centre) == tuple(int(c) for c in 255 - image[50, 40])

    # the next run works on the result (its input is the inverted image), and its result is step 3
    page.click("nav button[data-tab=upscale]")
    run_and_wait(page, 3)
    second_input = np.round(invert.inputs[-1][0] * 255).astype(np.uint8)
    assert np.array_equal(second_input, 255 - image)
    assert page.locator("#history li").count() == 3
    assert page.locator("#history li.current").inner_text().strip() == "3. upscale"

    # any step can be downloaded: the second is the first result
    with page.expect_download() as download:
        page.click("#history li:nth-child(2) a")
    assert download.value.suggested_filename == "cat_denoised.png"
    first_result = np.asarray(Image.open(download.value.path()).convert("RGB"))
    assert np.array_equal(first_result, 255 - image)
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "cat_denoised_x2.png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(Path(download.value.path()).read_bytes()))), image)


def test_progress_shows_a_percentage_and_cancel_stops_the_job_at_its_next_tile(page, tmp_path, server):
    _, app, invert = server
    runner = app.state.runner
    invert.tile_seconds = 0.25  # 64 tiles of 16 px: 16 s, unless cancelled
    upload(page, png_file(tmp_path, photo(128), "slow.png"))
    cancelled = runner.counts["cancelled"]
    page.click("#run")
    page.wait_for_function("() => /\\d+% \\(tile \\d+ of 64\\)/.test(document.querySelector('#busy-text').textContent)")
    assert "left" in page.inner_text("#busy-text")  # an ETA
    assert 0 < page.evaluate("() => document.querySelector('#progress').value") < 1
    page.screenshot(path=str(SHOTS / "progress.png"))
    assert page.is_disabled("#run")

    asked = time.monotonic()
    page.click("#cancel")
    page.wait_for_function("() => !aetoolsEditor.busy()", timeout=5_000)
    assert page.is_enabled("#run") and page.is_hidden("#busy")
    assert "cancelled" in page.inner_text("#status")
    deadline = time.monotonic() + 5
    while runner.running or runner.counts["cancelled"] == cancelled:
        assert time.monotonic() < deadline, "the server still runs the job"
        time.sleep(0.02)
    assert time.monotonic() - asked < 2  # stopped at the next tile (0.25 s), not after 64
    assert page.evaluate("() => aetoolsEditor.steps().length") == 1  # no result: the image is as it was


def test_a_job_behind_another_shows_its_place_in_line(page, tmp_path, server):
    _, app, _ = server
    runner = app.state.runner
    upload(page, png_file(tmp_path, photo(64), "queued.png"))
    with runner._queue:  # another job is running
        page.click("#run")
        page.wait_for_function("() => document.querySelector('#busy-text').textContent.includes('1 job ahead')")
        page.screenshot(path=str(SHOTS / "queued.png"))
    page.wait_for_function("() => aetoolsEditor.steps().length === 2 && !aetoolsEditor.busy()")


def test_a_pasted_image_and_an_example_are_loaded(page, tmp_path):
    stripes = np.zeros((60, 90, 3), np.uint8)
    stripes[:, :30] = (200, 30, 30)
    stripes[:, 30:60] = (30, 200, 30)
    stripes[:, 60:] = (30, 30, 200)
    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, "PNG")
    page.evaluate(
        """(bytes) => {
            const file = new File([new Uint8Array(bytes)], "image.png", { type: "image/png" });
            const clipboard = new DataTransfer();
            clipboard.items.add(file);
            document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: clipboard, bubbles: true }));
        }""",
        list(buffer.getvalue()),
    )
    page.wait_for_function("() => aetoolsEditor.steps().length === 1")
    settle(page)
    assert page.evaluate("() => aetoolsEditor.steps()[0]") == {
        "name": "pasted.png",
        "label": "original",
        "width": 90,
        "height": 60,
        "strokes": 0,
    }
    for x, colour in ((15, (200, 30, 30)), (45, (30, 200, 30)), (75, (30, 30, 200))):
        assert canvas_pixel(page, *on_screen(page, x, 30)) == colour

    # an example: one click loads it and opens its task's tab
    page.click("#drop .examples button[data-example='small-cat.jpg']")
    page.wait_for_function("() => aetoolsEditor.steps()[0].name === 'small-cat.jpg'")
    settle(page)
    assert page.get_attribute("nav button[data-tab=upscale]", "aria-selected") == "true"
    from aetools.serve.examples import EXAMPLES

    assert {e.name for e in EXAMPLES} >= {"small-cat.jpg"}
    cat = np.asarray(Image.open(Path(__file__).parents[1] / "aetools/serve/examples/small-cat.jpg").convert("RGB"))
    assert page.evaluate("() => [aetoolsEditor.steps()[0].width, aetoolsEditor.steps()[0].height]") == [225, 150]
    shown = np.array(canvas_pixel(page, *on_screen(page, 112, 75)), dtype=int)
    assert np.abs(shown - cat[75, 112]).max() <= 6  # JPEG decoders differ by a few levels


def test_the_empty_view_offers_the_examples(page):
    page.wait_for_function("() => document.querySelectorAll('#empty .examples button').length >= 2")
    assert page.is_visible("#empty")
    page.screenshot(path=str(SHOTS / "empty.png"))


def test_a_click_on_the_image_in_colorize_places_a_hint_that_is_sent(page, tmp_path, server):
    _, _, invert = server
    grey = np.asarray(Image.fromarray(photo(96, "coffee")).convert("L"))
    page.click("nav button[data-tab=colorize]")
    upload(page, png_file(tmp_path, grey, "old.png"))
    page.fill("#hint-colour", "#2050e0")
    box = page.locator("#stage").bounding_box()
    for ix, iy in ((20, 30), (70, 10)):
        x, y = on_screen(page, ix, iy)
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.fill("#hint-colour", "#20b040")  # the next one green
    assert page.input_value("#hints") == "20,30,#2050e0; 70,10,#20b040"
    assert page.locator("#hint-list li").count() == 2
    settle(page)
    assert canvas_pixel(page, *on_screen(page, 20, 30)) == (0x20, 0x50, 0xE0)  # the marker, in its colour
    page.screenshot(path=str(SHOTS / "hints.png"))

    # a drag pans and places nothing; the remove button takes one away
    x, y = on_screen(page, 50, 50)
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.down()
    page.mouse.move(box["x"] + x + 40, box["y"] + y + 10, steps=4)
    page.mouse.up()
    assert page.locator("#hint-list li").count() == 2
    page.click("#hint-list li:nth-child(2) button")
    assert page.input_value("#hints") == "20,30,#2050e0"

    page.evaluate(  # (Playwright does not show a multipart body with a file: the page's fetch is watched)
        """() => { const send = window.fetch; window.sentForms = [];
            window.fetch = (url, init) => {
                if (init && init.body instanceof FormData) {
                    const fields = [...init.body].filter(([, v]) => typeof v === "string");
                    window.sentForms.push([url, Object.fromEntries(fields)]);
                }
                return send(url, init); }; }"""
    )
    page.click("#run")
    page.wait_for_function("() => aetoolsEditor.steps().length === 2")
    [(url, fields)] = page.evaluate("() => window.sentForms")
    assert url == "/v1/colorize" and fields["hints"] == "20,30,#2050e0" and fields["strength"] == "1"
    assert invert.inputs[-1][1]["hints"] == [(20, 30, (0x20, 0x50, 0xE0))]  # as the server read it

    # on the result, a click starts at the result's colour there, in the list's picker (focused to correct it)
    page.wait_for_function("() => !aetoolsEditor.busy()")
    settle(page)
    result = 255 - grey[40, 60]  # the stand-in model inverts; the PNG result is grey, so r = g = b
    x, y = on_screen(page, 60, 40)
    if page.evaluate("() => aetoolsEditor.view().comparing"):
        page.click("#compare")  # the result alone, so the click lands on it wherever the slider is
        settle(page)
        x, y = on_screen(page, 60, 40)
    page.mouse.click(box["x"] + x, box["y"] + y)
    expected = f"#{result:02x}{result:02x}{result:02x}"
    assert page.input_value("#hints") == f"20,30,#2050e0; 60,40,{expected}"
    assert page.input_value("#hint-colour") == expected
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "colour of hint 2"
    page.fill("#hint-list li:nth-child(2) input[type=color]", "#c03020")  # the correction
    assert page.input_value("#hints") == "20,30,#2050e0; 60,40,#c03020"

    # a re-run works on the result and shows the new result beside the old one
    page.click("#run")
    page.wait_for_function("() => aetoolsEditor.steps().length === 3 && !aetoolsEditor.busy()")
    assert page.evaluate("() => aetoolsEditor.view().comparing") and page.evaluate("() => aetoolsEditor.at()") == 2
    assert invert.inputs[-1][1]["hints"] == [(20, 30, (0x20, 0x50, 0xE0)), (60, 40, (0xC0, 0x30, 0x20))]
    assert np.allclose(invert.inputs[-1][0][40, 60], result / 255, atol=1 / 255)  # its input: the first result


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A server browsing an index of three 1000 x 800 photos and an exact copy of one."""
    from aetools.index.folder import default_index_dir, index_folder
    from aetools.serve import create_app
    from aetools.weights import load_model

    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(photo(1000, name)[:800]).save(folder / f"{name}.png")
    shutil.copy(folder / "coffee.png", folder / "coffee copy.png")
    model = tiny_model("hash-unet", widths=(8, 16), bits=32, size=32)
    index_folder(load_model(save_tiny(model, "hash", folder.parent / "tiny-hash.safetensors"), "hash"), folder)
    url, uvicorn_server, thread = start_server(create_app("cpu", default_index_dir(folder)))
    yield url
    uvicorn_server.should_exit = True
    thread.join(timeout=30)


def test_duplicates_select_copies_list_them_and_compare_a_pair_at_full_size(chromium, indexed):
    import json
    import urllib.request

    with urllib.request.urlopen(indexed + "/v1/duplicates") as r:
        [group] = json.load(r)["items"]  # the coffee photo and its copy
    with opened(chromium, indexed) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=indexed)
        page.click("nav button[data-tab=duplicates]")
        page.wait_for_selector("#groups section figure")
        assert page.locator("#groups img").evaluate_all("all => all.map((i) => i.loading)") == ["lazy", "lazy"]
        keep, copy = page.locator("#groups figure").all()
        assert "keep" in keep.get_attribute("class") and not keep.locator("input").is_checked()
        assert copy.locator("input").is_checked() and page.inner_text("#selected-count") == "1 selected"

        with page.expect_download() as download:
            page.click("#download-list")
        assert Path(download.value.path()).read_text() == group[1]["path"] + "\n"
        page.click("#copy-paths")
        assert page.evaluate("() => navigator.clipboard.readText()") == group[1]["path"] + "\n"

        page.click("#groups h3 button")  # compare the pair at full size
        page.wait_for_function(
            "() => ['pair-left', 'pair-right-image'].every((id) => document.getElementById(id).naturalWidth === 1000)"
        )
        assert page.evaluate("() => document.getElementById('pair-left').clientWidth") == 1000  # 1:1
        scrolled = """() => [document.getElementById('pair-left-scroll'), document.getElementById('pair-right-scroll')]
            .map((s) => [s.scrollLeft, s.scrollTop])"""
        page.locator("#pair-left-scroll").hover()
        page.mouse.wheel(200, 60)  # scroll the left one: the right one follows
        page.wait_for_function(f"() => ({scrolled})()[1][0] > 0")
        left, right = page.evaluate(scrolled)
        assert left == right and left[0] >= 100 and left[1] > 0, (left, right)
        page.screenshot(path=str(SHOTS / "duplicates-pair.png"))
        page.keyboard.press("f")  # fitted: both whole
        assert page.evaluate("() => document.getElementById('pair-left').clientWidth") < 1000
        page.keyboard.press("Escape")
        assert page.is_hidden("#pair")

        page.click("#select-none")
        assert page.inner_text("#selected-count") == "0 selected" and page.is_disabled("#download-list")
        page.click("#select-copies")
        assert page.inner_text("#selected-count") == "1 selected" and copy.locator("input").is_checked()
        page.screenshot(path=str(SHOTS / "duplicates.png"))


@pytest.fixture
def trashable(tmp_path):
    """A server browsing an index of three small photos and an exact copy in a sub-folder, with a trash."""
    from aetools.index.folder import default_index_dir, index_folder
    from aetools.serve import create_app
    from aetools.weights import load_model

    folder = tmp_path / "photos"
    (folder / "album").mkdir(parents=True)
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(photo(120, name)).save(folder / f"{name}.png")
    shutil.copy(folder / "coffee.png", folder / "album" / "coffee copy.png")
    weights = save_tiny(
        tiny_model("hash-unet", widths=(8, 16), bits=32, size=32), "hash", tmp_path / "hash.safetensors"
    )
    index_folder(load_model(weights, "hash"), folder, recursive=True)
    trash = tmp_path / "dups"
    url, uvicorn_server, thread = start_server(create_app("cpu", default_index_dir(folder), root=folder, trash=trash))
    yield url, folder, trash
    uvicorn_server.should_exit = True
    thread.join(timeout=30)


def test_duplicates_move_a_copy_to_the_trash_and_undo_puts_it_back(chromium, trashable):
    url, folder, trash = trashable
    copy, keep = folder / "album" / "coffee copy.png", folder / "coffee.png"
    data = copy.read_bytes()
    moved = "() => document.querySelectorAll('#groups figure.moved').length"
    with opened(chromium, url) as page:
        page.click("nav button[data-tab=duplicates]")
        page.wait_for_selector("#groups section figure")
        first, second = page.locator("#groups figure").all()
        assert "keep" in first.get_attribute("class") and not first.locator("input").is_checked()
        assert second.locator("input").is_checked() and page.is_enabled("#move-to-trash")
        assert str(trash) in page.inner_text("#selection-hint")

        # every member of a group selected: refused, nothing moves
        first.locator("input").check()
        page.click("#move-to-trash")
        assert "every member is selected" in page.inner_text("#trash-status")
        assert copy.exists() and keep.exists() and not (trash / "album").exists()
        first.locator("input").uncheck()

        page.click("#move-to-trash")  # the copy, selected from the start
        page.wait_for_function(f"() => ({moved})() === 1")
        assert not copy.exists() and (trash / "album" / "coffee copy.png").read_bytes() == data
        assert keep.read_bytes() == data  # the copy to keep stays
        assert "moved" in second.get_attribute("class") and second.locator("input").is_disabled()
        assert "moved 1 file" in page.inner_text("#trash-status")
        page.screenshot(path=str(SHOTS / "duplicates-moved.png"))

        second.locator("button.undo").click()  # Undo: back where it was, byte for byte
        page.wait_for_function(f"() => ({moved})() === 0")
        assert copy.read_bytes() == data and not (trash / "album" / "coffee copy.png").exists()
        assert second.locator("input").is_enabled() and "put back" in page.inner_text("#trash-status")

        second.locator("input").check()  # again, and Ctrl+Z undoes the last move
        page.click("#move-to-trash")
        page.wait_for_function(f"() => ({moved})() === 1")
        assert not copy.exists()
        page.keyboard.press("Control+z")
        page.wait_for_function(f"() => ({moved})() === 0")
        assert copy.read_bytes() == data and not (trash / "album" / "coffee copy.png").exists()
