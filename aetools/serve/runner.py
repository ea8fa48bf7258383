"""What one API request of an image task does: upload -> `ImageData` -> the task's pipeline -> encoded bytes.

    runner = TaskRunner(torch.device("cpu"))
    result = runner.run("denoise", upload_file, model=None, precision="auto", options={"sigma": 25})
    result.content, result.media_type, result.filename

Each (task, shipped model) network is loaded once, on first use, and kept; a pipeline per precision wraps it.
Without a model named, the task's default runs (upscale: chosen by the input's format, as the CLI does).
Requests run one at a time (a queue behind one lock): memory stays that of one job, and every core of the
processor goes to it. A request can name only shipped models (`aetools models`), never a path.

Every refusal is an `ApiError`: an HTTP status and a one-line message naming the field and the problem.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from aetools.data.io import ImageData, ImageError, ImageWarning, frame_layout, load_image, save_image

IMAGE_TASKS = ("denoise", "upscale", "colorize", "inpaint")

# The CLI's output names (`<stem>_denoised.png`); upscale's is `x<scale>`.
SUFFIXES = {"denoise": "denoised", "colorize": "color", "inpaint": "filled"}

# format option -> (Pillow format, extension, media type)
OUTPUT_FORMATS = {
    "png": ("PNG", ".png", "image/png"),
    "jpeg": ("JPEG", ".jpg", "image/jpeg"),
    "webp": ("WEBP", ".webp", "image/webp"),
    "tiff": ("TIFF", ".tif", "image/tiff"),
}
_SAME_FORMAT = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "TIFF": "tiff"}


class ApiError(Exception):
    """A refused request: `status` (HTTP) and a one-line `message`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Result:
    content: bytes
    media_type: str
    filename: str
    model: str  # the shipped model that ran
    warnings: list[str] = field(default_factory=list)  # e.g. an empty mask: the image came back unchanged


class TaskRunner:
    """Args:
    device: where every network runs (the server's --device).
    """

    def __init__(self, device: torch.device):
        from aetools.tasks import get_pipeline
        from aetools.weights import default_weights_for, read_manifest

        self.device = device
        self.models: dict[str, list[str]] = {}  # task -> its shipped models, the default first
        self.default: dict[str, str] = {}
        manifest = read_manifest()
        for task in IMAGE_TASKS:
            weights_task = get_pipeline(task).task
            names = [e.name for e in manifest if e.task == weights_task]
            if names:
                self.default[task] = default_weights_for(weights_task).name
                self.models[task] = [self.default[task]] + [n for n in names if n != self.default[task]]
        self._networks: dict[tuple[str, str], torch.nn.Module] = {}
        self._pipelines: dict[tuple[str, str, str], Any] = {}
        self._queue = threading.Lock()  # one job at a time

    def loaded(self) -> list[tuple[str, str]]:
        """(task, model) of the networks loaded so far."""
        return list(self._networks.copy())  # copy(): atomic, while a job may be adding one

    def run(
        self,
        task: str,
        image: BinaryIO,
        model: str | None = None,
        precision: str = "auto",
        options: dict[str, Any] | None = None,
        mask: BinaryIO | None = None,
        output_format: str = "same",
        filename: str | None = None,
    ) -> Result:
        """One request: `image` (and inpaint's `mask`) are the uploaded files, `options` the task's own
        (sigma, scale, strength, tile, ensemble). Raises ApiError."""
        options = dict(options or {})
        if task == "colorize":
            options["hints"] = _parse_hints(options.get("hints"))
        name = self._model_name(task, model)
        with self._queue, tempfile.TemporaryDirectory(prefix="aetools-serve-") as tmp:
            data = _read_upload(image, Path(tmp) / "image", "image")
            name = name or self._default_model(task, data.format)
            pipe = self._pipeline(task, name, precision)
            if mask is not None:
                options["mask"] = _read_upload(mask, Path(tmp) / "mask", "mask")
            try:
                with warnings.catch_warnings(record=True) as caught:  # safe: jobs run one at a time
                    warnings.simplefilter("always", ImageWarning)
                    result = pipe(data, **options)
            except ImageError as e:
                raise ApiError(_status_of(e.reason), e.reason) from None
            except ValueError as e:  # an option the pipeline refuses, e.g. a scale the model has no tail for
                raise ApiError(422, _one_line(e)) from None
            except (RuntimeError, MemoryError) as e:  # e.g. out of memory on a huge image
                advice = "try a smaller photo" if task == "colorize" else "try a smaller tile"
                raise ApiError(500, f"{task} failed: {_one_line(e)} ({advice})") from None
            notes = [str(w.message) for w in caught if issubclass(w.category, ImageWarning)]
            for w in caught:  # not ours to report: shown as Python would have
                if not issubclass(w.category, ImageWarning):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            fmt = _output_format(output_format, data.format, lossless=task == "inpaint")
            pil_format, ext, media_type = OUTPUT_FORMATS[fmt]
            out = Path(tmp) / f"result{ext}"
            try:
                save_image(result, out, pil_format)
            except ImageError as e:
                raise ApiError(500, f"cannot encode the result as {fmt}: {e.reason}") from None
            suffix = f"x{options.get('scale', 2)}" if task == "upscale" else SUFFIXES[task]
            return Result(out.read_bytes(), media_type, f"{_safe_stem(filename)}_{suffix}{ext}", name, notes)

    # ------------------------------------------------------------------------------ networks, once each

    def _model_name(self, task: str, model: str | None) -> str | None:
        """The model asked for, checked (None: the default for the input, `_default_model`)."""
        if task not in self.models:
            raise ApiError(404, f"no shipped weights for {task} in this installation")
        if not model:
            return None
        if model not in self.models[task]:
            shipped = ", ".join(self.models[task])
            raise ApiError(422, f"model {model!r}: not a shipped {task} model (shipped: {shipped})")
        return model

    def lossy_upscale_default(self) -> str | None:
        """The model upscale runs on lossy inputs when none is named, if not the default."""
        name = self._default_model("upscale", "JPEG") if "upscale" in self.models else None
        return None if name == self.default.get("upscale") else name

    def _default_model(self, task: str, input_format: str | None) -> str:
        """The task's default model; for upscale, the CLI's choice by input (`aetools upscale` without
        --model): the real-photo model for lossy files (JPEG, WebP, HEIC, AVIF), the default for others."""
        from aetools.tasks.superres import REAL_PHOTO_MODEL, prefers_real_photo_model  # the CLI's rule too

        if task == "upscale" and prefers_real_photo_model(input_format) and REAL_PHOTO_MODEL in self.models[task]:
            return REAL_PHOTO_MODEL
        return self.default[task]

    def _pipeline(self, task: str, model: str, precision: str):
        """The task's pipeline around the (task, model) network, loaded on first use; called in the queue."""
        from aetools.precision import PrecisionError
        from aetools.tasks import get_pipeline
        from aetools.weights import WeightsError

        key = (task, model, precision)
        if key in self._pipelines:
            return self._pipelines[key]
        cls = get_pipeline(task)
        try:
            network = self._networks.get((task, model))
            if network is None:
                pipe = cls.from_pretrained(model, self.device, precision)
                self._networks[task, model] = pipe.model
            else:
                pipe = cls(network, self.device, precision)
        except PrecisionError as e:
            raise ApiError(422, f"precision {precision}: {e}") from None
        except WeightsError as e:
            raise ApiError(500, f"model {model!r}: {e}") from None
        self._pipelines[key] = pipe
        return pipe


