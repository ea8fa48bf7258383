"""The image-task CLI contract, end to end, on images made here (a tiny random model keeps it fast)."""

from __future__ import annotations

import io
import json
import os
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


def test_eval_record_stores_the_printed_means(tmp_path, tiny_weights):
    from aetools.weights import read_weights

    data = tmp_path / "set"
    data.mkdir()
    for i, name in enumerate(["astronaut", "coffee"]):
        Image.fromarray(photo(48, name)).save(data / f"{i}.png")
    args = ["--sigma", "15", "--model", tiny_weights, "--baselines", "", "--no-cost", "--format", "markdown"]
    r = run("eval", "denoise", "--data", data, *args, "--record")
    assert r.exit_code == 0, r.output
    rows = {
        cells[1].strip(): [float(c) for c in cells[2:-1]]
        for cells in (line.split("|") for line in r.output.splitlines() if line.startswith("| ours"))
    }
    metrics = read_weights(tiny_weights)[1]["metrics"]
    assert metrics["set_sigma15_psnr"] == rows["ours (blind)"][0]  # <set>_<condition>_<measure>, float protocol
    fp32 = rows["ours (blind)"] + rows["ours (sigma given)"]
    bf16 = rows["ours (blind), bf16"] + rows["ours (sigma given), bf16"]
    loss = max(a - b for a, b in zip(fp32, bf16))
    assert abs(metrics["set_bf16_max_loss"] - loss) <= 0.01 + 1e-9  # the cells are rounded to 0.01
    assert metrics["bf16_auto"] == (metrics["set_bf16_max_loss"] <= 0.02)


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


# ------------------------------------------------------------ -o, standard input and output, file-system faults


