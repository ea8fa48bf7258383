"""The weights and checkpoint reading budget and integrity (aetools.weights, aetools.train.checkpoint):
non-regular files, malformed headers and configs, a config's size checked against its tensors before anything
is allocated, the full digest of shipped files, and checkpoints refused when damaged."""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from aetools.weights import WeightsError, load_model, read_manifest, read_weights, weights_dir
from tests.conftest import photo, run

HEADER_BUDGET_SCRIPT = """
import json, os, resource, sys, time
from pathlib import Path

import torch
from aetools.weights import WeightsError, load_model

torch.set_num_threads(1)
load_model(sys.argv[1], "denoise")  # imports, thread pools, one real (tiny) build: all in the baseline
vm = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), resource.RLIM_INFINITY))  # old code: fail, not swap
results = {}
for path in sys.argv[2:]:
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.perf_counter()
    try:
        load_model(path, "denoise")
        outcome = "loaded"
    except WeightsError as e:
        outcome = str(e)
    except BaseException as e:
        outcome = "escaped: " + type(e).__name__
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    results[Path(path).name] = {"outcome": outcome, "seconds": time.perf_counter() - start, "grown": grown}
print(json.dumps(results))
"""


def rewrite_header(path: Path, out: Path, edit) -> Path:
    """Copy a weights file with its aetools metadata changed by `edit(header) -> header or any JSON value`;
    the tensors' bytes and the header length field stay consistent."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    table = json.loads(data[8 : 8 + n])
    table["__metadata__"]["aetools"] = json.dumps(edit(json.loads(table["__metadata__"]["aetools"])))
    raw = json.dumps(table).encode()
    raw += b" " * (-len(raw) % 8)
    out.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])
    return out


def without_digest(header: dict) -> dict:
    header.pop("content_sha256", None)
    return header


def flip_tensor_byte(path: Path, tensor: str | None = None, byte: int = 0, mask: int = 0xFF) -> None:
    """Flip bits of one byte of a tensor (the first in the file unless named), in place."""
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    table = json.loads(data[8 : 8 + n])
    table.pop("__metadata__", None)
    name = tensor or min(table, key=lambda k: table[k]["data_offsets"][0])
    data[8 + n + table[name]["data_offsets"][0] + byte] ^= mask
    path.write_bytes(bytes(data))


def outcome_within(call, seconds: float, fifo: Path) -> dict:
    """call() in a thread -> {"value": ...} or {"error": ...}; a call still blocked on the FIFO after
    `seconds` is released (a writer opens and closes it) and the test fails instead of hanging."""
    result = {}

    def target():
        try:
            result["value"] = call()
        except BaseException as e:  # noqa: BLE001
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
        pytest.fail(f"blocked on the FIFO for over {seconds} s")
    return result


def assert_one_line(error: Exception, name: str) -> None:
    text = str(error)
    assert name in text and "\n" not in text, text


# ------------------------------------------------------------------------------------ non-regular files


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX special files")
def test_fifo_and_dev_zero_are_refused_before_reading(tmp_path, tiny_weights):
    """-m FIFO used to hang in open(); -m /dev/zero read until memory ran out. Both are refused at once,
    by name, without reading (run in a child with a timeout and an address-space limit)."""
    fifo = tmp_path / "weights.fifo"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-c", HEADER_BUDGET_SCRIPT, str(tiny_weights), str(fifo), "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, path in (("weights.fifo", fifo), ("zero", "/dev/zero")):
        outcome = results[name]
        assert outcome["outcome"].startswith(f"{path}: not a regular file"), outcome
        assert outcome["seconds"] < 5 and outcome["grown"] < 50 << 20, outcome


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifo_given_as_init_or_on_the_command_line_is_one_line(tmp_path, train_folder):
    from aetools.train.trainer import TrainConfig, train

    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    config = TrainConfig(task="denoise", data=[str(train_folder)], out=str(tmp_path / "o.safetensors"), init=str(fifo))
    refused = outcome_within(lambda: train(config), 30, fifo).get("error")
    assert isinstance(refused, WeightsError) and "not a regular file" in str(refused), refused
    assert_one_line(refused, str(fifo))
    image = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(photo(32)).save(image)
    result = outcome_within(lambda: run("denoise", image, "-m", fifo), 30, fifo)["value"]
    assert result.exit_code != 0 and "not a regular file" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


# -------------------------------------------------------------------------------- malformed headers


def edited(header_edit):
    return lambda src, out: rewrite_header(src, out, header_edit)


def raw(make_bytes):
    def write(src, out):
        out.write_bytes(make_bytes(src.read_bytes()))
        return out

    return write


def _n(data: bytes) -> int:
    return int.from_bytes(data[:8], "little")


MALFORMED = {
    "metadata is a list": (edited(lambda h: [1, 2, 3]), "not a JSON object"),
    "metadata is a string": (edited(lambda h: "denoise"), "not a JSON object"),
    "no task": (edited(lambda h: {k: v for k, v in h.items() if k != "task"}), "no valid 'task'"),
    "no config": (edited(lambda h: {k: v for k, v in h.items() if k != "config"}), "no valid 'config'"),
    "config is a list": (edited(lambda h: {**h, "config": [8, 16, 32]}), "no valid 'config'"),
    "config has an unknown key": (edited(lambda h: {**h, "config": {**h["config"], "bogus": 1}}), "does not make"),
    "config has a wrong type": (edited(lambda h: {**h, "config": {**h["config"], "widths": "abc"}}), "does not make"),
    "config has a negative width": (
        edited(lambda h: {**h, "config": {**h["config"], "widths": [-8]}}),
        "does not make",
    ),
    "metrics is a list": (edited(lambda h: {**h, "metrics": [1]}), "'metrics' is malformed"),
    "unknown arch": (edited(lambda h: {**h, "arch": "no-such-net"}), "does not make"),
    "table is a list": (raw(lambda d: (4).to_bytes(8, "little") + b"[1] "), "not an aetools safetensors"),
    "header length of a terabyte": (raw(lambda d: (1 << 40).to_bytes(8, "little") + d[8:]), "over the"),
    "header past the end": (raw(lambda d: (len(d)).to_bytes(8, "little") + d[8:]), "runs past the end"),
    "a byte appended": (raw(lambda d: d + b"\0"), "its header declares"),
    "a byte cut off": (raw(lambda d: d[:-1]), "its header declares"),
    "a bad dtype": (
        raw(lambda d: d[:8] + d[8 : 8 + _n(d)].replace(b'"F32"', b'"Q32"', 1) + d[8 + _n(d) :]),
        "malformed",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_headers_and_configs_are_one_line_errors(tiny_weights, tmp_path, case):
    make, message = MALFORMED[case]
    bad = make(tiny_weights, tmp_path / "bad.safetensors")
    with pytest.raises(WeightsError, match=message) as refused:
        load_model(bad, "denoise")
    assert_one_line(refused.value, "bad.safetensors")


def test_malformed_header_on_the_command_line_is_one_line_not_a_traceback(tiny_weights, tmp_path):
    from PIL import Image

    bad = rewrite_header(tiny_weights, tmp_path / "bad.safetensors", lambda h: [h])
    image = tmp_path / "in.png"
    Image.fromarray(photo(32)).save(image)
    result = run("denoise", image, "-m", bad)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert "bad.safetensors" in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "in_denoised.png").exists()


# ------------------------------------------------------------------ the config's size, before allocation


def test_a_config_edited_to_a_huge_network_is_refused_without_allocating_it(tiny_weights, tmp_path):
    """A 150 KB file whose config asks for widths x64 (144 M parameters) used to build
    that network (575 MB) before comparing shapes; a config asking for 100,000 blocks would build
    them all. Both are refused from the header, in well under a second of work and a few MB."""
    wide = rewrite_header(
        tiny_weights,
        tmp_path / "wide.safetensors",
        lambda h: without_digest({**h, "config": {**h["config"], "widths": [w * 64 for w in h["config"]["widths"]]}}),
    )
    deep = rewrite_header(
        tiny_weights,
        tmp_path / "deep.safetensors",
        lambda h: without_digest({**h, "config": {**h["config"], "blocks": 100_000}}),
    )
    assert wide.stat().st_size < 200_000
    done = subprocess.run(
        [sys.executable, "-c", HEADER_BUDGET_SCRIPT, str(tiny_weights), str(wide), str(deep)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    first = "backbone.stem.weight"  # widths[0] sets the first convolution's output channels
    assert results["wide.safetensors"]["outcome"].startswith(f"{wide}: config and tensors disagree: {first} is [8,")
    assert "far larger than its" in results["deep.safetensors"]["outcome"]
    for outcome in results.values():
        assert outcome["seconds"] < 10 and outcome["grown"] < 300 << 20, outcome


def test_every_architecture_builds_on_the_meta_device_with_real_shapes():
    """The size check builds each network on torch's meta device: that must give every architecture's real
    names and shapes (or a model could never load)."""
    from aetools.models import create_model, list_models

    for arch in list_models():
        torch.manual_seed(0)
        real = create_model(arch).state_dict()
        with torch.device("meta"):
            meta = create_model(arch).state_dict()
        assert {k: v.shape for k, v in meta.items()} == {k: v.shape for k, v in real.items()}, arch


# ----------------------------------------------------------------------------------- the full digest


@pytest.mark.parametrize("entry", read_manifest(), ids=lambda e: e.name)
def test_every_shipped_file_records_its_full_digest(entry):
    tensors, header = read_weights(entry.path, entry.sha256)
    assert len(header.get("content_sha256", "")) == 64 and len(header.get("tensors_sha256", "")) == 64
    assert header["params"] == entry.params and header["metrics"] == entry.metrics


SHIPPED_COPIES = ["linear-fashion", "hash", "denoise"]


@pytest.mark.parametrize("name", SHIPPED_COPIES)
def test_a_copy_of_a_shipped_file_with_one_flipped_tensor_byte_is_refused(tmp_path, name):
    copy = tmp_path / f"{name}.safetensors"
    shutil.copyfile(weights_dir() / f"{name}.safetensors", copy)
    task = next(e.task for e in read_manifest() if e.name == name)
    assert load_model(copy, task) is not None
    flip_tensor_byte(copy, byte=1, mask=0x01)
    with pytest.raises(WeightsError, match="does not match its recorded sha256") as refused:
        load_model(copy, task)
    assert_one_line(refused.value, str(copy))


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: {**h, "config": {**h["config"], "level": 0.9}},  # a config value that changes no shape
        lambda h: {**h, "config": {**h["config"], "reg": "sparse"}},
        lambda h: {**h, "metrics": {**h["metrics"], "bf16_auto": True}},  # metadata a pipeline acts on
        lambda h: {**h, "task": "vae"},
    ],
    ids=["config-level", "config-reg", "metrics", "task"],
)
def test_a_copy_of_a_shipped_file_with_an_edited_header_is_refused(tmp_path, edit):
    copy = rewrite_header(weights_dir() / "linear-fashion.safetensors", tmp_path / "lin.safetensors", edit)
    with pytest.raises(WeightsError, match="does not match its recorded sha256") as refused:
        load_model(copy, ("ae", "vae"))
    assert_one_line(refused.value, str(copy))


def test_a_file_without_digests_still_loads_by_path(tiny_weights, tmp_path):
    """Users' own older trainings, written before the digests: loaded, their tensor digest computed."""
    from aetools.weights import tensors_digest

    old = rewrite_header(
        tiny_weights, tmp_path / "old.safetensors", lambda h: {k: v for k, v in h.items() if "sha256" not in k}
    )
    model = load_model(old, "denoise")
    assert model.weights_header["tensors_sha256"] == tensors_digest(tiny_weights.read_bytes())


