"""Tiled inference: bounded memory on any photo size, with results equal to one whole-image pass.

Each tile is run with a margin of context at least the network's receptive radius, and only the tile's
own centre is kept, so every kept pixel saw exactly the context it would have seen untiled (no blending,
no seams). Tile origins and margins are multiples of the network's stride, so the 2x downsampling grid of
every tile lines up with the whole image's.

Progress: inside `with report_tiles(callback):` every tiled run calls callback(done, total) after each tile,
so a progress bar can move during one large photo without the pipelines passing a callback down.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_tile_listener: ContextVar[Callable[[int, int], None] | None] = ContextVar("tile_listener", default=None)


@contextmanager
def report_tiles(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Within the block, `run_tiled` calls callback(tiles done, tiles in all) after each tile."""
    token = _tile_listener.set(callback)
    try:
        yield
    finally:
        _tile_listener.reset(token)


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | None,
    margin: int,
    multiple: int = 1,
    scale: int = 1,
) -> torch.Tensor:
    """Apply `fn` to x (B, C, H, W) tile by tile.

    Args:
        fn: (B, C, h, w) -> (B, C', h * scale, w * scale).
        tile: the tile side in input pixels (rounded down to `multiple`); None or 0 = one pass.
        margin: context on each side (rounded up to `multiple`); use the receptive radius.
        multiple: the network's stride.
        scale: output pixels per input pixel (super-resolution).
    """
    height, width = x.shape[-2:]
    if not tile or (height <= tile and width <= tile):
        return fn(x)
    tile = max(multiple, tile // multiple * multiple)
    margin = math.ceil(margin / multiple) * multiple
    out = None
    s = scale
    listener = _tile_listener.get()
    total, done = math.ceil(height / tile) * math.ceil(width / tile), 0
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            ya, xa = max(0, y0 - margin), max(0, x0 - margin)
            yb, xb = min(height, y1 + margin), min(width, x1 + margin)
            piece = fn(x[..., ya:yb, xa:xb])
            if out is None:
                out = piece.new_empty(*piece.shape[:2], height * s, width * s)
            out[..., y0 * s : y1 * s, x0 * s : x1 * s] = piece[
                ..., (y0 - ya) * s : (y1 - ya) * s, (x0 - xa) * s : (x1 - xa) * s
            ]
            done += 1
            if listener is not None:
                listener(done, total)
    return out
