"""The README's denoising figure: noise as a phone or camera saves it (Gaussian noise kept through a JPEG,
camera noise made by unprocessing), on bundled photos no model trained on, at 1:1 crops: the noisy JPEG,
skimage NL-means, CBM3D, aetools and the clean photo, each PSNR on the tile.

    python examples/denoise_comparison.py                      # -> examples/images/denoise_comparison.png
    python examples/denoise_comparison.py --model my.safetensors --out /tmp/preview.png

The noise is the benchmark's (`aetools eval denoise --protocol real`): the same conditions, seeded the same
way. CBM3D needs the bench extra (`pip install "aetools[bench]"`); without it the column is left out.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from skimage import data
from skimage.metrics import peak_signal_noise_ratio
from torchvision.utils import make_grid, save_image

from aetools.bench.denoise import baseline_available, cbm3d, nl_means, real_noise_conditions
from aetools.data.io import to_uint8
from aetools.tasks.denoise import denoise_pixels
from aetools.weights import load_model

ROWS = [  # (skimage.data photo, condition name, crop box left, top) at 1:1
    ("coffee", "sigma25_jpeg90", 200, 40),
    ("chelsea", "camera_mid_jpeg90", 120, 60),
    ("astronaut", "sigma15_jpeg70", 150, 60),
]
SIDE = 192

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="denoise-real", help="shipped name or .safetensors path")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images" / "denoise_comparison.png")
args = parser.parse_args()

model = load_model(args.model, "denoise")
conditions = {c.name: c for c in real_noise_conditions()}
methods = {"NL-means": lambda x: nl_means(x, None)}
if baseline_available("bm3d"):
    methods["CBM3D"] = lambda x: cbm3d(x, None)
methods["aetools"] = lambda x: denoise_pixels(model, x, None, tile=0)


def tile(pixels: np.ndarray, label: str) -> torch.Tensor:
    img = Image.fromarray(to_uint8(pixels))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, SIDE, 14), fill=(0, 0, 0))
    draw.text((3, 2), label, fill=(255, 255, 255))
    return torch.from_numpy(np.asarray(img).astype(np.float32) / 255).permute(2, 0, 1)


tiles = []
for name, condition, left, top in ROWS:
    photo = np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB"))
    clean = photo[top : top + SIDE, left : left + SIDE].astype(np.float32) / 255
    noisy = conditions[condition].apply(clean, name)
    clean8 = to_uint8(clean)

    def psnr(x: np.ndarray, clean8: np.ndarray = clean8) -> str:
        return f"{peak_signal_noise_ratio(clean8, to_uint8(x), data_range=255):.2f} dB"

    label = conditions[condition].label.replace("σ=", "sigma ")  # the default bitmap font has no σ
    tiles.append(tile(noisy, f"{label}  {psnr(noisy)}"))
    for label, method in methods.items():
        with torch.inference_mode():
            out = method(noisy)
        tiles.append(tile(out, f"{label}  {psnr(out)}"))
    tiles.append(tile(clean, "clean"))
args.out.parent.mkdir(parents=True, exist_ok=True)
save_image(make_grid(tiles, nrow=len(methods) + 2, padding=4, pad_value=1.0), args.out)
print("wrote", args.out, "(noisy JPEG |", " | ".join(methods), "| clean)")
