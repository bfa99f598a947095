"""`create_studio_app`: the web app of `mlplab studio`: the page, its JSON API and its event stream.

Routes stay thin: what a run is and how it is steered is `mlplab.studio.session.Studio`; reading
an image is `mlplab.serve.inputs` and `mlplab.digits.to_mnist`, as for `mlplab serve`, whose
Host check (`mlplab.serve.guard`) and JSON errors (`mlplab.serve.app.add_error_handlers`) this app
shares. Looking inside the model runs on worker threads, never the event loop; training runs on
its own thread. The page's live picture is pushed as Server-Sent Events (``GET /api/events``).

Who may do what: anyone who can open the page may watch, draw and pick test images. Starting,
steering and stopping a run (the POST routes under ``/api/`` except ``/api/inspect``) need

- a JSON body (``Content-Type: application/json``, ``{}`` where there is nothing to say): a web
  page elsewhere cannot send one to this server without the browser asking it first, which it
  never agrees to, so no other site open in a student's browser can steer the class's run;
- the token, when the app has one (``X-Mlplab-Token: <token>``; 401 without, 403 wrong):
  `mlplab studio` makes one whenever it listens beyond this machine, and prints the page's
  address with it, as Jupyter does.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at definition time.
import asyncio
import json
import secrets
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.errors import MlplabError
from mlplab.serve.extra import require_serve_extra
from mlplab.serve.guard import Guard, HostPolicy
from mlplab.serve.inputs import RequestError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlplab.studio.session import Studio

TOKEN_HEADER = "X-Mlplab-Token"
MAX_JSON_BYTES = 10_000  # a run's settings are a few hundred bytes
MAX_IMAGE_BYTES = 2_000_000  # a drawn canvas is 5-20 kB
KEEPALIVE_S = 15.0  # a comment on an idle event stream, so proxies and browsers keep it open
CLOSING_CHECK_S = 0.25  # how often an idle event stream looks whether the server is stopping
INSPECTORS = 4  # drawings and test images looked at at once (on worker threads)
ROUTES = (
    "the page is GET / (and its script GET /static/pad.js); the API: GET /api/options, /api/state, "
    "/api/events (Server-Sent Events), /api/test-image; "
    "POST /api/runs, /api/pause, /api/resume, /api/stop, /api/settings, /api/inspect"
)


def create_studio_app(
    runs_root: str | Path = "runs",
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    allow_hosts: Iterable[str] = (),
) -> "FastAPI":
    """The FastAPI app of the studio: set up a run, watch it train, steer it, look inside its model.

    Args:
        runs_root: where new runs are made, one folder each (``runs/mnist-mlp-<time>``).
        host: the address the server listens on (the Host check of `mlplab.serve.guard`).
        token: the secret that starting, steering and stopping need (header ``X-Mlplab-Token``);
            None: none needed (`mlplab studio` makes one whenever ``host`` is not loopback).
        allow_hosts: more host names to answer to (``"*"``: any).

    ``app.state.studio`` is the `mlplab.studio.session.Studio`; run the app with ``uvicorn.run(app)``.
    A server that stops aborts the run under way before its next step: its run directory keeps
    the last saved epoch, which ``mlplab train --resume`` continues.
    """
    require_serve_extra("mlplab studio")
    from fastapi import FastAPI

    from mlplab.serve.app import add_error_handlers
    from mlplab.studio.session import Studio

    if token is not None and (not isinstance(token, str) or len(token) < 8 or not token.isprintable()):
        raise MlplabError("a token must be at least 8 printable characters; leave it out to need none")
    studio = Studio(runs_root)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(studio.shutdown)

    app = FastAPI(title="mlplab studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.studio, app.state.token = studio, token
    app.state.hosts = HostPolicy.for_bind(host, allow_hosts)
    add_page_routes(app, studio)
    add_control_routes(app, studio, token)
    add_look_routes(app, studio)
    add_error_handlers(app, ROUTES)
    add_studio_errors(app)
    app.add_middleware(Guard, policy=app.state.hosts, command="mlplab studio")
    return app


def new_token() -> str:
    """A fresh token: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def add_page_routes(app: "FastAPI", studio: "Studio") -> None:
    """The page, the health check, the form's choices, the state and the event stream."""
    from fastapi import Request
    from fastapi.responses import HTMLResponse, StreamingResponse

    from mlplab.serve.app import CONTENT_SECURITY_POLICY, add_pad_script

    add_pad_script(app)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def index():
        return HTMLResponse(
            page_html(),
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Cache-Control": "no-cache",
                "Referrer-Policy": "no-referrer",
            },
        )

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health():
        return {"status": "ok", "studio": studio.status, "watchers": studio.hub.watchers}

    @app.get("/api/options")
    async def options():
        return studio_options(app.state.token is not None)

    @app.get("/api/state")
    async def state():
        return studio.state()

    @app.get("/api/events")
    async def events(request: Request):
        queue, hello = studio.watch()
        return StreamingResponse(
            event_stream(studio, queue, hello),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


async def event_stream(studio: "Studio", queue: asyncio.Queue, hello: str):
    """A browser's events: the whole picture first, then each event as it comes, a keep-alive when idle."""
    from mlplab.studio.session import RESYNC, sse

    loop = asyncio.get_running_loop()
    try:
        yield hello
        idle_since = loop.time()
        # A server stopping waits for open responses: each stream ends itself once it is told.
        while not studio.closing.is_set():
            try:
                event = await asyncio.wait_for(queue.get(), timeout=CLOSING_CHECK_S)
            except TimeoutError:
                if loop.time() - idle_since >= KEEPALIVE_S:
                    idle_since = loop.time()
                    yield ": keep-alive\n\n"
                continue
            idle_since = loop.time()
            yield sse("hello", studio.state()) if event == RESYNC else event
    finally:
        studio.hub.unsubscribe(queue)


def add_control_routes(app: "FastAPI", studio: "Studio", token: str | None) -> None:
    """Start, pause, resume, stop and retune a run: a JSON body and, when the app has one, the token."""
    from fastapi import Request

    async def control(request: Request) -> Any:
        """The request's JSON body (None when empty), once its token and content type pass."""
        check_token(request.headers.get(TOKEN_HEADER), token)
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            raise RequestError(
                415,
                f"send a JSON body (Content-Type: application/json; {{}} when there is nothing "
                f"to say), not {media or 'no content type'}",
            )
        return await read_json(request)

    @app.post("/api/runs", status_code=202)
    async def start(request: Request):
        fields = await control(request)
        run = await asyncio.to_thread(settled, studio.start, fields if fields is not None else {})
        return {"run": run}

    def status_route(action: Any) -> Any:
        """A route that takes no settings and answers with the studio's new status."""

        async def route(request: Request):
            await control(request)
            return {"status": settled(action)}

        return route

    for name, action in (("pause", studio.pause), ("resume", studio.resume), ("stop", studio.stop)):
        app.add_api_route(f"/api/{name}", status_route(action), methods=["POST"], name=name)

    @app.post("/api/settings")
    async def settings(request: Request):
        changes = await control(request)
        return {"pending": settled(studio.settings, changes)}


def settled(action: Any, *args: Any) -> Any:
    """``action(*args)``, a bad setting answered 422 (a `Busy` studio is 409, by its handler)."""
    from mlplab.studio.session import Busy

    try:
        return action(*args)
    except (Busy, RequestError):
        raise
    except MlplabError as error:
        raise RequestError(422, " ".join(str(error).split())) from None


def check_token(given: str | None, token: str | None) -> None:
    """Refuse a control request without the app's token (401) or with another (403)."""
    if token is None:
        return
    if not given:
        raise RequestError(
            401,
            f"starting, steering and stopping need the token printed when the studio started: "
            f"open the page by the address with ?token=..., or send the {TOKEN_HEADER} header",
        )
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise RequestError(403, "the token is wrong: use the one printed when the studio started")


async def read_json(request: Any) -> Any:
    """The body as JSON (None when empty); 413 beyond `MAX_JSON_BYTES`, 400 for what is not JSON."""
    from mlplab.serve.inputs import read_body

    body = await read_body(request, MAX_JSON_BYTES)
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "the body is not valid JSON") from None


