"""Downloads against a local HTTP server: mirror fallback, checksums, nothing partial left behind."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib

import numpy as np
import pytest
from data_helpers import Route, refused_url, serve

from mlplab.data import default_cache_dir, get_spec, locate
from mlplab.data import source
from mlplab.data.arrays import read_dataset
from mlplab.data.download import download_file
from mlplab.data.idx import encode_idx
from mlplab.errors import MlplabError

LABELS = "t10k-labels-idx1-ubyte.gz"  # the smallest file (4.5 kB) for the fallback tests


@pytest.fixture(autouse=True)
def _offline_world(monkeypatch):
    """No proxy between us and 127.0.0.1, and no data folder or bundled copy that would make
    downloading unnecessary (as in an install without package data)."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.delenv("MLPLAB_DATA_DIR", raising=False)
    monkeypatch.setattr(source, "BUNDLED_ROOT", None)


@pytest.fixture(scope="module")
def files(mnist_dir):
    """The verified (re-compressed) MNIST .gz files by name."""
    return {path.name: path.read_bytes() for path in mnist_dir.glob("*.gz")}


def spec_with(*mirrors):
    return dataclasses.replace(get_spec("mnist"), mirrors=list(mirrors))


def assert_only(folder, names):
    """``folder`` holds exactly ``names``: no temporary or partial file left over."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_shared_copy_is_recompressed(files):
    # The premise of the SHA-256 path: these .gz files do not have torchvision's MD5s.
    assert hashlib.md5(files[LABELS]).hexdigest() != get_spec("mnist").files.test_labels.md5


def test_download_all_files_into_cache(tmp_path, files):
    routes = {f"/mnist/{name}": Route(body) for name, body in files.items()}
    with serve(routes) as (base, _):
        folder = locate(spec_with(base + "/mnist/"), cache_dir=tmp_path, progress=True)
    assert folder == tmp_path / "mnist"
    assert_only(folder, files)
    assert all((folder / name).read_bytes() == body for name, body in files.items())
    raw = read_dataset(get_spec("mnist"), folder)
    assert raw.train_images.shape == (60000, 28, 28) and raw.test_labels.shape == (10000,)
    # Now cached: found again without touching the network.
    assert locate(spec_with(refused_url()), cache_dir=tmp_path, download=False) == folder


@pytest.mark.parametrize("first", ["404", "refused", "corrupt", "cut", "stall"])
def test_falls_back_to_second_mirror(tmp_path, files, first):
    routes = {
        f"/bad/{LABELS}": Route(files[LABELS], status=404 if first == "404" else 200, cut=first == "cut",
                                stall=1.0 if first == "stall" else 0.0),
        f"/good/{LABELS}": Route(files[LABELS]),
    }
    if first == "corrupt":
        routes[f"/bad/{LABELS}"] = Route(b"\x1f\x8b" + bytes(range(256)) * 10)
    with serve(routes) as (base, requests):
        bad = refused_url() if first == "refused" else base + "/bad/"
        path = download_file(spec_with(bad, base + "/good/"), "test_labels", tmp_path, timeout=0.3)
    assert path == tmp_path / LABELS and path.read_bytes() == files[LABELS]
    assert requests[-1] == f"/good/{LABELS}"
    assert_only(tmp_path, [LABELS])


def test_all_mirrors_bad_leaves_nothing(tmp_path, files):
    routes = {f"/corrupt/{LABELS}": Route(b"garbage" * 100), f"/cut/{LABELS}": Route(files[LABELS], cut=True)}
    with serve(routes) as (base, _):
        mirrors = [base + "/missing/", refused_url(), base + "/corrupt/", base + "/cut/"]
        with pytest.raises(MlplabError) as caught:
            download_file(spec_with(*mirrors), "test_labels", tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message
    assert "HTTP 404" in message and "refused" in message.lower()
    assert "checksum mismatch" in message and "connection closed after" in message
    assert all(url in message for url in mirrors)
    assert "--data-dir DIR" in message and "MLPLAB_DATA_DIR=DIR" in message
    assert_only(tmp_path / "cache", [])


def test_server_closing_mid_transfer_leaves_nothing(tmp_path, files):
    name = "train-images-idx3-ubyte.gz"
    with serve({f"/m/{name}": Route(files[name], cut=True)}) as (base, _), \
            pytest.raises(MlplabError, match="connection closed after"):
        download_file(spec_with(base + "/m/"), "train_images", tmp_path)
    assert_only(tmp_path, [])


def test_file_matching_neither_checksum_is_rejected(tmp_path, files):
    # A well-formed gzip of a well-formed IDX file, but not MNIST's labels: no MD5, no SHA-256 match.
    other = gzip.compress(encode_idx(np.zeros(10000, dtype=np.uint8)))
    with serve({f"/m/{LABELS}": Route(other)}) as (base, _), pytest.raises(MlplabError, match="checksum mismatch"):
        download_file(spec_with(base + "/m/"), "test_labels", tmp_path)
    assert_only(tmp_path, [])


def test_without_sha256_only_the_md5_is_accepted(tmp_path, files):
    # Fashion-MNIST records no content SHA-256, so a re-compressed copy cannot be accepted.
    spec = get_spec("mnist")
    record = dataclasses.replace(spec.files.test_labels, sha256=None)
    spec = dataclasses.replace(spec, files=dataclasses.replace(spec.files, test_labels=record))
    with serve({f"/m/{LABELS}": Route(files[LABELS])}) as (base, _), \
            pytest.raises(MlplabError, match="checksum mismatch"):
        download_file(dataclasses.replace(spec, mirrors=[base + "/m/"]), "test_labels", tmp_path)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("MLPLAB_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "mlplab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mlplab"
