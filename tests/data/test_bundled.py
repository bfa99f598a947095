"""MNIST bundled as package data: found offline, after the user's folders and the cache,
verified by content SHA-256, shipped in the sdist and the wheel."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from data_helpers import NAMES, link_files, refused_url

from mlplab.cli.main import main
from mlplab.config import DataConfig
from mlplab.data import MNIST, load_data, source
from mlplab.data.registry import DATASET_SPECS
from mlplab.errors import MlplabError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No data variable, an empty cache, and MNIST's mirrors on a closed local port."""
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(DATASET_SPECS, "mnist", dataclasses.replace(DATASET_SPECS["mnist"], mirrors=(refused_url(),)))
    return tmp_path / "cache"


def test_mnist_loads_offline_from_the_bundled_copy(offline, mnist_dir):
    bundle = load_data(DataConfig())
    assert bundle.origin == "bundled" and bundle.origin_description == "bundled with mlplab"
    assert bundle.source == mnist_dir and mnist_dir.parts[-3:] == ("data", "bundled", "mnist")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (50_000, 10_000, 10_000)
    assert bundle.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the first test digits
    assert not offline.exists()  # nothing was downloaded or copied into the cache


def test_data_info_says_the_bundled_copy_was_used(offline, mnist_dir, capsys):
    assert main(["data", "info"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"MNIST from {mnist_dir} (bundled with mlplab)"
    assert main(["data", "info", "--json"]) == 0
    assert '"origin": "bundled"' in capsys.readouterr().out


def _found(**settings) -> tuple[str, Path]:
    bundle = load_data(DataConfig(**settings))
    return bundle.origin, bundle.source


def test_search_order_is_data_dir_then_variable_then_cache_then_bundled(offline, mnist_dir, tmp_path, monkeypatch):
    cached = link_files(mnist_dir, offline / "mnist")
    assert _found() == ("cache", cached)
    shared = link_files(mnist_dir, tmp_path / "shared")
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(shared))
    assert _found() == ("env", shared)
    mine = link_files(mnist_dir, tmp_path / "mine")
    assert _found(data_dir=str(mine)) == ("data_dir", mine)


def test_a_partial_cache_falls_back_to_the_bundled_copy(offline, mnist_dir):
    link_files(mnist_dir, offline / "mnist", names=NAMES[:2])
    assert _found(download=False) == ("bundled", mnist_dir)


def test_other_datasets_are_not_bundled(offline, tmp_path):
    with pytest.raises(MlplabError, match="no local copy of kmnist"):
        load_data(DataConfig(dataset="kmnist", download=False))


def _tampered_copy(mnist_dir: Path, root: Path, name: str, change) -> Path:
    """A copy of the bundled folder under ``root/mnist`` with ``change(bytes) -> bytes`` applied to one file."""
    folder = root / "mnist"
    shutil.copytree(mnist_dir, folder)
    path = folder / name
    path.write_bytes(change(path.read_bytes()))
    return folder


def _one_pixel_changed(stored: bytes) -> bytes:
    """The same gzip'd IDX file with one pixel of the last image changed: valid, but not MNIST."""
    content = bytearray(gzip.decompress(stored))
    content[-1] ^= 0x01
    return gzip.compress(bytes(content))


def _one_stored_byte_changed(stored: bytes) -> bytes:
    data = bytearray(stored)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("change", [_one_pixel_changed, _one_stored_byte_changed], ids=["content", "gzip"])
def test_a_tampered_bundled_file_is_refused(offline, mnist_dir, tmp_path, monkeypatch, change):
    name = "t10k-images-idx3-ubyte.gz"
    folder = _tampered_copy(mnist_dir, tmp_path / "package", name, change)
    monkeypatch.setattr(source, "BUNDLED_ROOT", folder.parent)
    with pytest.raises(MlplabError) as caught:
        load_data(DataConfig())
    message = str(caught.value)
    assert str(folder / name) in message and "\n" not in message
    assert "bundled with mlplab is damaged: reinstall mlplab" in message
    if change is _one_pixel_changed:
        assert "content SHA-256" in message  # refused by its checksum, not by the IDX reader


def test_torchvision_style_download_takes_the_bundled_copy_offline(offline, tmp_path, mnist_dir):
    dataset = MNIST(tmp_path / "data", train=False, download=True)
    raw = tmp_path / "data" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(NAMES)
    assert (raw / NAMES[2]).read_bytes() == (mnist_dir / NAMES[2]).read_bytes()
    assert len(dataset) == 10_000 and int(dataset.targets[0]) == 7


def test_sdist_and_wheel_ship_the_four_files_and_their_attribution(tmp_path, mnist_dir):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    # `python -m build` makes the sdist, then the wheel from the unpacked sdist: the wheel only
    # has the files if the sdist has them too. --no-isolation: no network, the dev extra's setuptools.
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"),
                             str(project)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("mlplab-*.whl")
    (sdist,) = (tmp_path / "dist").glob("mlplab-*.tar.gz")
    expected = {name: (mnist_dir / name).read_bytes() for name in (*NAMES, "README.md")}
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name: archive.read(f"mlplab/data/bundled/mnist/{name}") for name in expected}
    assert {n: hashlib.sha256(b).hexdigest() for n, b in shipped.items()} == \
        {n: hashlib.sha256(b).hexdigest() for n, b in expected.items()}
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    for name in expected:
        assert any(n.endswith(f"src/mlplab/data/bundled/mnist/{name}") for n in names), name
    # The same build carries the pages of `mlplab serve` and `mlplab studio` and their shared script.
    for page in ("serve/static/index.html", "serve/static/pad.js", "studio/static/index.html"):
        with zipfile.ZipFile(wheel) as archive:
            assert archive.read(f"mlplab/{page}") == (REPO / "src/mlplab" / page).read_bytes(), page
        assert any(n.endswith(f"src/mlplab/{page}") for n in names), page
    # And the labs' notebooks: installed from the wheel alone, `mlplab notebooks DIR` writes every one.
    labs = sorted(path.name for path in (REPO / "src/mlplab/notebooks").glob("[0-9][0-9]_*.py"))
    with zipfile.ZipFile(wheel) as archive:
        assert {name: archive.read(f"mlplab/notebooks/{name}") for name in [*labs, "README.md"]} == \
            {name: (REPO / "src/mlplab/notebooks" / name).read_bytes() for name in [*labs, "README.md"]}
    installed = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                    str(installed), str(wheel)], check=True, timeout=300)
    written = subprocess.run([sys.executable, "-c", "import sys, mlplab.notebooks as labs; print(labs.__file__); "
                              "from mlplab.cli.main import main; sys.exit(main())",
                              "notebooks", str(tmp_path / "labs")], capture_output=True, text=True, timeout=300,
                             cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)})
    assert written.returncode == 0, written.stderr
    assert written.stdout.startswith(str(installed)), "the copy installed from the wheel wrote them"
    assert sorted(path.name for path in (tmp_path / "labs").iterdir()) == [name[:-3] + ".ipynb" for name in labs]
