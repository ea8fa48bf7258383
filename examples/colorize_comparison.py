"""The colorization figure: grey input | aetools automatic | aetools + 5 clicks | Levin et al. 2004 + the
same 5 clicks | the truth.

    python examples/colorize_comparison.py DATA/eval/kodak24/kodim03.png DATA/eval/kodak24/kodim23.png ...
        # -> examples/images/colorize_comparison.png

The clicks are what `aetools eval colorize --hints 5` gives each photo: 5 one-pixel points, uniformly
placed and given the truth's colour there, as a user clicking would (`aetools.bench.colorize.click_hints`,
seeded by the photo's place in the list); they are drawn on both hinted columns as small rings in their
own colour. Each picture's PSNR (RGB, dB) is printed on it.

Without photos it uses bundled skimage photos. Also writes examples/images/grey.png (a bundled photo made
grey) to try the CLI on:
    aetools colorize examples/images/grey.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from aetools.bench.colorize import Truth, click_hints, grey_output, levin_output
from aetools.data.io import load_image, to_uint8
from aetools.tasks.colorize import colorize_lightness
from aetools.weights import load_model

HERE = Path(__file__).parent / "images"
CELL = 256  # long side of each picture in the figure
CLICKS = 5


def photos(paths: list[str]) -> list[tuple[str, np.ndarray]]:
    """(name, 8-bit RGB) of the photos named, or of bundled ones."""
    if paths:
        return [(Path(p).stem, to_uint8(load_image(p).pixels[..., :3])) for p in paths]
    return [(name, getattr(data, name)()) for name in ("coffee", "chelsea", "astronaut", "rocket")]


def ring(image: Image.Image, hints, scale: float) -> Image.Image:
    """Each hint as a ring in its own colour (its RGB at the photo's lightness), black and white edged."""
    draw = ImageDraw.Draw(image)
    for y, x in zip(hints.rows, hints.cols):
        cx, cy = x * scale, y * scale
        colour = image.getpixel((int(cx), int(cy)))
        for radius, fill in ((7, (0, 0, 0)), (6, (255, 255, 255)), (5, colour)):
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=fill, width=2)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", help="colour photos (e.g. from the benchmark sets)")
    parser.add_argument("--model", default="colorize")
    parser.add_argument("--out", default=str(HERE / "colorize_comparison.png"))
    args = parser.parse_args()

    model = load_model(args.model, "colorize")
    rows = []
    for index, (name, rgb) in enumerate(photos(args.photos)):
        truth = Truth.of(rgb)
        hints = click_hints(truth, CLICKS, index)
        light = truth.lightness
        grey = to_uint8(grey_output(light))  # the grey baseline of the benchmark: L, no colour
        auto = to_uint8(colorize_lightness(model, light))
        hinted = to_uint8(colorize_lightness(model, light, hints=hints))
        levin = to_uint8(levin_output(light, hints))
        scale = CELL / max(rgb.shape[:2])
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        cells = [Image.fromarray(a).resize(size, Image.LANCZOS) for a in (grey, auto, hinted, levin, rgb)]
        ring(cells[2], hints, scale)
        ring(cells[3], hints, scale)
        labels = ["grey input", "aetools", f"aetools + {CLICKS} clicks", f"Levin + {CLICKS} clicks", "truth"]
        scores = [peak_signal_noise_ratio(rgb, a, data_range=255) for a in (grey, auto, hinted, levin)]
        for cell, label, psnr in zip(cells, labels, [*scores, None]):
            text = label if psnr is None else f"{label}  {psnr:.2f} dB"
            ImageDraw.Draw(cell).text((5, 4), text, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
        rows.append(cells)
        print(
            f"{name}: grey {scores[0]:.2f} dB, automatic {scores[1]:.2f} dB, {CLICKS} clicks {scores[2]:.2f} dB, "
            f"Levin + {CLICKS} clicks {scores[3]:.2f} dB"
        )
        if not args.photos and name == "coffee":
            Image.fromarray(grey).save(HERE / "grey.png")

    gap = 4
    width = max(sum(c.width for c in r) + gap * (len(r) - 1) for r in rows)
    height = sum(r[0].height for r in rows) + gap * (len(rows) - 1)
    figure = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for cells in rows:
        x = 0
        for cell in cells:
            figure.paste(cell, (x, y))
            x += cell.width + gap
        y += cells[0].height + gap
    figure.save(args.out)
    print("wrote", args.out, f"(grey input | aetools | aetools + {CLICKS} clicks | Levin + {CLICKS} clicks | truth)")


if __name__ == "__main__":
    main()
