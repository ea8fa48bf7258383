"""Decode budgets (docs/guarantees.md): every frame of a multi-frame file against the pixel limit before it is
decoded, a budget for all frames of one file together, frames held compactly until their file is written, a
16-bit PNG decoded in time proportional to its size, standard input read up to a byte limit, special files
refused before they are opened, and Pillow's warnings never printed raw."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image

from aetools.data import io as aio
from aetools.data.io import ImageError, frame_layout, load_frames, load_image
from tests.conftest import run


def one_line_failure(output: str, name: str) -> str:
    """The failure line naming `name`; no traceback, no raw warning."""
    assert "Traceback" not in output and "Warning" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("failed") and name in line]
    assert len(lines) == 1, output
    return lines[0]


def two_page_tiff(path: Path, second: tuple[int, int]) -> Path:
    """A 16 x 16 first page and a second of size `second` (width, height)."""
    first = Image.fromarray(np.full((16, 16, 3), 90, np.uint8))
    first.save(path, save_all=True, append_images=[Image.new("RGB", second, (200, 30, 30))])
    return path


@pytest.fixture
def small_limit(monkeypatch):
    """AETOOLS_MAX_PIXELS=1024 as it would be set at import: our limit and Pillow's."""
    monkeypatch.setattr(aio, "MAX_PIXELS", 1024)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1024)
    return 1024


# ------------------------------------------------------------------------------- every frame, its own limit


@pytest.mark.parametrize("factor", [1.5, 3])  # 3: past Pillow's own error (2x), which is not an OSError
def test_a_later_page_over_the_pixel_limit_fails_that_file_only(small_limit, tiny_weights, tmp_path, factor):
    tif = two_page_tiff(tmp_path / "a.tif", (int(32 * factor), 32))  # 1,536 or 3,072 pixels; page 1: 256
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "b.png")
    out = tmp_path / "out"
    r = run("denoise", tif, tmp_path / "b.png", "-o", out, "-m", tiny_weights)
    assert r.exit_code == 1, r.output
    line = one_line_failure(r.output, "a.tif")
    assert "frame 2" in line and "safety limit" in line and "AETOOLS_MAX_PIXELS" in line
    assert (out / "b.png").is_file() and not (out / "a.tif").exists()
    assert [p.name for p in out.iterdir()] == ["b.png"]  # no temporary left behind
    with pytest.raises(ImageError, match="frame 2 of 2: image is larger than"):
        list(load_frames(tif))


def test_a_gif_frame_growing_past_the_limit_is_refused(small_limit, tmp_path):
    """A GIF frame may reach past the logical screen, which Pillow then enlarges: checked frame by frame."""
    gif = tmp_path / "grow.gif"
    red, blue = Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))
    red.save(gif, save_all=True, append_images=[blue])
    data = bytearray(gif.read_bytes())
    descriptors = [i for i in range(len(data) - 10) if data[i] == 0x2C and data[i + 5 : i + 9] == b"\x10\0\x10\0"]
    struct.pack_into("<HH", data, descriptors[-1] + 1, 100, 100)  # the second frame starts at (100, 100)
    gif.write_bytes(bytes(data))
    assert frame_layout(gif).pixels == 2 * 256  # the canvas, as the header says
    with pytest.raises(ImageError) as err:
        list(load_frames(gif))
    assert err.value.reason.startswith("frame 2 of 2: image is larger than") and "\n" not in str(err.value)


# ------------------------------------------------------------------------------- frames x pixels, one file


def counting(calls: list):
    def process(image, src):
        calls.append(src)
        return image

    return process


