"""Training checkpoints in the one format: safetensors (tensors) + a JSON header (everything else).

    model.<name>          the network's state_dict
    optim.<i>.<name>      Adam's per-parameter state (exp_avg, exp_avg_sq, step)
    rng.torch, rng.cuda.<i>
    metadata["aetools-checkpoint"] = JSON {format, task, arch, config, step, param_groups, scaler, state,
                                           tensors_sha256, content_sha256}

The data stream needs no state (see aetools.data.datasets.StepBatches) and the learning rate is a pure
function of the step, so model + optimizer + RNG + step is an exact resume.

Integrity: `content_sha256` (`aetools.weights.content_digest`) covers the header (step, optimizer settings,
options...) and every tensor; it is written on save and checked before anything is restored, so a damaged
checkpoint is refused instead of resumed (a flipped exponent would otherwise be trained on and carried into
the final weights). Checkpoints written before the digest existed resume unchecked. The file is read within
the budget of weights files (`aetools.weights.read_layout`: a regular file, a capped header, offsets that
account for the file's length), and its tensors' names and shapes are compared with the model and the
optimizer before their bytes are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from aetools.weights import (
    SafetensorsLayout,
    WeightsError,
    atomic_write_bytes,
    check_digests,
    encode_with_digests,
    open_regular,
    read_exactly,
    read_header_json,
    read_layout,
    shown,
)

FORMAT = "aetools-checkpoint/1"
KEY = "aetools-checkpoint"
RNG_MAX_ELEMENTS = 1 << 20  # a generator's state: CPU 5,056 bytes, CUDA 16


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    task: str,
    scaler: torch.amp.GradScaler | None = None,
    state: dict[str, Any] | None = None,
) -> None:
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
    atomic_write_bytes(path, encode_with_digests(tensors, header, KEY))


def _damaged(path: Path) -> WeightsError:
    return WeightsError(
        f"{shown(path)}: checkpoint does not match its recorded sha256 (corrupt or altered); not resuming from "
        "it: delete it and start again from the previous weights (--init FILE)"
    )


def _read_header(path: Path, f) -> tuple[SafetensorsLayout, dict[str, Any]]:
    name = shown(path)
    layout = read_layout(f, name, "checkpoint")
    header = read_header_json(layout, KEY, name, "checkpoint")
    if header.get("format") != FORMAT:
        raise WeightsError(f"{name}: unsupported checkpoint format {header.get('format')!r}")
    for key, kind in (("task", str), ("arch", str), ("config", dict), ("step", int), ("param_groups", list)):
        if not isinstance(header.get(key), kind):
            raise WeightsError(f"{name}: checkpoint metadata has no valid {key!r} (corrupt)")
    if not isinstance(header.get("state"), dict):
        raise WeightsError(f"{name}: checkpoint metadata has no valid 'state' (corrupt)")
    return layout, header


def _verify(path: Path, header: dict[str, Any], layout: SafetensorsLayout, chunks) -> None:
    try:
        check_digests(header, layout, chunks, shown(path), "checkpoint")
    except WeightsError:
        raise _damaged(path) from None


def read_checkpoint_header(path: Path) -> dict[str, Any]:
    """The checkpoint's header, after checking its digest (the tensors are hashed as they stream by, not
    kept), so a damaged checkpoint is refused before its header is trusted."""
    with open_regular(path, "checkpoint") as f:
        layout, header = _read_header(path, f)
        _verify(path, header, layout, iter(lambda: f.read(1 << 20), b""))
    return header


def _check_layout(path: Path, layout: SafetensorsLayout, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every tensor the checkpoint holds must be one the model or the optimizer has, at its shape."""
    name = shown(path)
    model_shapes = {f"model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for tensor, shape in layout.shapes().items():
        if tensor in model_shapes:
            expected = [model_shapes[tensor]]
        elif tensor.startswith("optim."):
            index = tensor.split(".")[1]
            known = index.isdigit() and int(index) < len(params)
            expected = [tuple(params[int(index)].shape), ()] if known else []
        elif tensor.startswith("rng."):
            expected = [shape] if len(shape) == 1 and shape[0] <= RNG_MAX_ELEMENTS else []
        else:
            expected = []
        if shape not in expected:
            raise WeightsError(
                f"{name}: checkpoint tensor {shown(tensor)} {list(shape)} does not fit the model being resumed"
            )
    missing = next((k for k in [*model_shapes, "rng.torch"] if k not in layout.table), None)
    if missing is not None:
        raise WeightsError(f"{name}: checkpoint has no {missing}")


def load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scaler and RNG in place; -> the header (step, state...). Nothing is
    restored unless the whole checkpoint matches its digest."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    with open_regular(path, "checkpoint") as f:
        layout, header = _read_header(path, f)
        _check_layout(path, layout, model, optimizer)  # before the tensors' bytes are read
        data = read_exactly(f, layout.data_size, shown(path), "checkpoint")
    _verify(path, header, layout, iter([data]))
    try:
        tensors = load(layout.prefix + bytes(data))
    except SafetensorError:
        raise WeightsError(f"{shown(path)}: not a readable aetools checkpoint (corrupt or foreign)") from None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
        if scaler is not None and header.get("scaler"):
            scaler.load_state_dict(header["scaler"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WeightsError(f"{shown(path)}: checkpoint does not fit the run being resumed ({first})") from None
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
    if cuda_states:
        torch.cuda.set_rng_state_all(cuda_states)
    return header
