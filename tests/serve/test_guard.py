"""What every request of `mlplab serve` passes and every answer carries, over raw HTTP to a real
uvicorn on 127.0.0.1: HEAD answered like GET without a body, ``nosniff`` on every response
(errors, 404s and a 500 included), and the Host check against DNS rebinding."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
from serve_helpers import live_server, user_png

from mlplab.serve.guard import HostPolicy, host_name

pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')


def raw(server: str, method: str, path: str, host: str | None = "default", body: bytes = b"",
        headers: tuple[str, ...] = (), version: str = "1.1") -> tuple[int, dict[str, str], bytes]:
    """One HTTP request written by hand (any Host, or none), and the answer: status, headers
    (lower-case names) and the body as sent."""
    address = urlsplit(server)
    lines = [f"{method} {path} HTTP/{version}", "Connection: close", f"Content-Length: {len(body)}", *headers]
    if host is not None:
        lines.append(f"Host: {address.netloc if host == 'default' else host}")
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, content = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers_seen = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers_seen[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers_seen, content


@pytest.mark.parametrize("path", ["/", "/health", "/api/model"])
def test_head_is_answered_like_get_without_a_body(server, path):
    get_status, get_headers, get_body = raw(server, "GET", path)
    head_status, head_headers, head_body = raw(server, "HEAD", path)
    assert get_status == head_status == 200 and get_body and head_body == b""
    assert head_headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    assert head_headers["content-type"] == get_headers["content-type"]


def test_every_response_says_nosniff(server, trained_run, mnist_test):
    from mlplab.serve import create_app

    png = ("Content-Type: image/png",)
    answers = {
        "page": raw(server, "GET", "/"), "health": raw(server, "GET", "/health"),
        "model": raw(server, "GET", "/api/model"), "head": raw(server, "HEAD", "/health"),
        "404": raw(server, "GET", "/nothing"), "405": raw(server, "DELETE", "/health"),
        "415": raw(server, "POST", "/api/predict", body=b"x"),
        "400": raw(server, "POST", "/api/predict", body=b"junk", headers=png),
        "host refused": raw(server, "GET", "/health", host="evil.example"),
    }
    broken = create_app(trained_run)

    def bug(source, name):
        raise RuntimeError("a bug")

    broken.state.served.predict = bug
    with live_server(broken) as url:
        answers["500"] = raw(url, "POST", "/api/predict", body=user_png(mnist_test[0][0]), headers=png)
    statuses = {name: status for name, (status, _, _) in answers.items()}
    assert statuses == {"page": 200, "health": 200, "model": 200, "head": 200, "404": 404, "405": 405, "415": 415,
                        "400": 400, "host refused": 400, "500": 500}
    for name, (_, headers, _) in answers.items():
        assert headers.get("x-content-type-options") == "nosniff", name
    assert json.loads(answers["500"][2]) == {"error": "internal error (RuntimeError); see the server's log"}


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "192.168.1.20", ""])
def test_a_host_this_server_does_not_know_is_refused(server, host):
    """A page on evil.example whose name was rebound to 127.0.0.1 still sends Host: evil.example."""
    status, headers, body = raw(server, "GET", "/api/model", host=host)
    assert status == 400 and headers["content-type"] == "application/json"
    message = json.loads(body)["error"]
    assert "\n" not in message and "DNS rebinding" in message and "localhost" in message
    if host.startswith("evil"):
        assert "the host 'evil.example'" in message and "--allow-host evil.example" in message
    assert "architecture" not in body.decode()


def test_no_host_is_refused_and_loopback_names_are_answered(server):
    status, _, body = raw(server, "GET", "/health", host=None, version="1.0")  # HTTP/1.1 makes Host compulsory
    assert status == 400 and "no Host header" in json.loads(body)["error"]
    port = urlsplit(server).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", "localhost.", f"[::1]:{port}", "127.0.0.2"):
        status, _, body = raw(server, "GET", "/health", host=host)
        assert (status, json.loads(body)) == (200, {"status": "ok"}), host


def test_an_allowed_name_is_answered(trained_run):
    from mlplab.serve import create_app

    app = create_app(trained_run, allow_hosts=["mybox.lan"])
    with live_server(app) as url:
        assert raw(url, "GET", "/health", host="MyBox.lan:8000")[0] == 200
        assert raw(url, "GET", "/health", host="evil.example")[0] == 400


def test_host_policy_follows_the_address_listened_on():
    loopback = HostPolicy.for_bind("127.0.0.1")
    assert loopback.allows("localhost:8000") and loopback.allows("[::1]") and not loopback.allows("10.0.0.5")
    assert not loopback.allows("evil.example") and not loopback.allows(None)
    network = HostPolicy.for_bind("0.0.0.0")  # addresses cannot be rebound; names must be known
    assert network.allows("192.168.1.20:8000") and network.allows("[fe80::1]") and network.allows("localhost")
    assert not network.allows("evil.example") and not network.allows("mybox.lan")
    assert HostPolicy.for_bind("0.0.0.0", ["mybox.lan"]).allows("mybox.lan:8000")
    assert HostPolicy.for_bind("mybox.lan").allows("MYBOX.LAN") and HostPolicy.for_bind("::1").loopback_only
    assert HostPolicy.for_bind("127.0.0.1", ["*"]).allows("anything.example")
    assert [host_name(h) for h in ("[::1]:80", "Example.COM.:8000", "10.0.0.1", "::1")] == \
        ["::1", "example.com", "10.0.0.1", "::1"]
