"""The CIFAR-10 sample grids, into examples/images/:

gen_samples_cifar_test.png   64 CIFAR-10 test images (a seeded draw across the classes), to judge by
gen_samples_NAME.png         64 samples (8 x 8, seed 0, the model's own sampling settings) from each
                             generator given, by shipped name or weights file (NAME: the file's stem)

python examples/cifar_figures.py --cifar-dir DATA/cifar10 runs/vqvae-cifar.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from aetools.data.cifar import load_cifar10
from aetools.generative.pipeline import load_generative, sample_images, save_grid

IMAGES = Path(__file__).resolve().parent / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar-dir", type=Path, required=True, help="Folder of CIFAR-10's train.tar and test.tar.")
    parser.add_argument("models", nargs="+", help="Generators: shipped names or .safetensors files.")
    args = parser.parse_args()
    IMAGES.mkdir(exist_ok=True)
    test = load_cifar10("test", args.cifar_dir)
    pick = np.sort(np.random.default_rng(0).permutation(len(test))[:64])
    written = [IMAGES / "gen_samples_cifar_test.png"]
    save_grid(test.subset(pick).tensors(), written[0], nrow=8, zoom=2, overwrite=True)
    for model in args.models:
        written.append(IMAGES / f"gen_samples_{Path(model).name.removesuffix('.safetensors')}.png")
        save_grid(sample_images(load_generative(model), 64, seed=0), written[-1], nrow=8, zoom=2, overwrite=True)
    print("wrote", ", ".join(p.name for p in written), file=sys.stderr)


if __name__ == "__main__":
    main()
