"""Helpers for the data tests: a local HTTP server, folder layouts, a tiny synthetic dataset."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from mlplab.data.idx import write_idx
from mlplab.data.registry import DatasetSpec, FileRecord, FileSet, get_spec

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@dataclasses.dataclass
class Route:
    """What the test server answers for one path."""

    body: bytes = b""
    status: int = 200
    cut: bool = False  # send half the body, then close (Content-Length still announces all of it)
    stall: float = 0.0  # seconds to sleep after the headers, before the body


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        route = self.server.routes.get(self.path)  # type: ignore[attr-defined]
        if route is None or route.status != 200:
            self.send_error(404 if route is None else route.status)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        if route.stall:
            time.sleep(route.stall)
        try:
            self.wfile.write(route.body[: len(route.body) // 2] if route.cut else route.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@contextlib.contextmanager
def serve(routes: dict[str, Route]) -> Iterator[tuple[str, list[str]]]:
    """Serve ``routes`` on 127.0.0.1 (ephemeral port) in a thread; yields (base URL, request log)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.block_on_close = False  # a stalled handler must not hold up shutdown
    server.routes = routes  # type: ignore[attr-defined]
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def refused_url() -> str:
    """A URL on a local port nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def link_files(source: Path, folder: Path, names: tuple[str, ...] = NAMES) -> Path:
    """Symlink files from ``source`` into ``folder`` (created); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(source / name)
    return folder


def decompress_files(source: Path, folder: Path, names: tuple[str, ...] = NAMES) -> Path:
    """Write decompressed (raw IDX) copies of ``.gz`` files into ``folder``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name.removesuffix(".gz")).write_bytes(gzip.decompress((source / name).read_bytes()))
    return folder


def pixel_stats(images: np.ndarray) -> tuple[float, float]:
    """Exact mean and (population) std of uint8 images scaled to [0, 1], from a 256-bin histogram."""
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256) / 255
    mean = float(counts @ values / counts.sum())
    return mean, float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))


def make_tiny_dataset(folder: Path, n_train: int = 120, n_test: int = 30, seed: int = 0) -> DatasetSpec:
    """Write a small random MNIST-shaped dataset (.gz) into ``folder``; returns a spec whose MD5s match it."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), np.arange(n_train, dtype=np.uint8) % 10,
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), np.arange(n_test, dtype=np.uint8) % 10)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for name, array in zip(NAMES, arrays, strict=True):
        path = write_idx(folder / name, array)
        records.append(FileRecord(name, hashlib.md5(path.read_bytes()).hexdigest()))
    return dataclasses.replace(get_spec("mnist"), name="tiny", title="Tiny", files=FileSet(*records), mirrors=())