def one_line_error(r, *words) -> bool:
    lines = [line for line in r.output.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("error:") and all(w in lines[0] for w in words)


def test_several_inputs_with_o_naming_a_file_is_a_one_line_error(folder, tiny_weights, tmp_path):
    a, b = folder / "a.png", folder / "b.jpg"
    r = run("denoise", a, b, "-o", tmp_path / "two.png", "--model", tiny_weights)
    assert r.exit_code == 2 and one_line_error(r, "two.png", "must be a folder")
    assert not (tmp_path / "two.png").exists()  # no folder named two.png
    (tmp_path / "taken.png").write_bytes(b"precious")
    for args in ((a, b), (folder,)):
        r = run("denoise", *args, "-o", tmp_path / "taken.png", "--model", tiny_weights, "--overwrite")
        assert r.exit_code == 2 and one_line_error(r, "taken.png", "is a file")
    assert (tmp_path / "taken.png").read_bytes() == b"precious"
    r = run("denoise", a, b, "-o", "-", "--model", tiny_weights)
    assert r.exit_code == 2 and one_line_error(r, "standard output takes one image")
    r = run("denoise", a, "-", "--model", tiny_weights)
    assert r.exit_code == 2 and one_line_error(r, "standard input")


def test_standard_input_and_output(folder, tiny_weights, tmp_path):
    from typer.testing import CliRunner

    from aetools.cli import app

    a = folder / "a.png"
    assert run("denoise", a, "-o", tmp_path / "ref.png", "--model", tiny_weights).exit_code == 0
    r = CliRunner().invoke(app, ["denoise", "-", "-o", "-", "--model", str(tiny_weights)], input=a.read_bytes())
    assert r.exit_code == 0, r.stderr
    out = Image.open(io.BytesIO(r.stdout_bytes))
    assert out.format == "PNG" and np.array_equal(np.asarray(out), np.asarray(Image.open(tmp_path / "ref.png")))
    # a JPEG on stdin comes back as a JPEG; to a named file, the extension decides
    jpeg = (folder / "b.jpg").read_bytes()
    r = CliRunner().invoke(app, ["denoise", "-", "--model", str(tiny_weights)], input=jpeg)
    assert r.exit_code == 0 and Image.open(io.BytesIO(r.stdout_bytes)).format == "JPEG"
    r = CliRunner().invoke(
        app, ["denoise", "-", "-o", str(tmp_path / "b.png"), "--model", str(tiny_weights)], input=jpeg
    )
    assert r.exit_code == 0 and Image.open(tmp_path / "b.png").size == (48, 48)
    r = CliRunner().invoke(app, ["denoise", "-", "-o", "-", "--model", str(tiny_weights)], input=b"not an image")
    assert r.exit_code == 1 and "failed -: not an image" in r.stderr
    assert r.stdout_bytes == b""


def test_file_system_faults_fail_one_file_and_the_batch_goes_on(folder, tiny_weights, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the sub-folder would go")
    r = run("denoise", folder, "-o", out, "-r", "--model", tiny_weights)
    assert r.exit_code == 1 and "3 written, 1 failed" in r.output
    assert "cannot create folder" in r.output and f"{out / 'sub'} is a file" in r.output.replace("\n", "")
    assert (out / "sub").read_text() == "a file where the sub-folder would go"
    assert "Traceback" not in r.output

    r = run("denoise", folder, "-o", out / "sub" / "deeper", "--model", tiny_weights)
    assert r.exit_code == 2 and one_line_error(r, "cannot create folder", "is a file")

    # a parent we may not write in (monkeypatched: root, which runs CI here, ignores chmod)
    monkeypatch.setattr("os.access", lambda path, mode: not mode & os.W_OK)
    r = run("denoise", folder, "-o", tmp_path / "locked" / "out", "--model", tiny_weights)
    assert r.exit_code == 2 and one_line_error(r, "permission denied")
    assert not (tmp_path / "locked").exists()


def test_output_names_at_the_file_system_limit(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    near = "n" * 236 + ".png"  # its output, +"_denoised", is 249 bytes: fits, although the temp name would not
    over = "o" * 247 + ".png"  # its output would be 260 bytes: refused, with the reason
    for name in (near, over, "short.png"):
        Image.fromarray(photo(24)).save(src / name)
    r = run("denoise", src, "--model", tiny_weights)
    assert r.exit_code == 1 and "2 written, 1 failed" in r.output
    assert "output name is 260 bytes; the file system allows 255" in r.output.replace("\n", "")
    assert (src / ("n" * 236 + "_denoised.png")).exists() and (src / "short_denoised.png").exists()
    assert not [p for p in src.iterdir() if p.name.startswith(".")]  # no temp file left


def test_an_output_folder_inside_the_input_is_not_processed_again(folder, tiny_weights):
    for _ in range(2):
        r = run("denoise", folder, "-o", folder / "clean", "-r", "--model", tiny_weights, "--overwrite")
        assert r.exit_code == 0 and "4 written, 0 failed" in r.output, r.output
    assert not (folder / "clean" / "clean").exists()


def test_ctrl_c_prints_the_summary_and_leaves_whole_files(folder, tiny_weights, tmp_path, monkeypatch):
    from aetools.tasks.denoise import DenoisePipeline

    real, calls = DenoisePipeline.__call__, []

    def interrupted_on_the_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DenoisePipeline, "__call__", interrupted_on_the_second)
    r = run("denoise", folder, "-o", tmp_path / "out", "--model", tiny_weights)
    assert r.exit_code == 130 and "1 written, 0 failed, 2 not started" in r.output and "interrupted" in r.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_progress_moves_tile_by_tile_within_one_photo(folder, tiny_weights, monkeypatch):
    from rich.progress import Progress

    seen, update = [], Progress.update

    def record(self, task_id, **fields):
        seen.append((fields.get("completed"), fields.get("file")))
        return update(self, task_id, **fields)

    monkeypatch.setattr(Progress, "update", record)
    assert run("denoise", folder / "a.png", "--tile", "16", "--model", tiny_weights).exit_code == 0
    tiles = [(c, f) for c, f in seen if f and "tile" in f]
    assert [f for _, f in tiles] == [f"a.png: tile {i}/16" for i in range(1, 17)]
    assert [c for c, _ in tiles] == [i / 16 for i in range(1, 17)]  # the bar moves before the file is done


def test_upscale_picks_the_real_photo_model_for_jpeg_and_says_so(tmp_path):
    Image.fromarray(photo(32)).save(tmp_path / "web.jpg", quality=70)
    Image.fromarray(photo(32)).save(tmp_path / "clean.png")
    r = run("upscale", tmp_path / "web.jpg", tmp_path / "clean.png", "-o", tmp_path / "auto", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "model: upscale-real for 1 JPEG/WebP/HEIC/AVIF (camera or web photo) input, upscale for 1" in r.output
    for model in ("upscale", "upscale-real"):
        r = run("upscale", tmp_path / "web.jpg", tmp_path / "clean.png", "-o", tmp_path / model, "-m", model)
        assert r.exit_code == 0 and "model:" not in r.output

    def pixels(folder, name):
        return np.asarray(Image.open(tmp_path / folder / name)).astype(int)

    assert np.array_equal(pixels("auto", "web.jpg"), pixels("upscale-real", "web.jpg"))
    assert np.array_equal(pixels("auto", "clean.png"), pixels("upscale", "clean.png"))
    assert np.abs(pixels("upscale-real", "web.jpg") - pixels("upscale", "web.jpg")).mean() > 0.5  # not the same model
