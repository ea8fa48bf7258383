"""The web app: one hand-written page (`page.html`) and the HTTP API it uses, which programs can use too.

    GET  /                               the page
    GET  /v1/models                      the shipped models per task, the server's limits
    POST /v1/denoise|upscale|colorize|inpaint   multipart: image (+ inpaint's mask) and the task's options
                                         -> the result image
    GET  /v1/duplicates?radius=5         near-duplicate groups of the served index (--dedup)
    GET  /v1/duplicates/files/{id}[/thumbnail]   an indexed file, or its thumbnail, by index id

Errors are JSON, `{"error": "one line naming the field and the problem"}`, with the status that fits:
400 empty upload, 404 unknown thing, 411 no Content-Length, 413 upload or pixel count over the limit,
415 not an image, 422 corrupt image or a bad option, 500 a failure of ours. Inference runs in a worker
thread, so the page, the model list and the thumbnails answer while a job runs.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal, get_args

import torch
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from aetools import __version__
from aetools.serve.duplicates import DuplicateBrowser
from aetools.serve.runner import ApiError, TaskRunner

DEFAULT_MAX_UPLOAD_MB = 100

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
) -> FastAPI:
    """The app. device: where the networks run. index_dir: an index written by `aetools hash-index` to
    browse near-duplicates in (a missing one is a HashIndexError now). max_upload_bytes: the largest
    request body taken (the pixel limit is the image loader's, AETOOLS_MAX_PIXELS)."""
    from aetools.data.io import MAX_PIXELS
    from aetools.inference import resolve_device

    runner = TaskRunner(resolve_device(device))
    browser = DuplicateBrowser(Path(index_dir)) if index_dir is not None else None
    app = FastAPI(title="aetools", version=__version__, docs_url=None, redoc_url=None)  # the docs pages load CDNs
    app.state.runner, app.state.browser = runner, browser
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes)
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
            "upscale_lossy_default": runner.lossy_upscale_default(),
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
            "limits": {"max_upload_bytes": max_upload_bytes, "max_pixels": MAX_PIXELS},
            "duplicates": browser is not None,
        }

    async def run(task: str, form: TaskForm) -> Response:
        mask = getattr(form, "mask", None)
        result = await run_in_threadpool(  # off the event loop: the server keeps answering while a job runs
            runner.run,
            task,
            form.image.file,
            form.model,
            form.precision,
            form.task_options(),
            None if mask is None else mask.file,
            form.format,
            form.image.filename,
        )
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
        return {
            "radius": radius,
            "images": len(index.index),
            "groups": len(groups),
            "copies": sum(len(g) - 1 for g in groups),
            "offset": offset,
            "items": [[asdict(m) for m in group] for group in groups[offset : offset + limit]],
        }

    @app.get("/v1/duplicates/files/{file_id}")
    def indexed_file(file_id: int) -> FileResponse:
        """An indexed file, as it is on disk."""
        path = need_browser().path(file_id)
        if path is None:
            raise ApiError(404, f"file {file_id}: not in the index, or no longer on disk")
        return FileResponse(path)

    @app.get("/v1/duplicates/files/{file_id}/thumbnail")
    def thumbnail(file_id: int) -> Response:
        """A small JPEG of an indexed file."""
        jpeg = need_browser().thumbnail(file_id)
        if jpeg is None:
            raise ApiError(404, f"file {file_id}: not in the index, or unreadable")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})

    return app


PAGE = files("aetools.serve").joinpath("page.html").read_text(encoding="utf-8")


def _task_endpoint(run, task: str, form_class: type[TaskForm]):
    """The endpoint of one task: its form (multipart) in, `run(task, form)`. The signature is set here so
    that FastAPI validates and documents each task's own form."""

    async def endpoint(form: TaskForm) -> Response:
        return await run(task, form)

    form = inspect.Parameter("form", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[form_class, File()])
    endpoint.__signature__ = inspect.Signature([form], return_annotation=Response)
    return endpoint


# ------------------------------------------------------------------------------------------------ errors


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def refused(request: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")) or "request"
        message = "missing" if first.get("type") == "missing" else first.get("msg", "invalid")
        message = message.removeprefix("Value error, ")
        return _error(422, f"{where}: {message[:1].lower()}{message[1:]}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def failed(request: Request, e: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}")


class UploadLimit:
    """ASGI middleware: a request body over `max_bytes` is refused (413) from its Content-Length; nothing of
    it is kept (it is read and dropped, so that a client still sending it gets the answer); a body without
    one (chunked) is refused (411). The HTTP server (h11) refuses a body longer than its Content-Length."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            refusal = None
            if length is None and b"transfer-encoding" in headers:
                refusal = _error(411, "send a Content-Length: chunked uploads are not taken")
            elif length is not None and not length.isdigit():
                refusal = _error(400, "Content-Length: not a number")
            elif length is not None and int(length) > self.max_bytes:
                refusal = _error(
                    413,
                    f"upload of {int(length) / 1e6:.1f} MB is over the server's {self.max_bytes / 1e6:g} MB limit"
                    " (aetools serve --max-upload-mb)",
                )
            if refusal is not None:
                if length is not None:  # read and drop the body, so that a client sending it can read the answer
                    message = await receive()
                    while message["type"] == "http.request" and message.get("more_body"):
                        message = await receive()
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
