"""Running a network on one image: device choice, precision (fp32 or bf16 autocast), tiling, no autograd."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from aetools.precision import Precision, autocast, use_channels_last
from aetools.tiling import run_tiled

# Above this many pixels an image is tiled even without --tile: a 32-channel full-resolution feature map
# costs ~128 bytes a pixel, and the backbone keeps a few alive at once.
AUTO_TILE_PIXELS = 2048 * 2048
AUTO_TILE = 1024


class DeviceError(Exception):
    pass


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """'auto' -> cuda if present, else mps, else cpu. An unavailable device is a clear error."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA GPU is available to torch on this machine")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("--device mps: Apple MPS is not available on this machine")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise DeviceError(f"--device {name}: expected auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)


class MemoryBudgetError(MemoryError):
    """The work would need more memory than the machine has free: said before starting, not by the kernel's
    out-of-memory killer halfway through. The message says how much; the command adds what to do."""


def available_memory() -> int | None:
    """Bytes of memory free for new work (Linux: MemAvailable of /proc/meminfo); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(need: int, what: str) -> None:
    """MemoryBudgetError if `need` bytes for `what` (e.g. "a 120 MP photo") exceed the memory free now."""
    free = available_memory()
    if free is not None and need > free:
        raise MemoryBudgetError(f"{what} needs about {need / 2**30:.1f} GB of memory; {free / 2**30:.1f} GB are free")


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def run_model(
    model: nn.Module,
    x: torch.Tensor,
    extra: dict[str, torch.Tensor] | None = None,
    tile: int | None = None,
    device: torch.device | None = None,
    scale: int = 1,
    split: int | None = None,
    precision: Precision | None = None,
) -> torch.Tensor:
    """x (1, C, H, W) on any device -> model(x, **extra) as float32 on the CPU, tiled when asked or large.

    `tile=None` tiles automatically above AUTO_TILE_PIXELS; `tile=0` never tiles. split: x's channels from
    `split` on are a second per-pixel input (inpainting's mask), cut into the same tiles and passed as the
    model's second argument: model(x[:, :split], x[:, split:], **extra). precision: None = fp32; bf16
    autocasts the network's operations, in the channels_last layout (the pipeline chose it).
    """
    device = device or model_device(model)
    extra = {k: v.to(device) for k, v in (extra or {}).items()}
    if tile is None:
        tile = AUTO_TILE if x.shape[-2] * x.shape[-1] > AUTO_TILE_PIXELS else 0

    nhwc = precision is not None and use_channels_last(device, precision)
    layout = torch.channels_last if nhwc else torch.contiguous_format

    def fn(piece: torch.Tensor) -> torch.Tensor:
        piece = piece.to(device).contiguous(memory_format=layout)
        inputs = (piece,) if split is None else (piece[:, :split], piece[:, split:])
        with autocast(device, precision):
            return model(*inputs, **extra).float().cpu()

    if not tile:
        return fn(x)
    return run_tiled(fn, x, tile, margin=model.receptive_radius(), multiple=model.stride, scale=scale)


def self_ensemble(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The mean of fn over the 8 flips/rotations of x (B, C, H, W), each output turned back ("self-ensemble",
    Lim et al. 2017, EDSR+): usually a little more PSNR, for 8x the time. fn may change the size (by a
    factor: super-resolution)."""
    y = 0
    for flip in (False, True):
        for turns in range(4):
            out = fn(torch.rot90(x.flip(-1) if flip else x, turns, (-2, -1)))
            out = torch.rot90(out, -turns, (-2, -1))
            y = y + (out.flip(-1) if flip else out) / 8
    return y
