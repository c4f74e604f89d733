"""The FastAPI app: the REST API, with the Gradio UI mounted at ``/ui``.

Answers: 200 with the result; 413 for a body over ``max_upload_bytes`` or an image over
``max_pixels``; 422 for bad options or an unreadable image (one-line ``detail``); 429 with
``Retry-After`` when the queue is full; 503 when the worker is not running or the request did
not finish within ``timeout_s`` (it is then cancelled). No other 5xx is expected.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from PIL import Image
from pydantic import ValidationError

from pixwizard import __version__
from pixwizard.imageio import ImageError, load_image
from pixwizard.serve.config import ServeConfig
from pixwizard.serve.engine import Busy, Cancelled, Engine, JobOptions, JobResult, Unavailable
from pixwizard.serve.examples import CODEC_OUTPUTS, task_examples
from pixwizard.serve.schemas import (Alternative, ErrorOut, FileOut, Health, QueueOut, RouteOut, RunOptions,
                                     RunResponse, TaskOut, TasksResponse, Timings)
from pixwizard.tasks.registry import REGISTRY, get_task

log = logging.getLogger(__name__)

MEDIA_TYPES = {".png": "image/png", ".json": "application/json", ".npy": "application/octet-stream"}
OPTIONS_EXAMPLE = '{"instruction": "remove the noise", "steps": 2, "seed": 0}'
ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in (
    (400, "a malformed multipart body"), (413, "the upload or the image is over the limit"), (422, "bad options or not a readable image"),
    (429, "the queue is full: retry after Retry-After seconds"),
    (503, "the model worker is not running, or the request timed out and was cancelled"))}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes, by Content-Length or while streaming."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            response = JSONResponse({"detail": BodyTooLarge(self.limit).detail}, status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        return await self.app(scope, limited, send)


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """Bytes -> HxWx3 uint8; 413 over the pixel limit (read from the header), 422 if unreadable."""
    if not data:
        raise HTTPException(422, "the image part is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
        if w * h > max_pixels:
            raise HTTPException(413, f"the image has {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
    except HTTPException:
        raise
    except Exception:
        pass  # load_image below gives the precise one-line reason
    try:
        return load_image(data, max_pixels=max_pixels)
    except ImageError as e:
        raise HTTPException(422, str(e).replace("<bytes>", "the uploaded image")) from None
    except Exception as e:  # any decoder failure is a bad upload, not a server error
        raise HTTPException(422, f"the uploaded image could not be decoded ({type(e).__name__})") from None


def _file_out(job_id: str, path: Path) -> FileOut:
    return FileOut(filename=path.name, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                   url=f"/v1/results/{job_id}/{path.name}", data_base64=base64.b64encode(path.read_bytes()).decode())


def run_response(jr: JobResult) -> RunResponse:
    r = jr.result
    route = None
    if jr.route is not None:
        route = RouteOut(task=jr.route.task, confidence=jr.route.confidence, low_confidence=jr.route.low_confidence,
                         no_match=jr.route.no_match,
                         alternatives=[Alternative(task=t, confidence=p) for t, p in jr.route.alternatives])
    return RunResponse(
        id=jr.id, instruction=r.instruction, task=jr.task, route=route, width=r.image.shape[1],
        height=r.image.shape[0], steps=r.steps, shifts=r.shifts, tiles=r.tiles, seed=r.seed, working_size=list(r.working_size),
        untrained=r.untrained, notes=r.notes, boxes=r.decoded.boxes if r.decoded is not None else None,
        image=_file_out(jr.id, jr.files["image"]),
        outputs={k: _file_out(jr.id, p) for k, p in jr.files.items() if k != "image"},
        timings=Timings(queued_s=round(jr.queued_s, 4), run_s=round(jr.run_s, 4)))


def _one_line(e: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def create_app(engine: Engine, config: ServeConfig = ServeConfig(), *, ui: bool = True,
               model_name: str = "pixwizard") -> FastAPI:
    """The app around a started ``engine``; ``ui`` mounts the Gradio UI at ``/ui``."""
    max_pixels = min(config.max_pixels or engine.pipe.config.max_pixels, engine.pipe.config.max_pixels)
    app = FastAPI(title="PixWizard", version=__version__,
                  description="One image and a free-form instruction in, an image and typed outputs back. "
                              "The web UI is at /ui.")
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes)
    started = time.monotonic()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        return JSONResponse({"detail": _one_line(e)}, status_code=422)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz():
        health = Health(status="ok" if engine.running else "stopped", model=model_name, device=str(engine.pipe.device),
                        queue=QueueOut(waiting=engine.waiting, capacity=engine.queue_size, busy=engine.busy,
                                       progress=engine.current_progress),
                        completed=engine.completed, failed=engine.failed,
                        uptime_s=round(time.monotonic() - started, 3))
        return JSONResponse(health.model_dump(), status_code=200 if engine.running else 503)

    @app.get("/v1/tasks", response_model=TasksResponse)
    async def tasks():
        return TasksResponse(tasks=[TaskOut(id=s.id, domain=s.domain, title=s.title, codec=s.codec,
                                            outputs=list(CODEC_OUTPUTS.get(s.codec, ())), examples=task_examples(s.id))
                                    for s in REGISTRY.values()])

    @app.post("/v1/run", response_model=RunResponse, responses=ERRORS)
    async def run(image: UploadFile = File(..., description="the input image (PNG, JPEG, WebP, TIFF, ...)"),
                  options: str = Form(..., description="JSON object: instruction (required), task, steps, "
                                                        "text_guidance, image_guidance, seed, size, shifts, tile",
                                      examples=[OPTIONS_EXAMPLE])):
        try:
            opts = RunOptions.model_validate_json(options)
        except ValidationError as e:
            raise HTTPException(422, f"options: {_one_line(e)}") from None
        if not opts.instruction.strip():
            raise HTTPException(422, "options: the instruction is empty: say what to do with the image")
        if opts.steps is not None and opts.steps > config.max_steps:
            raise HTTPException(422, f"options: steps must be at most {config.max_steps}, got {opts.steps}")
        if opts.size is not None and opts.size > config.max_size:
            raise HTTPException(422, f"options: size must be at most {config.max_size}, got {opts.size}")
        if opts.task is not None:
            try:
                get_task(opts.task)
            except ValueError as e:
                raise HTTPException(422, f"options: {e}") from None
        data = await image.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise BodyTooLarge(config.max_upload_bytes)
        array = await run_in_threadpool(decode_upload, data, max_pixels)
        job_options = JobOptions(**opts.model_dump())
        try:
            job = engine.submit(array, job_options)
        except Busy as e:
            raise HTTPException(429, str(e), headers={"Retry-After": str(e.retry_after)}) from None
        except Unavailable as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "5"}) from None
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        try:
            jr = await asyncio.wait_for(asyncio.wrap_future(job.future), config.timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            job.cancel()
            raise HTTPException(503, f"the request did not finish within {config.timeout_s:g} s and was cancelled",
                                headers={"Retry-After": "5"}) from None
        except asyncio.CancelledError:  # this request's task was cancelled (server shutting down)
            job.cancel()
            raise
        except (Unavailable, Cancelled) as e:
            raise HTTPException(503, f"the request was not run: {e}", headers={"Retry-After": "5"}) from None
        except ValueError as e:  # the pipeline's one-line input errors
            raise HTTPException(422, str(e)) from None
        return await run_in_threadpool(run_response, jr)

    @app.get("/v1/results/{job_id}/{filename}", responses={404: {"model": ErrorOut}})
    async def result_file(job_id: str, filename: str):
        path = engine.result_file(job_id, filename)
        if path is None:
            raise HTTPException(404, "no such result file (only recent results are kept)")
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))

    if ui:
        from pixwizard.serve.ui import mount_ui

        mount_ui(app, engine, config)

        @app.get("/", include_in_schema=False)
        async def root():
            return RedirectResponse("/ui/")
    return app


def options_json(**options) -> str:
    """The ``options`` form field for ``POST /v1/run`` (clients and tests)."""
    return json.dumps({k: v for k, v in options.items() if v is not None})
