"""One weights format: safetensors, with everything needed to rebuild the network in its metadata.

    metadata["aetools"] = JSON {format, arch, config, task, training, metrics, dtype, tensors_sha256}

No pickle anywhere: a weights file is tensors plus a JSON header, so loading one cannot run code.
`weights/manifest.json` lists the shipped files with their sha256, parameter count and measured metrics;
a shipped file whose bytes do not match its sha256 is refused.

`tensors_sha256` (`tensors_digest`) hashes what the network computes with: the tensors' names, dtypes,
shapes and bytes, not the metadata. Any weights file, shipped or not, whose tensors do not match it is
refused (a flipped byte would otherwise load and compute garbage), and it identifies the network for an
index's codes, so rewriting the metadata (`eval --record`) leaves an index built with the model valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetools.outputs import atomic_write_bytes  # (re-exported: weights, checkpoints, reports use it)

if TYPE_CHECKING:  # torch is imported where tensors are handled, so reading the manifest stays fast
    import torch
    from torch import nn

FORMAT = "aetools-weights/1"
METADATA_KEY = "aetools"


class WeightsError(Exception):
    """A weights file or name that cannot be used; the message is one line for the user."""


def weights_dir() -> Path:
    """Shipped weights: $AETOOLS_WEIGHTS; else the copy installed with the package (`aetools/weights_data/`
    in the wheel: setup.py maps the repository's weights/ there); else `weights/` beside the package (a
    source checkout or an editable install)."""
    env = os.environ.get("AETOOLS_WEIGHTS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent
    installed = package / "weights_data"
    return installed if installed.is_dir() else package.parent / "weights"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_digest(data: bytes) -> str:
    """sha256 of a safetensors file's tensors: its tensor table (names, dtypes, shapes, offsets; the metadata
    left out) as canonical JSON, then its data section."""
    header_len = int.from_bytes(data[:8], "little")
    table = json.loads(data[8 : 8 + header_len])
    table.pop("__metadata__", None)
    digest = hashlib.sha256(json.dumps(table, sort_keys=True, separators=(",", ":")).encode())
    digest.update(memoryview(data)[8 + header_len :])
    return digest.hexdigest()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- files


def save_weights(
    model: nn.Module,
    path: str | Path,
    task: str,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Write `model` (any registered architecture) as a self-describing safetensors file, atomically.
    `dtype=torch.float16` halves a shipped file; loading casts back to the model's float32."""
    from safetensors.torch import save

    from aetools.nn.registry import model_config_dict

    header = {
        "format": FORMAT,
        "arch": model.arch,
        "config": model_config_dict(model),
        "task": task,
        "params": count_parameters(model),
        "training": training or {},
        "metrics": metrics or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    header["dtype"] = str(dtype or "torch.float32").replace("torch.", "")
    header["tensors_sha256"] = tensors_digest(save(tensors))  # the data section does not depend on metadata
    atomic_write_bytes(Path(path), save(tensors, metadata={METADATA_KEY: json.dumps(header)}))


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (tensors, header). Raises WeightsError with a one-line reason."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read weights ({e.strerror or e})") from None
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
        header = json.loads(metadata[METADATA_KEY])
    except (SafetensorError, ValueError, KeyError, json.JSONDecodeError):
        raise WeightsError(f"{path}: not an aetools safetensors weights file (corrupt or foreign)") from None
    if header.get("format") != FORMAT:
        raise WeightsError(f"{path}: unsupported weights format {header.get('format')!r}")
    digest = tensors_digest(data)
    if header.setdefault("tensors_sha256", digest) != digest:  # files written before it was recorded: computed
        raise WeightsError(f"{path}: tensor data does not match its recorded sha256 (file altered or corrupt)")
    return tensors, header


def model_from_weights(tensors: dict[str, torch.Tensor], header: dict[str, Any], source: str) -> nn.Module:
    from aetools.models import create_model

    try:
        model = create_model(header["arch"], **header["config"])
        model.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0]
        raise WeightsError(f"{source}: weights do not match their architecture ({first})") from None
    model.weights_header = header
    return model.eval()


# ------------------------------------------------------------------------------------------- manifest


@dataclass
class ShippedWeights:
    name: str
    file: str
    task: str
    arch: str
    sha256: str
    params: int
    default: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def path(self) -> Path:
        return weights_dir() / self.file


