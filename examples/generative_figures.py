"""Reproduce the course figures on autoencoders as generators, on Fashion-MNIST, into examples/images/:

    gen_random_codes.png   AE vs VAE with h in R^50: decode random codes. The AE's h ~ N(0, I) is junk, a
                           Gaussian fitted to its codes does better, the VAE's prior samples are clothes.
    gen_interpolation.png  decoding the straight line between the codes of two test images (h in R^3, ae3-fashion)
    gen_latent3d.png       how the test set's codes in R^3 organise by class (ae3-fashion)
    gen_traversal.png      beta-VAE (betavae-fashion): one row per code dimension, swept over +-3
    gen_samples.png        64 samples each from ae-fashion (Gaussian codes), vae-fashion, vqvae-fashion (prior)
    gen_samples_NAME.png   a sample grid per shipped generator (8 x 8, seed 0, each model's own sampling
                           settings), beside 64 test images (gen_samples_test.png) to judge them by; --extra
                           FILE adds one for a trained, unshipped generator (named after its file)

    python examples/generative_figures.py --fashion-dir DATA/fashion_mnist
    python examples/generative_figures.py --fashion-dir DATA/fashion_mnist --only samples   # the grids alone

The two 50-dimensional models are trained here with `aetools train` (1,500 steps each, a few minutes on 2
CPU cores; kept in runs/examples/ and reused); the rest use the shipped weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from aetools.data.fashion import CLASSES, load_fashion_mnist
from aetools.generative.pipeline import (
    GENERATIVE_TASKS,
    encode_all,
    interpolate,
    latent_plot,
    load_generative,
    sample_images,
    save_grid,
    traverse,
)
from aetools.weights import read_manifest

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
RUNS = HERE.parent / "runs" / "examples"


def train_50d(task: str, fashion_dir: Path) -> Path:
    out = RUNS / f"{task}50.safetensors"
    if not out.exists():
        RUNS.mkdir(parents=True, exist_ok=True)
        cmd = ["aetools", "train", task, "--data", "fashion-mnist", "--fashion-dir", str(fashion_dir)]
        cmd += ["--set", "latent=50", "--steps", "1500", "-o", str(out)]
        subprocess.run(cmd, check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion-dir", type=Path, required=True, help="Folder of Fashion-MNIST's idx files.")
    parser.add_argument("--only", choices=["samples"], help="Only the sample grids (no models trained).")
    parser.add_argument("--extra", type=Path, action="append", default=[], help="A trained generator's weights.")
    args = parser.parse_args()
    IMAGES.mkdir(exist_ok=True)
    test = load_fashion_mnist("test", args.fashion_dir)
    images = test.tensors()
    sample_grids(images, args.extra)
    if args.only == "samples":
        print("wrote", ", ".join(p.name for p in sorted(IMAGES.glob("gen_samples_*.png"))), file=sys.stderr)
        return

    # 1. AE vs VAE, h in R^50: 16 decoded random codes per row.
    ae50, vae50 = (
        load_generative(train_50d("ae", args.fashion_dir)),
        load_generative(train_50d("vae", args.fashion_dir)),
    )
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        naive = ae50.decode_image(torch.randn(16, 50, generator=g))  # h ~ N(0, I): not where the AE's codes are
    rows = [naive, sample_images(ae50, 16, seed=1), sample_images(vae50, 16, seed=2)]
    save_grid(torch.cat(rows), IMAGES / "gen_random_codes.png", nrow=16, zoom=2, overwrite=True)

    # 2. Interpolation in R^3 between pairs of test images of different classes.
    ae3 = load_generative("ae3-fashion")
    pairs = [(0, 1), (2, 3), (11, 12), (40, 41)]  # (ankle boot, pullover), (trouser, trouser), ...
    strips = [interpolate(ae3, images[a : a + 1], images[b : b + 1], 10) for a, b in pairs]
    ends = [torch.cat([images[a : a + 1], s, images[b : b + 1]]) for (a, b), s in zip(pairs, strips)]
    save_grid(torch.cat(ends), IMAGES / "gen_interpolation.png", nrow=12, zoom=2, overwrite=True)

    # 3. The test set's codes in R^3.
    latent_plot(
        encode_all(ae3, images), test.labels, CLASSES, IMAGES / "gen_latent3d.png", "ae3-fashion: test codes in R^3"
    )

    # 4. beta-VAE traversal.
    beta = load_generative("betavae-fashion")
    save_grid(traverse(beta, steps=9, span=3.0), IMAGES / "gen_traversal.png", nrow=9, zoom=2, overwrite=True)

    # 5. Samples from the three shipped generators, side by side (8 x 8 each).
    grids = [
        sample_images(load_generative(name), 64, seed=0) for name in ("ae-fashion", "vae-fashion", "vqvae-fashion")
    ]
    rows = [grid[8 * r : 8 * r + 8] for r in range(8) for grid in grids]  # row r of each, side by side
    save_grid(torch.cat(rows), IMAGES / "gen_samples.png", nrow=24, zoom=1, overwrite=True)
    print("wrote", ", ".join(p.name for p in sorted(IMAGES.glob("gen_*.png"))), file=sys.stderr)


def sample_grids(test_images: torch.Tensor, extra: list[Path]) -> None:
    """64 samples of every shipped generator (and of each `extra` weights file), one grid each, and 64 test
    images for comparison."""
    save_grid(test_images[:64], IMAGES / "gen_samples_test.png", nrow=8, zoom=2, overwrite=True)
    models = {entry.name: entry.name for entry in read_manifest() if entry.task in GENERATIVE_TASKS}
    models.update({path.name.removesuffix(".safetensors"): path for path in extra})
    for name, source in models.items():
        samples = sample_images(load_generative(source), 64, seed=0)
        save_grid(samples, IMAGES / f"gen_samples_{name}.png", nrow=8, zoom=2, overwrite=True)


if __name__ == "__main__":
    main()
