"""Fault injection: what a careless command line, a broken file or a failing disk does to every command that
reads or writes files. Each attack runs against every command in `WRITERS` or `READERS`; a new command is
covered by adding one line there.

What must hold under every attack: a non-zero exit, a one-line error naming the file and the problem (no
traceback), no user file changed or lost, no half-written or temporary file left, and a batch carrying on
past a bad file (reported at the end).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo, run, save_tiny, tiny_model

# ----------------------------------------------------------------------------- the commands under test


@dataclass
class Setup:
    """What the commands run on: a folder of photos, one photo, tiny weights per task."""

    folder: Path
    photo: Path
    weights: dict[str, Path]


@dataclass
class Writer:
    """A command that writes a file the user names: argv(setup, output path) and the output's suffix."""

    name: str
    argv: Callable[[Setup, Path], list]
    suffix: str

    def __repr__(self) -> str:
        return self.name


WRITERS = [
    Writer("denoise", lambda s, out: ["denoise", s.photo, "-o", out, "-m", s.weights["denoise"]], ".png"),
    Writer("upscale", lambda s, out: ["upscale", s.photo, "-o", out, "-m", s.weights["superres"]], ".png"),
    Writer("colorize", lambda s, out: ["colorize", s.photo, "-o", out, "-m", s.weights["colorize"]], ".png"),
    Writer(
        "inpaint",
        lambda s, out: [
            "inpaint",
            s.photo,
            "-o",
            out,
            "-m",
            s.weights["inpaint"],
            "--mask",
            s.folder.parent / "mask.png",
        ],
        ".png",
    ),
    Writer("dedup --json", lambda s, out: ["dedup", s.folder, "-m", s.weights["hash"], "--json", out], ".json"),
    Writer("dedup --html", lambda s, out: ["dedup", s.folder, "-m", s.weights["hash"], "--html", out], ".html"),
    Writer(
        "train",
        lambda s, out: (
            ["train", "denoise", "--data", s.folder, "--out", out, "--steps", "1"]
            + ["--batch-size", "2", "--crop", "16", "--widths", "8,16", "--val-every", "1", "--val", s.photo]
        ),
        ".safetensors",
    ),
    Writer("generate", lambda s, out: ["generate", s.weights["vae"], "-n", "4", "-o", out], ".png"),
]


@dataclass
class Reader:
    """A command that reads photos: argv(setup, inputs) -> argv. folder: it takes one folder (not files);
    indexed: it needs the folder indexed first."""

    name: str
    argv: Callable[[Setup, list[Path]], list]
    folder: bool = False
    indexed: bool = False

    def __repr__(self) -> str:
        return self.name


def _image_task(task: str, weights: str, *extra: str) -> Reader:
    def argv(s: Setup, inputs: list[Path]) -> list:
        mask = ["--mask", s.folder.parent / "mask.png"] if task == "inpaint" else []
        return [task, *inputs, "-o", s.folder.parent / "out", "-m", s.weights[weights], *mask, *extra]

    return Reader(task, argv)


READERS = [
    _image_task("denoise", "denoise"),
    _image_task("upscale", "superres"),
    _image_task("colorize", "colorize"),
    _image_task("inpaint", "inpaint"),
    Reader("hash-index", lambda s, inputs: ["hash-index", *inputs, "-m", s.weights["hash"]], folder=True),
    Reader("dedup", lambda s, inputs: ["dedup", *inputs, "-m", s.weights["hash"]], folder=True),
    Reader(
        "hash-search",
        lambda s, inputs: ["hash-search", *inputs, "-m", s.weights["hash"], "--index", s.folder / ".aetools-index"],
        indexed=True,
    ),
]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(photo(48, name)).save(folder / f"{name}.png")
    models = tmp_path / "models"
    models.mkdir()
    small = {"widths": (8, 16), "blocks": 1, "bottleneck_blocks": 1}
    weights = {
        "denoise": save_tiny(tiny_model("denoise-unet", **small), "denoise", models / "dn.safetensors"),
        "superres": save_tiny(tiny_model("superres-unet", **small), "superres", models / "sr.safetensors"),
        "colorize": save_tiny(tiny_model("colorize-unet", **small), "colorize", models / "c.safetensors"),
        "inpaint": save_tiny(tiny_model("inpaint-unet", **small), "inpaint", models / "in.safetensors"),
        "hash": save_tiny(tiny_model("hash-unet", widths=(8, 16), bits=32, size=32), "hash", models / "h.safetensors"),
        "vae": save_tiny(tiny_model("vae"), "vae", models / "vae.safetensors"),
    }
    save_mask(tmp_path / "mask.png", 48)  # inpaint's holes, beside the photos
    return Setup(folder, folder / "coffee.png", weights)


