"""Precision: the choice (auto, fp32, bf16) and its fallback, exact resume and the record under bf16, and
each shipped head in bf16 within a small tolerance of fp32 on a bundled photo."""

import numpy as np
import pytest
import torch

from aetools.precision import NO_BF16_ENV, PrecisionError, bf16_support, capability_line, resolve_precision
from tests.conftest import photo

CPU = torch.device("cpu")
HAS_BF16 = bf16_support(CPU)[0]


def test_explicit_choices_and_bad_names():
    assert resolve_precision("fp32", CPU).name == "fp32"
    assert resolve_precision("bf16", CPU).name == "bf16"  # asked for: runs even where it is slow
    with pytest.raises(PrecisionError, match="choose from auto, fp32, bf16"):
        resolve_precision("fp16", CPU)
    with pytest.raises(PrecisionError, match="not available on mps"):
        resolve_precision("bf16", torch.device("mps"))


def test_auto_falls_back_to_fp32_without_bf16_units(monkeypatch):
    monkeypatch.setenv(NO_BF16_ENV, "1")  # a processor without AMX / AVX512-BF16
    chosen = resolve_precision("auto", CPU)
    assert chosen.name == "fp32" and NO_BF16_ENV in chosen.reason
    assert "auto uses fp32" in capability_line(CPU)


def test_auto_takes_bf16_only_where_the_device_has_it_and_the_model_allows_it(monkeypatch):
    monkeypatch.delenv(NO_BF16_ENV, raising=False)
    assert resolve_precision("auto", CPU).name == ("bf16" if HAS_BF16 else "fp32")
    refused = resolve_precision("auto", CPU, bf16_safe=False)
    assert refused.name == "fp32"
    if HAS_BF16:
        assert "loses quality" in refused.reason


def test_pipeline_auto_follows_the_weights_record(monkeypatch, tiny_weights, tmp_path):
    from aetools.pipeline import BF16_METRIC
    from aetools.tasks.denoise import DenoisePipeline
    from aetools.weights import load_model, record_metrics

    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("AETOOLS_WEIGHTS", str(tmp_path / "shipped"))  # record_metrics rewrites this manifest
    monkeypatch.delenv(NO_BF16_ENV, raising=False)
    assert DenoisePipeline.from_pretrained(tiny_weights, "cpu").precision.name == "fp32"  # never measured
    record_metrics(tiny_weights, {BF16_METRIC: True})
    expected = "bf16" if HAS_BF16 else "fp32"
    assert DenoisePipeline(load_model(tiny_weights, "denoise"), "cpu").precision.name == expected
    monkeypatch.setenv(NO_BF16_ENV, "1")
    assert DenoisePipeline(load_model(tiny_weights, "denoise"), "cpu").precision.name == "fp32"


# ------------------------------------------------------------------------------------- training in bf16


def _config(folder, out, **kw):
    from tests.test_trainer import config

    return config(folder, out, **{"steps": 6, "checkpoint_every": 3, **kw})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_is_bit_exact_in_each_precision(train_folder, tmp_path, precision):
    from aetools.train.trainer import train
    from aetools.weights import load_model

    full = []
    train(
        _config(train_folder, tmp_path / "a.safetensors", precision=precision),
        lambda p: full.append(p.step_loss) if p.event == "step" else None,
    )

    class Crash(Exception):
        pass

    def crash(p):
        if p.event == "step" and p.step == 5:
            raise Crash

    with pytest.raises(Crash):
        train(_config(train_folder, tmp_path / "b.safetensors", precision=precision), crash)
    resumed = []
    train(
        _config(train_folder, tmp_path / "b.safetensors", precision=precision, resume=True),
        lambda p: resumed.append(p.step_loss) if p.event == "step" else None,
    )
    assert resumed == full[3:]
    a = load_model(tmp_path / "a.safetensors", "denoise")
    b = load_model(tmp_path / "b.safetensors", "denoise")
    assert a.weights_header["training"]["precision"] == precision
    assert a.weights_header["training"]["channels_last"] == (precision == "bf16")
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name


def test_resume_keeps_the_runs_precision(train_folder, tmp_path):
    from aetools.train.trainer import TrainError, train
    from aetools.weights import load_model

    out = tmp_path / "c.safetensors"
    train(_config(train_folder, out, precision="fp32", steps=4, checkpoint_every=2), lambda p: None)
    out.unlink()
    with pytest.raises(TrainError, match="trained in fp32, not bf16"):
        train(_config(train_folder, out, precision="bf16", steps=6, resume=True))
    train(_config(train_folder, out, precision="auto", steps=6, resume=True))  # auto: the checkpoint's own
    assert load_model(out, "denoise").weights_header["training"]["precision"] == "fp32"


def test_bf16_training_loss_decreases(train_folder, tmp_path):
    from aetools.train.trainer import train

    losses = []
    train(
        _config(train_folder, tmp_path / "m.safetensors", precision="bf16", steps=60, lr=2e-3, checkpoint_every=100),
        lambda p: losses.append(p.loss) if p.event == "step" else None,
    )
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:5]) / 5


# ----------------------------------------------------------- each shipped head: bf16 close to fp32


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=1.0)


def _both(name: str, image, **options):
    from aetools.tasks import get_pipeline

    return [get_pipeline(name).from_pretrained(None, "cpu", p)(image, **options).pixels for p in ("fp32", "bf16")]


def test_shipped_heads_in_bf16_stay_within_tolerance_of_fp32():
    """On bundled photos: bf16's output is within 0.05 dB of fp32's PSNR against the truth, and far closer
    to fp32's output than to the truth (the benchmarks measure the real tolerance, 0.02 dB, on whole sets)."""
    from aetools.data.io import ImageData
    from aetools.tasks.colorize import luminance

    clean = photo(128).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    fp32, bf16 = _both("denoise", ImageData(noisy, None, 8))
    assert abs(_psnr(clean, fp32) - _psnr(clean, bf16)) < 0.05
    assert _psnr(fp32, bf16) > 40

    small = clean[::2, ::2].copy()
    fp32, bf16 = _both("upscale", ImageData(small, None, 8), scale=2)
    assert fp32.shape == (128, 128, 3) and abs(_psnr(clean, fp32) - _psnr(clean, bf16)) < 0.05

    grey = (luminance(clean) / 100)[..., None].astype(np.float32)
    fp32, bf16 = _both("colorize", ImageData(grey, None, 8))
    assert abs(_psnr(clean, fp32) - _psnr(clean, bf16)) < 0.05

    mask = np.zeros(clean.shape[:2], bool)
    mask[40:70, 50:90] = True
    fp32, bf16 = _both("inpaint", ImageData(clean, None, 8), mask=mask)
    assert np.array_equal(fp32[~mask], bf16[~mask])  # untouched pixels stay bit-exact in any precision
    assert abs(_psnr(clean[mask], fp32[mask]) - _psnr(clean[mask], bf16[mask])) < 0.1


def test_hash_codes_in_bf16_differ_by_a_few_bits_at_most():
    import aetools

    images = [photo(96, name) for name in ("astronaut", "coffee", "chelsea", "rocket")]
    fp32 = aetools.hash_code(images, precision="fp32")
    bf16 = aetools.hash_code(images, precision="bf16")
    assert fp32.shape == (4, 64)
    assert (fp32 != bf16).sum(axis=1).max() <= 3
