"""CIFAR-10 (Krizhevsky 2009) as tar files of JPEGs: 32 x 32 colour images in 10 classes.

    <dir>/train.tar   members <class>/<n>.jpg    (here: the first 1,000 training images of each class)
    <dir>/test.tar    members <class>/<n>.jpg    (the 10,000 test images)

Nothing is downloaded: `--data cifar10` reads the folder given by `--cifar-dir`, or else by the environment
variable AETOOLS_CIFAR10. Members are read in name order, so an image's index is the same on every
machine; the label is the member's folder, one of `CLASSES` (CIFAR-10's order, which is alphabetical).
The images were stored as JPEG (quality about 75): fine for generation and retrieval, not for PSNR claims
about the original pixels.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from aetools.data.fashion import ArrayData, DatasetError

CIFAR10 = "cifar10"  # the --data value that selects these files
CIFAR_ENV = "AETOOLS_CIFAR10"  # the tar files' folder when --cifar-dir is not given
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE = 32


def read_labelled_tar(path: Path) -> tuple[np.ndarray, list[str]]:
    """One tar of `<class>/<name>.jpg` members, in member-name order -> (images (N, 32, 32, 3) uint8, each
    member's class folder). A member outside a folder, of another size or a broken image is a DatasetError
    naming the file and the member."""
    images, classes = [], []
    try:
        with tarfile.open(path) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
            for m in members:
                where = f"{path}: {m.name}"
                if "/" not in m.name:
                    raise DatasetError(f"{where}: not in a class folder (<class>/<name>.jpg)")
                try:
                    with Image.open(io.BytesIO(tar.extractfile(m).read())) as image:
                        pixels = np.asarray(image.convert("RGB"))
                except (OSError, ValueError) as e:
                    raise DatasetError(f"{where}: not a readable image ({e})") from None
                if pixels.shape != (SIDE, SIDE, 3):
                    raise DatasetError(f"{where}: {pixels.shape[1]}x{pixels.shape[0]}, expected {SIDE}x{SIDE}")
                images.append(pixels)
                classes.append(m.name.split("/")[0])
    except (OSError, tarfile.TarError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if not images:
        raise DatasetError(f"{path}: no images")
    return np.stack(images), classes


def read_cifar_tar(path: Path) -> ArrayData:
    """One CIFAR-10 tar -> ArrayData with images (N, 32, 32, 3) uint8 and labels (N,), indices into `CLASSES`
    (`read_labelled_tar`); a folder that is not a CIFAR-10 class is a DatasetError."""
    images, classes = read_labelled_tar(path)
    strangers = sorted(set(classes) - set(CLASSES))
    if strangers:
        raise DatasetError(f"{path}: {strangers[0]}/ is not a CIFAR-10 class ({', '.join(CLASSES)})")
    return ArrayData(images, np.array([CLASSES.index(c) for c in classes], dtype=np.int64))


def cifar_folder(folder: str | Path | None) -> Path:
    """--cifar-dir, or else $AETOOLS_CIFAR10, checked to be a folder."""
    if not folder and not os.environ.get(CIFAR_ENV):
        raise DatasetError(f"CIFAR-10: give the folder of train.tar and test.tar with --cifar-dir (or set {CIFAR_ENV})")
    path = Path(folder or os.environ[CIFAR_ENV])
    if not path.is_dir():
        raise DatasetError(f"{path}: no such folder (give the folder of CIFAR-10's train.tar and test.tar)")
    return path


def load_cifar10(split: str = "train", folder: str | Path | None = None) -> ArrayData:
    """split "train" or "test" -> ArrayData with images (N, 32, 32, 3) uint8 and labels (N,)."""
    if split not in ("train", "test"):
        raise ValueError(f"split {split!r}: expected train or test")
    path = cifar_folder(folder) / f"{split}.tar"
    if not path.is_file():
        raise DatasetError(f"{path}: missing (CIFAR-10's train.tar and test.tar are expected there)")
    return read_cifar_tar(path)
