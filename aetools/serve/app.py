"""The web app: one hand-written page (`page.html`) and the HTTP API it uses, which programs can use too.

    GET  /                               the page
    GET  /v1/models                      the shipped models per task, the server's limits
    POST /v1/denoise|upscale|colorize|inpaint   multipart: image (+ inpaint's mask) and the task's options
                                         -> the result image
    GET  /v1/jobs/{id}                   a job's place in line, or its tiles done and ETA (the id: the POST's
                                         X-Aetools-Job header, chosen by the client)
    POST /v1/jobs/{id}/cancel            stop it: dropped from the line, or stopped at its next tile
    GET  /v1/examples[/{name}]           the bundled example images (aetools/serve/examples/), by name
    GET  /v1/duplicates?radius=5         near-duplicate groups of the served index (--dedup)
    GET  /v1/duplicates/files/{id}[/thumbnail]   an indexed file, or its thumbnail, by index id
    POST /v1/duplicates/files/{id}/trash          move it to the trash folder (--dedup-trash) -> the move
    GET  /v1/duplicates/trash                     the moves not yet undone
    POST /v1/duplicates/trash/{token}/restore     move it back to where it was (only if that path is free)

Errors are JSON, `{"error": "one line naming the field and the problem"}`, with the status that fits:
400 empty upload, 403 a Host that is not this server's or a cross-site request (guard.py), 404 unknown
thing, 408 a stalled upload, 409 an indexed file changed since it was indexed (or a restore's path taken),
411 no Content-Length, 413 upload or pixel count over the limit, 415 not an image, 422 corrupt image or a bad
option, 500 a failure of ours, 503 the job queue is full (with Retry-After). Inference runs in a worker
thread of its own, so the page, the model list and the thumbnails answer while a job runs; a job whose
client disconnects is dropped or stopped (runner.py).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import mimetypes
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict
from importlib.resources import files
from pathlib import Path
from typing import Annotated, BinaryIO, Literal, get_args

import anyio
import torch
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser

from aetools import __version__
from aetools.serve.duplicates import CHUNK, DuplicateBrowser, TrashError
from aetools.serve.errors import ApiError, error_response
from aetools.serve.examples import EXAMPLES
from aetools.serve.guard import OriginPolicy, UploadDeadline, UploadLimit
from aetools.serve.runner import DEFAULT_MAX_WAITING, JobCancelled, TaskRunner

DEFAULT_MAX_UPLOAD_MB = 100
DEFAULT_READ_TIMEOUT = 30.0  # seconds: the longest pause within an upload
DEFAULT_UPLOAD_TIMEOUT = 600.0  # seconds: the longest an upload may take in all

# An uploaded file's part is kept in memory up to this size, then spooled to a temporary file (Starlette's
# default, 1 MB, let ten stalled uploads hold 10 MB; the image loader reads a file anyway).
SPOOL_MAX_BYTES = 256 * 1024
SERVED_SPOOL_BYTES = 1 << 20  # an indexed file's verified copy: in memory up to this size, then on disk
JOB_HEADER = "x-aetools-job"  # a POST's job id, chosen by the client so that it can ask about the job meanwhile

# The forms take at most an image and a mask, and a few short fields.
FORM_LIMITS = {"max_files": 2, "max_fields": 16, "max_part_size": 64 * 1024}

# The page may load nothing from anywhere but this server (no fonts, scripts or styles from the internet).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob: data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'"
)

Precision = Literal["auto", "fp32", "bf16"]
Format = Literal["same", "png", "jpeg", "webp", "tiff"]  # runner.OUTPUT_FORMATS and "same"


# Each task's form: the image and the options of its CLI command (aetools/cli/images.py), less the device.
class TaskForm(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not silently the default

    image: UploadFile = Field(description="The image: any format aetools reads.")
    model: str | None = Field(
        None, description="A shipped model of the task (GET /v1/models); default: the task's (upscale: by input)."
    )
    precision: Precision = "auto"
    format: Format = Field("same", description="Output format; 'same': the input's (inpaint: PNG for JPEG/WebP).")

    def task_options(self) -> dict:
        """What the task's pipeline takes besides the image."""
        return self.model_dump(exclude={"image", "mask", "model", "precision", "format"})


class TiledForm(TaskForm):
    tile: int | None = Field(None, ge=0, description="Tile side in pixels (0: never tile); default: automatic.")


class DenoiseForm(TiledForm):
    """Remove noise (blind Gaussian denoiser; sigma if known)."""

    sigma: float | None = Field(None, ge=0, le=100, description="Noise level (0-255 scale); default: blind.")


