"""Write the CIFAR-10 benchmark's database images (19,000: all but the 1,000 queries) as PNGs, to train the
`hash-cifar` model on them without labels and without ever seeing a query.

    python examples/cifar_database.py DATA/cifar10 runs/cifar-db
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from aetools.bench.hash import read_cifar


def main(cifar: Path, out: Path) -> None:
    images, _, is_query = read_cifar(cifar)
    out.mkdir(parents=True, exist_ok=True)
    for i in np.flatnonzero(~is_query):
        Image.fromarray(images[i]).save(out / f"{i:05d}.png")
    print(f"wrote {(~is_query).sum()} images to {out} ({is_query.sum()} queries left out)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