def gif(path: Path, frames: int, side: int) -> Path:
    images = [Image.new("RGB", (side, side), (40 * i % 256, 90, 200)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=50, loop=0)
    return path


def test_a_file_over_the_frames_budget_is_refused_before_any_frame_is_run(tmp_path, monkeypatch, capsys):
    from aetools.cli.images import run_image_task

    monkeypatch.setattr(aio, "MAX_TOTAL_PIXELS", 1000)
    movie = gif(tmp_path / "movie.gif", 5, 16)  # 5 x 256 = 1,280 pixels
    calls: list = []
    with pytest.raises(typer.Exit) as code:
        run_image_task("denoise", [movie], tmp_path / "out", "denoised", False, False, counting(calls))
    assert code.value.exit_code == 1 and calls == []
    line = one_line_failure(capsys.readouterr().err, "movie.gif")
    assert "5 frames" in line and "1,280 pixels" in line and "AETOOLS_MAX_TOTAL_PIXELS" in line
    assert "--tile" not in line and not (tmp_path / "out").exists()
    layout = frame_layout(movie)
    assert (layout.count, layout.pixels) == (5, 1280)


def held_peak(tmp_path: Path, frames: int) -> int:
    """Peak traced memory (bytes) of processing a `frames`-frame 1 MP GIF into a GIF, frame for frame."""
    from aetools.cli.images import run_image_task

    movie = gif(tmp_path / f"m{frames}.gif", frames, 1000)
    tracemalloc.start()
    try:
        run_image_task("denoise", [movie], tmp_path / f"out{frames}", "d", False, False, counting([]))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_frames_are_held_compactly_until_the_file_is_written(tmp_path):
    """Before: every frame's float result was held until the save (about 16 MB per 1 MP RGBA frame). Now each
    result is kept as the 8-bit array the encoder takes (4 MB per 1 MP RGBA frame) as soon as it is made."""
    small, large = held_peak(tmp_path, 3), held_peak(tmp_path, 9)
    per_frame = (large - small) / 6
    assert per_frame < 6e6, f"{per_frame / 1e6:.1f} MB more peak memory per 1 MP frame"
    with Image.open(tmp_path / "out9" / "m9.gif") as out:
        assert out.n_frames == 9 and out.size == (1000, 1000)


def test_frames_kept_for_a_gif_are_eight_bit_and_a_tiff_is_written_page_by_page(tmp_path):
    from aetools.data.io import Frames, ImageData, hold_frames, save_frames

    rng = np.random.default_rng(0)
    frames = [ImageData(rng.random((20, 30, 3), dtype=np.float32)) for _ in range(3)]
    layout = Frames(3, [40, 40, 40], 0, 3 * 600)
    held = hold_frames(iter(frames), tmp_path / "a.gif", layout, "GIF")
    assert [(a.dtype, a.shape) for a in held] == [(np.uint8, (20, 30, 3))] * 3

    sizes = []  # the temporary TIFF's size each time the next frame is asked for

    def made_one_by_one():
        for frame in frames:
            sizes.append(sum(p.stat().st_size for p in tmp_path.glob(".a.tif.*.tmp")))
            yield frame

    save_frames(made_one_by_one(), tmp_path / "a.tif", layout)
    assert sizes[0] < sizes[1] < sizes[2]  # pages 1 and 2 were on disk before frames 2 and 3 were made
    with Image.open(tmp_path / "a.tif") as pages:
        assert pages.n_frames == 3
        for i, frame in enumerate(frames):
            pages.seek(i)
            np.testing.assert_array_equal(np.asarray(pages), (frame.pixels * 255 + 0.5).astype(np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif"]


def test_frames_that_would_not_fit_in_memory_are_refused_after_the_first(tmp_path):
    from aetools.data.io import Frames, ImageData, save_frames

    made = []

    def frames():
        for _ in range(500):
            made.append(1)
            yield ImageData(np.zeros((100, 100, 3), np.float32))

    layout = Frames(500, [10] * 500, 0, 500 * 10_000)
    with pytest.raises(ImageError, match=r"500 frames of 100x100 would hold 0\.0 GB .* write \.tif"):
        save_frames(frames(), tmp_path / "a.webp", layout, memory=1_000_000)
    assert len(made) == 1 and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ 16-bit PNG


def test_a_long_16_bit_paeth_row_decodes_at_once(tmp_path):
    """1 x 400,000 16-bit RGB, Paeth on its one row, 4 KB of file: the unfilter ran in Python per diagonal
    (27 s); now it is Pillow's C decoder. Paeth of a first row predicts from the left, so filtered bytes d per
    byte lane give the pixels' bytes (x + 1) * d mod 256."""
    width, lanes = 400_000, np.array([1, 2, 3, 5, 7, 11], np.uint8)
    body = b"\x04" + np.tile(lanes, width).tobytes()
    ihdr = struct.pack(">IIBBBBB", width, 1, 16, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path = tmp_path / "row.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body, 9)) + chunk(b"IEND", b"")
    )
    assert path.stat().st_size < 6000
    x = np.arange(1, width + 1, dtype=np.int64)[:, None]
    expected = ((x * lanes) % 256).astype(np.uint8).reshape(1, width, 6).view(">u2").astype(np.uint16)
    start = time.perf_counter()
    d = load_image(path)
    elapsed = time.perf_counter() - start
    assert elapsed < 2, f"{elapsed:.1f} s"
    assert d.bit_depth == 16 and d.pixels.shape == (1, width, 3)
    np.testing.assert_array_equal(np.round(d.pixels * 65535).astype(np.uint16), expected)


def test_an_unknown_row_filter_is_refused(tmp_path):
    from aetools.data.png16 import PngError, _unfilter

    with pytest.raises(PngError, match="filter type 7"):
        _unfilter(np.array([0, 7], np.uint8), np.zeros((2, 3, 6), np.uint8))


# ------------------------------------------------------------------------------------ stdin, special files


def test_endless_standard_input_is_refused_at_the_byte_limit(tiny_weights, tmp_path, monkeypatch):
    import typer.testing
    from typer.testing import CliRunner

    from aetools.cli import app

    start = time.perf_counter()
    with open("/dev/zero", "rb") as zero:
        monkeypatch.setattr(typer.testing, "make_input_stream", lambda _input, _charset: zero)  # stdin: /dev/zero
        r = CliRunner().invoke(
            app, ["denoise", "-", "-o", str(tmp_path / "out.png"), "-m", str(tiny_weights)], input=zero
        )
    elapsed = time.perf_counter() - start
    assert r.exit_code == 1 and elapsed < 10, (r.output, elapsed)
    line = one_line_failure(r.output, "-:")
    assert "MB" in line and "AETOOLS_MAX_STDIN_MB" in line and not (tmp_path / "out.png").exists()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_standard_input_through_the_shell(tiny_weights, tmp_path):
    """The command as a user types it: `aetools denoise - -o out.png < /dev/zero`, startup included (about
    10 s on a busy 2-core machine, nearly all of it importing torch). Before, it read until the kernel killed
    it; the child's address space is capped at 6 GB so that a regression fails here instead."""
    import resource

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    start = time.perf_counter()
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run(
            [sys.executable, "-m", "aetools", "denoise", "-", "-o", str(tmp_path / "out.png"), "-m", str(tiny_weights)],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=cap_memory,
        )
    assert done.returncode == 1 and time.perf_counter() - start < 60, done.stderr
    assert "more than 256 MB" in one_line_failure(done.stdout + done.stderr, "-:")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_refused_before_they_are_read(tiny_weights, tmp_path):
    """A FIFO named like an image would block the reader forever; /dev/zero would never end. Both are refused
    without being opened (a watchdog opens the FIFO's other end if the reader blocks, so a failure is a test
    failure, not a hang)."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "b.png")
    unblocked = threading.Event()

    def unblock():
        unblocked.set()
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # the reader is waiting, so this open succeeds
        os.close(fd)

    watchdog = threading.Timer(20, unblock)
    watchdog.start()
    try:
        r = run("denoise", fifo, "/dev/zero", tmp_path / "b.png", "-o", tmp_path / "out", "-m", tiny_weights)
    finally:
        watchdog.cancel()
    assert not unblocked.is_set(), "the reader blocked on the FIFO"
    assert r.exit_code == 1 and (tmp_path / "out" / "b.png").is_file(), r.output
    assert "not a regular file" in one_line_failure(r.output, "pipe.png")
    assert "not a regular file" in one_line_failure(r.output, "/dev/zero")
    with pytest.raises(ImageError, match="not a regular file"):
        load_image("/dev/zero")
    assert frame_layout(fifo) is None


# ------------------------------------------------------------------------------------------ Pillow warnings


def test_pillow_warnings_are_not_printed(tiny_weights, tmp_path):
    """A PNG whose EXIF points past its end: Pillow warns "Tag data larger than file" while reading it. The
    loader silences that (the pixels are whole; the broken tag is dropped) and the run prints one line."""
    entry = struct.pack("<HHII", 0x010F, 2, 100, 5000)  # Make: 100 ASCII bytes at offset 5000, past the end
    exif = b"Exif\0\0II*\0" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + struct.pack("<I", 0)
    path = tmp_path / "odd.png"
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(path, exif=exif)
    with Image.open(path) as img, pytest.warns(UserWarning, match="Tag data larger than file"):
        img.getexif()
    r = run("denoise", path, "-o", tmp_path / "out.png", "-m", tiny_weights)
    assert r.exit_code == 0 and r.output.strip().splitlines() == [f"wrote {tmp_path / 'out.png'}"], r.output