class UpscaleForm(TiledForm):
    """Upscale x2, x3 or x4 (exactly that many times the size); grey stays grey, alpha is kept."""

    scale: int = Field(2, ge=2, le=4, description="2, 3 or 4.")
    ensemble: bool = Field(False, description="Average the 8 flips/rotations: a little sharper, 8x slower.")


class ColorizeForm(TaskForm):
    """Colour a grey photo; the lightness stays the input's."""

    strength: float = Field(1.0, ge=0, le=1, description="0 = grey, 1 = the model's colours.")
    hints: str | None = Field(
        None, max_length=10_000, description="Colour hints: X,Y,#RRGGBB separated by ';' (pixels from the top-left)."
    )


class InpaintForm(TiledForm):
    """Fill the mask's white pixels (or the image's transparent ones); every other pixel is kept exactly."""

    mask: UploadFile | None = Field(None, description="White (>127) = fill; the image's size. Default: its alpha.")
    ensemble: bool = Field(False, description="Average the 8 flips/rotations: 8x slower.")


FORMS: dict[str, type[TaskForm]] = {
    "denoise": DenoiseForm,
    "upscale": UpscaleForm,
    "colorize": ColorizeForm,
    "inpaint": InpaintForm,
}


def create_app(
    device: str | torch.device = "auto",
    index_dir: str | Path | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1_000_000,
    *,
    root: str | Path | None = None,
    allow_hosts: Iterable[str] = (),
    max_waiting: int = DEFAULT_MAX_WAITING,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT,
    trash: str | Path | None = None,
) -> FastAPI:
    """The app. device: where the networks run. index_dir: an index written by `aetools hash-index` to
    browse near-duplicates in (a missing one is a HashIndexError now). max_upload_bytes: the largest
    request body taken (the pixel limit is the image loader's, AETOOLS_MAX_PIXELS).
    root: the folder the indexed files must be in to be served (default: the one the index was built for).
    allow_hosts: names besides localhost and the bound address that this server may be reached by.
    max_waiting: jobs that may wait behind the running one (more: 503). read_timeout, upload_timeout:
    seconds an upload may pause, and may take in all (more: 408). trash: the folder indexed files may be
    moved to from the duplicates (created if missing; one that cannot serve is a TrashError now); None: no
    file is ever moved."""
    from aetools.data.io import MAX_PIXELS
    from aetools.inference import resolve_device

    runner = TaskRunner(resolve_device(device), max_waiting)
    if trash is not None and index_dir is None:
        raise TrashError("a trash folder needs an index to move files of: --dedup FOLDER")
    browser = None
    if index_dir is not None:
        browser = DuplicateBrowser(
            Path(index_dir), None if root is None else Path(root), None if trash is None else Path(trash)
        )
    # Jobs take worker threads of their own (the running one, the waiting ones, one to refuse the next), so
    # that waiting jobs never hold the threads the page, the model list and the thumbnails are served from.
    job_threads = anyio.CapacityLimiter(max_waiting + 2)
    MultiPartParser.spool_max_size = SPOOL_MAX_BYTES  # Starlette's setting for the whole process (no other)
    app = FastAPI(
        title="aetools",
        version=__version__,
        docs_url=None,  # the docs pages load scripts from a CDN
        redoc_url=None,
        form_limits=FORM_LIMITS,
    )
    app.state.runner, app.state.browser = runner, browser
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes)
    app.add_middleware(UploadDeadline, read_timeout=read_timeout, upload_timeout=upload_timeout)
    app.add_middleware(OriginPolicy, allow_hosts=allow_hosts)  # added last: the outermost, before anything
    _add_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    @app.get("/v1/models")
    def models() -> dict:
        """The shipped models of each image task (the default first), the device and the limits."""
        from aetools.weights import read_manifest

        by_name = {e.name: e for e in read_manifest()}
        loaded = {name for _, name in runner.loaded()}
        return {
            "device": str(runner.device),
            "tasks": {t: {"default": runner.default[t], "models": names} for t, names in runner.models.items()},
            "upscale_lossy_default": runner.lossy_default("upscale"),
            "lossy_defaults": {task: runner.lossy_default(task) for task in FORMS if runner.lossy_default(task)},
            "models": [
                {
                    "name": name,
                    "task": task,
                    "default": name == runner.default[task],
                    "params": by_name[name].params,
                    "description": by_name[name].description,
                    "loaded": name in loaded,
                }
                for task, names in runner.models.items()
                for name in names
            ],
            "precisions": list(get_args(Precision)),
            "formats": list(get_args(Format)),
            "limits": {
                "max_upload_bytes": max_upload_bytes,
                "max_pixels": MAX_PIXELS,
                "max_waiting_jobs": runner.max_waiting,
                "read_timeout_s": read_timeout,
                "upload_timeout_s": upload_timeout,
            },
            "queue": {"waiting": runner.waiting, "running": runner.running},
            "duplicates": browser is not None,
            "dedup_trash": browser is not None and browser.trash is not None,
        }

    async def run(task: str, form: TaskForm, request: Request) -> Response:
        mask = getattr(form, "mask", None)
        gone = threading.Event()  # set when the client disconnects: the job is dropped or stopped
        watcher = asyncio.ensure_future(_watch_disconnect(request, gone))
        job = functools.partial(
            runner.run,
            task,
            form.image.file,
            form.model,
            form.precision,
            form.task_options(),
            None if mask is None else mask.file,
            form.format,
            form.image.filename,
            cancelled=gone.is_set,
            job_id=request.headers.get(JOB_HEADER),
        )
        try:  # off the event loop: the server keeps answering while a job runs
            result = await anyio.to_thread.run_sync(job, limiter=job_threads)
        finally:
            watcher.cancel()
        headers = {"Content-Disposition": f'attachment; filename="{result.filename}"', "X-Aetools-Model": result.model}
        if result.warnings:
            headers["X-Aetools-Warning"] = " | ".join(result.warnings)
        return Response(result.content, media_type=result.media_type, headers=headers)

    for task, form_class in FORMS.items():  # POST /v1/denoise, /v1/upscale, /v1/colorize, /v1/inpaint
        app.add_api_route(
            f"/v1/{task}",
            _task_endpoint(run, task, form_class),
            methods=["POST"],
            response_class=Response,
            name=task,
            description=form_class.__doc__,
        )

    @app.get("/v1/jobs/{job_id}")
    def job_status(job_id: str) -> dict:
        """A job named by the X-Aetools-Job header of its POST: state (waiting, running, finished, cancelled,
        failed, refused), ahead (jobs before it in line), stage, tiles_done and tiles, fraction (0-1, from the
        first tile of a tiled run), elapsed_s, eta_s. 404 before its upload is in, and a while after it ended."""
        status = runner.status(job_id)
        if status is None:
            raise ApiError(404, f"job {job_id[:64]!r}: none such now (not yet uploaded, or ended a while ago)")
        return status

    @app.post("/v1/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict:
        """Stop a job: dropped if it waits, stopped at its next tile (or step) if it runs; its POST is answered
        499. Answers the job's status."""
        status = runner.cancel(job_id)
        if status is None:
            raise ApiError(404, f"job {job_id[:64]!r}: none such now (not yet uploaded, or ended a while ago)")
        return status

    examples = {e.name: e for e in EXAMPLES if EXAMPLE_FILES.joinpath(e.name).is_file()}

    @app.get("/v1/examples")
    def example_list() -> dict:
        """The bundled example images (made from skimage.data; public domain or CC0), one per task."""
        return {"examples": [{**asdict(e), "url": f"/v1/examples/{e.name}"} for e in examples.values()]}

    @app.get("/v1/examples/{name}")
    def example(name: str) -> Response:
        """An example image, by its name in the list (the name is looked up, never used as a path)."""
        if name not in examples:
            raise ApiError(404, f"example {name[:80]!r}: none such (GET /v1/examples lists them)")
        content = EXAMPLE_FILES.joinpath(name).read_bytes()
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(content, media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    def need_browser() -> DuplicateBrowser:
        if browser is None:
            raise ApiError(404, "no index to browse: start the server with aetools serve --dedup FOLDER")
        return browser

    @app.get("/v1/duplicates")
    def duplicates(
        radius: Annotated[
            int | None, Query(ge=0, description="Most bits two codes may differ in; default: dedup's.")
        ] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 20,
    ) -> dict:
        """Groups of near-duplicates in the index (verified on the pictures), largest first; a group is a list
        of {id, path, distance (bits, to the group's first: the copy to keep), exact (another member has the
        same bytes), about (pixels, file size, date)}."""
        index = need_browser()
        radius = index.default_radius if radius is None else radius
        if radius > index.bits:
            raise ApiError(422, f"radius: at most {index.bits} (the codes' length)")
        groups = index.groups(radius)
        records, moved = index.index.records, index.moved()

        def member(m) -> dict:  # moved: the token of its move while it is in the trash (undo by it)
            record = records.get(m.id)
            move = None if record is None else moved.get((record.path, record.sha256))
            return {**asdict(m), "moved": None if move is None else move.token}

        return {
            "radius": radius,
            "images": len(index.index),
            "groups": len(groups),
            "copies": sum(len(g) - 1 for g in groups),
            "offset": offset,
            "trash": None if index.trash is None else str(index.trash.folder),
            "items": [[member(m) for m in group] for group in groups[offset : offset + limit]],
        }

    @app.get("/v1/duplicates/files/{file_id}", response_class=StreamingResponse)
    def indexed_file(file_id: int) -> StreamingResponse:
        """An indexed file, if it is still what was indexed (its real path in the indexed folder, its size,
        date and sha256 the recorded ones); 409 if it changed. The bytes sent are the ones checked."""
        copy = tempfile.SpooledTemporaryFile(max_size=SERVED_SPOOL_BYTES)
        try:
            record = need_browser().copy_verified(file_id, copy)
        except BaseException:
            copy.close()
            raise
        copy.seek(0)
        media_type = mimetypes.guess_type(record.path)[0] or "application/octet-stream"
        return StreamingResponse(_chunks(copy), media_type=media_type, headers={"Content-Length": str(record.size)})

    @app.get("/v1/duplicates/files/{file_id}/thumbnail")
    def thumbnail(file_id: int) -> Response:
        """A small JPEG of an indexed file (if it is still what was indexed, as above)."""
        jpeg = need_browser().thumbnail(file_id)
        if jpeg is None:
            raise ApiError(422, f"file {file_id}: cannot be decoded")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})

    @app.post("/v1/duplicates/files/{file_id}/trash")
    def move_to_trash(file_id: int) -> dict:
        """Move an indexed file into the trash folder (`--dedup-trash DIR`) at its path relative to the indexed
        folder, if it is still what was indexed (as above: 403, 404, 409 else); a name taken there gets a
        number. Answers the move: token (to restore by), path, original, trashed, size, sha256, moved_at, how
        (rename, or copy across file systems). Nothing is deleted: the original is removed only once it is
        in the trash."""
        return asdict(need_browser().move_to_trash(file_id))

    @app.get("/v1/duplicates/trash")
    def trash_list() -> dict:
        """The trash folder and the moves not yet undone (newest last), each as the move answered it."""
        browser = need_browser()
        moves = browser.trash_moves()
        return {"folder": str(browser.trash.folder), "moves": [asdict(m) for m in moves]}

    @app.post("/v1/duplicates/trash/{token}/restore")
    def restore(token: str) -> dict:
        """Move a file back from the trash to where it was: only if that path is free (409: a file is there
        now, both are kept) and the file in the trash still has its sha256 (409 if not). Answers the move."""
        return asdict(need_browser().restore(token))

    return app


