"""Shared fixtures. Tests never download: MNIST comes from a local verified copy.

The copy is found through mlplab's own environment variable MLPLAB_DATA_DIR (CI sets it);
when unset, the checkout's sibling folder ../shared/data/mnist is used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _mnist_dir() -> Path:
    configured = os.environ.get("MLPLAB_DATA_DIR")
    path = Path(configured) if configured else REPO.parent / "shared" / "data" / "mnist"
    return path.resolve()


MNIST_DIR = _mnist_dir()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder holding the four real MNIST IDX files (.gz)."""
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists() and not (
        MNIST_DIR / "train-images-idx3-ubyte"
    ).exists():
        pytest.fail(f"no MNIST copy at {MNIST_DIR}: set MLPLAB_DATA_DIR to a folder with the four IDX files")
    return MNIST_DIR


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's download cache out of the user's home."""
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def one_thread():
    """Run on one thread: with tiny tensors, a second OpenMP thread only adds waits, and on
    a busy 2-core machine those waits grow to milliseconds per op."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_config(mnist_dir, tmp_path):
    """Build a Config on the real MNIST copy, CPU, quiet, writing into a temp run directory."""
    from mlplab.config import Config, apply_overrides, from_preset

    def make(preset: str | None = None, **overrides):
        base = from_preset(preset) if preset else Config()
        fields = {"data_dir": str(mnist_dir), "device": "cpu", "progress": False, "download": False,
                  "out": str(tmp_path / "run")}
        fields.update(overrides)
        return apply_overrides(base, fields)

    return make
