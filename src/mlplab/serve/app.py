"""`create_app`: the web app of `mlplab serve` (the page and its JSON API) for one run directory.

Routes stay thin: reading a request is `mlplab.serve.inputs`, classifying is
`mlplab.serve.model.ServedModel`, running it is `mlplab.serve.pool.WorkPool`: a fixed number
of worker threads, never the event loop, so the page, ``/health`` and other clients are
answered while a large photo is being read; a heavy image waits in its own lane, so it never
holds up a drawing. Every request passes `mlplab.serve.guard` first (the Host check, and
``nosniff`` on every answer). Every error is JSON ``{"error": "<one line>"}`` with its status;
nothing a client sends can give a 500 or stop the server.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' parameter annotations
# (``request: Request``) at definition time, and Request is imported inside `add_routes`.
import asyncio
import math
from collections.abc import Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.errors import MlplabError
from mlplab.serve.extra import require_serve_extra
from mlplab.serve.guard import NOSNIFF, Guard, HostPolicy
from mlplab.serve.inputs import LIGHT_BYTES, LIGHT_PIXELS, RequestError, read_image_source
from mlplab.serve.pool import PoolFull, WorkPool

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlplab.runs.reader import Run
    from mlplab.serve.inputs import ImageSource
    from mlplab.serve.model import ServedModel

MAX_UPLOAD_BYTES = 10_000_000  # a request body; a phone photo is 2-5 MB, a drawn canvas 5-20 kB
TIMEOUT_S = 10.0  # reading a request, waiting for a worker and classifying; a 12-megapixel PNG takes about 0.4 s
WORKERS = 4  # predictions computing at once, each on a worker thread: the threads there are
HEAVY_WORKERS = 1  # of those, how many may work on heavy images (the rest are always left to light ones)
# Requests that may wait for a worker: light ones take about 0.05 s (64 wait under 2 s on two
# cores), heavy ones up to 0.5 s (4 wait about 2 s); beyond, 503 with Retry-After.
QUEUE = 64
HEAVY_QUEUE = 4
RETRY_AFTER_S = 2  # what a 503 asks a client to wait before trying again
# The page's only sources are itself and this server (its one script file, /static/pad.js): no CDN,
# no external font, works offline. mlplab studio's page has the same.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
)
ROUTES = (
    "the page is GET / (and its script GET /static/pad.js), the API POST /api/predict, GET /api/model and GET /health"
)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server, and how many are worked on at once; each must be
    positive, and ``heavy_workers`` at most ``workers``. Images are limited to
    `mlplab.digits.MAX_PIXELS` pixels (413 beyond), the one limit `mlplab predict` has too."""

    max_upload_bytes: int = MAX_UPLOAD_BYTES  # the largest request body (413 beyond)
    timeout_s: float = TIMEOUT_S  # the longest a prediction request may take, upload and wait included (503 beyond)
    workers: int = WORKERS  # worker threads: predictions computing at once, abandoned ones included
    heavy_workers: int = HEAVY_WORKERS  # of those, the most that may work on heavy images at once
    queue: int = QUEUE  # light requests that may wait for a worker (503 beyond)
    heavy_queue: int = HEAVY_QUEUE  # heavy requests that may wait for a heavy worker (503 beyond)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise MlplabError(f"{name} must be a positive number; got {value!r}")
        if self.heavy_workers > self.workers:
            raise MlplabError(f"heavy_workers must be at most workers ({self.workers}); got {self.heavy_workers}")