def save_mask(path: Path, size: int) -> None:
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : size // 2, size // 4 : size // 2] = 255
    Image.fromarray(mask).save(path)


def snapshot(*folders: Path) -> dict[Path, bytes]:
    """Every user file under the folders and its bytes (what "nothing changed" is checked against); the
    index aetools keeps in a folder is its own."""
    files = (p for f in folders for p in sorted(f.rglob("*")) if p.is_file())
    return {p: p.read_bytes() for p in files if ".aetools-index" not in p.parts}


def one_line_error(output: str) -> None:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith(("error:", "failed"))]
    assert errors, output


def no_temporary_files(*folders: Path) -> None:
    left = [p for f in folders for p in f.rglob("*.tmp")]
    assert not left, left


# ------------------------------------------------------------------------------- attacks on the outputs


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_an_output_never_replaces_an_input(setup, writer):
    before = snapshot(setup.folder)
    r = run(*writer.argv(setup, setup.photo))
    assert r.exit_code != 0
    one_line_error(r.output)
    assert snapshot(setup.folder) == before


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_an_existing_file_is_kept_without_overwrite(setup, writer, tmp_path):
    out = tmp_path / f"existing{writer.suffix}"
    out.write_bytes(b"the user's own file")
    r = run(*writer.argv(setup, out))
    assert r.exit_code != 0 and "exists" in r.output and "--overwrite" in r.output
    one_line_error(r.output)
    assert out.read_bytes() == b"the user's own file"


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_a_file_where_the_output_folder_should_be(setup, writer, tmp_path):
    (tmp_path / "blocked").write_text("a file, not a folder")
    r = run(*writer.argv(setup, tmp_path / "blocked" / "sub" / f"out{writer.suffix}"))
    assert r.exit_code != 0 and "blocked" in r.output
    one_line_error(r.output)
    assert (tmp_path / "blocked").read_text() == "a file, not a folder"


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_an_output_name_too_long_for_the_file_system(setup, writer, tmp_path):
    out = tmp_path / ("n" * 300 + writer.suffix)
    r = run(*writer.argv(setup, out))
    assert r.exit_code != 0 and "bytes" in r.output
    one_line_error(r.output)


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_an_output_folder_that_does_not_exist_is_made(setup, writer, tmp_path):
    out = tmp_path / "new" / "deeper" / f"out{writer.suffix}"
    r = run(*writer.argv(setup, out))
    assert r.exit_code == 0, r.output
    assert out.exists()
    no_temporary_files(tmp_path / "new")


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_a_disk_that_fails_during_the_write(setup, writer, tmp_path, monkeypatch):
    """The rename or link that publishes a finished file fails (a full or vanished disk): no output, no
    temporary file left, the user's files untouched, and the error on one line."""
    before = snapshot(setup.folder)
    out = tmp_path / "result" / f"out{writer.suffix}"
    out.parent.mkdir()
    real_replace, real_link = os.replace, os.link

    def failing(real):
        def publish(src, dst, *args, **kwargs):
            if Path(dst) == out:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(src, dst, *args, **kwargs)

        return publish

    # both ways a finished file is published: a rename (--overwrite) or a hard link (never over a file)
    monkeypatch.setattr(os, "replace", failing(real_replace))
    monkeypatch.setattr(os, "link", failing(real_link))
    r = run(*writer.argv(setup, out))
    assert r.exit_code != 0 and "No space left on device" in r.output
    one_line_error(r.output)
    assert not out.exists()
    no_temporary_files(out.parent)
    assert snapshot(setup.folder) == before


