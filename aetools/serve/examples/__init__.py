"""Example images for the page of `aetools serve`, one per image task, small files made from photos in
`skimage.data` by `python -m aetools.serve.examples.make` (run once; the files are package data). Every
source photo is free of copyright: the credit and licence of each are in `EXAMPLES` and README.md."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    name: str  # the file in this folder
    task: str  # the tab the page opens for it
    title: str
    source: str  # skimage.data's function
    credit: str  # author and licence, as skimage.data's documentation gives them


EXAMPLES = (
    Example(
        "noisy-astronaut.png",
        "denoise",
        "Astronaut with Gaussian noise (sigma 25)",
        "astronaut",
        "Eileen Collins, NASA Great Images database; public domain",
    ),
    Example("small-cat.jpg", "upscale", "Chelsea the cat, small", "chelsea", "Stefan van der Walt; CC0"),
    Example("grey-coffee.jpg", "colorize", "Coffee cup in grey", "coffee", "Rachel Michetti; CC0"),
    Example("rocket.jpg", "inpaint", "Falcon 9 launch (paint out a tower)", "rocket", "SpaceX; public domain"),
)
