"""Shared fixtures: images made here or taken from skimage.data, tiny models, never ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def photo(size: int = 128, name: str = "astronaut") -> np.ndarray:
    """A bundled skimage.data colour photo, centre-cropped and resized to size x size, uint8 RGB."""
    from skimage import data

    img = Image.fromarray(getattr(data, name)())
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
    return np.asarray(img.resize((size, size), Image.LANCZOS).convert("RGB"))


def run(*args):
    """Invoke the CLI in-process; arguments may be paths or numbers."""
    from typer.testing import CliRunner

    from aetools.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def tiny_model(arch: str, **config) -> torch.nn.Module:
    """A small randomly initialised (seed 0) model of a registered architecture, in eval mode."""
    from aetools.models import create_model

    torch.manual_seed(0)
    return create_model(arch, **config).eval()


def save_tiny(model: torch.nn.Module, task: str, path: Path) -> Path:
    """Save a test model as an aetools weights file -> path."""
    from aetools.weights import save_weights

    save_weights(model, path, task, {"data": "random init for tests"})
    return path


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A randomly initialised small denoiser saved as an aetools weights file."""
    model = tiny_model("denoise-unet", widths=(8, 16, 32), blocks=1, bottleneck_blocks=1)
    return save_tiny(model, "denoise", tmp_path / "tiny.safetensors")


@pytest.fixture
def train_folder(tmp_path: Path) -> Path:
    """Eight small training photos from skimage.data (crops of two photos)."""
    folder = tmp_path / "train"
    folder.mkdir()
    for i, name in enumerate(["astronaut", "coffee"]):
        img = photo(128, name)
        for j in range(4):
            y, x = (j // 2) * 48, (j % 2) * 48
            Image.fromarray(img[y : y + 80, x : x + 80]).save(folder / f"{i}_{j}.png")
    return folder
