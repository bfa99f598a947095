"""`create_app`: the web app of `mlplab serve` (the page and its JSON API) for one run directory.

Routes stay thin: reading a request is `mlplab.serve.inputs`, classifying is
`mlplab.serve.model.ServedModel`. The model runs in worker threads (at most ``workers`` at
once, the rest wait their turn), never on the event loop, so the page, ``/health`` and other
clients are answered while a large photo is being read. Every error is JSON
``{"error": "<one line>"}`` with its status; nothing a client sends can give a 500 or stop
the server.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' parameter annotations
# (``request: Request``) at definition time, and Request is imported inside `add_routes`.
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.errors import MlplabError
from mlplab.serve.extra import require_serve_extra
from mlplab.serve.inputs import RequestError, read_image_source

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlplab.serve.model import ServedModel

MAX_UPLOAD_BYTES = 10_000_000  # a request body; a phone photo is 2-5 MB, a drawn canvas 5-20 kB
MAX_PIXELS = 16_000_000  # an image's width x height; a 12-megapixel photo fits, a 50 kB PNG "bomb" does not
TIMEOUT_S = 10.0  # reading a request and classifying it; a 4000x3000 photo takes about 2 s on one core
WORKERS = 4  # predictions running at once in worker threads
# The page's only sources are itself and this server: no CDN, no external font, works offline.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                           "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'")
ROUTES = "the page is GET /, the API POST /api/predict, GET /api/model and GET /health"


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; each must be positive."""

    max_upload_bytes: int = MAX_UPLOAD_BYTES  # the largest request body (413 beyond)
    max_pixels: int = MAX_PIXELS  # the most pixels, width x height, an image may declare (413 beyond)
    timeout_s: float = TIMEOUT_S  # the longest a prediction request may take, upload included (503 beyond)
    workers: int = WORKERS  # predictions running at once, each in a worker thread

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise MlplabError(f"{name} must be a positive number; got {value!r}")


def create_app(run_dir: str | Path, *, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
               timeout_s: float = TIMEOUT_S, workers: int = WORKERS) -> "FastAPI":
    """The FastAPI app serving the best model of ``run_dir`` (see `mlplab.Run`).

    Args:
        run_dir: a run directory written by ``mlplab train``; a path that is none, or a run of a
            user-defined model, raises `MlplabError` here, before any server starts.
        max_upload_bytes: the largest request body accepted (413 beyond).
        max_pixels: the most pixels (width x height) an uploaded image may declare (413 beyond).
        timeout_s: the longest a prediction request may take, upload included (503 beyond).
        workers: how many predictions run at once, each in a worker thread.

    Routes: ``GET /`` the page, ``POST /api/predict``, ``GET /api/model``, ``GET /health``
    (see `mlplab.serve`). Run it with ``uvicorn.run(app)``, or test it with
    ``fastapi.testclient.TestClient(app)``.
    """
    require_serve_extra()
    from fastapi import FastAPI

    from mlplab.serve.model import ServedModel

    limits = Limits(max_upload_bytes, max_pixels, timeout_s, workers)
    served = ServedModel(run_dir)
    app = FastAPI(title="mlplab serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served = served  # what the routes answer with (tests may swap its predict)
    add_routes(app, served, limits)
    add_error_handlers(app)
    return app


def add_routes(app: "FastAPI", served: "ServedModel", limits: Limits) -> None:
    """The page, the prediction (read the request, then classify in a worker thread, all within
    the time limit), the model's description and the health check."""
    import anyio
    import anyio.to_thread
    from fastapi import Request
    from fastapi.responses import HTMLResponse

    page = page_html()
    limiter = anyio.CapacityLimiter(limits.workers)

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                           "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    @app.get("/api/model")
    async def model_info():
        return served.info

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/api/predict")
    async def predict(request: Request):
        try:
            with anyio.fail_after(limits.timeout_s):
                source, name = await read_image_source(request, max_bytes=limits.max_upload_bytes,
                                                       max_pixels=limits.max_pixels)
                # On timeout the thread is abandoned: it finishes its one image, and the answer is dropped.
                return await anyio.to_thread.run_sync(served.predict, source, name, limiter=limiter,
                                                      abandon_on_cancel=True)
        except TimeoutError:
            raise RequestError(503, f"the prediction took longer than {limits.timeout_s:g} s (the server is busy, "
                                    "or the image is very large); try again, or send a smaller image") from None


def page_html() -> str:
    """The page (``static/index.html``, package data): one file, its CSS and JavaScript inline."""
    from importlib.resources import files

    return files("mlplab.serve").joinpath("static", "index.html").read_text(encoding="utf-8")


def add_error_handlers(app: "FastAPI") -> None:
    """Make every error a JSON ``{"error": "<one line>"}``: refused requests with their status,
    unreadable images 400, images without a digit 422, unknown routes 404, and a bug 500."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from mlplab.digits import NoDigitFound, NotAnImage

    async def refused(request: Request, error: RequestError) -> Any:
        return error_response(error.status, str(error))

    async def no_digit(request: Request, error: NoDigitFound) -> Any:
        return error_response(422, f"{error}; draw a digit, or upload an image of one")

    async def unreadable(request: Request, error: MlplabError) -> Any:
        return error_response(400, str(error))

    async def http_error(request: Request, error: HTTPException) -> Any:
        if error.status_code == 404:
            message = f"no such page: {request.url.path}; {ROUTES}"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; {ROUTES}"
        else:
            message = " ".join(str(error.detail).split())
        return error_response(error.status_code, message, headers=error.headers)

    async def invalid(request: Request, error: RequestValidationError) -> Any:
        return error_response(422, f"invalid request: {' '.join(str(error).split())[:200]}")

    async def bug(request: Request, error: Exception) -> Any:
        return error_response(500, f"internal error ({type(error).__name__}); see the server's log")

    app.add_exception_handler(RequestError, refused)
    app.add_exception_handler(NoDigitFound, no_digit)
    app.add_exception_handler(NotAnImage, unreadable)
    app.add_exception_handler(MlplabError, unreadable)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, bug)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    """``{"error": message}`` with ``status``."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers=headers)
