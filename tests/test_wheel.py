"""The built wheel carries the shipped weights and works without a checkout: built from a copy of the source,
installed into a fresh virtual environment outside the source tree (no network: --no-deps and --no-index,
the dependencies seen through a .pth file naming this interpreter's site folders, so it works from a system
interpreter and from a virtual environment alike), and run on an image made here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from tests.conftest import photo

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("aetools", "weights", "pyproject.toml", "setup.py", "README.md")  # what a build reads


def _run(*args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def _site_folders() -> list[str]:
    """The folders this interpreter imports installed packages from (its own and any it inherits)."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


@pytest.mark.slow
def test_wheel_installs_outside_the_tree_with_its_weights(tmp_path: Path):
    # a clean copy: no stale build/ folder, and the test never writes into the source tree
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("AETOOLS_WEIGHTS", "PYTHONPATH")}
    env["OMP_NUM_THREADS"] = "2"
    dist = tmp_path / "dist"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, src, cwd=tmp_path, env=env)
    (wheel,) = dist.glob("aetools-*.whl")
    assert wheel.stat().st_size < 60e6, f"wheel is {wheel.stat().st_size / 1e6:.1f} MB"
    shipped = {p.name for p in (ROOT / "weights").iterdir() if p.suffix == ".safetensors"} | {"manifest.json"}
    with zipfile.ZipFile(wheel) as z:
        packed = {Path(n).name for n in z.namelist() if n.startswith("aetools/weights_data/")}
    assert packed == shipped

    # a fresh environment that sees the installed dependencies, not the source tree. Not `venv
    # --system-site-packages`: run from a virtual environment, that would see the base interpreter's packages,
    # not this one's (where typer & co. are). A .pth file lists this interpreter's site folders instead; an
    # editable install of aetools in them stays invisible (.pth files are not read in folders a .pth adds).
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    (site_packages,) = venv.glob("lib/python*/site-packages")
    (site_packages / "outer_site_packages.pth").write_text("\n".join(_site_folders()) + "\n")
    python = venv / "bin" / "python"
    _run(python, *pip[1:], "install", "--no-deps", "--no-index", "--force-reinstall", wheel, cwd=tmp_path, env=env)
    probe = "import aetools.weights as w; print(w.__file__); print(w.weights_dir())"
    where = _run(python, "-c", probe, cwd=tmp_path, env=env)
    module, weights = where.stdout.split()
    assert Path(module).is_relative_to(venv) and Path(weights).is_relative_to(venv), where.stdout

    # one image task from a folder outside the source tree, on the shipped denoiser
    work = tmp_path / "work"
    work.mkdir()
    clean = photo(96, "coffee").astype(np.float32)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25, clean.shape), 0, 255).round().astype(np.uint8)
    Image.fromarray(noisy).save(work / "noisy.png")
    _run(venv / "bin" / "aetools", "denoise", "noisy.png", "--device", "cpu", cwd=work, env=env)
    out = np.asarray(Image.open(work / "noisy_denoised.png"))
    before = peak_signal_noise_ratio(clean.astype(np.uint8), noisy)
    after = peak_signal_noise_ratio(clean.astype(np.uint8), out)
    assert after > before + 4, (before, after)  # measured: 21.0 dB -> 29.2 dB

    # AETOOLS_WEIGHTS still overrides the installed copy
    listing = _run(venv / "bin" / "aetools", "models", cwd=work, env={**env, "AETOOLS_WEIGHTS": str(ROOT / "weights")})
    assert f"shipped weights in {ROOT / 'weights'}" in listing.stdout.replace("\n", "")
