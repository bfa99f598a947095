"""Fixtures for the tests of `mlplab serve`: the app of the session's trained run, served by a
real uvicorn on 127.0.0.1, and the real MNIST test digits."""

from __future__ import annotations

import numpy as np
import pytest
from serve_helpers import live_server


@pytest.fixture(scope="session")
def mnist_test(mnist_dir) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test split: images (10000, 28, 28) uint8 and labels (10000,)."""
    from mlplab import MNIST

    test = MNIST(mnist_dir, train=False)
    return test.data.numpy(), test.targets.numpy()


@pytest.fixture(scope="session")
def app(trained_run):
    """`mlplab.serve.create_app` of the session's trained run (784-256-10, about 98%)."""
    pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
    from mlplab.serve import create_app

    return create_app(trained_run)


@pytest.fixture(scope="session")
def server(app):
    """The base URL of ``app`` served by a real uvicorn on 127.0.0.1."""
    with live_server(app) as url:
        yield url


@pytest.fixture
def client(server):
    """An httpx client for ``server`` (every request times out after 30 s)."""
    httpx = pytest.importorskip("httpx")
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client
