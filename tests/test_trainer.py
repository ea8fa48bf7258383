import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from aetools.train.trainer import TrainConfig, TrainError, learning_rate, train
from aetools.weights import load_model

TINY = {"widths": (8, 16), "blocks": 1, "bottleneck_blocks": 1}


def config(folder, out, **kw):
    base = dict(
        task="denoise",
        data=[str(folder)],
        out=str(out),
        model=TINY,
        batch_size=4,
        crop=32,
        val_images=2,
        val_every=1000,
        device="cpu",
        warmup=2,
    )
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_loss_decreases(train_folder, tmp_path):
    losses = []
    train(
        config(train_folder, tmp_path / "m.safetensors", steps=60, lr=2e-3),
        lambda p: losses.append(p.loss) if p.event == "step" else None,
    )
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:5]) / 5
    model = load_model(tmp_path / "m.safetensors", "denoise")
    assert model.weights_header["training"]["steps"] == 60


def test_resume_after_a_crash_continues_with_the_same_next_loss(train_folder, tmp_path):
    full = []
    train(
        config(train_folder, tmp_path / "a.safetensors", steps=8, checkpoint_every=4),
        lambda p: full.append((p.step, p.step_loss)) if p.event == "step" else None,
    )

    class Crash(Exception):
        pass

    def crash_at_step_6(p):
        if p.event == "step" and p.step == 6:
            raise Crash  # like kill -9 after the step-4 checkpoint: steps 5-6 are lost

    with pytest.raises(Crash):
        train(config(train_folder, tmp_path / "b.safetensors", steps=8, checkpoint_every=4), crash_at_step_6)
    resumed = []
    result = train(
        config(train_folder, tmp_path / "b.safetensors", steps=8, checkpoint_every=4, resume=True),
        lambda p: resumed.append((p.step, p.step_loss)) if p.event == "step" else None,
    )
    assert result.steps == 8 and not result.interrupted
    assert resumed[0][0] == 5  # continues at the step after the checkpoint
    assert resumed == full[4:]  # the same losses, step for step, from the first resumed step on
    a = load_model(tmp_path / "a.safetensors", "denoise").state_dict()
    b = load_model(tmp_path / "b.safetensors", "denoise").state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name  # the resumed run ends bit-identical


def test_resume_refuses_without_checkpoint_and_fresh_refuses_to_clobber(train_folder, tmp_path):
    with pytest.raises(TrainError, match="no checkpoint"):
        train(config(train_folder, tmp_path / "c.safetensors", steps=2, resume=True))
    train(config(train_folder, tmp_path / "c.safetensors", steps=2, checkpoint_every=1))
    with pytest.raises(TrainError, match="--resume"):
        train(config(train_folder, tmp_path / "c.safetensors", steps=2))


def test_learning_rate_schedule():
    assert learning_rate(0, 100, 1e-3, 10, 0.01) == pytest.approx(1e-4)
    assert learning_rate(9, 100, 1e-3, 10, 0.01) == pytest.approx(1e-3)
    assert learning_rate(100, 100, 1e-3, 10, 0.01) == pytest.approx(1e-5)
    mid = learning_rate(55, 100, 1e-3, 10, 0.01)
    assert mid == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 0.5)))


