"""The README's colorization figure: for bundled photos, the grey input, aetools' colours and the original.

    python examples/colorize_comparison.py          # -> examples/images/colorize_comparison.png

Also writes examples/images/grey.png (a bundled photo made grey) to try the CLI on:
    aetools colorize examples/images/grey.png
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data
from torchvision.utils import make_grid, save_image

from aetools.api import colorize

here = Path(__file__).parent / "images"
here.mkdir(exist_ok=True)
tiles = []
for name in ("coffee", "chelsea", "astronaut", "rocket"):
    original = Image.fromarray(getattr(data, name)()).convert("RGB")
    original.thumbnail((320, 320))
    grey = original.convert("L")
    if name == "coffee":
        grey.save(here / "grey.png")
    ours = colorize(grey)
    for img in (grey.convert("RGB"), ours, original):
        tiles.append(torch.from_numpy(np.asarray(img.resize((320, 240)), dtype=np.float32) / 255).permute(2, 0, 1))
save_image(make_grid(tiles, nrow=3, padding=4, pad_value=1.0), here / "colorize_comparison.png")
print("wrote", here / "colorize_comparison.png", "(grey input | aetools | original)")
