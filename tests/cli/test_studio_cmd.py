"""`mlplab studio`: one line and exit status 2 for what it cannot do, before any port is taken; a real
server that prints its address (with the token when it listens beyond this machine) and stops on Ctrl+C
at once, with a page still watching."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import exits_2_with_one_line
from serve_helpers import SRC

from mlplab.cli.main import main


def test_what_it_cannot_do_is_one_line(capsys, tmp_path, monkeypatch):
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    exits_2_with_one_line(capsys, ["studio", "--token", "short", "--runs", str(tmp_path)],
                           "a token must be at least 8 printable characters")
    with pytest.raises(SystemExit) as caught:
        main(["studio", "--port", "-1"])
    assert caught.value.code == 2 and "a port is a number from 0 to 65535" in capsys.readouterr().err
    from mlplab.serve import listen

    taken = listen("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        exits_2_with_one_line(capsys, ["studio", "--port", str(port), "--runs", str(tmp_path)],
                               f"cannot listen on 127.0.0.1:{port}", "choose another --port")
    finally:
        taken.close()
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    exits_2_with_one_line(capsys, ["studio"], "mlplab studio needs fastapi", 'pip install "mlplab[serve]"')


def test_a_studio_on_the_network_makes_a_token_and_one_on_this_machine_needs_none():
    from mlplab.cli.studio_cmd import studio_token

    assert studio_token("127.0.0.1", None) is None and studio_token("localhost", None) is None
    made = {studio_token(host, None) for host in ("0.0.0.0", "192.168.1.20", "::", "classroom.local")}
    assert len(made) == 4 and all(len(token) >= 20 for token in made)  # a fresh secret each time
    assert studio_token("0.0.0.0", "my-own-token") == "my-own-token"


def test_it_prints_its_address_with_the_token_and_stops_on_ctrl_c_with_a_page_open(tmp_path):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    process = subprocess.Popen([sys.executable, "-m", "mlplab", "studio", "--token", "classroom-secret",
                                "--port", "0", "--runs", str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC})
    try:
        first, second = process.stdout.readline(), process.stdout.readline()
        address, _, token = first.split()[2].partition("?token=")
        assert first.startswith("mlplab studio: http://127.0.0.1:") and token == "classroom-secret", first
        assert f"watchers open {address}" in second
        with httpx.Client(base_url=address.rstrip("/"), timeout=30) as client:
            assert client.post("/api/stop", json={}).status_code == 401
            assert client.post("/api/stop", json={}, headers={"X-Mlplab-Token": token}).status_code == 409
        with httpx.Client(base_url=address.rstrip("/"), timeout=30) as page:  # a page watching, as Ctrl+C comes
            with page.stream("GET", "/api/events") as events:
                assert next(events.iter_lines()) == "event: hello"
                started = time.monotonic()
                process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=30)
        assert time.monotonic() - started < 3, "an open page held the server up"
        assert process.returncode == 0 and out.strip().endswith("mlplab studio: stopped"), out + err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_the_address_students_open_is_this_machines_on_its_network():
    import ipaddress

    from mlplab.cli.studio_cmd import lan_address

    address = lan_address()
    if address is not None:  # None on a machine with no network route
        assert not ipaddress.ip_address(address).is_loopback and not ipaddress.ip_address(address).is_unspecified
