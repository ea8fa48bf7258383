"""Choose a colorization model's readout (annealed-mean temperature T and rebalancing calibration) on the
photos its training held out, never on a benchmark set, and optionally write the choice into the weights.

    python examples/tune_colorize_readout.py runs/colorize.safetensors --data DATA/photos [--write]

The held-out photos are the trainer's own validation split (same files, same seed). Rule: the highest mean
RGB PSNR among readouts whose colourfulness is at least `--min-colour` (0.7) of the truth's on those
photos. More vivid readouts exist (see the table it prints); they cost PSNR.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from aetools.bench.colorize import colourfulness, score
from aetools.data.datasets import list_images, split_validation
from aetools.data.io import load_image, to_uint8
from aetools.tasks.base import get_task
from aetools.tasks.colorize import ab_from_logits, colorize_logits, lab_to_rgb_keeping_l, rgb_to_lab
from aetools.weights import load_model, read_weights, save_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("--data", nargs="+", required=True, help="the training data, as given to `aetools train`")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-colour", type=float, default=0.7)
    parser.add_argument("--write", action="store_true", help="store the chosen T and calibration in the weights")
    args = parser.parse_args()

    model = load_model(args.weights, "colorize")
    _, held_out = split_validation(list_images(args.data), get_task("colorize").train.val_images, seed=args.seed)
    temperatures = [0.2, 0.3, 0.38, 0.5, 0.7, 1.0]
    calibrations = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0]
    scores = {key: ([], []) for key in itertools.product(temperatures, calibrations)}
    truth_colour, grey_psnr = [], []
    for path in held_out:
        truth = to_uint8(load_image(path).pixels)
        if truth.shape[2] != 3:
            continue
        L = rgb_to_lab(truth / 255.0)[..., 0]
        logits = colorize_logits(model, L)  # the network pass, once; the readouts are cheap
        truth_colour.append(colourfulness(truth))
        grey_psnr.append(score(truth, L, lab_to_rgb_keeping_l(np.stack([L, 0 * L, 0 * L], axis=-1))).psnr)
        for (t, c), (psnrs, colours) in scores.items():
            ab = ab_from_logits(logits, model.ab_bins, L.shape, t, c)[0].permute(1, 2, 0).numpy()
            result = score(truth, L, lab_to_rgb_keeping_l(np.concatenate([L[..., None], ab], axis=-1)))
            psnrs.append(result.psnr)
            colours.append(result.colourfulness)

    print(f"readout on {len(truth_colour)} held-out training photos: PSNR (dB) / colourfulness vs truth")
    print(f"(the grey input scores {np.mean(grey_psnr):.2f} dB on them)\n")
    print("| T \\ calibration | " + " | ".join(f"{c:g}" for c in calibrations) + " |")
    print("|---|" + "---|" * len(calibrations))
    best, best_psnr = None, -1.0
    for t in temperatures:
        cells = []
        for c in calibrations:
            psnr = float(np.mean(scores[t, c][0]))
            ratio = float(np.mean(scores[t, c][1]) / np.mean(truth_colour))
            cells.append(f"{psnr:.2f} / {ratio:.2f}")
            if ratio >= args.min_colour and psnr > best_psnr:
                best, best_psnr = (t, c), psnr
        print(f"| {t:g} | " + " | ".join(cells) + " |")
    if best is None:
        print(f"\nno readout reaches colourfulness {args.min_colour}")
        return
    print(f"\nchosen: T = {best[0]:g}, calibration = {best[1]:g} ({best_psnr:.2f} dB)")
    if args.write:
        _, header = read_weights(args.weights)
        model.config.temperature, model.config.calibration = best
        dtype = getattr(torch, header.get("dtype", "float32"))
        save_weights(model, args.weights, "colorize", header["training"], header["metrics"], dtype=dtype)
        print(f"wrote the readout into {args.weights}")


if __name__ == "__main__":
    main()
