"""`mlplab serve`: a web page where you draw a digit and watch a trained run's model read it.

Needs the ``serve`` extra (``pip install "mlplab[serve]"``: FastAPI, uvicorn, python-multipart);
nothing else in mlplab imports it. The pieces, one responsibility each::

    extra     require_serve_extra: the one-line error when the extra is missing
    model     ServedModel: a run's model loaded once, answering from several threads
    inputs    what a request may carry (an image upload, a raw image, JSON pixels), its limits, its weight
    pool      WorkPool: the worker threads, a fixed number, light requests first, heavy ones in their own lane
    guard     the Host check (against DNS rebinding) and nosniff on every answer
    app       create_app: the FastAPI app (the page and the JSON API)
    server    listen, url, run_server: a socket bound before uvicorn starts, so a taken port is one line
    static/   index.html, the page: inline CSS and JavaScript, no external assets

From Python (a notebook, or your own server)::

    from mlplab.serve import create_app
    app = create_app("runs/mnist")          # then: uvicorn.run(app), or TestClient(app)

The API: ``GET /`` the page, ``POST /api/predict`` an image (multipart field ``image``, a raw
image/png|jpeg|webp|gif body, or JSON ``{"pixels": [784 numbers]}``), ``GET /api/model`` the
model's description, ``GET /health`` (the GET routes answer HEAD too). Every error is JSON
``{"error": "..."}`` with a 4xx status (503, with Retry-After, when the server is too busy to
queue a request or a prediction takes longer than the time limit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

_EXPORTS = {
    "create_app": "app",
    "ServedModel": "model",
    "require_serve_extra": "extra",
    "listen": "server",
    "url": "server",
    "run_server": "server",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.serve.app import create_app as create_app
    from mlplab.serve.extra import require_serve_extra as require_serve_extra
    from mlplab.serve.model import ServedModel as ServedModel
    from mlplab.serve.server import listen as listen
    from mlplab.serve.server import run_server as run_server
    from mlplab.serve.server import url as url

__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
