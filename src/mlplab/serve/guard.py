"""What every request passes before the routes, and every response carries.

- The Host check, against DNS rebinding: a page on evil.example can make its own name resolve
  to 127.0.0.1 and then read this server as if it were evil.example (the browser thinks it is
  the same origin). The one thing it cannot change is the Host header, which still names
  evil.example; so the server answers only to names it knows. A Host that is an IP address
  cannot be the result of rebinding, so addresses pass, loopback ones only when the server
  listens on loopback only. ``--allow-host NAME`` adds a name (a machine on your network).
- ``X-Content-Type-Options: nosniff`` on every response, errors and 404s included, so no
  browser guesses a JSON error to be HTML or script.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NOSNIFF = (b"x-content-type-options", b"nosniff")
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class HostPolicy:
    """Which Host headers a server bound to ``bind`` answers.

    Attributes:
        names: host names answered (lower case), ``"*"`` for any Host at all.
        loopback_only: True when the server listens on loopback only: then only loopback
            addresses pass as a Host, else any IP address does.
    """

    names: frozenset[str]
    loopback_only: bool

    @classmethod
    def for_bind(cls, bind: str, allow: Iterable[str] = ()) -> HostPolicy:
        """The policy of a server listening on ``bind`` (an address or a name), with the extra names ``allow``."""
        bind = bind.strip("[]").lower()
        names = {*LOOPBACK_NAMES, *(name.lower().rstrip(".") for name in allow)}
        if _address(bind) is None and bind:
            names.add(bind)  # --host mybox.lan: a name the user chose to be reached by
        return cls(frozenset(names), loopback_only=_is_loopback(bind))

    def allows(self, host_header: str | None) -> bool:
        """Whether a request with this Host header (``name``, ``name:port``, ``[::1]:port``) is answered."""
        if "*" in self.names:
            return True
        host = host_name(host_header or "")
        address = _address(host)
        if address is not None:
            return address.is_loopback or not self.loopback_only
        return host in self.names

    def describe(self) -> str:
        """``localhost, mybox.lan and IP addresses``: the hosts answered, for messages."""
        addresses = "loopback addresses such as 127.0.0.1 and [::1]" if self.loopback_only else "IP addresses"
        return ", ".join(sorted(self.names)) + f" and {addresses}"


def host_name(host_header: str) -> str:
    """The host of a Host header, lower case, without port, brackets or a final dot."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback(bind: str) -> bool:
    """Whether listening on ``bind`` reaches this machine only (127.x, ::1, localhost)."""
    address = _address(bind)
    return bind in LOOPBACK_NAMES if address is None else address.is_loopback


class Guard:
    """ASGI middleware: the Host check (400, one-line JSON) and ``nosniff`` on every response."""

    def __init__(self, app: Any, policy: HostPolicy, command: str = "mlplab serve") -> None:
        self.app, self.policy, self.command = app, policy, command  # command: what the advice names

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(key, value) for key, value in message.get("headers", []) if key.lower() != NOSNIFF[0]]
                message = {**message, "headers": [*headers, NOSNIFF]}
            await send(message)

        host = _header(scope, b"host")
        if not self.policy.allows(host):
            await refuse_host(scope, send_nosniff, host, self.policy, self.command)
            return
        await self.app(scope, receive, send_nosniff)


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def refuse_host(
    scope: dict, send: Any, host: str | None, policy: HostPolicy, command: str = "mlplab serve"
) -> None:
    """400 with ``{"error": ...}``: which Host came, which are answered, and the flag that adds one."""
    if host is None:
        message = "the request has no Host header; send one (every browser and HTTP/1.1 client does)"
    else:
        name = host_name(host)[:100]
        message = (
            f"this server does not answer to the host {name!r} (it answers to {policy.describe()}; this "
            f"protects it against DNS rebinding); open it by one of those, or start {command} with "
            f"--allow-host {name or 'NAME'}"
        )
    body = json.dumps({"error": message}, separators=(",", ":")).encode()  # as FastAPI writes JSON
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})