# ------------------------------------------------------------------------------------ uploads and results


def _read_upload(upload: BinaryIO, path: Path, what: str) -> ImageData:
    """The uploaded bytes, copied to our own file (the upload's name is never used) and read by the one
    image loader, with its decompression-bomb guard (AETOOLS_MAX_PIXELS)."""
    upload.seek(0)
    with open(path, "wb") as f:
        shutil.copyfileobj(upload, f)
    try:
        data = load_image(path)
    except ImageError as e:
        raise ApiError(_status_of(e.reason), f"{what}: {e.reason}") from None
    layout = frame_layout(path)
    if layout:  # never a silent first frame
        raise ApiError(
            422,
            f"{what}: {layout.count} frames (an animation or pages); this page takes still images, the command "
            "line processes every frame (aetools <task> FILE)",
        )
    return data


def _parse_hints(text: str | None) -> list | None:
    """The form's "X,Y,#RRGGBB; ..." -> points for the pipeline (never a path: a string names no file here)."""
    from aetools.tasks.colorize import parse_hint

    if not text or not text.strip():
        return None
    try:
        return [parse_hint(part) for part in text.split(";") if part.strip()]
    except ValueError as e:
        raise ApiError(422, f"hints: {e}") from None


def _status_of(reason: str) -> int:
    """The HTTP status of an ImageError's reason (aetools.data.io's wording; tests/test_serve.py checks each)."""
    if reason == "empty file":
        return 400
    if reason.startswith("not an image file"):
        return 415
    if "limit" in reason:  # the pixel limit, on reading or (upscale) on the output's size
        return 413
    return 422


def _output_format(requested: str, input_format: str | None, lossless: bool) -> str:
    """'same': the input's format where it is one of OUTPUT_FORMATS, else PNG; a task that keeps pixels
    exactly (inpaint) writes lossy inputs as PNG, as the CLI does."""
    if requested != "same":
        return requested
    fmt = _SAME_FORMAT.get(input_format or "", "png")
    return "png" if lossless and fmt in ("jpeg", "webp") else fmt


def _safe_stem(filename: str | None) -> str:
    """A download name from the upload's name: letters, digits, '.', '-' and '_' only."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename or "").stem).strip("._")[:80]
    return stem or "image"


def _one_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