def read_manifest() -> list[ShippedWeights]:
    path = weights_dir() / "manifest.json"
    if not path.exists():
        return []
    return [ShippedWeights(**entry) for entry in json.loads(path.read_text())["models"]]


def write_manifest(entries: list[ShippedWeights]) -> None:
    from dataclasses import asdict

    text = json.dumps({"models": [asdict(e) for e in entries]}, indent=2) + "\n"
    atomic_write_bytes(weights_dir() / "manifest.json", text.encode())


def default_weights_for(task: str) -> ShippedWeights:
    candidates = [e for e in read_manifest() if e.task == task]
    if not candidates:
        raise WeightsError(
            f"no shipped weights for task {task!r} in {weights_dir()}; train some with `aetools train {task}`"
        )
    return next((e for e in candidates if e.default), candidates[0])


def resolve_weights(name_or_path: str | Path | None, task: str) -> tuple[Path, str | None]:
    """A shipped name, a path, or None (the task's default) -> (file, expected sha256 or None)."""
    if name_or_path is None:
        entry = default_weights_for(task)
        return entry.path, entry.sha256
    text = str(name_or_path)
    for entry in read_manifest():
        if entry.name == text:
            return entry.path, entry.sha256
    path = Path(text).expanduser()
    if path.exists():
        return path, None
    known = ", ".join(e.name for e in read_manifest()) or "none shipped"
    raise WeightsError(f"{text}: no such weights file or shipped model (shipped: {known})")


def load_model(
    name_or_path: str | Path | None, task: str | tuple[str, ...], device: torch.device | str = "cpu"
) -> nn.Module:
    """Load shipped weights by name (sha256 checked) or any aetools `.safetensors` by path. task: the task the
    weights must be for, or a tuple of acceptable tasks (then a name or path is required)."""
    tasks = (task,) if isinstance(task, str) else task
    path, expected_sha = resolve_weights(name_or_path, tasks[0])
    if expected_sha is not None:
        if not path.exists():
            raise WeightsError(f"{path}: shipped weights file is missing")
        actual = sha256_file(path)
        if actual != expected_sha:
            raise WeightsError(
                f"{path}: sha256 {actual[:12]}... does not match the manifest ({expected_sha[:12]}...); "
                "file altered or corrupt"
            )
    tensors, header = read_weights(path)
    if header["task"] not in tasks:
        wanted = " or ".join(repr(t) for t in tasks)
        raise WeightsError(f"{path}: weights are for task {header['task']!r}, not {wanted}")
    model = model_from_weights(tensors, header, str(path))
    model.weights_path = path  # where it came from, e.g. for `eval --record`
    return model.to(device)


def record_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Merge measured metrics into a weights file's metadata and, if it is shipped, its manifest entry
    (whose sha256 is refreshed, since the header is part of the file)."""
    path = Path(path).resolve()
    tensors, header = read_weights(path)
    header["metrics"] = {**header.get("metrics", {}), **metrics}
    import torch

    model = model_from_weights(tensors, header, str(path))
    dtype = getattr(torch, header.get("dtype", "float32"))
    save_weights(model, path, header["task"], header["training"], header["metrics"], dtype=dtype)
    entries = read_manifest()
    for entry in entries:
        if entry.path.resolve() == path:
            entry.metrics = header["metrics"]
            entry.sha256 = sha256_file(path)
    write_manifest(entries)


def ship_weights(
    source: Path, name: str, description: str = "", default: bool = True, dtype: torch.dtype | None = None
) -> ShippedWeights:
    """Copy a trained file into weights/<name>.safetensors (re-saved as `dtype`, e.g. float16 to halve
    it) and add or replace its manifest entry."""
    tensors, header = read_weights(source)
    path = weights_dir() / f"{name}.safetensors"
    if Path(source).resolve() != path.resolve() or dtype is not None:
        model = model_from_weights(tensors, header, str(source))
        save_weights(model, path, header["task"], header["training"], header["metrics"], dtype=dtype)
    _, header = read_weights(path)
    entry = ShippedWeights(
        name=name,
        file=path.name,
        task=header["task"],
        arch=header["arch"],
        sha256=sha256_file(path),
        params=header["params"],
        default=default,
        metrics=header.get("metrics", {}),
        description=description,
    )
    entries = [e for e in read_manifest() if e.name != name]
    if default:
        for e in entries:
            if e.task == entry.task:
                e.default = False
    write_manifest([*entries, entry])
    return entry