# -------------------------------------------------------------------------------- attacks on the inputs


@pytest.mark.parametrize("reader", READERS, ids=repr)
def test_a_missing_input_is_one_line(setup, reader, tmp_path):
    if reader.indexed:
        assert run("hash-index", setup.folder, "-m", setup.weights["hash"]).exit_code == 0
    r = run(*reader.argv(setup, [tmp_path / "no-such-photo.png"]))
    assert r.exit_code != 0 and "no-such-photo.png" in r.output
    one_line_error(r.output)


@pytest.mark.parametrize("reader", READERS, ids=repr)
def test_a_broken_file_in_a_batch_is_reported_and_the_rest_done(setup, reader, tmp_path):
    if reader.indexed:
        assert run("hash-index", setup.folder, "-m", setup.weights["hash"]).exit_code == 0
    (setup.folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    (setup.folder / "empty.jpg").write_bytes(b"")
    before = snapshot(setup.folder)
    inputs = [setup.folder / "broken.png", setup.photo, setup.folder / "empty.jpg"]
    r = run(*reader.argv(setup, [setup.folder] if reader.folder else inputs))
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "broken.png" in r.output and "empty.jpg" in r.output
    lines = r.output.splitlines()
    assert lines.index(next(line for line in lines if "broken.png" in line)) > 0  # after the work: a summary
    assert snapshot(setup.folder) == before


@pytest.mark.parametrize(
    "reader", [r for r in READERS if r.name in ("denoise", "upscale", "colorize", "inpaint")], ids=repr
)
def test_animations_and_pages_keep_every_frame(setup, reader, tmp_path):
    """An animated GIF or a multi-page TIFF: every frame is processed, into one file with the same frames
    and timing; a format that cannot hold frames is refused before the work; standard input refuses."""
    frames = [Image.fromarray(photo(32, name)) for name in ("astronaut", "coffee", "chelsea")]
    gif, tif = tmp_path / "moving.gif", tmp_path / "pages.tif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=[40, 80, 120], loop=0)
    frames[0].save(tif, save_all=True, append_images=frames[1:])
    save_mask(setup.folder.parent / "mask.png", 32)  # inpaint: holes the frames' size
    r = run(*reader.argv(setup, [gif, tif]))
    assert r.exit_code == 0, r.output
    out = setup.folder.parent / "out"
    with Image.open(out / "moving.gif") as moving:
        assert moving.n_frames == 3
        durations = []
        for i in range(3):
            moving.seek(i)
            durations.append(moving.info["duration"])
        assert durations == [40, 80, 120]
    with Image.open(out / "pages.tif") as pages:
        assert pages.n_frames == 3
    argv = reader.argv(setup, [gif])
    argv[argv.index("-o") + 1] = tmp_path / "still.jpg"
    r = run(*argv)
    assert r.exit_code == 1 and "3 frames do not fit in a JPEG file" in r.output
    one_line_error(r.output)
    assert not (tmp_path / "still.jpg").exists()


# ------------------------------------------------------------------------------------- bad numbers


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "denoise", "--data", "{folder}", "--steps", "0"], "--steps"),
        (["train", "denoise", "--data", "{folder}", "--steps", "-5"], "--steps"),
        (["train", "denoise", "--data", "{folder}", "--batch-size", "0"], "--batch-size"),
        (["train", "denoise", "--data", "{folder}", "--crop", "0"], "--crop"),
        (["train", "denoise", "--data", "{folder}", "--lr", "-1"], "--lr"),
        (["train", "denoise", "--data", "{folder}", "--checkpoint-every", "0"], "--checkpoint-every"),
        (["denoise", "{photo}", "--tile", "1", "-m", "{denoise}"], "--tile"),
        (["colorize", "{photo}", "--strength", "2", "-m", "{colorize}"], "--strength"),
        (["colorize", "{photo}", "--hint", "1,2,#12345", "-m", "{colorize}"], "--hint"),
        (["upscale", "{photo}", "--scale", "5", "-m", "{superres}"], "--scale"),
        (["hash-search", "{photo}", "-k", "0", "-m", "{hash}"], "-k"),
        (["dedup", "{folder}", "--radius", "-1", "-m", "{hash}"], "--radius"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(setup, argv, message, tmp_path):
    values = {"folder": setup.folder, "photo": setup.photo, **setup.weights}
    before = snapshot(setup.folder)
    r = run(*[a.format(**values) for a in argv])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert snapshot(setup.folder) == before
    assert not list(tmp_path.glob("*.safetensors"))


# ------------------------------------------------------------------------------------- weights


def test_weights_with_a_flipped_byte_are_refused_by_path(setup, tmp_path):
    damaged = tmp_path / "damaged.safetensors"
    data = bytearray(setup.weights["denoise"].read_bytes())
    data[-7] ^= 0x40  # inside the tensor data, past the header
    damaged.write_bytes(bytes(data))
    r = run("denoise", setup.photo, "-o", tmp_path / "out.png", "-m", damaged)
    assert r.exit_code == 2 and "damaged.safetensors" in r.output
    one_line_error(r.output)
    assert not (tmp_path / "out.png").exists()


def test_training_on_no_readable_images_stops_at_once(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"not a picture")
    r = run("train", "denoise", "--data", folder, "--out", tmp_path / "w.safetensors", "--steps", "5")
    assert r.exit_code != 0 and "cannot read the training images" in r.output
    one_line_error(r.output)
    assert not (tmp_path / "w.safetensors").exists()
    r = run("train", "denoise", "--data", tmp_path / "nowhere", "--out", tmp_path / "w.safetensors")
    assert r.exit_code != 0 and "nowhere" in r.output
    one_line_error(r.output)


def test_a_damaged_index_is_one_line_suggesting_a_rebuild(setup):
    assert run("hash-index", setup.folder, "-m", setup.weights["hash"]).exit_code == 0
    index = setup.folder / ".aetools-index"
    current = (index / "CURRENT").read_text().strip()
    for path in index.glob(f"*{current}*"):
        if path.is_file() and path.suffix != ".sqlite":
            path.write_bytes(b"\x00" * 16)
    r = run("hash-search", setup.photo, "-m", setup.weights["hash"], "--index", index)
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "rebuild" in r.output or "hash-index" in r.output, r.output


def test_the_pixel_budget_is_checked_before_the_work(setup, tmp_path, monkeypatch):
    """A photo that would need more memory than is free: refused on one line, with what to do, before any
    of the work (colorize, which has no tiles to make smaller)."""
    import aetools.inference

    monkeypatch.setattr(aetools.inference, "available_memory", lambda: 10_000)
    r = run("colorize", setup.photo, "-o", tmp_path / "c.png", "-m", setup.weights["colorize"])
    assert r.exit_code == 1 and "GB of memory" in r.output and "smaller copy" in r.output
    assert "--tile" not in r.output
    one_line_error(r.output)
    assert not (tmp_path / "c.png").exists()


def test_output_rules_in_one_place():
    """Every writer above is checked by aetools.outputs.output_problem; its rules, directly."""
    from aetools.outputs import output_problem

    assert output_problem(Path("/"), what="report").endswith("is a folder; name a file for the report")
    assert "must be written as a .safetensors file" in output_problem(Path("w.pt"), suffix=".safetensors")
    assert output_problem(Path("/tmp/aetools-x-new/w.safetensors"), suffix=".safetensors") is None
    assert np.all([output_problem(Path(__file__), overwrite=True) is None])
    assert "is an input" in output_problem(Path(__file__), overwrite=True, inputs=[Path(__file__)])


@pytest.mark.parametrize("writer", WRITERS, ids=repr)
def test_temporaries_a_killed_writer_left_are_removed(setup, writer, tmp_path):
    """kill -9 during a write can leave the hidden temporary file; the next write of that output removes
    it (its process is gone), and leaves a live writer's alone."""
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs
    out = tmp_path / "result" / f"out{writer.suffix}"
    out.parent.mkdir()
    stale = out.with_name(f".{out.name}.{gone.pid}-0badc0de.tmp")
    live = out.with_name(f".{out.name}.{os.getpid()}-00c0ffee.tmp")
    stale.write_bytes(b"half a file")
    live.write_bytes(b"being written")
    r = run(*writer.argv(setup, out))
    assert r.exit_code == 0, r.output
    assert out.exists() and not stale.exists() and live.exists()


def _update(weights: str, folder: str, queue) -> None:
    """One `hash-index --update` in a process of its own: reports "ok" or the one-line refusal."""
    from aetools.index.folder import index_folder
    from aetools.index.store import HashIndexError
    from aetools.weights import load_model

    try:
        index_folder(load_model(weights, "hash"), folder, update=True)
        queue.put("ok")
    except HashIndexError as e:
        queue.put(str(e))


def test_concurrent_updates_always_leave_a_sound_index(setup, tmp_path):
    """20 rounds of two updates of one index at once, a new photo each round: each round one or both
    finish and any other is refused on one line (`being updated by`); the index always loads and holds
    exactly what a fresh build of the folder holds."""
    import multiprocessing

    from aetools.index.folder import index_folder
    from aetools.index.store import HashIndex
    from aetools.weights import load_model

    context = multiprocessing.get_context("spawn")  # fork after torch and OpenMP started can deadlock
    model = load_model(setup.weights["hash"], "hash")
    index_folder(model, setup.folder)
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat")
    for round_ in range(20):
        Image.fromarray(photo(40 + round_, names[round_ % len(names)])).save(setup.folder / f"new{round_}.png")
        queue = context.Queue()
        runs = [context.Process(target=_update, args=(str(setup.weights["hash"]), str(setup.folder), queue))]
        runs.append(context.Process(target=_update, args=(str(setup.weights["hash"]), str(setup.folder), queue)))
        for p in runs:
            p.start()
        for p in runs:
            p.join(timeout=120)
            assert p.exitcode == 0
        outcomes = [queue.get(timeout=5) for _ in runs]
        assert "ok" in outcomes and all(o == "ok" or "being updated by" in o for o in outcomes), outcomes
        index = HashIndex.load(setup.folder / ".aetools-index")
        assert sorted(Path(r.path).name for r in index.records.values()) == sorted(
            p.name for p in setup.folder.glob("*.png")
        )
    fresh, _ = index_folder(model, setup.folder, index_dir=tmp_path / "fresh")
    updated = HashIndex.load(setup.folder / ".aetools-index")
    by_path = {r.path: updated.code(i).tobytes() for i, r in updated.records.items()}
    assert by_path == {r.path: fresh.code(i).tobytes() for i, r in fresh.records.items()}


@pytest.mark.parametrize("reader", READERS[:4], ids=repr)
def test_sixteen_bit_colour_stays_sixteen_bit(setup, reader, tmp_path):
    """A 16-bit colour PNG in, a 16-bit PNG out, from every image task (the network's output is a strided
    view; the 16-bit encoder needs whole rows)."""
    from aetools.data.io import ImageData, load_image, save_image

    deep = tmp_path / "deep.png"
    pixels = photo(48, "coffee").astype(np.float32) / 255.0
    save_image(ImageData(pixels, None, 16, "PNG"), deep)
    r = run(*reader.argv(setup, [deep]))
    assert r.exit_code == 0, r.output
    out = load_image(setup.folder.parent / "out" / "deep.png")
    assert out.bit_depth == 16 and out.pixels.shape[2] == 3