def create_app(
    run_dir: "str | Path | Run", *, host: str = "127.0.0.1", allow_hosts: Iterable[str] = (), **limits: Any
) -> "FastAPI":
    """The FastAPI app serving the best model of ``run_dir`` (see `mlplab.Run`).

    Args:
        run_dir: a run directory written by ``mlplab train``, or a `mlplab.Run` already open
            (``create_app(mlplab.pretrained())`` serves the digits model); a path that is no run,
            or a run of a user-defined model, raises `MlplabError` here, before any server starts.
        host: the address the server listens on. Requests are answered only when their Host
            header names localhost or an IP address (a loopback one when ``host`` is loopback)
            or ``host`` itself: a defence against DNS rebinding (`mlplab.serve.guard`).
        allow_hosts: more host names to answer to (``"*"``: any).
        limits: fields of `Limits` (``max_upload_bytes``, ``timeout_s``, ``workers``,
            ``heavy_workers``, ``queue``, ``heavy_queue``); the rest keep their defaults.

    Routes: ``GET /`` the page, ``POST /api/predict``, ``GET /api/model``, ``GET /health``
    (``HEAD`` too, for the GET routes; see `mlplab.serve`). Run it with ``uvicorn.run(app)``.
    """
    require_serve_extra()
    from fastapi import FastAPI

    from mlplab.serve.model import ServedModel

    unknown = sorted(set(limits) - set(Limits.__dataclass_fields__))
    if unknown:  # max_pixels among them: the pixel limit is mlplab.digits.MAX_PIXELS, shared with predict
        raise MlplabError(
            f"unknown limit {', '.join(unknown)}; the limits are "
            f"{', '.join(Limits.__dataclass_fields__)} (images: mlplab.digits.MAX_PIXELS)"
        )
    checked = Limits(**limits)
    served = ServedModel(run_dir)
    pool = WorkPool(checked.workers, checked.heavy_workers, checked.queue, checked.heavy_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()  # threads end after their current job; a server started again starts new ones

    app = FastAPI(title="mlplab serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.served = served  # what the routes answer with (tests may swap its predict)
    app.state.pool = pool  # the worker threads (tests count them)
    app.state.hosts = HostPolicy.for_bind(host, allow_hosts)  # the Host headers answered
    add_routes(app, served, pool, checked)
    add_error_handlers(app, ROUTES)
    app.add_middleware(Guard, policy=app.state.hosts)
    return app


def add_routes(app: "FastAPI", served: "ServedModel", pool: WorkPool, limits: Limits) -> None:
    """The page, the prediction (read the request, then classify on a worker thread, all within
    the time limit), the model's description and the health check; GET routes answer HEAD too."""
    import anyio
    from fastapi import Request
    from fastapi.responses import HTMLResponse

    page = page_html()

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def index():
        return HTMLResponse(
            page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
        )

    add_pad_script(app)

    @app.api_route("/api/model", methods=["GET", "HEAD"])
    async def model_info():
        return served.info

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health():
        return {"status": "ok"}

    @app.post("/api/predict")
    async def predict(request: Request):
        try:
            with anyio.fail_after(limits.timeout_s):
                source = await read_image_source(request, max_bytes=limits.max_upload_bytes)
                return await run_on_pool(pool, served, source)
        except TimeoutError:
            raise RequestError(
                503,
                f"the prediction took longer than {limits.timeout_s:g} s (the server is busy, "
                "or the image is very large); try again, or send a smaller image",
                retry_after(),
            ) from None


async def run_on_pool(pool: WorkPool, served: "ServedModel", source: "ImageSource") -> dict[str, Any]:
    """``served.predict`` of ``source`` on a worker thread, in its lane; 503 when the lane is full.

    When the request is cancelled (its time is up), a job still waiting is dropped; a running
    one finishes on its thread, which it keeps until then, so the work never exceeds the limit.
    """
    try:
        future = pool.submit(served.predict, source.data, source.name, heavy=source.heavy)
    except PoolFull as full:
        raise RequestError(503, busy_message(full), retry_after()) from None
    return await asyncio.wrap_future(future)  # cancelling this cancels the job too


def busy_message(full: PoolFull) -> str:
    """Why a request is refused when its lane is full, and what to do."""
    if full.heavy:
        return (
            f"the server is busy with large images ({full.waiting} already waiting); try again in "
            f"{RETRY_AFTER_S} s, or send a smaller one: images up to {math.isqrt(LIGHT_PIXELS)}x"
            f"{math.isqrt(LIGHT_PIXELS)} pixels and {LIGHT_BYTES / 1e6:g} MB are served first"
        )
    return f"the server is busy ({full.waiting} requests already waiting); try again in {RETRY_AFTER_S} s"


def retry_after() -> dict[str, str]:
    """The headers of a 503: when to try again."""
    return {"Retry-After": str(RETRY_AFTER_S)}


def add_pad_script(app: "FastAPI") -> None:
    """``GET /static/pad.js``: the drawing pad, one script shared by mlplab serve's and mlplab studio's pages."""
    from importlib.resources import files

    from fastapi.responses import Response

    script = files("mlplab.serve").joinpath("static", "pad.js").read_text(encoding="utf-8")

    @app.api_route("/static/pad.js", methods=["GET", "HEAD"])
    async def pad_script():
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def page_html() -> str:
    """The page (``static/index.html``, package data): one file, its CSS and JavaScript inline."""
    from importlib.resources import files

    return files("mlplab.serve").joinpath("static", "index.html").read_text(encoding="utf-8")


def add_error_handlers(app: "FastAPI", routes: str) -> None:
    """Make every error a JSON ``{"error": "<one line>"}``: refused requests with their status,
    unreadable images 400, images over the pixel limit 413, images without a digit 422, unknown
    routes 404 (naming ``routes``, the app's routes in words), and a bug 500."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from mlplab.digits import ImageTooLarge, NoDigitFound, NotAnImage

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> Any:
        return error_response(error.status, str(error), headers=error.headers)

    @app.exception_handler(ImageTooLarge)
    async def too_large(request: Request, error: ImageTooLarge) -> Any:
        return error_response(413, str(error))

    @app.exception_handler(NoDigitFound)
    async def no_digit(request: Request, error: NoDigitFound) -> Any:
        return error_response(422, f"{error}; draw a digit, or upload an image of one")

    @app.exception_handler(NotAnImage)
    @app.exception_handler(MlplabError)
    async def unreadable(request: Request, error: MlplabError) -> Any:
        return error_response(400, str(error))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Any:
        if error.status_code == 404:
            message = f"no such page: {request.url.path}; {routes}"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; {routes}"
        else:
            message = " ".join(str(error.detail).split())
        return error_response(error.status_code, message, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Any:
        return error_response(422, f"invalid request: {' '.join(str(error).split())[:200]}")

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> Any:
        return error_response(500, f"internal error ({type(error).__name__}); see the server's log")


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Any:
    """``{"error": message}`` with ``status``, and ``nosniff``: a 500 is sent from outside every
    middleware (Starlette's outermost layer answers it), so `Guard` cannot add it there."""
    from fastapi.responses import JSONResponse

    nosniff = {NOSNIFF[0].decode(): NOSNIFF[1].decode()}
    return JSONResponse({"error": message}, status_code=status, headers={**(headers or {}), **nosniff})
