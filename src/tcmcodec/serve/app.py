"""The comparison web app behind ``tcm serve`` (Starlette; static pages, JSON API).

    GET  /                        the page (static/index.html, app.js, style.css)
    GET  /api/config              codecs on offer, quality range, limits
    POST /api/compare             multipart: file (or sample), quality or max_bytes, codecs -> 202 {id}
    POST /api/decode              multipart: file (a .tcm)                    -> 202 {id}
    GET  /api/jobs/{id}           state, stage, progress; results when done
    GET  /api/jobs/{id}/files/{name}   a decoded PNG or a coded file of that job

Requests are checked before any work is queued: an upload over the size limit is refused
with 413, a missing or malformed field with 400; a file that turns out not to be an image
fails its job with a message the page shows. Nothing is written to disk: uploads, results
and files live in memory (:mod:`tcmcodec.serve.jobs`), and file names in URLs are looked up
in the job's own table, never used as paths.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tcmcodec.serve import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD, comparison
from tcmcodec.serve.jobs import JobFailed, JobQueue

STATIC = Path(__file__).parent / "static"
QUALITY_RANGE = (0, 100)
DEFAULT_QUALITY = 60


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _upload(request: Request, max_upload: int, samples: bool = False) -> tuple[bytes, Any]:
    """The uploaded file's bytes (or, with ``samples``, a named sample's) and the form;
    refuses oversize bodies before reading them."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_upload + 64 * 1024:
        raise BadRequest(f"the upload is larger than {max_upload // 2**20} MB", 413)
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as exc:  # noqa: BLE001 - the multipart parser's errors vary by version
        raise BadRequest(f"the request is not a valid upload form ({exc})") from None
    upload = form.get("file")
    if samples and not isinstance(upload, UploadFile) and form.get("sample"):
        data = comparison.sample_bytes(str(form.get("sample")))
        if data is None:
            raise BadRequest(f"no sample named {form.get('sample')!r}")
        return data, form
    if not isinstance(upload, UploadFile):
        raise BadRequest("no file in the upload (form field 'file')")
    data = await upload.read(max_upload + 1)
    if len(data) > max_upload:
        raise BadRequest(f"the upload is larger than {max_upload // 2**20} MB", 413)
    if not data:
        raise BadRequest("the uploaded file is empty")
    return data, form


def _int_field(form: Any, name: str, low: int, high: int) -> int | None:
    text = form.get(name)
    if text in (None, ""):
        return None
    try:
        value = int(str(text))
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


def create_app(*, max_upload: int = DEFAULT_MAX_UPLOAD, max_pixels: int = DEFAULT_MAX_PIXELS) -> Starlette:
    """The app; one :class:`JobQueue` per app."""
    queue = JobQueue()

    async def config(request: Request) -> Response:
        from tcmcodec.evaluate.codecs import get_codec

        offered = [name for name in comparison.CLASSICAL_CODECS if get_codec(name).available()]
        samples = [{"name": name, "label": label} for name, (label, _) in comparison.SAMPLES.items()
                   if comparison.sample_bytes(name) is not None]
        return JSONResponse({"codecs": offered, "samples": samples, "quality": {"min": QUALITY_RANGE[0], "max": QUALITY_RANGE[1],
                                                            "default": DEFAULT_QUALITY},
                             "max_upload": max_upload, "max_pixels": max_pixels})

    async def compare(request: Request) -> Response:
        try:
            data, form = await _upload(request, max_upload, samples=True)
            quality = _int_field(form, "quality", *QUALITY_RANGE)
            max_bytes = _int_field(form, "max_bytes", 1, max_upload)
            if (quality is None) == (max_bytes is None):
                raise BadRequest("give either quality or max_bytes")
            names = [n for n in str(form.get("codecs") or "").split(",") if n]
            unknown = sorted(set(names) - set(comparison.CLASSICAL_CODECS))
            if unknown:
                raise BadRequest(f"unknown codecs {unknown}; offered: {list(comparison.CLASSICAL_CODECS)}")
            comparison.check_image_header(data, max_pixels)
        except BadRequest as exc:
            return _error(str(exc), exc.status)
        except JobFailed as exc:
            return _error(str(exc), 400)
        work = comparison.comparison(data, quality=quality, max_bytes=max_bytes, codecs=tuple(names),
                                     max_pixels=max_pixels)
        return JSONResponse({"id": queue.submit(work).id}, status_code=202)

    async def decode(request: Request) -> Response:
        try:
            data, _ = await _upload(request, max_upload)
            comparison.check_tcm_header(data, max_pixels)
        except BadRequest as exc:
            return _error(str(exc), exc.status)
        except JobFailed as exc:
            return _error(str(exc), 400)
        return JSONResponse({"id": queue.submit(comparison.decoding(data, max_pixels)).id}, status_code=202)

    async def job_state(request: Request) -> Response:
        job = queue.get(request.path_params["job_id"])
        if job is None:
            return _error("no such job (finished jobs are kept for a while only)", 404)
        return JSONResponse(job.public(queue.ahead_of(job)))

    async def job_file(request: Request) -> Response:
        job = queue.get(request.path_params["job_id"])
        entry = job.files.get(request.path_params["name"]) if job is not None else None
        if entry is None:
            return _error("no such file", 404)
        data, media = entry
        disposition = "inline" if media == "image/png" else "attachment"
        return Response(data, media_type=media, headers={
            "Content-Disposition": f'{disposition}; filename="{request.path_params["name"]}"',
            "Cache-Control": "private, max-age=3600"})

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    routes = [
        Route("/", index),
        Route("/api/config", config),
        Route("/api/compare", compare, methods=["POST"]),
        Route("/api/decode", decode, methods=["POST"]),
        Route("/api/jobs/{job_id}", job_state),
        Route("/api/jobs/{job_id}/files/{name}", job_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        queue.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.queue = queue
    return app
