"""Fashion-MNIST (Xiao et al. 2017) from its four idx files, and a training stream over in-memory arrays.

    <dir>/train-images-idx3-ubyte.gz   60,000 x 28 x 28 uint8      <dir>/train-labels-idx1-ubyte.gz
    <dir>/t10k-images-idx3-ubyte.gz    10,000 x 28 x 28 uint8      <dir>/t10k-labels-idx1-ubyte.gz

Nothing is downloaded: `--data fashion-mnist` reads the folder given by `--fashion-dir`, or else by the
environment variable AETOOLS_FASHION_MNIST. The idx format: a big-endian header (magic 0x00000803 for images, 0x00000801
for labels; the 3rd byte is the type, 0x08 = uint8; the 4th the number of dimensions), the dimension sizes
as big-endian int32, then the values in C order. The files may be gzipped or not.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aetools.data.batch import Batch

FASHION_MNIST = "fashion-mnist"  # the --data value that selects these files
FASHION_ENV = "AETOOLS_FASHION_MNIST"  # the idx files' folder when --fashion-dir is not given
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetError(Exception):
    """Missing or malformed dataset files; a one-line message naming the file."""


def read_idx(path: Path) -> np.ndarray:
    """One idx file (gzipped or not) -> its uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path}: not a uint8 idx file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    if len(data) - start != int(np.prod(shape)):
        raise DatasetError(f"{path}: {len(data) - start} values, header says {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape).copy()  # writable


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    raise DatasetError(f"{folder / (stem + '.gz')}: missing (Fashion-MNIST's four idx files are expected there)")


@dataclass
class ArrayData:
    """images (N, H, W, C) uint8, labels (N,) int64 or None."""

    images: np.ndarray
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> ArrayData:
        return ArrayData(self.images[index], None if self.labels is None else self.labels[index])

    def tensors(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """(n, C, H, W) float in [0, 1]."""
        return torch.from_numpy(self.images[start:stop]).permute(0, 3, 1, 2).float().div_(255)


def load_fashion_mnist(split: str = "train", folder: str | Path | None = None) -> ArrayData:
    """split "train" (60,000) or "test" (10,000) -> ArrayData with images (N, 28, 28, 1)."""
    if not folder and not os.environ.get(FASHION_ENV):
        raise DatasetError(f"Fashion-MNIST: give the idx files' folder with --fashion-dir (or set {FASHION_ENV})")
    folder = Path(folder or os.environ[FASHION_ENV])
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (give the Fashion-MNIST idx files' folder with --fashion-dir)")
    image_stem, label_stem = _FILES[split]
    images, labels = read_idx(_find(folder, image_stem)), read_idx(_find(folder, label_stem))
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DatasetError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
    return ArrayData(images[..., None], labels.astype(np.int64))


class ArrayBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item s is the Batch of training step s, drawn from in-memory arrays (the
    counterpart of `StepBatches` for datasets that are arrays, not image folders). Step s takes the slice
    s of a random permutation of the data, a fresh permutation per epoch, all seeded by (seed, rank, epoch):
    every image is seen once per epoch, and resuming at step s replays the same batches.

    degrade: the task's (clean (B, C, H, W) in [0, 1], generator) -> Batch, or, with `labels=True`,
        (clean, generator, labels (B,)) -> Batch.
    """

    def __init__(
        self,
        data: ArrayData,
        batch_size: int,
        degrade: Callable[..., Batch],
        seed: int = 0,
        rank: int = 0,
        total_steps: int = 10**9,
        labels: bool = False,
    ):
        if len(data) < batch_size:
            raise ValueError(f"{len(data)} training images, fewer than a batch of {batch_size}")
        if labels and data.labels is None:
            raise ValueError("this task needs labels; the data has none")
        self.data, self.batch_size, self.degrade = data, batch_size, degrade
        self.seed, self.rank, self.total_steps, self.labels = seed, rank, total_steps, labels
        self.per_epoch = len(data) // batch_size
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.total_steps

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, self.rank, epoch]).permutation(len(self.data)))
        return self._order[1]

    def __getitem__(self, step: int) -> Batch:
        epoch, k = divmod(step, self.per_epoch)
        index = np.sort(self.order(epoch)[k * self.batch_size : (k + 1) * self.batch_size])
        batch = self.data.subset(index)
        clean = batch.tensors()
        generator = torch.Generator().manual_seed(
            int(np.random.default_rng([self.seed, self.rank, step, 1]).integers(2**62))
        )
        if self.labels:
            return self.degrade(clean, generator, torch.from_numpy(batch.labels))
        return self.degrade(clean, generator)


def split_arrays(data: ArrayData, count: int, seed: int = 0) -> tuple[ArrayData, ArrayData]:
    """Hold `count` images out for validation, chosen by a seeded permutation -> (train, val)."""
    order = np.random.default_rng(seed).permutation(len(data))
    return data.subset(np.sort(order[count:])), data.subset(np.sort(order[:count]))


def array_validation_batches(
    data: ArrayData, degrade: Callable[..., Batch], labels: bool = False, batch_size: int = 500
) -> list[Batch]:
    """Fixed validation Batches of `batch_size` images, degraded with fixed seeds."""
    batches = []
    for i, start in enumerate(range(0, len(data), batch_size)):
        clean, generator = data.tensors(start, start + batch_size), torch.Generator().manual_seed(1000 + i)
        if labels:
            batches.append(degrade(clean, generator, torch.from_numpy(data.labels[start : start + batch_size])))
        else:
            batches.append(degrade(clean, generator))
    return batches
