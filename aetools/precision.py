"""Numeric precision: which one a run uses (`auto`, `fp32`, `bf16`) and the context that applies it.

bf16 keeps fp32's 8-bit exponent and drops mantissa bits (7 instead of 23), so a network runs in it with
the same range and about 3 significant digits. Where the processor has bf16 matrix units (Intel AMX,
AVX512-BF16; NVIDIA Ampere and later), convolutions in bf16 run several times faster than in fp32.

    auto  bf16 on a device that computes it natively (AMX/AVX512-BF16 CPUs, CUDA GPUs with bf16), else fp32
    fp32  full precision everywhere
    bf16  bf16 autocast, asked for explicitly

Training autocasts: the weights, the optimizer's state and the loss stay fp32 (master weights); the
convolutions' inputs are cast to bf16. No loss scaling: scaling exists because fp16's 5-bit exponent
flushes small gradients to zero, and bf16's exponent is fp32's, so its gradients do not underflow.

Inference autocasts the same way, in the channels_last layout, for a model whose own benchmark recorded
the cost as negligible (`auto`); residual additions and read-outs stay fp32, which keeps the images' last
bits. Other models stay fp32 under `auto`.

Nothing here imports a model: this module is a leaf that the trainer, the pipelines and the CLI share.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "fp32", "bf16")
# Tests (and a user who wants to compare) can hide the processor's bf16 units: auto then chooses fp32.
NO_BF16_ENV = "AETOOLS_NO_BF16"


class PrecisionError(ValueError):
    """A precision that cannot run here; one line for the user."""


@dataclass(frozen=True)
class Precision:
    """What a run computes in: `dtype` (torch.float32 or torch.bfloat16) and why it was chosen."""

    name: str  # "fp32" | "bf16"
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.name == "bf16" else torch.float32

    @property
    def is_bf16(self) -> bool:
        return self.name == "bf16"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=1)
def _cpu_bf16_units() -> str | None:
    """The CPU's bf16 matrix units as text ("AMX-BF16", "AVX512-BF16"), or None. Linux reads /proc/cpuinfo;
    elsewhere (macOS, Windows) oneDNN's own check decides, reported without a unit name."""
    flags = _cpu_flags()
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if not flags:
        check = getattr(torch.backends.mkldnn, "is_bf16_supported", None)
        try:
            if check is not None and check():
                return "bf16 (oneDNN)"
        except Exception:  # noqa: BLE001  (an old or partial build: no claim of support)
            return None
    return None


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """(whether `device` computes bf16 natively, a short reason for the capability line)."""
    if os.environ.get(NO_BF16_ENV):
        return False, f"bf16 units hidden by {NO_BF16_ENV}"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, f"{torch.cuda.get_device_name(device)} computes bf16 natively"
        return False, f"{torch.cuda.get_device_name(device)} has no native bf16"
    if device.type == "cpu":
        units = _cpu_bf16_units()
        if units and torch.backends.mkldnn.is_available():
            return True, f"CPU has {units}"
        if units:
            return False, f"CPU has {units} but this torch build has no oneDNN"
        return False, "CPU has no bf16 matrix units (AMX-BF16 or AVX512-BF16)"
    return False, f"bf16 is not used on {device.type}"


def resolve_precision(name: str | None, device: torch.device, bf16_safe: bool = True) -> Precision:
    """`auto` -> bf16 where the device computes it natively and `bf16_safe` (the head's benchmark showed the
    cost negligible), fp32 otherwise. `bf16` asked for on a device without native support still runs (it is
    correct, only slow there), except on devices torch cannot autocast."""
    name = (name or "auto").lower()
    if name not in PRECISIONS:
        raise PrecisionError(f"--precision {name}: choose from {', '.join(PRECISIONS)}")
    supported, why = bf16_support(device)
    if name == "fp32":
        return Precision("fp32", "asked for")
    if name == "bf16":
        if device.type not in ("cpu", "cuda"):
            raise PrecisionError(f"--precision bf16: not available on {device.type}; use fp32")
        return Precision("bf16", "asked for" + ("" if supported else f" ({why}: slower than fp32 here)"))
    if not supported:
        return Precision("fp32", why)
    if not bf16_safe:
        return Precision("fp32", f"{why}, but this model's benchmark loses quality in bf16")
    return Precision("bf16", why)


def autocast(device: torch.device, precision: Precision | None):
    """The one precision context, for training and inference: bf16 autocast, or nothing for fp32 (or None)."""
    if precision is None or not precision.is_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def use_channels_last(device: torch.device, precision: Precision) -> bool:
    """channels_last (NHWC) is the layout oneDNN's bf16 convolutions and CUDA's tensor cores run fastest in;
    fp32 on a CPU gains little from it, so the layout changes only with bf16."""
    return precision.is_bf16 and device.type in ("cpu", "cuda")


def capability_line(device: torch.device) -> str:
    """One line for benchmark tables: what the processor offers and what `auto` picks from it."""
    supported, why = bf16_support(device)
    return f"{device.type}: {why}; --precision auto uses {'bf16' if supported else 'fp32'} where a model allows it"
