"""Fixtures for the tests of `mlplab studio`: a studio app making its runs in a temporary folder,
served by a real uvicorn on 127.0.0.1, and an httpx client for it."""

from __future__ import annotations

import pytest
from serve_helpers import live_server


@pytest.fixture
def studio_server(tmp_path):
    """The base URL of a fresh studio (runs under tmp_path/runs), and the app; stopped after the test."""
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    from mlplab.studio import create_studio_app

    app = create_studio_app(tmp_path / "runs")
    with live_server(app, on_stop=app.state.studio.close_streams) as url:
        yield url, app


@pytest.fixture
def client(studio_server):
    """An httpx client of the studio (30 s timeout)."""
    httpx = pytest.importorskip("httpx")
    with httpx.Client(base_url=studio_server[0], timeout=30) as client:
        yield client
