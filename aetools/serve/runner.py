"""What one API request of an image task does: upload -> `ImageData` -> the task's pipeline -> encoded bytes.

    runner = TaskRunner(torch.device("cpu"))
    result = runner.run("denoise", upload_file, model=None, precision="auto", options={"sigma": 25})
    result.content, result.media_type, result.filename

Each (task, shipped model) network is loaded once, on first use, and kept; a pipeline per precision wraps it.
Without a model named, the task's default runs (upscale: chosen by the input's format, as the CLI does).
Requests run one at a time (a queue behind one lock): memory stays that of one job, and every core of the
processor goes to it. The queue is bounded: with `max_waiting` jobs waiting already, a request is refused at
once (503, with a Retry-After estimated from the recent jobs' times). A job whose client went away
(`cancelled()` turns true) is dropped if it has not started, and stopped at its next tile if it runs
(`aetools.tiling.report_tiles`: a tiled run reports each tile) or at its next step (decoded, computed).
`counts` keeps score (started, finished, dropped, cancelled, refused). A request can name only shipped
models (`aetools models`), never a path.

Each job has an id (the client's, `X-Aetools-Job`, so that it can ask before the answer comes; else one of
ours): `status(id)` says where it is (its place in the line, tiles done of all, a fraction and an ETA) and
`cancel(id)` stops it as a disconnect does. Jobs wait in line in the order they came (first come, first
served), and the last `KEEP_ENDED` ended jobs are remembered for a status asked late.

Every refusal is an `ApiError`: an HTTP status and a one-line message naming the field and the problem.
"""

from __future__ import annotations

import math
import re
import secrets
import shutil
import tempfile
import threading
import time
import warnings
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from aetools.data.io import ImageData, ImageError, ImageWarning, frame_layout, load_image, save_image
from aetools.serve.errors import ApiError
from aetools.tiling import report_tiles

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

DEFAULT_MAX_WAITING = 8  # jobs waiting behind the running one; more: 503
POLL_SECONDS = 0.1  # how often a waiting job looks whether its client is still there
DEFAULT_JOB_SECONDS = 5.0  # the Retry-After estimate's job time before any job has run
KEEP_ENDED = 32  # ended jobs whose status is kept (for a client that asks once more after the answer)
JOB_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")  # what a client's job id may be


class JobCancelled(Exception):
    """The client went away: its job was dropped before it started, or stopped at its next tile or step."""


def _never() -> bool:
    return False


@dataclass
class Result:
    content: bytes
    media_type: str
    filename: str
    model: str  # the shipped model that ran
    warnings: list[str] = field(default_factory=list)  # e.g. an empty mask: the image came back unchanged


@dataclass
class Job:
    """One request's job, as `TaskRunner.status` reports it. Times are time.monotonic()."""

    id: str
    task: str
    passes: int = 1  # tiled passes the job makes (the ensemble: 8)
    state: str = "waiting"  # waiting, running, finished, cancelled, failed, refused (the queue was full)
    stage: str = ""  # while running: reading, loading, computing, encoding
    tiles_done: int = 0  # of this pass
    tiles: int = 0  # of a pass (0: not tiled, or not known yet)
    passes_done: int = 0
    submitted: float = field(default_factory=time.monotonic)
    computing: float | None = None  # when the network started: the ETA's clock
    ended: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)  # set by `TaskRunner.cancel`

    def fraction(self) -> float | None:
        """How much of the computing is done (0-1), once a tile has been; None before, or when not tiled."""
        if not self.tiles or not (self.tiles_done or self.passes_done):
            return None
        return min(1.0, (self.passes_done * self.tiles + self.tiles_done) / (self.passes * self.tiles))

    def tile_done(self, done: int, total: int) -> None:
        if self.tiles and self.tiles_done == self.tiles:  # the last pass was whole: this tile begins the next
            self.passes_done += 1
        self.tiles_done, self.tiles = done, total


