"""`mlplab serve`: one line and exit status 2 for what it cannot serve, before any server starts;
a real server that prints its URL, answers, and stops on Ctrl+C; no web packages imported by
the other commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import exits_2_with_one_line
from serve_helpers import SRC, mlplab_serve, user_defined_run

from mlplab.cli.main import main



def test_what_cannot_be_served_is_one_line(capsys, tmp_path, trained_run):
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    exits_2_with_one_line(capsys, ["serve", str(tmp_path / "nothing")], "is not a run directory (does not exist)")
    exits_2_with_one_line(capsys, ["serve", str(trained_run / "last.pt")], "is a file, not a run directory")
    exits_2_with_one_line(capsys, ["serve", str(user_defined_run(tmp_path / "user"))],
                           "a run of a user-defined model")
    with pytest.raises(SystemExit) as caught:
        main(["serve", str(trained_run), "--port", "70000"])
    assert caught.value.code == 2 and "a port is a number from 0 to 65535" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["serve", str(trained_run), "--allow-host", "http://mybox.lan:8000"])
    assert caught.value.code == 2 and "a host name without scheme or port" in capsys.readouterr().err


def test_a_taken_port_is_one_line(capsys, trained_run):
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    from mlplab.serve import listen

    taken = listen("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        exits_2_with_one_line(capsys, ["serve", str(trained_run), "--port", str(port)],
                               f"cannot listen on 127.0.0.1:{port}", "choose another --port")
    finally:
        taken.close()


def test_without_the_serve_extra_it_says_what_to_install(capsys, monkeypatch, trained_run):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    exits_2_with_one_line(capsys, ["serve", str(trained_run)], "mlplab serve needs fastapi",
                           'pip install "mlplab[serve]"')


def test_other_commands_never_import_the_web_packages():
    code = ("import sys, mlplab, mlplab.cli.main; mlplab.cli.main.build_parser(); "
            "sys.exit(sorted({'fastapi', 'uvicorn', 'starlette'} & set(sys.modules)) or 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": SRC})
    assert result.returncode == 0, result.stdout + result.stderr


def test_mlplab_serve_prints_its_url_answers_and_stops_on_ctrl_c(trained_run):
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    httpx = pytest.importorskip("httpx")
    with mlplab_serve(trained_run) as (process, line):
        assert "(mnist, 784-256-10, test accuracy " in line and "Ctrl+C" in line
        url = line.split()[2]
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(url + "health", timeout=5).json() == {"status": "ok"}
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer within 30 s"
                time.sleep(0.1)
        assert httpx.get(url + "api/model", timeout=5).json()["architecture"] == "784-256-10"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0 and "mlplab serve: stopped" in out, out + err
        assert "Traceback" not in err


def test_allow_host_adds_a_name_and_others_are_refused(trained_run):
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    httpx = pytest.importorskip("httpx")
    with mlplab_serve(trained_run, "--allow-host", "MyBox.test") as (process, line):
        url = line.split()[2]
        deadline = time.monotonic() + 30
        while True:
            try:
                named = httpx.get(url + "health", headers={"Host": "mybox.test:8000"}, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer within 30 s"
                time.sleep(0.1)
        assert named.json() == {"status": "ok"}
        other = httpx.get(url + "health", headers={"Host": "evil.example"}, timeout=5)
        assert other.status_code == 400 and "--allow-host evil.example" in other.json()["error"]
        assert httpx.get(url + "health", timeout=5).status_code == 200  # 127.0.0.1 itself
