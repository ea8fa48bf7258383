"""The README's inpainting figure: for bundled photos with seeded 20% holes, the input, OpenCV Telea,
skimage biharmonic, aetools and the original.

    python examples/inpaint_comparison.py          # -> examples/images/inpaint_comparison.png

Also writes examples/images/holes.png (a bundled photo whose holes are transparent) to try the CLI on:
    aetools inpaint examples/images/holes.png     # -> examples/images/holes_filled.png
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data
from torchvision.utils import make_grid, save_image

from aetools.bench.inpaint import biharmonic, ours, telea
from aetools.data.masks import benchmark_mask
from aetools.weights import load_model

here = Path(__file__).parent / "images"
here.mkdir(exist_ok=True)
model = load_model(None, "inpaint")
tiles = []
for index, name in enumerate(("coffee", "chelsea", "astronaut", "rocket")):
    original = Image.fromarray(getattr(data, name)()).convert("RGB").resize((320, 240), Image.LANCZOS)
    truth = np.asarray(original)
    mask = benchmark_mask(240, 320, 0.2, index, seed=1)
    holed = np.where(mask[..., None], np.uint8(0), truth)
    if name == "coffee":
        Image.fromarray(np.dstack([truth, np.where(mask, 0, 255).astype(np.uint8)])).save(here / "holes.png")
    shown = np.where(mask[..., None], np.uint8(255), truth)  # holes drawn white
    for img in (shown, telea(holed, mask), biharmonic(holed, mask), ours(model)(holed, mask), truth):
        tiles.append(torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1))
save_image(make_grid(tiles, nrow=5, padding=4, pad_value=1.0), here / "inpaint_comparison.png")
print("wrote", here / "inpaint_comparison.png", "(holes | OpenCV Telea | skimage biharmonic | aetools | original)")