class TaskRunner:
    """Args:
    device: where every network runs (the server's --device).
    max_waiting: how many jobs may wait behind the running one (the server's --max-queue); more: 503.
    """

    def __init__(self, device: torch.device, max_waiting: int = DEFAULT_MAX_WAITING):
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
        self.max_waiting = max_waiting
        self._admission = threading.Lock()  # guards waiting, counts and the job times
        self._line: deque[Job] = deque()  # the waiting jobs, first come first
        self._jobs: OrderedDict[str, Job] = OrderedDict()  # the waiting, the running and the last ended ones
        self.counts: Counter[str] = Counter()  # started, finished, dropped, cancelled, refused
        self.progress: tuple[int, int] | None = None  # the running job's (tiles done, in all), when it is tiled
        self._job_seconds: deque[float] = deque(maxlen=8)

    @property
    def running(self) -> bool:
        """Whether a job holds the queue now."""
        return self._queue.locked()

    @property
    def waiting(self) -> int:
        """How many jobs wait behind the running one."""
        return len(self._line)

    def status(self, job_id: str) -> dict | None:
        """What a client may know of its job (None: no such job, or ended long ago): state (waiting, running,
        finished, cancelled, failed, refused), ahead (jobs before it: the running one and those in line before it),
        stage, tiles_done and tiles (of all passes), fraction (0-1, from the first tile; None untiled),
        elapsed_s (since it was submitted) and eta_s (seconds left, from the tiles' pace; None before)."""
        with self._admission:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            ahead = None
            if job.state == "waiting":
                ahead = (self._line.index(job) if job in self._line else 0) + int(self.running)
            now = job.ended or time.monotonic()
            fraction = job.fraction()
            eta = None
            if fraction and job.computing is not None and job.state == "running":
                eta = (now - job.computing) * (1 - fraction) / fraction
            return {
                "id": job.id,
                "task": job.task,
                "state": job.state,
                "ahead": ahead,
                "stage": job.stage,
                "tiles_done": job.passes_done * job.tiles + job.tiles_done,
                "tiles": job.passes * job.tiles,
                "fraction": None if fraction is None else round(fraction, 4),
                "elapsed_s": round(now - job.submitted, 2),
                "eta_s": None if eta is None else round(eta, 1),
            }

    def cancel(self, job_id: str) -> dict | None:
        """Stop a job: dropped if it waits, stopped at its next tile or step if it runs (None: no such job)."""
        with self._admission:
            job = self._jobs.get(job_id)
        if job is None:
            return None
        job.cancel.set()
        return self.status(job_id)

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
        cancelled: Callable[[], bool] = _never,
        job_id: str | None = None,
    ) -> Result:
        """One request: `image` (and inpaint's `mask`) are the uploaded files, `options` the task's own
        (sigma, scale, strength, tile, ensemble). `cancelled()`: whether the client has gone away, asked
        while the job waits and at each tile and step. `job_id`: the client's name for the job (`status`,
        `cancel`); default: one of ours. Raises ApiError (503: the queue is full; 409: the id is in use;
        422: not an id) or JobCancelled."""
        options = dict(options or {})
        if task == "colorize":
            options["hints"] = _parse_hints(options.get("hints"))
        name = self._model_name(task, model)
        job = self._register(job_id, task, passes=8 if options.get("ensemble") else 1)

        def stop() -> bool:
            return job.cancel.is_set() or cancelled()

        try:
            self._wait_for_turn(job, stop)
        except ApiError:
            self._end(job, "refused")
            raise
        except BaseException:
            self._end(job, "cancelled")
            raise
        started = time.monotonic()
        state = "failed"
        try:
            self._count("started")
            result = self._run(job, image, name, precision, options, mask, output_format, filename, stop)
            self._count("finished")
            state = "finished"
            return result
        except JobCancelled:
            self._count("cancelled")
            state = "cancelled"
            raise
        finally:
            self.progress = None
            self._end(job, state)
            with self._admission:
                self._job_seconds.append(time.monotonic() - started)
            self._queue.release()

    def _register(self, job_id: str | None, task: str, passes: int) -> Job:
        """A new job under the client's id (checked) or one of ours; the oldest ended jobs are forgotten."""
        if job_id is not None and not JOB_ID.fullmatch(job_id):
            raise ApiError(422, "job id: 8-64 letters, digits, '-' or '_'")
        with self._admission:
            job_id = job_id or secrets.token_hex(8)
            if job_id in self._jobs and self._jobs[job_id].ended is None:
                raise ApiError(409, f"job id {job_id!r}: a job of that id is waiting or running")
            job = self._jobs[job_id] = Job(job_id, task, passes)
            self._jobs.move_to_end(job_id)
            ended = [k for k, j in self._jobs.items() if j.ended is not None]
            for k in ended[: max(0, len(ended) - KEEP_ENDED)]:
                del self._jobs[k]
        return job

    def _end(self, job: Job, state: str) -> None:
        with self._admission:
            job.state, job.stage, job.ended = state, "", time.monotonic()

    def _wait_for_turn(self, job: Job, cancelled: Callable[[], bool]) -> None:
        """Returns holding the queue, the jobs in line served first come first; refuses (503) when
        `max_waiting` jobs wait already; drops the job (JobCancelled) when it is cancelled or its client
        goes away while it waits."""
        with self._admission:
            if not self._line and self._queue.acquire(blocking=False):
                job.state = "running"
                return
            if len(self._line) >= self.max_waiting:
                self.counts["refused"] += 1
                wait = self._retry_after()
                raise ApiError(
                    503,
                    f"busy: {len(self._line)} jobs are waiting already (aetools serve --max-queue); try again in"
                    f" about {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            self._line.append(job)
        try:
            while True:
                first = self._line[0] is job  # (a read of a deque: atomic)
                if first and self._queue.acquire(timeout=POLL_SECONDS):
                    break
                if not first:
                    job.cancel.wait(POLL_SECONDS)
                if cancelled():
                    self._count("dropped")
                    raise JobCancelled("the job was cancelled before it started")
        finally:
            with self._admission:
                self._line.remove(job)
        if cancelled():  # its turn came, and it was cancelled meanwhile
            self._queue.release()
            self._count("dropped")
            raise JobCancelled("the job was cancelled before it started")
        with self._admission:
            job.state = "running"

    def _retry_after(self) -> int:
        """Seconds until a place in the queue is likely free: the recent jobs' mean time, times the jobs
        ahead (the waiting ones and the running one). Called holding `_admission`."""
        mean = sum(self._job_seconds) / len(self._job_seconds) if self._job_seconds else DEFAULT_JOB_SECONDS
        return max(1, min(3600, math.ceil(mean * (len(self._line) + 1))))

    def _count(self, what: str) -> None:
        with self._admission:
            self.counts[what] += 1

    def _run(self, job, image, name, precision, options, mask, output_format, filename, cancelled) -> Result:
        """The job, holding the queue."""
        task = job.task

        def stop_if_cancelled(done: int | None = None, total: int | None = None) -> None:
            if done is not None:
                self.progress = (done, total)
                with self._admission:
                    job.tile_done(done, total)
            if cancelled():
                raise JobCancelled("the job was cancelled or its client went away; it was stopped")

        with tempfile.TemporaryDirectory(prefix="aetools-serve-") as tmp:
            job.stage = "reading"
            data = _read_upload(image, Path(tmp) / "image", "image")
            name = name or self._default_model(task, data.format)
            job.stage = "loading"
            pipe = self._pipeline(task, name, precision)
            if mask is not None:
                options["mask"] = _read_upload(mask, Path(tmp) / "mask", "mask")
            stop_if_cancelled()
            job.stage, job.computing = "computing", time.monotonic()
            try:
                with warnings.catch_warnings(record=True) as caught, report_tiles(stop_if_cancelled):
                    warnings.simplefilter("always", ImageWarning)  # safe: jobs run one at a time
                    result = pipe(data, **options)
            except ImageError as e:
                raise ApiError(_status_of(e.reason), e.reason) from None
            except ValueError as e:  # an option the pipeline refuses, e.g. a scale the model has no tail for
                raise ApiError(422, _one_line(e)) from None
            except (RuntimeError, MemoryError) as e:  # e.g. out of memory on a huge image
                advice = "try a smaller photo" if task == "colorize" else "try a smaller tile"
                raise ApiError(500, f"{task} failed: {_one_line(e)} ({advice})") from None
            stop_if_cancelled()
            job.stage = "encoding"
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

    def lossy_default(self, task: str) -> str | None:
        """The model `task` runs on lossy inputs when none is named, if not its default (None)."""
        name = self._default_model(task, "JPEG") if task in self.models else None
        return None if name == self.default.get(task) else name

    def _default_model(self, task: str, input_format: str | None) -> str:
        """The task's own choice for this input (`ImagePipeline.default_model`, the rule the API and the CLI
        follow: the real-photo model for a JPEG, WebP, HEIC or AVIF where the task has one)."""
        from aetools.tasks import get_pipeline

        name = get_pipeline(task).default_model(input_format)
        return name if name in self.models[task] else self.default[task]

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
