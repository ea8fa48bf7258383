"""--engine ray on a local Ray instance (2 CPUs, started once for the module): the same outputs as the local
path, byte for byte; an index equal to a single-machine build; a worker killed mid-write retried with nothing
partial left; a re-run resuming; bad files listed while the rest is processed.

Helpers that run inside Ray's actors live at the top of this module and import nothing heavy at module level:
an actor unpickles them by importing this module."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import ray

from aetools.distributed import Lost, RayEngine, map_items

# ----------------------------------------------------------------------------- run inside Ray's actors


def _doubler_that_dies_on(poison: int, marker: str):
    """A worker without a model: item -> 2 item; the poison item kills its process every time, and any item
    kills it once while `marker` exists (the marker is removed first)."""

    def work(item: int) -> int:
        if item == poison:
            os._exit(1)
        if os.path.exists(marker):
            os.unlink(marker)
            os._exit(1)
        return 2 * item

    return work


def _build_that_dies_writing(build, victim: str, marker: str):
    """The command's Processor, built as an actor builds it, in a process whose first write of `victim`
    (while `marker` exists) dies after the hidden temporary is complete and before it is published."""
    import aetools.outputs

    publish = aetools.outputs.publish

    def publish_or_die(tmp, path, overwrite=True):
        if Path(path).name == victim and os.path.exists(marker):
            os.unlink(marker)
            os._exit(1)  # kill -9 alike: no cleanup, the temporary stays behind
        publish(tmp, path, overwrite)

    aetools.outputs.publish = publish_or_die
    return build()


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module; the commands find it running and use it (and leave it)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A small random denoiser (fast to load in every actor)."""
    from tests.conftest import save_tiny, tiny_model

    model = tiny_model("denoise-unet", widths=(8, 16, 32), blocks=1, bottleneck_blocks=1)
    return save_tiny(model, "denoise", tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Colour, grey, JPEG, a two-frame GIF, a sub-folder, and a file that is not an image."""
    import numpy as np
    from PIL import Image

    from tests.conftest import photo

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(photo(64)).save(folder / "a.png")
    Image.fromarray(photo(56, "coffee")).save(folder / "b.jpg", quality=90)
    Image.fromarray(photo(48, "chelsea")[..., 0]).save(folder / "grey.png")
    Image.fromarray(photo(40, "rocket")).save(folder / "sub" / "c.png")
    frames = [Image.fromarray(photo(32, name)) for name in ("astronaut", "coffee")]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:], duration=80, loop=0)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 52, 3)) * 255).astype(np.uint8)).save(folder / "noise.png")
    return folder


def said(result) -> str:
    """A command's output as one line (the console wraps long lines at its width)."""
    return " ".join(result.output.split())


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, hidden ones (a temporary left behind) included -> its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------- usage (no cluster needed)


def test_the_cli_imports_ray_only_for_the_ray_engine():
    code = "import sys, aetools.cli, aetools.cli.images, aetools.cli.hashing; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_engine_options_are_checked_before_any_work(photos, tmp_path):
    from tests.conftest import run

    r = run("denoise", photos, "-o", tmp_path / "out", "--address", "auto")
    assert r.exit_code == 2 and "--address is for --engine ray" in said(r)
    r = run("hash-index", photos, "--workers", "2")
    assert r.exit_code == 2 and "--workers is for --engine ray" in said(r)
    r = run("denoise", "-", "--engine", "ray")
    assert r.exit_code == 2 and "with --engine ray give files or folders" in said(r)
    r = run("denoise", photos, "--engine", "spark")
    assert r.exit_code == 2
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------- on the cluster


@pytest.mark.slow
def test_denoise_on_ray_writes_the_local_bytes_and_lists_the_bad_file(cluster, tiny, photos, tmp_path):
    from tests.conftest import run

    local = run("denoise", photos, "-r", "-o", tmp_path / "local", "--model", tiny)
    assert local.exit_code == 1, local.output
    r = run("denoise", photos, "-r", "-o", tmp_path / "ray", "--model", tiny, "--engine", "ray")
    assert r.exit_code == 1, r.output
    assert "denoise: 6 written, 1 failed" in said(r)
    assert f"failed {photos / 'broken.png'}:" in said(r)  # the bad file is named; the rest were processed
    written = tree(tmp_path / "ray")
    assert sorted(written) == ["a.png", "b.jpg", "grey.png", "moving.gif", "noise.png", "sub/c.png"]
    assert written == tree(tmp_path / "local")  # the same bytes, the GIF's two frames included
    assert tree(photos)["a.png"] == (photos / "a.png").read_bytes()  # inputs untouched


@pytest.mark.slow
def test_what_a_worker_cannot_do_is_one_line_and_nothing_waits(cluster, tiny, photos, tmp_path):
    import torch

    from tests.conftest import run

    if not ray.cluster_resources().get("GPU"):  # actors asking for a GPU would wait for one forever
        r = run("denoise", photos, "-o", tmp_path / "out", "--model", tiny, "--engine", "ray", "--device", "cuda")
        assert r.exit_code == 2
        assert said(r) == "error: --device cuda: the Ray cluster has no GPU (ray start --num-gpus N)"
    if not torch.backends.mps.is_available():  # checked on this machine's CPU, refused by the workers
        r = run("denoise", photos, "-o", tmp_path / "out", "--model", tiny, "--engine", "ray", "--device", "mps")
        assert r.exit_code == 2 and said(r).startswith("error: the Ray job failed: --device mps:"), r.output
        assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_a_rerun_skips_outputs_already_there_and_never_replaces_them(cluster, tiny, photos, tmp_path):
    from tests.conftest import run

    out = tmp_path / "out"
    assert run("denoise", photos, "-o", out, "--model", tiny).exit_code == 1  # local: all but broken.png
    (out / "a.png").unlink()  # as if the first run had stopped before this one
    (out / "noise.png").write_bytes(b"not ours: a file that appeared at the output's name")
    before = tree(out)
    r = run("denoise", photos, "-o", out, "--model", tiny, "--engine", "ray")
    assert r.exit_code == 1, r.output  # broken.png, again
    assert "denoise: 1 written, 4 skipped (output already there), 1 failed" in said(r)
    after = tree(out)
    assert {k: v for k, v in after.items() if k != "a.png"} == before  # nothing else touched
    assert run("denoise", photos / "a.png", "-o", tmp_path / "one.png", "--model", tiny).exit_code == 0
    assert after["a.png"] == (tmp_path / "one.png").read_bytes()


@pytest.mark.slow
def test_a_worker_killed_mid_write_is_retried_and_leaves_nothing_partial(cluster, tiny, photos, tmp_path, capsys):
    import typer

    from aetools.cli.images import _denoise, run_on_ray
    from tests.conftest import run

    (photos / "broken.png").unlink()
    marker = tmp_path / "kill-once"
    marker.touch()
    build = partial(_denoise, model=str(tiny), device="cpu", precision="auto", seed=None, sigma=None, tile=None)
    killing = partial(_build_that_dies_writing, build, victim="grey.png", marker=str(marker))
    engine = RayEngine(workers=2, device="cpu")
    try:
        run_on_ray("denoise", [photos], tmp_path / "ray", "denoised", False, True, killing, engine)
    except typer.Exit as e:  # only a failure would exit
        pytest.fail(f"exit {e.exit_code}: {capsys.readouterr().err}")
    assert not marker.exists()  # the worker did die, once, on grey.png's write
    assert "0 failed" in capsys.readouterr().err
    assert run("denoise", photos, "-r", "-o", tmp_path / "local", "--model", tiny).exit_code == 0
    written = tree(tmp_path / "ray")  # hidden files too: the dead worker's temporary was cleaned up
    assert written == tree(tmp_path / "local")


@pytest.mark.slow
def test_an_item_that_kills_every_worker_is_lost_alone(cluster, tmp_path, monkeypatch):
    import aetools.distributed

    monkeypatch.setattr(aetools.distributed, "MAX_TASK_RETRIES", 1)  # 2 tries a batch: fewer restarts to wait for
    marker = tmp_path / "die-once"
    marker.touch()
    engine = RayEngine(workers=2, device="cpu")
    worker = partial(_doubler_that_dies_on, 5, str(marker))
    results = dict(map_items(list(range(12)), worker, engine, batch_size=4))
    assert sorted(results) == list(range(12))  # every index answered exactly once
    assert isinstance(results.pop(5), Lost)  # tried in its batch twice, then alone twice
    assert results == {i: 2 * i for i in range(12) if i != 5}  # its batch-mates were done again, alone
    assert not marker.exists()  # a worker died once on another item, and its batch was retried


@pytest.mark.slow
def test_hash_index_on_ray_equals_a_single_machine_build(cluster, tmp_path):
    from PIL import Image

    from tests.conftest import photo, run
    from tests.test_hash_index import PHOTOS, tiny_hash_weights

    folder = tmp_path / "pictures"
    folder.mkdir()
    for name in PHOTOS:
        Image.fromarray(photo(96, name)).save(folder / f"{name}.jpg", quality=90)
    (folder / "empty.jpg").write_bytes(b"")
    weights = tiny_hash_weights(tmp_path / "hash.safetensors")
    local = run("hash-index", folder, "--index", tmp_path / "local", "-m", weights)
    assert local.exit_code == 1 and "6 added; 1 failed" in said(local), local.output
    r = run("hash-index", folder, "--index", tmp_path / "ray", "-m", weights, "--engine", "ray")
    assert r.exit_code == 1 and "6 added; 1 failed" in said(r), r.output
    assert f"failed {folder / 'empty.jpg'}: empty file" in said(r)
    # six shards (one image each on 2 workers) merged: the same generation files, byte for byte, and the same
    # manifest; the index's own lock file only differs
    assert {k: v for k, v in tree(tmp_path / "ray").items() if k != "LOCK"} == {
        k: v for k, v in tree(tmp_path / "local").items() if k != "LOCK"
    }
    assert json.loads((tmp_path / "ray" / "AETOOLS-INDEX.json").read_text())["files"] == [
        "CURRENT",
        "LOCK",
        "codes-1.faiss",
        "files-1.sqlite",
        "turns-1.faiss",
    ]


@pytest.mark.slow
def test_dedup_on_ray_finds_the_local_groups(cluster, tmp_path):
    from PIL import Image

    from tests.conftest import photo, run

    folder = tmp_path / "library"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        picture = Image.fromarray(photo(224, name))
        picture.save(folder / f"{name}.png")
        picture.resize((160, 160)).save(folder / f"{name}_small.jpg", quality=70)
    local = run("dedup", folder, "--index", tmp_path / "local", "--json", tmp_path / "local.json")
    assert local.exit_code == 0, local.output
    r = run("dedup", folder, "--index", tmp_path / "ray", "--json", tmp_path / "ray.json", "--engine", "ray")
    assert r.exit_code == 0, r.output
    groups = json.loads((tmp_path / "ray.json").read_text())
    assert len(groups["groups"]) == 3
    assert (tmp_path / "ray.json").read_text() == (tmp_path / "local.json").read_text()
    assert list((tmp_path / "ray").glob("features-*.sqlite"))  # the features computed on the cluster, cached
