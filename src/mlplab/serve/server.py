"""Running the app: a socket bound first (a taken port is one line, not a uvicorn traceback),
then uvicorn serving on it until Ctrl+C."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlplab.errors import MlplabError

if TYPE_CHECKING:
    from fastapi import FastAPI


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` and listening (port 0: a free one, see `url`).
    Raises `MlplabError` (one line) when the address cannot be used."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, protocol)
    except OSError as error:  # socket.gaierror: a host name that does not resolve
        raise MlplabError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; give --host an address "
            "of this machine, e.g. 127.0.0.1"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once after Ctrl+C, as uvicorn does
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise MlplabError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; choose another --port "
            "(--port 0 picks a free one)"
        ) from None
    return sock


def url(sock: socket.socket) -> str:
    """The address a browser opens for a socket from `listen`; a wildcard host becomes localhost."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def run_server(app: FastAPI, sock: socket.socket, on_exit: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on ``sock`` with uvicorn until interrupted (Ctrl+C stops it cleanly).
    Only warnings are logged: the page asks for a prediction at every pause in drawing.

    ``on_exit`` is called first when Ctrl+C (or SIGTERM) asks the server to stop: uvicorn waits for
    the responses under way, so open event streams must be told to end (`mlplab studio`)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if on_exit is not None:
                on_exit()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly on Ctrl+C, then raises it again: stopping is the request
        pass
