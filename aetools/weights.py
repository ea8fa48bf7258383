"""One weights format: safetensors, with everything needed to rebuild the network in its metadata.

    metadata["aetools"] = JSON {format, arch, config, task, training, metrics, dtype, tensors_sha256,
                                content_sha256}

No pickle anywhere: a weights file is tensors plus a JSON header, so loading one cannot run code.
`weights/manifest.json` lists the shipped files with their sha256, parameter count and measured metrics;
a shipped file whose bytes do not match its sha256 is refused.

Two digests, each checked on every load when the file records it (files written before a digest existed
load without it):
- `tensors_sha256` (`tensors_digest`) hashes what the network computes with: the tensors' names, dtypes,
  shapes, offsets and bytes. It identifies the network for an index's codes, so rewriting the metadata
  (`eval --record`) leaves an index built with the model valid.
- `content_sha256` (`content_digest`) hashes the whole header (config, task, metrics...) with the tensors, so
  an edited config is refused as surely as a flipped weight.

Reading has a budget, checked before the bytes it covers are read: only a regular file is opened (a FIFO
would block, /dev/zero never ends); the JSON header is at most MAX_HEADER_BYTES; the tensors' offsets must
account for the file's length exactly; and the network its config describes is built on torch's meta device
(no memory) and compared, name by name and shape by shape, with the header's tensors before any tensor is
read or any real network built.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from aetools.outputs import atomic_write_bytes, display_name  # (re-exported: weights, checkpoints, reports use it)

if TYPE_CHECKING:  # torch is imported where tensors are handled, so reading the manifest stays fast
    import torch
    from torch import nn

FORMAT = "aetools-weights/1"
METADATA_KEY = "aetools"
CONTENT_KEY = "content_sha256"
# The JSON header of a safetensors file: ours are under 10 KB (a checkpoint's a little more); the limit
# only stops a damaged or hostile length field from making us read gigabytes before anything is checked.
MAX_HEADER_BYTES = 16 << 20
# bytes per element of the safetensors dtypes
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


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


def shown(path: str | os.PathLike) -> str:
    """A path as one line of an error can show it (`aetools.outputs.display_name`)."""
    return display_name(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path, "weights") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical(value: Any) -> bytes:
    """JSON as it reads back (tuples -> lists, int keys -> str), keys sorted, no spaces: one text per value."""
    return json.dumps(json.loads(json.dumps(value)), sort_keys=True, separators=(",", ":")).encode()


def _tensors_sha256(table: dict[str, Any], data_chunks: Iterator[bytes | memoryview]) -> str:
    digest = hashlib.sha256(_canonical(table))
    for chunk in data_chunks:
        digest.update(chunk)
    return digest.hexdigest()


def tensors_digest(data: bytes) -> str:
    """sha256 of a safetensors file's tensors: its tensor table (names, dtypes, shapes, offsets; the metadata
    left out) as canonical JSON, then its data section."""
    header_len = int.from_bytes(data[:8], "little")
    table = json.loads(data[8 : 8 + header_len])
    table.pop("__metadata__", None)
    return _tensors_sha256(table, iter([memoryview(data)[8 + header_len :]]))


def content_digest(header: dict[str, Any], tensors_sha256: str) -> str:
    """sha256 of everything a file holds: its header (config, task, metrics...; `content_sha256` itself
    left out) as canonical JSON, then the tensors' digest."""
    digest = hashlib.sha256(b"aetools-content/1\n")
    digest.update(_canonical({k: v for k, v in header.items() if k != CONTENT_KEY}))
    digest.update(tensors_sha256.encode())
    return digest.hexdigest()


def encode_with_digests(tensors: dict[str, torch.Tensor], header: dict[str, Any], key: str) -> bytes:
    """A safetensors file's bytes, `header` (JSON, under metadata[key]) recording `tensors_sha256` and
    `content_sha256`. The one writer of weights and checkpoints."""
    from safetensors.torch import save

    plain = save(tensors)  # the data section does not depend on the metadata
    header = {**header, "tensors_sha256": tensors_digest(plain)}
    header[CONTENT_KEY] = content_digest(header, header["tensors_sha256"])
    return save(tensors, metadata={key: json.dumps(header)})


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------ reading, budgeted


