"""Shared fixtures. Tests never download and need no data variable: MNIST is the copy
bundled inside the package (src/mlplab/data/bundled/mnist/), found as a user's run finds it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true", help="also run the long soaks (tests marked soak)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="a long soak: run with pytest --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder holding the four real MNIST IDX files (.gz): the copy bundled with mlplab."""
    from mlplab.data import bundled_folder, get_spec

    folder = bundled_folder(get_spec("mnist"))
    if folder is None:
        pytest.fail("this mlplab install has no bundled MNIST copy (src/mlplab/data/bundled/mnist/)")
    return folder


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path_factory, monkeypatch):
    """Keep every test's download cache out of the user's home, and the user's own data folder
    ($MLPLAB_DATA_DIR) out of the tests: a test that wants one sets it."""
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("MLPLAB_DATA_DIR", raising=False)


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
def make_config(tmp_path):
    """Build a Config on the real MNIST copy (found as `mlplab train` finds it: the bundled one),
    CPU, one thread, quiet, never downloading, writing into a temp run directory.

    One thread: results are bit-exact only at one thread count (PyTorch's reductions split by
    it), and the default count follows the machine's load, which other tests change."""
    from mlplab.config import Config, apply_overrides, from_preset

    def make(preset: str | None = None, **overrides):
        base = from_preset(preset) if preset else Config()
        fields = {"device": "cpu", "threads": 1, "progress": False, "download": False,
                  "out": str(tmp_path / "run")}
        fields.update(overrides)
        return apply_overrides(base, fields)

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_dir) -> Path:
    """A finished MNIST run directory, trained once per test session for the tests of what
    reads runs (predict, serve, export): 784-256-10, 3 epochs, about 98% test accuracy, ~5 s."""
    from mlplab.config import Config, apply_overrides
    from mlplab.training import train

    out = tmp_path_factory.mktemp("trained") / "run"
    config = apply_overrides(Config(), {"hidden": (256,), "epochs": 3, "device": "cpu", "progress": False,
                                        "download": False, "data_dir": str(mnist_dir), "out": str(out)})
    train(config)
    return out


@pytest.fixture
def trainings(monkeypatch):
    """How many times `mlplab.train` ran in the test (a list, one training's `out` per entry):
    `mlplab.pretrained` trains through it, so a cached model loaded adds nothing."""
    import mlplab.training.runner as runner

    calls = []
    original = runner.train

    def counted(config, **kwargs):
        calls.append(config.train.out)
        return original(config, **kwargs)

    monkeypatch.setattr(runner, "train", counted)
    return calls


NOTEBOOK_CELL_TIMEOUT = 600  # seconds: a notebook cell that hangs fails instead of eating CI's budget


@pytest.fixture(scope="session")
def executed_lab(tmp_path_factory):
    """``execute(lab)``: the teacher's copy of a lab notebook run top to bottom in a fresh python3 kernel
    (nbclient) from an empty folder, once per test session: the notebook tests check it, the docs site
    shows it. Each call returns a copy; a notebook that fails raises ``CellExecutionError`` every time."""
    import copy

    cache = {}

    def execute(lab):
        if lab.name not in cache:
            from nbclient import NotebookClient

            from mlplab import notebooks

            notebook = notebooks.teacher_copy(notebooks.read(lab))
            folder = tmp_path_factory.mktemp(lab.name)
            NotebookClient(notebook, timeout=NOTEBOOK_CELL_TIMEOUT, kernel_name="python3",
                           resources={"metadata": {"path": str(folder)}}).execute()
            cache[lab.name] = notebook
        return copy.deepcopy(cache[lab.name])

    return execute
