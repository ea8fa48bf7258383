"""Writes the example images of `aetools serve` into this folder from `skimage.data` (deterministic:
fixed sizes, a fixed noise seed). Run from a checkout: python -m aetools.serve.examples.make"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from aetools.serve.examples import EXAMPLES

HERE = Path(__file__).parent


def resized(pixels: np.ndarray, width: int) -> Image.Image:
    image = Image.fromarray(pixels).convert("RGB")
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


def make(name: str) -> Image.Image:
    if name == "noisy-astronaut.png":  # what the denoiser was trained for: Gaussian noise, sigma 25 of 255
        clean = np.asarray(resized(data.astronaut(), 256)).astype(np.float64)
        noise = np.random.default_rng(0).normal(0, 25, clean.shape)
        return Image.fromarray(np.clip(clean + noise, 0, 255).round().astype(np.uint8))
    if name == "small-cat.jpg":
        return resized(data.chelsea(), 225)
    if name == "grey-coffee.jpg":
        return resized(data.coffee(), 300).convert("L")
    if name == "rocket.jpg":
        return resized(data.rocket(), 320)
    raise ValueError(f"no recipe for {name}")


def main() -> None:
    for example in EXAMPLES:
        image = make(example.name)
        options = {"quality": 92} if example.name.endswith(".jpg") else {"optimize": True}
        image.save(HERE / example.name, **options)


if __name__ == "__main__":
    main()
