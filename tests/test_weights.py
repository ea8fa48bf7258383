import json

import pytest
import torch

from aetools.models import create_model
from aetools.weights import (
    WeightsError,
    load_model,
    read_weights,
    record_metrics,
    save_weights,
    ship_weights,
)


def test_round_trip_is_exact_and_self_describing(tiny_weights):
    tensors, header = read_weights(tiny_weights)
    assert header["arch"] == "denoise-unet" and header["task"] == "denoise"
    assert header["config"]["widths"] == [8, 16, 32]
    model = load_model(tiny_weights, "denoise")
    for name, value in model.state_dict().items():
        assert torch.equal(value, tensors[name])
    x = torch.rand(1, 3, 24, 24)
    save_weights(model, tiny_weights.with_name("again.safetensors"), "denoise")
    again = load_model(tiny_weights.with_name("again.safetensors"), "denoise")
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_no_pickle_in_the_file(tiny_weights):
    data = tiny_weights.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    json.loads(data[8 : 8 + header_len])  # a JSON header, then raw tensor bytes
    assert b"\x80\x04\x95" not in data[: 8 + header_len]  # no pickle protocol marker


def test_shipped_file_with_wrong_sha256_is_refused(tiny_weights, tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setenv("AETOOLS_WEIGHTS", str(shipped))
    path = ship_weights(tiny_weights, "tiny-denoise").path
    assert path == shipped / "tiny-denoise.safetensors"
    assert load_model("tiny-denoise", "denoise") is not None
    assert load_model(None, "denoise") is not None  # the task's default
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip one byte of a weight
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_model("tiny-denoise", "denoise")


def test_record_metrics_updates_file_and_manifest(tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("AETOOLS_WEIGHTS", str(tmp_path))
    path = ship_weights(tiny_weights, "tiny-denoise", dtype=torch.float16).path
    record_metrics(path, {"cbsd68_sigma25_psnr": 30.5})
    assert read_weights(path)[1]["metrics"]["cbsd68_sigma25_psnr"] == 30.5
    assert read_weights(path)[1]["dtype"] == "float16"
    model = load_model("tiny-denoise", "denoise")  # sha256 refreshed with the new header
    assert model.weights_header["metrics"]["cbsd68_sigma25_psnr"] == 30.5


@pytest.mark.parametrize("content", [b"", b"not safetensors at all", b"\x10\x00\x00\x00\x00\x00\x00\x00{}"])
def test_foreign_or_corrupt_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="bad.safetensors"):
        load_model(path, "denoise")


def test_wrong_task_and_missing_name_are_clear(tiny_weights):
    with pytest.raises(WeightsError, match="for task 'denoise'"):
        load_model(tiny_weights, "upscale")
    with pytest.raises(WeightsError, match="no such weights file"):
        load_model("no-such-model", "denoise")


def test_fp16_storage_halves_the_file(tmp_path):
    model = create_model("denoise-unet", widths=(8, 16))
    save_weights(model, tmp_path / "a.safetensors", "denoise")
    save_weights(model, tmp_path / "b.safetensors", "denoise", dtype=torch.float16)
    assert (tmp_path / "b.safetensors").stat().st_size < 0.6 * (tmp_path / "a.safetensors").stat().st_size
    loaded = load_model(tmp_path / "b.safetensors", "denoise")
    assert next(loaded.parameters()).dtype == torch.float32


def test_any_weights_file_with_altered_tensor_bytes_is_refused(tiny_weights):
    data = bytearray(tiny_weights.read_bytes())
    data[-5] ^= 0xFF  # one byte of a weight, in a file given by path (not shipped: no manifest sha256)
    tiny_weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="tensor data does not match"):
        load_model(tiny_weights, "denoise")


def test_the_tensor_digest_ignores_the_metadata(tiny_weights):
    from aetools.index.folder import model_identity

    before = model_identity(load_model(tiny_weights, "denoise"))
    record_metrics(tiny_weights, {"some_metric": 1.0})  # rewrites the header, so the file's bytes change
    after = load_model(tiny_weights, "denoise")
    assert model_identity(after) == before and after.weights_header["metrics"]["some_metric"] == 1.0
    changed = create_model("denoise-unet", widths=(8, 16, 32))
    save_weights(changed, tiny_weights.with_name("other.safetensors"), "denoise")
    assert model_identity(load_model(tiny_weights.with_name("other.safetensors"), "denoise")) != before
