"""Choose a colorization model's readout on the photos its training held out, never on a benchmark set, and
optionally write the choice into the weights.

    python examples/tune_colorize_readout.py weights/colorize.safetensors --data DATA/photos [--write]

The readout turns the network's distribution over ab bins into one colour per pixel (`Readout` in
aetools/tasks/colorize.py): the annealed mean's temperature T, how much of the class rebalancing is undone
(calibration), and optionally a confidence-dependent T that rises to 1 (the plain mean: muted colour) where
the distribution is at least `flat_entropy` flat. Each readout colours the held-out photos exactly as
`aetools colorize` would and is scored as `aetools eval colorize` scores (aetools.bench.colorize).

The held-out photos are the trainer's own validation split (same files, same seed), which the network never
saw. Rule: among readouts whose colourfulness is 0.6-1.1 of the truth's, those whose colour cast is worse
than grey's on the fewest photos (any share up to 10% counts as none), then the lowest mean CIEDE2000.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from aetools.bench.colorize import Truth, grey_output, score, summarize
from aetools.data.datasets import list_images, split_validation
from aetools.data.io import load_image, to_uint8
from aetools.tasks.base import get_task
from aetools.tasks.colorize import Readout, ab_from_logits, colorize_logits, lab_to_rgb_keeping_l
from aetools.weights import load_model, read_weights, record_metrics, save_weights

TEMPERATURES = [0.3, 0.5, 0.7, 1.0]
CALIBRATIONS = [0.0, 0.25, 0.5, 0.75, 1.0]
FLAT_ENTROPIES = [None, 0.4, 0.6, 0.8]
COLOUR_RANGE = (0.6, 1.1)  # the colorization issue's target (#26)
MAX_CAST_WORSE = 0.10


def readouts() -> list[Readout]:
    """The grid; with T = 1 the temperature cannot rise, so flat_entropy is left out there."""
    grid = itertools.product(TEMPERATURES, CALIBRATIONS, FLAT_ENTROPIES)
    return [Readout(t, c, f) for t, c, f in grid if t < 1.0 or f is None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("--data", nargs="+", required=True, help="the training data, as given to `aetools train`")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="store the chosen readout in the weights")
    args = parser.parse_args()

    model = load_model(args.weights, "colorize")
    shipped = Readout.of(model.config)
    files = list_images(args.data)
    _, held_out = split_validation(files, get_task("colorize").train.val_images, seed=args.seed)
    trained_on = model.weights_header.get("training", {}).get("images")
    left = len(files) - len(held_out)
    if trained_on is not None and trained_on != left:
        print(f"warning: the weights were trained on {trained_on} photos, this split leaves {left}")

    candidates = readouts() + ([] if shipped in readouts() else [shipped])
    scores: dict[Readout, list] = {r: [] for r in candidates}
    grey = []
    for path in held_out:
        truth_pixels = load_image(path).pixels
        if truth_pixels.shape[2] != 3:
            continue
        truth = Truth.of(to_uint8(truth_pixels))
        L = truth.lightness
        logits = colorize_logits(model, L)  # the network pass, once; the readouts are cheap
        grey.append(score(truth, grey_output(L)))
        for readout in candidates:
            ab = ab_from_logits(logits, model.ab_bins, L.shape, readout, model.config.rebalance)[0]
            ab = ab.permute(1, 2, 0).numpy()
            scores[readout].append(score(truth, lab_to_rgb_keeping_l(np.concatenate([L[..., None], ab], axis=-1))))

    g = summarize(grey)
    print(f"readouts on {len(grey)} held-out training photos (never seen in training)")
    print(f"grey input: PSNR {g['psnr']:.2f} dB, CIEDE2000 {g['ciede2000']:.2f}, cast {g['cast']:.2f}\n")
    print("| readout | PSNR (dB) | CIEDE2000 | cast (ab) | cast worse than grey's | colourfulness / truth |")
    print("|---|---|---|---|---|---|")
    summaries = {r: summarize(s) for r, s in scores.items()}
    in_range = [r for r, s in summaries.items() if COLOUR_RANGE[0] <= s["colourfulness_ratio"] <= COLOUR_RANGE[1]]

    def rank(r: Readout) -> tuple[float, float]:
        return max(summaries[r]["cast_worse_than_grey_share"], MAX_CAST_WORSE), summaries[r]["ciede2000"]

    for r in sorted(summaries, key=lambda r: summaries[r]["ciede2000"]):
        s = summaries[r]
        mark = " (shipped)" if r == shipped else ""
        mark += "" if r in in_range else f" (colourfulness outside {COLOUR_RANGE[0]}-{COLOUR_RANGE[1]})"
        print(
            f"| {r.describe()}{mark} | {s['psnr']:.2f} | {s['ciede2000']:.2f} | {s['cast']:.2f} | "
            f"{s['cast_worse_than_grey_share'] * 100:.0f}% | {s['colourfulness_ratio']:.2f} |"
        )
    if not in_range:
        print(f"\nno readout has a colourfulness of {COLOUR_RANGE[0]}-{COLOUR_RANGE[1]} of the truth's")
        return
    best = min(in_range, key=rank)
    s = summaries[best]
    print(
        f"\nchosen: {best.describe()} (PSNR {s['psnr']:.2f} dB, CIEDE2000 {s['ciede2000']:.2f}, cast worse than "
        f"grey's on {s['cast_worse_than_grey_share'] * 100:.0f}% of the photos)"
    )
    if args.write:
        _, header = read_weights(args.weights)
        model.config.temperature, model.config.calibration = best.temperature, best.calibration
        model.config.flat_entropy = best.flat_entropy
        dtype = getattr(torch, header.get("dtype", "float32"))
        save_weights(model, args.weights, "colorize", header["training"], header["metrics"], dtype=dtype)
        record_metrics(args.weights, {})  # a shipped file's manifest entry gets its new sha256
        print(f"wrote the readout into {args.weights}")


if __name__ == "__main__":
    main()
