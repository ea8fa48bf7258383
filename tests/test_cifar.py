"""CIFAR-10 for the generators: its tar files read (a tiny set of JPEGs made here, never ../shared), a colour
VQ-VAE and classifier trained on it by the trainer, colour samples from `aetools generate`, and `aetools eval
generative --data cifar10`."""

from __future__ import annotations

import io
import math
import tarfile

import numpy as np
import pytest
from PIL import Image

from aetools.data.cifar import CIFAR_ENV, CLASSES, load_cifar10, read_cifar_tar
from aetools.data.fashion import DatasetError
from tests.conftest import run

PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 70, 230], [240, 220, 40], [200, 60, 220]])


def synthetic_photos(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 32x32 colour images of 10 kinds: a box whose colour (5) and shape (wide or tall) give the class, at a
    random place on a dim background -> (images (n, 32, 32, 3) uint8, labels (n,))."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = np.empty((n, 32, 32, 3), np.uint8)
    for i, c in enumerate(labels):
        images[i] = rng.integers(20, 60, 3)
        h, w = (8, 18) if c < 5 else (18, 8)
        y, x = rng.integers(1, 32 - h), rng.integers(1, 32 - w)
        images[i, y : y + h, x : x + w] = PALETTE[c % 5]
    return images, labels


def write_tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    """train.tar (200 images) and test.tar (100) laid out as CIFAR-10's: <class>/<n>.jpg."""
    folder = tmp_path_factory.mktemp("cifar10")
    for split, n, seed in (("train", 200, 0), ("test", 100, 1)):
        images, labels = synthetic_photos(n, seed)
        write_tar(
            folder / f"{split}.tar",
            {f"{CLASSES[c]}/{i:04d}.jpg": jpeg(im) for i, (im, c) in enumerate(zip(images, labels))},
        )
    return folder


# ------------------------------------------------------------------------------------------- data


def test_tar_members_read_back_in_name_order_with_their_class(cifar_dir):
    train = load_cifar10("train", cifar_dir)
    images, labels = synthetic_photos(200, seed=0)
    order = np.lexsort((np.arange(200), labels))  # by member name: class folder, then number
    assert train.images.shape == (200, 32, 32, 3) and train.images.dtype == np.uint8
    assert np.array_equal(train.labels, labels[order])
    decoded = [np.asarray(Image.open(io.BytesIO(jpeg(image)))) for image in images[order]]
    assert np.array_equal(train.images, np.stack(decoded))  # each member's decoded pixels, in name order
    assert len(load_cifar10("test", cifar_dir)) == 100


def test_the_hash_benchmark_reads_cifar_through_the_same_loader(cifar_dir):
    from aetools.bench.hash import read_cifar

    images, labels, is_query = read_cifar(cifar_dir)
    test, train = load_cifar10("test", cifar_dir), load_cifar10("train", cifar_dir)
    assert np.array_equal(images, np.concatenate([test.images, train.images]))
    assert np.array_equal(labels, np.concatenate([test.labels, train.labels]))
    assert is_query.sum() == 100 and is_query[:100].all()  # fewer than 100 per class: every test image


def test_bad_cifar_files_are_one_line_errors_naming_them(tmp_path, monkeypatch):
    pixels = synthetic_photos(1, seed=0)[0][0]
    cases = {
        "small.tar": ({"cat/0.jpg": jpeg(pixels[:28, :28])}, "cat/0.jpg: 28x28, expected 32x32"),
        "class.tar": ({"dragon/0.jpg": jpeg(pixels)}, "dragon/ is not a CIFAR-10 class"),
        "broken.tar": ({"cat/0.jpg": b"not a jpeg"}, "cat/0.jpg: not a readable image"),
        "flat.tar": ({"0.jpg": jpeg(pixels)}, "flat.tar: 0.jpg: not in a class folder"),
    }
    for name, (members, message) in cases.items():
        write_tar(tmp_path / name, members)
        with pytest.raises(DatasetError, match=message):
            read_cifar_tar(tmp_path / name)
    (tmp_path / "truncated.tar").write_bytes(b"x" * 700)
    with pytest.raises(DatasetError, match="truncated.tar: cannot read"):
        read_cifar_tar(tmp_path / "truncated.tar")
    with pytest.raises(DatasetError, match="train.tar: missing"):
        load_cifar10("train", tmp_path)
    monkeypatch.delenv(CIFAR_ENV, raising=False)
    with pytest.raises(DatasetError, match="--cifar-dir"):
        load_cifar10("train")


# ---------------------------------------------------------------------------------- trainer + CLI

TINY = {
    "vqvae": dict(widths=(8, 16, 16), codes=16, code_dim=4, prior="pixelcnn", prior_dim=16, prior_layers=2),
    "classifier": dict(widths=(8, 16), features=32),
}


def train_tiny(task, cifar_dir, out, steps=12, **extra):
    from aetools.train.trainer import TrainConfig, train

    config = TrainConfig(
        task=task,
        data=["cifar10"],
        cifar_dir=str(cifar_dir),
        out=str(out),
        model=TINY[task],
        steps=steps,
        batch_size=32,
        val_images=40,
        val_every=steps,
        checkpoint_every=steps,
        precision="fp32",
        **extra,
    )
    return train(config)


def test_training_batches_are_the_images_or_their_mirrors(cifar_dir):
    from aetools.tasks import get_task
    from aetools.tasks.base import DataRequest
    from tests.conftest import tiny_model

    task = get_task("vqvae")
    model = tiny_model("vqvae", channels=3, size=32, **TINY["vqvae"])
    request = DataRequest(["cifar10"], None, [], None, 20, 32, 32, 40, 10, 0, 0, True, cifar_dir=str(cifar_dir))
    data = task.data(task, model, request, task.degrade, task.degrade)
    assert data.images == 160 and data.crop == 32 and sum(len(b.target) for b in data.val) == 40
    originals = load_cifar10("train", cifar_dir).tensors()
    mirrored = 0
    for step in range(3):
        for image in data.train[step].inputs["image"]:
            same = (originals == image).flatten(1).all(1).any()
            flipped = (originals.flip(-1) == image).flatten(1).all(1).any()
            assert same or flipped
            mirrored += int(flipped and not same)
    assert 10 < mirrored < 50  # about half of 60
    grey = tiny_model("vqvae", channels=1, size=28, **TINY["vqvae"])
    with pytest.raises(Exception, match="CIFAR-10 images are 32x32 colour"):
        task.data(task, grey, request, task.degrade, task.degrade)


def test_colour_vqvae_training_lowers_the_loss(cifar_dir, tmp_path):
    from aetools.weights import read_weights

    short = train_tiny("vqvae", cifar_dir, tmp_path / "short.safetensors", steps=2, warmup=1)
    longer = train_tiny("vqvae", cifar_dir, tmp_path / "long.safetensors", steps=40, warmup=4)
    assert longer.val_psnr > short.val_psnr + 1, (short.val_psnr, longer.val_psnr)
    _, header = read_weights(tmp_path / "long.safetensors")
    assert (header["config"]["channels"], header["config"]["size"]) == (3, 32)  # set by --data cifar10
    assert header["training"]["data"] == ["cifar10"] and header["training"]["images"] == 160


@pytest.fixture(scope="module")
def tiny_files(cifar_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar-models")
    files = {task: folder / f"{task}.safetensors" for task in TINY}
    for task, path in files.items():
        train_tiny(task, cifar_dir, path, steps=30, warmup=3)
    return files


def test_generate_writes_colour_samples(tiny_files, tmp_path):
    from aetools.generative.pipeline import load_generative, sample_images

    model = load_generative(tiny_files["vqvae"])
    samples = sample_images(model, 3, seed=0)
    assert samples.shape == (3, 3, 32, 32)
    assert samples.std(dim=1).mean() > 0  # the channels differ: colour, not grey repeated
    grid = tmp_path / "samples.png"
    result = run("generate", tiny_files["vqvae"], "-n", 4, "--nrow", 2, "-o", grid)
    assert result.exit_code == 0, result.output
    with Image.open(grid) as image:
        assert image.mode == "RGB" and image.size == (2 * 34 + 2, 2 * 34 + 2)  # 32-pixel cells, 2-pixel gaps


def test_eval_generative_on_cifar_gives_finite_numbers(tiny_files, cifar_dir, tmp_path):
    from aetools.weights import read_weights

    result = run(
        "eval", "generative", tiny_files["vqvae"], "--data", "cifar10", "--cifar-dir", cifar_dir,
        "--classifier", tiny_files["classifier"], "--samples", 40, "--format", "markdown", "--record",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    tables = markdown_tables(result.output)
    assert "Reconstruction, CIFAR-10 test (100 images); PCA fitted on the 200 training images" in tables
    [vq_row] = next(rows for title, rows in tables.items() if title.startswith("VQ-VAE codes"))
    nats, bits, per_dim = (float(v) for v in vq_row[-3:])
    # bits/code = nats / ln 2; code bits/dim = bits * 64 codes (an 8 x 8 grid) / 3,072 values (32 x 32 x 3)
    assert 0 < nats < math.log(16) + 1 and math.isclose(bits, nats / math.log(2), rel_tol=1e-2)
    assert math.isclose(per_dim, bits * 64 / 3072, rel_tol=1e-2)
    floor, samples = next(rows for title, rows in tables.items() if "Fréchet distance" in title)
    assert floor[0] == "training images (floor)" and samples[1].startswith("pixelcnn prior")
    for row in (floor, samples):
        frechet, precision, recall = (float(v) for v in row[2:])
        assert math.isfinite(frechet) and frechet >= 0 and 0 <= precision <= 1 and 0 <= recall <= 1
    metrics = read_weights(tiny_files["vqvae"])[1]["metrics"]  # --record: under CIFAR-10's own names
    assert math.isclose(metrics["cifar10_test_prior_nll"], nats, abs_tol=1e-3)
    for key in ("psnr", "frechet_classifier", "precision_k3", "recall_k3"):
        assert math.isfinite(metrics[f"cifar10_test_{key}"]), key


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """`--format markdown` output -> {bold title: the table's body rows, cells stripped}."""
    tables, title = {}, None
    for line in text.splitlines():
        if line.startswith("**"):
            title = line.strip("*")
            tables[title] = []
        elif line.startswith("|") and not line.startswith("|---") and title is not None:
            tables[title].append([cell.strip() for cell in line.strip("|").split("|")])
    return {title: rows[1:] for title, rows in tables.items()}  # without the header row


def test_eval_and_train_refuse_mismatched_data(tiny_files, cifar_dir, tmp_path):
    from tests.conftest import save_tiny, tiny_model

    grey = save_tiny(tiny_model("vqvae", **TINY["vqvae"]), "vqvae", tmp_path / "grey.safetensors")
    result = run("eval", "generative", grey, "--data", "cifar10", "--cifar-dir", cifar_dir, "--samples", 0)
    assert result.exit_code == 2 and "grey.safetensors: made for 28x28 grey images, not CIFAR-10's" in result.output
    result = run("eval", "generative", tiny_files["vqvae"], "--data", "cifar10", "--cifar-dir", cifar_dir)
    assert result.exit_code == 2 and "give --classifier" in result.output
    result = run("train", "vqvae", "--data", tmp_path, "--cifar-dir", cifar_dir, "-o", tmp_path / "x.safetensors")
    assert result.exit_code == 2 and "--cifar-dir applies to --data cifar10 only" in result.output
    assert not (tmp_path / "x.safetensors").exists()