@pytest.mark.slow
def test_sigint_writes_a_checkpoint_and_resume_finishes(train_folder, tmp_path):
    out = tmp_path / "s.safetensors"
    cmd = [
        sys.executable,
        "-m",
        "aetools",
        "train",
        "denoise",
        "--data",
        str(train_folder),
        "--out",
        str(out),
        "--steps",
        "100000",
        "--batch-size",
        "2",
        "--crop",
        "32",
        "--widths",
        "8,16",
        "--device",
        "cpu",
        "--checkpoint-every",
        "20",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "100"})
    ckpt = tmp_path / "s.safetensors.ckpt.safetensors"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)  # the first checkpoint proves the loop (and its signal handler) is running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert ckpt.exists() and not out.exists()
    from aetools.train.checkpoint import read_checkpoint_header

    stopped_at = read_checkpoint_header(ckpt)["step"]
    assert stopped_at > 0
    done = subprocess.run(
        cmd[:9] + ["--steps", str(stopped_at + 3)] + cmd[11:] + ["--resume"], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    assert load_model(out, "denoise").weights_header["training"]["steps"] == stopped_at + 3


def test_init_fine_tunes_from_fp16_weights_of_any_size(train_folder, tmp_path):
    """--init takes the network's size from the file (no --widths needed), fp16 shipped files included,
    and the fine-tuned weights record where they started."""
    from aetools.weights import read_weights, save_weights

    first = tmp_path / "first.safetensors"
    train(config(train_folder, first, steps=2))
    model = load_model(first, "denoise")
    half = tmp_path / "half.safetensors"
    save_weights(model, half, "denoise", model.weights_header["training"], dtype=torch.float16)
    tuned = tmp_path / "tuned.safetensors"
    result = train(config(train_folder, tuned, steps=2, model={}, init=str(half)))
    assert result.out == tuned
    _, header = read_weights(tuned)
    assert header["config"]["widths"] == [8, 16] and header["training"]["init"]["file"] == "half.safetensors"
    with pytest.raises(TrainError, match="do not fit the model"):
        train(config(train_folder, tmp_path / "x.safetensors", steps=1, model={"widths": (8, 32)}, init=str(half)))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": 0}, "--steps 0: must be at least 1"),
        ({"steps": -5}, "--steps -5: must be at least 1"),
        ({"batch_size": 0}, "--batch-size 0: must be at least 1"),
        ({"crop": 0}, "--crop 0: must be at least 8"),
        ({"lr": -1.0}, "--lr -1.0: must be above 0"),
        ({"checkpoint_every": 0}, "--checkpoint-every must be at least 1"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(train_folder, tmp_path, change, message):
    with pytest.raises(TrainError, match=message):
        train(config(train_folder, tmp_path / "n.safetensors", **{"steps": 2, **change}))
    assert not list(tmp_path.glob("n.safetensors*"))


def test_missing_or_unreadable_data_fails_fast_with_the_reason(tmp_path):
    with pytest.raises(TrainError, match="no such file or folder"):
        train(config(tmp_path / "nowhere", tmp_path / "a.safetensors", steps=2))
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(TrainError, match="cannot read the training images: 3 of 3 files failed"):
        train(config(broken, tmp_path / "b.safetensors", steps=2, val_images=0))


def test_some_unreadable_files_are_skipped_and_reported(train_folder, tmp_path):
    (train_folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = train(config(train_folder, tmp_path / "s.safetensors", steps=8, val_images=0))
    assert result.out is not None and list(result.unreadable) == [str(train_folder / "zz_broken.png")]


def test_outputs_are_checked_before_training(train_folder, tmp_path):
    photo = train_folder / "0_0.png"
    before = photo.read_bytes()
    with pytest.raises(TrainError, match="must be written as a .safetensors file"):
        train(config(train_folder, photo, steps=2))
    assert photo.read_bytes() == before
    done = tmp_path / "deep" / "new" / "w.safetensors"  # a folder that does not exist yet is created first
    train(config(train_folder, done, steps=2))
    done.with_name("w.safetensors.ckpt.safetensors").unlink()
    with pytest.raises(TrainError, match="exists \\(use --overwrite"):
        train(config(train_folder, done, steps=2))
    train(config(train_folder, done, steps=2, overwrite=True))


def test_resume_refuses_a_different_batch_size_crop_or_rate(train_folder, tmp_path):
    out = tmp_path / "r.safetensors"

    def crash_at_3(p):
        if p.event == "step" and p.step == 3:  # after the step-2 checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(train_folder, out, steps=6, checkpoint_every=2), crash_at_3)
    for change in ({"batch_size": 2}, {"crop": 48}, {"lr": 5e-4}):
        with pytest.raises(TrainError, match="resume with the same values"):
            train(config(train_folder, out, steps=6, resume=True, **change))
    assert train(config(train_folder, out, steps=4, resume=True)).steps == 4  # --steps may change


def test_exclude_holds_a_folder_out_of_the_training_files(tmp_path):
    from aetools.tasks.base import exclude_files

    files = [tmp_path / "a" / "1.png", tmp_path / "a" / "2.png", tmp_path / "held" / "3.png", tmp_path / "4.png"]
    kept = exclude_files(files, [str(tmp_path / "held"), str(tmp_path / "4.png")])
    assert kept == files[:2]
    assert exclude_files(files, [str(tmp_path / "hel")]) == files  # a folder, not a name prefix