PAGE = files("aetools.serve").joinpath("page.html").read_text(encoding="utf-8")
EXAMPLE_FILES = files("aetools.serve.examples")


def _task_endpoint(run, task: str, form_class: type[TaskForm]):
    """The endpoint of one task: its form (multipart) in, `run(task, form, request)`. The signature is set
    here so that FastAPI validates and documents each task's own form."""

    async def endpoint(form: TaskForm, request: Request) -> Response:
        return await run(task, form, request)

    form = inspect.Parameter("form", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[form_class, File()])
    request = inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    endpoint.__signature__ = inspect.Signature([form, request], return_annotation=Response)
    return endpoint


async def _watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Sets `gone` when the client disconnects. Called once the body is read: receiving then waits until
    the connection closes (or the response is sent; the watcher is cancelled before that)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)  # (a server that answers at once with something else is not spun on)
    gone.set()


def _chunks(file: BinaryIO):
    """A file's bytes in pieces, closing it at the end (or when the response is dropped)."""
    with file:
        while chunk := file.read(CHUNK):
            yield chunk


# ------------------------------------------------------------------------------------------------ errors


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def refused(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.message, e.headers)

    @app.exception_handler(JobCancelled)
    async def cancelled(request: Request, e: JobCancelled) -> JSONResponse:
        return error_response(499, str(e))  # nginx's "client closed request": nobody is left to read it

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")) or "request"
        message = "missing" if first.get("type") == "missing" else first.get("msg", "invalid")
        message = message.removeprefix("Value error, ")
        return error_response(422, f"{where}: {message[:1].lower()}{message[1:]}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return error_response(e.status_code, str(e.detail), e.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, e: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
