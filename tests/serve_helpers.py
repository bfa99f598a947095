"""Helpers shared by the tests of `mlplab serve` (tests/serve/, tests/cli/test_serve_cmd.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


SRC = str(Path(__file__).resolve().parents[1] / "src")


@contextmanager
def mlplab_serve(run_dir: Any, *options: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """A real ``mlplab serve RUN_DIR --port 0 [OPTIONS]`` in a child process; yields it and the first
    line it printed (``mlplab serve: http://127.0.0.1:PORT/ ...``). Killed afterwards if still running."""
    process = subprocess.Popen([sys.executable, "-m", "mlplab", "serve", str(run_dir), "--port", "0", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": SRC})
    try:
        line = process.stdout.readline()
        assert line.startswith("mlplab serve: http://127.0.0.1:"), line + process.stderr.read()
        yield process, line
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


@contextmanager
def live_server(app: Any, on_stop: Any = None) -> Iterator[str]:
    """``app`` served by a real uvicorn in a thread on 127.0.0.1 (a free port); yields its base URL.
    ``on_stop()`` is called as the server is told to stop (the studio ends its event streams)."""
    import uvicorn

    from mlplab.serve import listen

    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if on_stop is not None:
            on_stop()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def user_png(digit: np.ndarray, *, image_format: str = "PNG") -> bytes:
    """An MNIST digit (28, 28) uint8 as a user makes one: dark ink on white, enlarged 10x (smoothly)
    and placed off-centre on a larger white page."""
    from PIL import Image

    ink = Image.fromarray(255 - np.asarray(digit, dtype=np.uint8)).resize((280, 280), Image.Resampling.BICUBIC)
    page = Image.new("L", (360, 360), 255)
    page.paste(ink, (30, 50))
    if image_format in ("JPEG", "GIF"):
        page = page.convert("RGB")
    buffer = io.BytesIO()
    page.save(buffer, image_format)
    return buffer.getvalue()


def blank_png(width: int = 280, height: int = 280) -> bytes:
    """A white canvas, as the page sends it after Clear."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, "PNG")
    return buffer.getvalue()


def first_of_each_class(labels: np.ndarray) -> list[int]:
    """The index of the first image of each class 0-9, in class order."""
    return [int(np.flatnonzero(labels == digit)[0]) for digit in range(10)]


def user_defined_run(run_dir: Any) -> Any:
    """A one-epoch run of a plain nn.Sequential written by `mlplab.fit` (no config: mlplab cannot rebuild it)."""
    import torch
    from torch import nn

    import mlplab

    torch.manual_seed(0)
    images, labels = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    mlplab.fit(model, [(images, labels)], loss=nn.CrossEntropyLoss(),
               optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, run_dir=run_dir)
    return run_dir
