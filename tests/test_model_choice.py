"""Which model runs on which input when none is named: the rule lives in the task's pipeline
(`ImagePipeline.default_model`), and the Python API, the CLI and the web app follow it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import aetools
from aetools.pipeline import ModelChoice
from aetools.tasks import get_pipeline
from tests.conftest import photo, run, save_tiny, tiny_model


def test_lossy_inputs_get_the_real_photo_model_where_it_is_shipped():
    upscale = get_pipeline("upscale")
    for fmt in ("JPEG", "MPO", "WEBP", "HEIF", "AVIF"):
        assert upscale.default_model(fmt) == "upscale-real"
    for fmt in ("PNG", "TIFF", "BMP", "GIF", None):  # None: an array handed to the API
        assert upscale.default_model(fmt) == "upscale"
    assert get_pipeline("colorize").default_model("JPEG") == "colorize"  # a task without one: its default


def test_a_real_photo_model_is_chosen_only_once_it_is_shipped(tmp_path, monkeypatch):
    from aetools.weights import ship_weights

    monkeypatch.setenv("AETOOLS_WEIGHTS", str(tmp_path / "shipped"))
    (tmp_path / "shipped").mkdir()
    net = tiny_model("denoise-unet", widths=(8, 16), blocks=1, bottleneck_blocks=1)
    ship_weights(save_tiny(net, "denoise", tmp_path / "plain.safetensors"), "denoise")
    denoise = get_pipeline("denoise")
    assert denoise.default_model("JPEG") == "denoise"  # no denoise-real in this folder
    ship_weights(save_tiny(net, "denoise", tmp_path / "real.safetensors"), "denoise-real", default=False)
    assert denoise.default_model("JPEG") == "denoise-real" and denoise.default_model("PNG") == "denoise"


def test_a_model_choice_loads_a_model_only_when_an_input_needs_it():
    from aetools.data.io import ImageData

    loads = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def __call__(self, image, **options):
            return image

    def load(name):
        loads.append(name)
        return Fake(name)

    choice = ModelChoice(get_pipeline("upscale"), None, load)
    png, jpeg = (ImageData(np.zeros((4, 4, 3), np.float32), format=f) for f in ("PNG", "JPEG"))
    for _ in range(3):
        choice(png)
    assert loads == ["upscale"]
    choice(jpeg)
    choice(jpeg)
    assert loads == ["upscale", "upscale-real"] and choice.used == {"upscale": 3, "upscale-real": 2}
    assert "upscale-real for 2 JPEG" in choice.describe() and "upscale for 3 lossless inputs" in choice.describe()
    named = ModelChoice(get_pipeline("upscale"), "upscale", load)
    named(jpeg)
    assert loads[-1] == "upscale" and named.describe() is None  # the user's choice is not announced


@pytest.mark.slow
def test_the_api_and_the_cli_give_the_same_pixels_for_one_jpeg(tmp_path):
    path = tmp_path / "phone.jpg"
    Image.fromarray(photo(64, "coffee")).save(path, quality=85)
    result = aetools.upscale(Image.open(path), scale=2)
    assert result.info["aetools_model"] == "upscale-real"
    r = run("upscale", path, "--scale", "2", "-o", tmp_path / "cli.png")
    assert r.exit_code == 0, r.output
    assert "model: upscale-real for 1 JPEG" in r.output
    assert np.array_equal(np.asarray(result), np.asarray(Image.open(tmp_path / "cli.png")))
    from_path = aetools.upscale(str(path), scale=2)  # a path: the same rule
    assert from_path.info["aetools_model"] == "upscale-real"
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, "PNG")  # the same pixels, losslessly: the default model
    assert aetools.upscale(Image.open(buffer), scale=2).info["aetools_model"] == "upscale"
