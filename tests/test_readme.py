"""The README's Python examples run as written, from the repository root, on the bundled images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).parents[1]
IMAGES = ROOT / "examples" / "images"


def python_blocks(markdown: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in order."""
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", markdown, flags=re.DOTALL | re.MULTILINE)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def repository_files() -> set[Path]:
    """What a README example could write into: the repository's top level and examples/."""
    return set(ROOT.iterdir()) | set((ROOT / "examples").rglob("*"))


@pytest.fixture(scope="module")
def readme_namespaces() -> list[dict]:
    """Every python block of README.md, exec()'d from the repository root; each block's namespace."""
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    before = repository_files()
    namespaces = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        for i, block in enumerate(blocks):
            namespace: dict = {"__name__": f"readme_block_{i}"}
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
            namespaces.append(namespace)
    assert repository_files() == before, "a README example wrote into the repository"
    return namespaces


def api_block(namespaces: list[dict]) -> dict:
    found = [ns for ns in namespaces if {"clean", "big", "colour", "filled", "codes"} <= ns.keys()]
    assert found, "no README block leaves clean, big, colour, filled and codes"
    return found[0]


def test_readme_denoise_removes_noise(readme_namespaces):
    ns = api_block(readme_namespaces)
    noisy = Image.open(IMAGES / "noisy.png")
    truth = np.asarray(Image.open(IMAGES / "clean.png").convert("RGB"))
    assert ns["clean"].size == noisy.size
    # sigma 25 noise: about 20 dB; the shipped denoiser gains more than 8 dB on it
    assert psnr(np.asarray(ns["clean"].convert("RGB")), truth) > psnr(np.asarray(noisy.convert("RGB")), truth) + 8
    array = ns["clean_array"]
    assert array.dtype == np.uint8 and array.shape == np.asarray(noisy).shape


def test_readme_upscale_colorize_inpaint_and_hash(readme_namespaces):
    from skimage.color import rgb2lab

    ns = api_block(readme_namespaces)
    small = Image.open(IMAGES / "small.png")
    assert ns["big"].size == (4 * small.width, 4 * small.height)

    grey = Image.open(IMAGES / "grey.png")
    colour = ns["colour"]
    assert colour.mode == "RGB" and colour.size == grey.size
    lab = rgb2lab(np.asarray(colour))
    lightness = rgb2lab(np.asarray(grey.convert("RGB")))[..., 0]
    assert np.abs(lab[..., 0] - lightness).mean() * 2.55 < 1.0  # L kept: under one 8-bit grey level
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 5.0  # and colour added

    holes = np.asarray(Image.open(IMAGES / "holes.png").convert("RGBA"))
    filled = np.asarray(ns["filled"].convert("RGBA"))
    known = holes[..., 3] == 255
    assert (holes[..., 3] == 0).any()
    assert filled.shape == holes.shape
    assert np.array_equal(filled[known][:, :3], holes[known][:, :3])  # outside the holes: bit for bit
    assert (filled[..., 3] == 255).all()  # the holes are filled, opaque

    codes = ns["codes"]
    assert codes.shape == (2, 64) and codes.dtype == bool
