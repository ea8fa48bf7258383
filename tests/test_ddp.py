"""Two CPU processes under torchrun (gloo): gradients are averaged, so the replicas stay identical."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # each case starts two torchrun processes

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    from aetools.train.trainer import TrainConfig, train

    folder, out, report, task, crop, precision = sys.argv[1:7]
    torch.set_num_threads(1)
    config = TrainConfig(task=task, data=[folder], out=out, model={"widths": (8, 16)}, steps=4,
                         batch_size=2, crop=int(crop), val_images=1, val_every=1000, device="cpu", warmup=1,
                         precision=precision)
    result = train(config)
    import torch.distributed as dist
    digest = hashlib.sha256()
    for value in result.model.state_dict().values():
        digest.update(value.numpy().tobytes())
    rank = os.environ["RANK"]
    json.dump({"rank": rank, "world": dist.get_world_size(), "sha": digest.hexdigest()},
              open(f"{report}.{rank}.json", "w"))
    """
)


@pytest.mark.parametrize(
    "task, crop, precision",
    [
        ("denoise", 32, "fp32"),
        ("denoise", 32, "bf16"),  # bf16 autocast: gradients are fp32 (master weights), averaged as usual
        ("superres", 64, "bf16"),
        ("colorize", 32, "bf16"),
        ("inpaint", 32, "bf16"),
        ("hash", 48, "bf16"),
        ("vqvae", 28, "bf16"),  # the codebook's EMA statistics are pooled over processes, revived codes broadcast
    ],  # superres: ranks may train different scales' tails in one step
)
def test_two_processes_keep_identical_replicas(train_folder, tmp_path, task, crop, precision):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    report = tmp_path / "report"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(train_folder),
        str(tmp_path / "ddp.safetensors"),
        str(report),
        task,
        str(crop),
        precision,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    reports = [json.loads((tmp_path / f"report.{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in reports)
    assert reports[0]["sha"] == reports[1]["sha"]
    from aetools.weights import read_weights

    _, header = read_weights(tmp_path / "ddp.safetensors")
    assert header["training"]["precision"] == precision and header["training"]["processes"] == 2