def test_resaving_keeps_the_tensors_byte_for_byte_and_records_the_digest(tiny_weights, tmp_path):
    from aetools.weights import record_metrics, tensors_digest

    old = rewrite_header(
        tiny_weights, tmp_path / "old.safetensors", lambda h: {k: v for k, v in h.items() if "sha256" not in k}
    )
    before = old.read_bytes()
    record_metrics(old, {})
    after = old.read_bytes()
    assert after[8 + _n(after) :] == before[8 + _n(before) :] and tensors_digest(after) == tensors_digest(before)
    assert "content_sha256" in read_weights(old)[1]


# ------------------------------------------------------------------------------------------- checkpoints


def crashed_run(train_folder, tmp_path):
    """A tiny run killed after its step-2 checkpoint -> (config maker, checkpoint path)."""
    from aetools.train.trainer import TrainConfig, train

    def config(**kw):
        base = dict(
            task="denoise",
            data=[str(train_folder)],
            out=str(tmp_path / "run.safetensors"),
            model={"widths": (8, 16), "blocks": 1, "bottleneck_blocks": 1},
            batch_size=2,
            crop=32,
            val_images=2,
            val_every=1000,
            device="cpu",
            warmup=1,
            steps=4,
            checkpoint_every=2,
        )
        return TrainConfig(**{**base, **kw})

    class Crash(Exception):
        pass

    def crash_at_3(p):
        if p.event == "step" and p.step == 3:
            raise Crash

    with pytest.raises(Crash):
        train(config(), crash_at_3)
    return config, tmp_path / "run.safetensors.ckpt.safetensors"