def add_look_routes(app: "FastAPI", studio: "Studio") -> None:
    """Look inside the model being trained: a drawing, or a test image (anyone may: they change nothing)."""
    import anyio
    from fastapi import Request

    limiter = anyio.CapacityLimiter(INSPECTORS)

    @app.post("/api/inspect")
    async def inspect(request: Request):
        from mlplab.digits import to_mnist
        from mlplab.serve.inputs import read_image_source

        studio.require_model()  # 409 before the image is read: there is nothing to show it to
        source = await read_image_source(request, max_bytes=MAX_IMAGE_BYTES)

        def look() -> dict[str, Any]:
            return studio.inspect(to_mnist(source.data, source.name))

        return await anyio.to_thread.run_sync(look, limiter=limiter)

    @app.get("/api/test-image")
    async def test_image(index: str | None = None):
        number = None
        if index not in (None, ""):
            try:
                number = int(index)
            except ValueError:
                raise RequestError(422, f"index must be a whole number; got {index[:20]!r}") from None
        return await anyio.to_thread.run_sync(settled, studio.test_image, number, limiter=limiter)


def add_studio_errors(app: "FastAPI") -> None:
    """409 for what the studio's state does not allow (a second run, no model yet: `Busy`)."""
    from starlette.requests import Request

    from mlplab.serve.app import error_response
    from mlplab.studio.session import Busy

    @app.exception_handler(Busy)  # NoModelYet too
    async def conflict(request: Request, error: MlplabError) -> Any:
        return error_response(409, str(error))


def studio_options(token_required: bool) -> dict[str, Any]:
    """What the page's set-up form offers (`GET /api/options`)."""
    from mlplab import choices
    from mlplab.config import MOMENTUM_OPTIMIZERS, PRESETS
    from mlplab.studio.session import DEFAULTS

    presets = {
        name: {key: list(value) if isinstance(value, tuple) else value for key, value in fields.items()}
        for name, fields in PRESETS.items()
    }
    return {
        "presets": presets,
        "choices": {
            "dataset": list(choices.DATASETS),
            "activation": list(choices.ACTIVATIONS),
            "optimizer": list(choices.OPTIMIZERS),
            "augment": list(choices.AUGMENTS),
            "scheduler": list(choices.SCHEDULERS),
        },
        "defaults": dict(DEFAULTS),
        "momentum_optimizers": list(MOMENTUM_OPTIMIZERS),
        "token_required": token_required,
    }


def page_html() -> str:
    """The page (``static/index.html``, package data): one file, its CSS and JavaScript inline."""
    from importlib.resources import files

    return files("mlplab.studio").joinpath("static", "index.html").read_text(encoding="utf-8")