def open_regular(path: str | os.PathLike, what: str) -> BinaryIO:
    """Open a file for reading, refusing anything but a regular file: checked before it is opened (opening
    a FIFO blocks, a device may act on open) and again on the open file (it may have been swapped)."""
    name = shown(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise WeightsError(f"{name}: not a regular file; {what} must be a .safetensors file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise WeightsError(f"{name}: cannot read {what} ({e.strerror or e})") from None
    f = os.fdopen(fd, "rb", buffering=0)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise WeightsError(f"{name}: not a regular file; {what} must be a .safetensors file")
    return f


def read_exactly(f: BinaryIO, size: int, name: str, what: str) -> bytearray:
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    try:
        while done < size:
            got = f.readinto(view[done:])
            if not got:
                raise WeightsError(f"{name}: {what} file ends early (truncated, or changed while read)")
            done += got
    except OSError as e:
        raise WeightsError(f"{name}: cannot read {what} ({e.strerror or e})") from None
    return buffer


@dataclass
class SafetensorsLayout:
    """A safetensors file's header, read and checked; the data section not yet read."""

    prefix: bytes  # the 8-byte length and the JSON header, as in the file
    table: dict[str, dict[str, Any]]  # tensor name -> {dtype, shape, data_offsets}
    metadata: dict[str, str]
    data_size: int

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(entry["shape"]) for name, entry in self.table.items()}


def read_layout(f: BinaryIO, name: str, what: str) -> SafetensorsLayout:
    """Read and check a safetensors header from an open regular file: a JSON object of at most
    MAX_HEADER_BYTES whose tensors tile the data section, which must end exactly at the end of the file."""
    size = os.fstat(f.fileno()).st_size
    foreign = f"{name}: not an aetools safetensors {what} file (corrupt or foreign)"
    if size < 8:
        raise WeightsError(foreign)
    header_len = int.from_bytes(read_exactly(f, 8, name, what), "little")
    if header_len > MAX_HEADER_BYTES:
        raise WeightsError(f"{name}: {what} header of {header_len:,} bytes, over the {MAX_HEADER_BYTES:,} limit")
    if 8 + header_len > size:
        raise WeightsError(f"{name}: {what} header runs past the end of the file (truncated or corrupt)")
    raw = bytes(read_exactly(f, header_len, name, what))
    try:
        table = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WeightsError(foreign) from None
    if not isinstance(table, dict):
        raise WeightsError(foreign)
    metadata = table.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsError(foreign)
    spans = []
    for tensor, entry in table.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            valid = (
                dtype in DTYPE_BYTES
                and isinstance(shape, list)
                and all(type(n) is int and n >= 0 for n in shape)
                and type(begin) is int
                and type(end) is int
                and 0 <= begin <= end
                and end - begin == math.prod(shape) * DTYPE_BYTES[dtype]
            )
        except (TypeError, KeyError, ValueError):
            valid = False
        if not valid:
            raise WeightsError(f"{name}: {what} header's entry for {shown(tensor)!r} is malformed (corrupt)")
        spans.append((begin, end))
    data_size = 0
    for begin, end in sorted(spans):  # the tensors must tile the data section: no gap, no overlap
        if begin != data_size:
            raise WeightsError(f"{name}: {what} header's tensors overlap or leave gaps (corrupt)")
        data_size = end
    if 8 + header_len + data_size != size:
        raise WeightsError(
            f"{name}: file is {size:,} bytes, its header declares {8 + header_len + data_size:,} "
            "(truncated, padded or corrupt)"
        )
    return SafetensorsLayout(header_len.to_bytes(8, "little") + raw, table, metadata, data_size)


def read_header_json(layout: SafetensorsLayout, key: str, name: str, what: str) -> dict[str, Any]:
    """metadata[key] as a JSON object, or a one-line WeightsError."""
    text = layout.metadata.get(key)
    if text is None:
        raise WeightsError(f"{name}: not an aetools safetensors {what} file (corrupt or foreign)")
    try:
        header = json.loads(text)
    except ValueError:
        raise WeightsError(f"{name}: {what} metadata is not valid JSON (corrupt)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{name}: {what} metadata is not a JSON object (corrupt or foreign)")
    return header


def check_digests(header: dict[str, Any], layout: SafetensorsLayout, data_chunks, name: str, what: str) -> str:
    """Check the digests the header records (files older than a digest have none) -> the tensors' digest."""
    digest = _tensors_sha256(layout.table, data_chunks)
    if header.get("tensors_sha256", digest) != digest:
        raise WeightsError(f"{name}: tensor data does not match its recorded sha256 ({what} altered or corrupt)")
    if header.get(CONTENT_KEY, content_digest(header, digest)) != content_digest(header, digest):
        raise WeightsError(
            f"{name}: {what} header (config, metadata) does not match its recorded sha256 (altered or corrupt)"
        )
    return digest


def _valid_weights_header(header: dict[str, Any], name: str) -> dict[str, Any]:
    if header.get("format") != FORMAT:
        raise WeightsError(f"{name}: unsupported weights format {header.get('format')!r}")
    for key, kind in (("arch", str), ("task", str), ("config", dict)):
        if not isinstance(header.get(key), kind):
            raise WeightsError(f"{name}: weights metadata has no valid {key!r} (corrupt or foreign)")
    optional = {"training": dict, "metrics": dict, "dtype": str, "params": int, "tensors_sha256": str, CONTENT_KEY: str}
    for key, kind in optional.items():
        if key in header and not isinstance(header[key], kind):
            raise WeightsError(f"{name}: weights metadata's {key!r} is malformed (corrupt)")
    return header


# --------------------------------------------------------------- the config's network, built on meta


class _OverBudget(Exception):
    pass


_budget = threading.local()  # per thread: another thread building a real network is not counted
_hooks_lock = threading.Lock()
_hooks_installed = False


def _spend(kind: str, amount: int) -> None:
    left = getattr(_budget, "left", None)
    if left is not None:
        left[kind] -= amount
        if left[kind] < 0:
            raise _OverBudget(kind)


def _on_tensor(module, name, value):
    if value is not None:
        _spend("tensors", 1)


def _on_module(module, name, value):
    _spend("modules", 1)


@contextmanager
def _construction_budget(tensors: int) -> Iterator[None]:
    """While building a network from a file's config: stop (_OverBudget) as soon as it creates far more
    modules or tensors than the file holds, so a config edited to ask for millions of blocks is refused
    early instead of building millions of modules. (Their sizes cost nothing on the meta device; the shape
    comparison that follows catches those.)"""
    global _hooks_installed
    from torch.nn.modules import module

    with _hooks_lock:
        if not _hooks_installed:  # global hooks, installed once; they do nothing outside a budget
            module.register_module_parameter_registration_hook(_on_tensor)
            module.register_module_buffer_registration_hook(_on_tensor)
            module.register_module_module_registration_hook(_on_module)
            _hooks_installed = True
    _budget.left = {"tensors": 2 * tensors + 64, "modules": 4 * tensors + 256}
    try:
        yield
    finally:
        _budget.left = None


def check_config_fits_tensors(header: dict[str, Any], shapes: dict[str, tuple[int, ...]], name: str) -> None:
    """Build the network the config describes on the meta device (shapes only, no memory) and compare it
    with the file's tensors; any difference, or a config that does not build, is a WeightsError naming the
    first differing tensor. Run before the tensors are read and before the real network is built."""
    import torch

    from aetools.models import create_model

    arch = header["arch"]
    try:
        with torch.device("meta"), _construction_budget(len(shapes)):
            model = create_model(arch, **header["config"])
        wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except _OverBudget:
        raise WeightsError(
            f"{name}: its config describes a network far larger than its {len(shapes)} tensors (altered or corrupt)"
        ) from None
    except Exception as e:  # noqa: BLE001  (a malformed config may fail in any way inside a constructor)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WeightsError(f"{name}: its config does not make a {arch!r} network ({first})") from None
    for tensor, shape in wanted.items():
        if tensor not in shapes:
            raise WeightsError(f"{name}: config and tensors disagree: {tensor} is missing from the file")
        if shapes[tensor] != shape:
            raise WeightsError(
                f"{name}: config and tensors disagree: {tensor} is {list(shapes[tensor])} in the file, "
                f"{list(shape)} by its config (altered or corrupt)"
            )
    extra = next((t for t in shapes if t not in wanted), None)
    if extra is not None:
        raise WeightsError(
            f"{name}: config and tensors disagree: {shown(extra)} is not in the network its config makes"
        )


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
    write_weights_file(path, tensors, header)


def write_weights_file(path: str | Path, tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> None:
    """Write tensors and header as they are (both digests computed afresh), atomically."""
    atomic_write_bytes(Path(path), encode_with_digests(tensors, header, METADATA_KEY))


def read_weights(
    path: str | Path, expected_sha256: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (tensors, header), within the reading budget (module docstring). expected_sha256: the whole
    file's, for a shipped file (its manifest entry). Raises WeightsError with a one-line reason."""
    name = shown(path)
    with open_regular(path, "weights") as f:
        layout = read_layout(f, name, "weights")
        header = _valid_weights_header(read_header_json(layout, METADATA_KEY, name, "weights"), name)
        check_config_fits_tensors(header, layout.shapes(), name)  # before the tensors are read
        data = read_exactly(f, layout.data_size, name, "weights")
        if f.read(1):
            raise WeightsError(f"{name}: weights file grew while it was read")
    if expected_sha256 is not None:
        actual = hashlib.sha256(layout.prefix)
        actual.update(data)
        if actual.hexdigest() != expected_sha256:
            raise WeightsError(
                f"{name}: sha256 {actual.hexdigest()[:12]}... does not match the manifest ({expected_sha256[:12]}...); "
                "file altered or corrupt"
            )
    header["tensors_sha256"] = check_digests(header, layout, iter([data]), name, "weights")
    header.setdefault("training", {})
    header.setdefault("metrics", {})
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(layout.prefix + bytes(data))
    except SafetensorError:
        raise WeightsError(f"{name}: not an aetools safetensors weights file (corrupt or foreign)") from None
    return tensors, header


def model_from_weights(tensors: dict[str, torch.Tensor], header: dict[str, Any], source: str) -> nn.Module:
    from aetools.models import create_model

    try:
        model = create_model(header["arch"], **header["config"])
        model.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
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
    if expected_sha is not None and not path.exists():
        raise WeightsError(f"{shown(path)}: shipped weights file is missing")
    tensors, header = read_weights(path, expected_sha)
    if header["task"] not in tasks:
        wanted = " or ".join(repr(t) for t in tasks)
        raise WeightsError(f"{shown(path)}: weights are for task {header['task']!r}, not {wanted}")
    model = model_from_weights(tensors, header, shown(path))
    model.weights_path = path  # where it came from, e.g. for `eval --record`
    return model.to(device)


def record_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Merge measured metrics into a weights file's metadata and, if it is shipped, its manifest entry
    (whose sha256 is refreshed, since the header is part of the file). With no metrics, it re-saves the file
    as it is, recording the digests a file written before them lacks."""
    path = Path(path).resolve()
    tensors, header = read_weights(path)
    header["metrics"] = {**header.get("metrics", {}), **metrics}
    write_weights_file(path, tensors, header)  # the tensors as they were, byte for byte; digests afresh
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
        model = model_from_weights(tensors, header, shown(source))
        save_weights(model, path, header["task"], header["training"], header["metrics"], dtype=dtype)
    tensors, header = read_weights(path)
    params = header.get("params") or count_parameters(model_from_weights(tensors, header, shown(path)))
    entry = ShippedWeights(
        name=name,
        file=path.name,
        task=header["task"],
        arch=header["arch"],
        sha256=sha256_file(path),
        params=params,
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
