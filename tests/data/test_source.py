"""Finding the files: --data-dir, $MLPLAB_DATA_DIR, layouts, raw copies, and the errors when they are wrong."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest
from data_helpers import NAMES, decompress_files, link_files, make_tiny_dataset

from mlplab.config import DataConfig
from mlplab.data import get_spec, load_data, locate
from mlplab.data.arrays import read_dataset
from mlplab.errors import MlplabError

MNIST = get_spec("mnist")


@pytest.fixture(autouse=True)
def _no_data_dir(monkeypatch):
    monkeypatch.delenv("MLPLAB_DATA_DIR", raising=False)


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(MlplabError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_explicit_folder(mnist_dir):
    assert locate(MNIST, data_dir=mnist_dir, download=False) == mnist_dir
    assert locate("mnist", data_dir=str(mnist_dir), download=False) == mnist_dir


@pytest.mark.parametrize("layout", [".", "mnist", "MNIST/raw"])
def test_env_var_and_layouts(tmp_path, mnist_dir, monkeypatch, layout):
    folder = link_files(mnist_dir, tmp_path / "data" / layout)
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path / "data"))
    assert locate(MNIST, download=False).resolve() == folder.resolve()
    assert locate(MNIST, data_dir=tmp_path / "data", download=False).resolve() == folder.resolve()


def test_torchvision_layout_for_other_datasets(tmp_path):
    tiny = make_tiny_dataset(tmp_path / "data" / "FashionMNIST" / "raw")
    spec = dataclasses.replace(get_spec("fashion-mnist"), files=tiny.files)
    assert locate(spec, data_dir=tmp_path / "data") == tmp_path / "data" / "FashionMNIST" / "raw"


def test_raw_decompressed_files_are_verified_by_sha256(tmp_path, mnist_dir):
    folder = decompress_files(mnist_dir, tmp_path / "raw")
    assert locate(MNIST, data_dir=folder) == folder
    bundle = load_data(DataConfig(data_dir=str(folder)))
    assert bundle.source == folder and len(bundle.train) == 50000
    # A raw file that differs from MNIST's by one byte is caught by its SHA-256.
    path = folder / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] = (data[-1] + 1) % 10
    path.write_bytes(bytes(data))
    message = one_line_error(read_dataset, MNIST, folder)
    assert str(path) in message and "does not match mnist's checksum" in message


def test_mixed_raw_and_gz(tmp_path, mnist_dir):
    folder = link_files(mnist_dir, tmp_path / "mixed", NAMES[:2])
    decompress_files(mnist_dir, folder, NAMES[2:])
    raw = read_dataset(MNIST, locate(MNIST, data_dir=folder))
    assert raw.files[0].name == NAMES[0] and raw.files[3].name == "t10k-labels-idx1-ubyte"


def test_missing_files_named(tmp_path, mnist_dir):
    folder = link_files(mnist_dir, tmp_path / "partial", NAMES[:3])
    message = one_line_error(locate, MNIST, data_dir=folder)
    assert str(folder) in message and "t10k-labels-idx1-ubyte.gz" in message
    assert "train-images" not in message


def test_missing_folder(tmp_path):
    message = one_line_error(locate, MNIST, data_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in message and "does not exist" in message


def test_wrong_dataset_is_a_checksum_error(mnist_dir):
    message = one_line_error(load_data, DataConfig(dataset="fashion-mnist", data_dir=str(mnist_dir)))
    assert "train-images-idx3-ubyte.gz" in message and "does not match fashion-mnist's checksum" in message


def test_offline_with_nothing_cached(tmp_path):
    # Fashion-MNIST is not bundled: offline with an empty cache, there is nothing to read.
    fashion = get_spec("fashion-mnist")
    message = one_line_error(locate, fashion, cache_dir=tmp_path, download=False)
    assert str(tmp_path / "fashion-mnist") in message and "--no-download" in message
    assert "--data-dir DIR" in message and "MLPLAB_DATA_DIR=DIR" in message
    # default cache: the conftest's temp dir
    message = one_line_error(load_data, DataConfig(dataset="fashion-mnist", download=False))
    assert "MLPLAB_DATA_DIR=DIR" in message


def test_cached_files_used_offline(tmp_path, mnist_dir):
    cached = link_files(mnist_dir, tmp_path / "cache" / "mnist")
    assert locate(MNIST, cache_dir=tmp_path / "cache", download=False) == cached


def test_env_folder_without_this_dataset_falls_back_to_cache(tmp_path, mnist_dir, monkeypatch):
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv("MLPLAB_DATA_DIR", str(tmp_path / "shared"))
    cached = link_files(mnist_dir, tmp_path / "cache" / "mnist")
    assert locate(MNIST, cache_dir=tmp_path / "cache", download=False) == cached
    # ... but an env folder holding only some of the files is reported, not skipped.
    link_files(mnist_dir, tmp_path / "shared", NAMES[:1])
    assert "MLPLAB_DATA_DIR" in one_line_error(locate, MNIST, cache_dir=tmp_path / "cache", download=False)


def test_arrays_cached_in_process_until_a_file_changes(tmp_path):
    spec = make_tiny_dataset(tmp_path / "tiny")
    first = read_dataset(spec, tmp_path / "tiny")
    assert read_dataset(spec, tmp_path / "tiny") is first
    assert not first.train_images.flags.writeable  # shared, so read-only
    path = tmp_path / "tiny" / NAMES[1]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert read_dataset(spec, tmp_path / "tiny") is not first


def test_structural_checks_on_unverifiable_raw_files(tmp_path):
    # Without a recorded SHA-256 a raw file is only checked structurally: swapped files still fail.
    spec = make_tiny_dataset(tmp_path / "tiny")
    folder = tmp_path / "raw"
    decompress_files(tmp_path / "tiny", folder)
    shutil.copy(folder / "t10k-labels-idx1-ubyte", folder / "t10k-images-idx3-ubyte")
    message = one_line_error(read_dataset, spec, folder)
    assert str(folder / "t10k-images-idx3-ubyte") in message and "1-dimensional" in message
