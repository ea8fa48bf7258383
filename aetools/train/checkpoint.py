"""Training checkpoints in the one format: safetensors (tensors) + a JSON header (everything else).

    model.<name>          the network's state_dict
    optim.<i>.<name>      Adam's per-parameter state (exp_avg, exp_avg_sq, step)
    rng.torch, rng.cuda.<i>
    metadata["aetools-checkpoint"] = JSON {format, task, arch, config, step, param_groups, scaler, state}

The data stream needs no state (see aetools.data.datasets.StepBatches) and the learning rate is a pure
function of the step, so model + optimizer + RNG + step is an exact resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aetools.weights import WeightsError, atomic_write_bytes

FORMAT = "aetools-checkpoint/1"
KEY = "aetools-checkpoint"


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    task: str,
    scaler: torch.amp.GradScaler | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    from safetensors.torch import save

    from aetools.nn.registry import model_config_dict

    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    for index, values in optim_state["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    header = {
        "format": FORMAT,
        "task": task,
        "arch": model.arch,
        "config": model_config_dict(model),
        "step": step,
        "param_groups": optim_state["param_groups"],
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "state": state or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(tensors, metadata={KEY: json.dumps(header)}))


def read_checkpoint_header(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return json.loads(f.metadata()[KEY])
    except Exception:  # noqa: BLE001  (safetensors raises several types for a damaged file)
        raise WeightsError(f"{path}: not a readable aetools checkpoint (corrupt or foreign)") from None


def load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scaler and RNG in place; -> the header (step, state...)."""
    from safetensors.torch import load_file

    header = read_checkpoint_header(path)
    if header.get("format") != FORMAT:
        raise WeightsError(f"{path}: unsupported checkpoint format {header.get('format')!r}")
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    if scaler is not None and header.get("scaler"):
        scaler.load_state_dict(header["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
    if cuda_states:
        torch.cuda.set_rng_state_all(cuda_states)
    return header
