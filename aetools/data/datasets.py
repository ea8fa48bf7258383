"""Training data: random crops streamed from image folders, degraded on the fly by the task.

`StepBatches[s]` is the whole batch of training step s, made from a generator seeded by (seed, rank, s).
Nothing about the data stream needs saving in a checkpoint: resuming at step s replays the same batches,
and DataLoader workers can prefetch steps in parallel without changing what any step sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from aetools.data.batch import Batch
from aetools.data.io import IMAGE_EXTENSIONS, ImageError, load_image


class DataError(ValueError):
    """No usable training data; the message is one line for the user."""


# A step gives up when this many draws in a row found no readable image (and says which files failed).
MAX_UNREADABLE_DRAWS = 200


def list_images(inputs: Iterable[str | Path], recursive: bool = True) -> list[Path]:
    """Image files among `inputs` (files are kept, folders are listed), sorted, hidden files skipped."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            pattern = item.rglob("*") if recursive else item.glob("*")
            found.extend(
                p
                for p in pattern
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(item).parts)
            )
        else:
            found.append(item)
    return sorted(set(found))


def split_validation(files: list[Path], count: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Hold `count` files out for validation, chosen by a seeded permutation -> (train, val)."""
    if count <= 0 or len(files) <= count:
        return files, []
    order = np.random.default_rng(seed).permutation(len(files))
    val = sorted(files[i] for i in order[:count])
    held = set(val)
    return [f for f in files if f not in held], val


class ImageCache:
    """Decoded training images kept in memory (as uint8 where the source is 8-bit), up to a byte budget."""

    def __init__(self, channels: int, max_bytes: int = 3 << 30):
        self.channels = channels
        self.max_bytes = max_bytes
        self.used = 0
        self.images: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray:
        """-> (H, W, channels) uint8 or float32 array."""
        if path in self.images:
            return self.images[path]
        data = load_image(path)
        pixels = data.pixels
        if self.channels == 3 and pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        elif self.channels == 1 and pixels.shape[2] == 3:
            pixels = pixels.mean(axis=2, keepdims=True)
        if data.bit_depth == 8:
            pixels = (pixels * 255 + 0.5).astype(np.uint8)
        if self.used + pixels.nbytes <= self.max_bytes:
            self.images[path] = pixels
            self.used += pixels.nbytes
        return pixels


def random_crop(pixels: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A crop x crop patch with a random dihedral transform (flips, 90-degree turns); small images are
    reflect-padded up to the crop size."""
    h, w = pixels.shape[:2]
    if h < crop or w < crop:
        pad = ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0))
        pixels = np.pad(pixels, pad, mode="reflect" if h > 1 and w > 1 else "edge")
        h, w = pixels.shape[:2]
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    patch = pixels[y : y + crop, x : x + crop]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.rot90(patch, k=int(rng.integers(4)))


def to_float(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32)


class StepBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item s is the Batch of training step s.

    Args:
        files: training images.
        crop, batch_size: patch side and patches per step (per process).
        degrade: the task's (clean, generator) -> Batch.
        channels: 3 or 1.
        seed, rank: with the step, all the randomness there is.
    """

    def __init__(
        self,
        files: list[Path],
        crop: int,
        batch_size: int,
        degrade: Callable[[torch.Tensor, torch.Generator], Batch],
        channels: int = 3,
        seed: int = 0,
        rank: int = 0,
        total_steps: int = 10**9,
    ):
        if not files:
            raise ValueError("no training images")
        self.files, self.crop, self.batch_size = files, crop, batch_size
        self.degrade, self.seed, self.rank, self.total_steps = degrade, seed, rank, total_steps
        self.cache = ImageCache(channels)
        self.unreadable: dict[Path, str] = {}  # files skipped because they cannot be read, and why

    def __len__(self) -> int:
        return self.total_steps

    def __getitem__(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, self.rank, step])
        patches, misses = [], 0
        while len(patches) < self.batch_size:
            path = self.files[int(rng.integers(len(self.files)))]
            try:
                pixels = self.cache.get(path)
            except ImageError as e:  # an unreadable training file is skipped, deterministically
                self.unreadable[path] = e.reason
                misses += 1
                if misses >= MAX_UNREADABLE_DRAWS:
                    raise DataError(
                        f"cannot read the training images: {len(self.unreadable)} of {len(self.files)} files "
                        f"failed, e.g. {path}: {e.reason}"
                    ) from None
                continue
            misses = 0
            patches.append(to_float(random_crop(pixels, self.crop, rng)))
        clean = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).contiguous()  # (B, C, crop, crop)
        generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        return self.degrade(clean, generator)


def validation_batches(
    files: list[Path], crop: int, degrade: Callable[[torch.Tensor, torch.Generator], Batch], channels: int = 3
) -> list[Batch]:
    """One fixed Batch per validation image: its centre crop, degraded with a fixed seed."""
    cache = ImageCache(channels, max_bytes=0)
    batches = []
    for i, path in enumerate(files):
        try:
            pixels = cache.get(path)
        except ImageError:
            continue
        h, w = pixels.shape[:2]
        c = min(crop, h, w)
        y, x = (h - c) // 2, (w - c) // 2
        clean = torch.from_numpy(to_float(pixels[y : y + c, x : x + c]).copy()).permute(2, 0, 1)[None]
        batches.append(degrade(clean, torch.Generator().manual_seed(1000 + i)))
    return batches
