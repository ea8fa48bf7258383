"""The image-task CLI contract, end to end, on images made here (a tiny random model keeps it fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo, run


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(photo(64)).save(d / "a.png")
    Image.fromarray(photo(48, "coffee")).save(d / "b.jpg", quality=90)
    Image.fromarray(photo(40)[..., 0]).save(d / "grey.png")
    (d / "sub").mkdir()
    Image.fromarray(photo(32)).save(d / "sub" / "c.png")
    return d


def test_single_file_beside_input(folder, tiny_weights):
    r = run("denoise", folder / "a.png", "--model", tiny_weights)
    assert r.exit_code == 0, r.output
    out = folder / "a_denoised.png"
    assert Image.open(out).size == (64, 64)
    r = run("denoise", folder / "b.jpg", "--model", tiny_weights)
    assert r.exit_code == 0 and Image.open(folder / "b_denoised.jpg").format == "JPEG"  # keeps the format


def test_single_file_to_named_output_with_other_format(folder, tiny_weights, tmp_path):
    r = run("denoise", folder / "b.jpg", "-o", tmp_path / "clean.png", "--model", tiny_weights, "--sigma", "25")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "clean.png").format == "PNG"


def test_folder_to_folder_recursive_keeps_tree_and_modes(folder, tiny_weights, tmp_path):
    out = tmp_path / "out"
    r = run("denoise", folder, "-o", out, "-r", "--model", tiny_weights)
    assert r.exit_code == 0, r.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == [
        "a.png",
        "b.jpg",
        "grey.png",
        "sub/c.png",
    ]
    assert Image.open(out / "grey.png").mode == "L"
    r = run("denoise", folder, "-o", tmp_path / "flat", "--model", tiny_weights)
    assert not (tmp_path / "flat" / "sub").exists()


def test_existing_output_refused_unless_overwrite(folder, tiny_weights):
    assert run("denoise", folder / "a.png", "--model", tiny_weights).exit_code == 0
    out = folder / "a_denoised.png"
    before = out.read_bytes()
    r = run("denoise", folder / "a.png", "--model", tiny_weights)
    assert r.exit_code == 1 and "output exists" in r.output and out.read_bytes() == before
    assert run("denoise", folder / "a.png", "--model", tiny_weights, "--overwrite").exit_code == 0


def test_never_writes_over_an_input(folder, tiny_weights):
    before = (folder / "a.png").read_bytes()
    r = run("denoise", folder / "a.png", "-o", folder / "a.png", "--model", tiny_weights, "--overwrite")
    assert r.exit_code == 1 and "would overwrite an input" in r.output
    r = run("denoise", folder, "-o", folder, "--model", tiny_weights, "--overwrite")
    assert r.exit_code == 1
    assert (folder / "a.png").read_bytes() == before


def test_bad_files_are_reported_and_the_batch_goes_on(folder, tiny_weights, tmp_path):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (folder / "notes.jpg").write_text("not an image")
    good = Image.open(folder / "a.png")
    good.save(folder / "cut.png")
    data = (folder / "cut.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    r = run("denoise", folder, "-o", out, "--model", tiny_weights)
    assert r.exit_code == 1
    for name in ("broken.png", "notes.jpg", "cut.png"):
        assert name in r.output
    assert "3 written, 3 failed" in r.output
    assert {p.name for p in out.iterdir()} == {"a.png", "b.jpg", "grey.png"}
    assert not list(out.glob(".*tmp*"))  # no temp files left behind


def test_missing_input_and_bad_arguments_are_one_line_errors(folder, tiny_weights):
    r = run("denoise", folder / "nope.png", "--model", tiny_weights)
    assert r.exit_code == 1 and "no such file" in r.output
    r = run("denoise", folder / "a.png", "--model", tiny_weights, "--device", "tpu")
    assert r.exit_code == 2 and "Traceback" not in r.output and "--device tpu" in r.output
    r = run("denoise", folder / "a.png", "--model", folder / "missing.safetensors")
    assert r.exit_code == 2 and "missing.safetensors" in r.output
    r = run("denoise", folder / "a.png", "--sigma", "-3")
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_alpha_is_kept(tmp_path, tiny_weights):
    rgba = np.dstack([photo(32), np.linspace(0, 255, 32 * 32).reshape(32, 32).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    assert run("denoise", tmp_path / "t.png", "--model", tiny_weights).exit_code == 0
    out = np.asarray(Image.open(tmp_path / "t_denoised.png"))
    assert out.shape == (32, 32, 4) and np.array_equal(out[..., 3], rgba[..., 3])


def test_help_and_version_do_not_import_torch():
    code = "import sys; from aetools.cli import app; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    done = subprocess.run([sys.executable, "-m", "aetools", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("aetools ")


def test_eval_prints_ours_beside_baselines(tmp_path, tiny_weights):
    data = tmp_path / "set"
    data.mkdir()
    for i, name in enumerate(["astronaut", "coffee"]):
        Image.fromarray(photo(48, name)).save(data / f"{i}.png")
    r = run(
        "eval",
        "denoise",
        "--data",
        data,
        "--sigma",
        "15",
        "25",
        "--model",
        tiny_weights,
        "--baselines",
        "wavelet",
        "--no-cost",
        "--format",
        "markdown",
    )
    assert r.exit_code == 0, r.output
    assert "| ours (blind) |" in r.output and "| skimage wavelet (blind) |" in r.output
    assert "σ=15 float" in r.output and "σ=25 8-bit" in r.output


def test_models_is_one_line_per_model_and_does_not_import_torch():
    from aetools.weights import read_manifest

    code = (
        "import sys; from typer.testing import CliRunner; from aetools.cli import app\n"
        "r = CliRunner().invoke(app, ['models']); assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'aetools models imported torch'; print(r.output)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    entries = read_manifest()
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[2:] if line.strip()}
    assert set(lines) >= {e.name for e in entries}
    assert len(done.stdout.splitlines()) <= len(entries) + 4  # a title, a header and a hint, not 25 metric names
    denoiser = next(e for e in entries if e.name == "denoise")
    assert f"CBSD68 σ=25: {denoiser.metrics['cbsd68_sigma25_psnr']:.2f} dB" in lines["denoise"]
    size, params = f"{denoiser.path.stat().st_size / 1e6:.1f} MB", f"{denoiser.params / 1e6:.2f} M"
    assert size in lines["denoise"] and params in lines["denoise"]
    r = run("models", "--verbose")
    assert r.exit_code == 0 and all(key in r.output for key in denoiser.metrics)
    r = run("models", "--json")
    assert {e["name"]: e["metrics"] for e in json.loads(r.output)}["denoise"] == denoiser.metrics


def test_phone_photos_in_heic_and_avif(tmp_path, tiny_weights, monkeypatch):
    """HEIC and AVIF inputs come back in their own format, or as PNG with a note where no encoder exists."""
    Image.fromarray(photo(48)).save(tmp_path / "phone.heic", quality=95)
    Image.fromarray(photo(40, "coffee")).save(tmp_path / "web.avif", quality=95)
    r = run("denoise", tmp_path / "phone.heic", tmp_path / "web.avif", "--model", tiny_weights)
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "phone_denoised.heic") as a, Image.open(tmp_path / "web_denoised.avif") as b:
        assert (a.format, a.size, b.format, b.size) == ("HEIF", (48, 48), "AVIF", (40, 40))

    from aetools.data import io as aio

    monkeypatch.setattr(aio, "can_write", lambda fmt: fmt != "HEIF")  # a pillow-heif built without an encoder
    r = run("denoise", tmp_path / "phone.heic", "-o", tmp_path / "out", "--model", tiny_weights)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out" / "phone.png").format == "PNG"
    assert "phone.heic: HEIF files cannot be written by this installation" in r.output.replace("\n", "")
