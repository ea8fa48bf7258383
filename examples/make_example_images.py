"""Make the bundled example images from skimage.data (public-domain / freely licensed test images).

    python examples/make_example_images.py

noisy.png: skimage.data.chelsea() with Gaussian noise sigma 25 (seed 0), rounded to 8 bits, as a user's
noisy file would be. clean.png: the same photo without noise, for comparison.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

here = Path(__file__).parent / "images"
here.mkdir(exist_ok=True)
clean = data.chelsea()  # 300 x 451 RGB, the cat
noisy = clean / 255.0 + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)
Image.fromarray(clean).save(here / "clean.png")
Image.fromarray((np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)).save(here / "noisy.png")
