"""The README's super-resolution figure: HR crop, bicubic x4 and aetools x4 side by side.

    python examples/upscale_comparison.py          # -> examples/images/upscale_comparison.png

Also writes examples/images/small.png, a 4x bicubic-downscaled bundled photo to try the CLI on:
    aetools upscale examples/images/small.png --scale 4
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data
from torchvision.utils import make_grid, save_image

from aetools.api import upscale
from aetools.tasks.superres import bicubic_downscale, crop_to_multiple

here = Path(__file__).parent / "images"
here.mkdir(exist_ok=True)
hr = crop_to_multiple(data.astronaut(), 4)  # 512 x 512 RGB
lr = bicubic_downscale(hr, 4)  # 128 x 128: what the benchmark protocol feeds a x4 model
Image.fromarray(lr).save(here / "small.png")

bicubic = np.asarray(Image.fromarray(lr).resize((512, 512), Image.BICUBIC))
ours = upscale(lr, scale=4)
box = (slice(60, 260), slice(150, 350))  # the face and the helmet's edge
crops = [torch.from_numpy(np.ascontiguousarray(x[box])).permute(2, 0, 1).float() / 255 for x in (bicubic, ours, hr)]
save_image(make_grid(crops, nrow=3, padding=4, pad_value=1.0), here / "upscale_comparison.png")
print("wrote", here / "upscale_comparison.png", "(bicubic x4 | aetools x4 | original)")
