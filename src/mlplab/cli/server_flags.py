"""What the two commands that serve a page share (`mlplab serve`, `mlplab studio`): --host, --port
and --allow-host, each checked as it is parsed."""

from __future__ import annotations

import argparse
from typing import Any

from mlplab.config import Bounds

PORTS = Bounds(0, 65535)


def add_server_flags(parser: Any, network: str, example: str) -> None:
    """Add --host (default 127.0.0.1; ``network`` says what 0.0.0.0 opens), --port (default 8000)
    and --allow-host (``example``: a host name a user might add)."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help=f"address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: {network})",
    )
    port = parser.add_argument(
        "--port", type=port_number, default=8000, help="port, 0-65535 (default: 8000; 0 picks a free one)"
    )
    port.bounds = PORTS
    parser.add_argument(
        "--allow-host",
        metavar="NAME",
        type=host_name,
        action="append",
        default=[],
        help=f"another host name the server answers to, e.g. {example} (repeat for several; "
        "'*' for any). By default it answers only to localhost and IP addresses (loopback "
        "ones when --host is), so no web page can reach it by a rebound DNS name",
    )


def port_number(text: str) -> int:
    """``--port``: a whole number from 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not PORTS.admits(port):
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535; got {text!r}")
    return port


def host_name(text: str) -> str:
    """``--allow-host``: a host name, lower case, without scheme or port (or ``*``)."""
    name = text.strip().lower()
    if name != "*" and (not name or any(mark in name for mark in ":/[]@ ")):
        raise argparse.ArgumentTypeError(f"a host name without scheme or port, e.g. mybox.local; got {text!r}")
    return name