def test_a_checkpoint_with_a_flipped_exponent_byte_is_refused_not_resumed(train_folder, tmp_path):
    from aetools.train.trainer import train

    config, ckpt = crashed_run(train_folder, tmp_path)
    flip_tensor_byte(ckpt, "model.backbone.stem.weight", byte=3, mask=0x40)  # float32's high byte: the exponent
    damaged = ckpt.read_bytes()
    with pytest.raises(WeightsError, match="checkpoint does not match its recorded sha256") as refused:
        train(config(resume=True))
    assert_one_line(refused.value, str(ckpt))
    assert "previous weights" in str(refused.value)
    assert ckpt.read_bytes() == damaged and not (tmp_path / "run.safetensors").exists()  # kept, nothing written


def test_a_damaged_checkpoint_is_refused_by_load_checkpoint_itself(train_folder, tmp_path):
    """The check is in the loader, not only in the trainer's header read: nothing is restored."""
    from aetools.models import create_model
    from aetools.train.checkpoint import load_checkpoint, read_checkpoint_header

    _, ckpt = crashed_run(train_folder, tmp_path)
    model = create_model("denoise-unet", widths=(8, 16), blocks=1, bottleneck_blocks=1)
    optimizer = torch.optim.Adam(model.parameters())
    header = read_checkpoint_header(ckpt)
    assert header["step"] == 2 and len(header["content_sha256"]) == 64
    flip_tensor_byte(ckpt, "optim.0.exp_avg_sq", byte=3, mask=0x40)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match="start again from the previous weights"):
        load_checkpoint(ckpt, model, optimizer)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not optimizer.state


def test_a_checkpoint_with_an_edited_step_is_refused(train_folder, tmp_path):
    from aetools.train.trainer import train

    config, ckpt = crashed_run(train_folder, tmp_path)
    data = ckpt.read_bytes()
    n = _n(data)
    table = data[8 : 8 + n].replace(b'\\"step\\": 2', b'\\"step\\": 1')
    assert table != data[8 : 8 + n]
    ckpt.write_bytes(data[:8] + table + data[8 + n :])
    with pytest.raises(WeightsError, match="checkpoint does not match its recorded sha256"):
        train(config(resume=True))


def test_a_fifo_checkpoint_is_refused(tmp_path):
    """In a child with a timeout: safetensors' own reader blocks in open() holding the GIL, so a thread
    could not time it out."""
    fifo = tmp_path / "c.ckpt.safetensors"
    os.mkfifo(fifo)
    script = (
        "import sys\nfrom aetools.train.checkpoint import read_checkpoint_header\n"
        "try:\n    read_checkpoint_header(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(fifo)], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith(f"WeightsError {fifo}: not a regular file"), done.stdout + done.stderr[-1000:]
