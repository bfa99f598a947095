"""torchvision-compatible datasets: a lab's DataLoader code works with only its import changed."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from data_helpers import NAMES, Route, link_files, serve
from torch.utils.data import DataLoader

from mlplab.data import KMNIST, MNIST, FashionMNIST, get_spec, registry
from mlplab.errors import MlplabError


@pytest.fixture(scope="module")
def root(mnist_dir, tmp_path_factory):
    """A torchvision-style data root: root/MNIST/raw/ holding the four files."""
    root = tmp_path_factory.mktemp("vision")
    link_files(mnist_dir, root / "MNIST" / "raw")
    return root


def test_attributes(root):
    train, test = MNIST(str(root), train=True), MNIST(root, train=False)
    assert len(train) == 60000 and len(test) == 10000 and train.train and not test.train
    assert train.data.shape == (60000, 28, 28) and train.data.dtype == torch.uint8
    assert train.targets.shape == (60000,) and train.targets.dtype == torch.int64
    assert train.classes[0] == "0 - zero" and train.class_to_idx["9 - nine"] == 9
    assert train.root == str(root) and train.raw_folder == str(root / "MNIST" / "raw")
    image, target = test[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and target == 7
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    torch.testing.assert_close(image[0] * 255, test.data[0].float())


def test_dataloader(root):
    loader = DataLoader(MNIST(root, train=True), batch_size=64, shuffle=True)
    images, labels = next(iter(loader))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (64,) and labels.dtype == torch.int64


def test_transforms_applied(root):
    dataset = MNIST(root, train=False, transform=lambda x: x * 2 - 1, target_transform=lambda y: y + 100)
    image, target = dataset[0]
    assert target == 107 and float(image.min()) == -1.0 and float(image.max()) <= 1.0


def test_data_is_a_private_copy(root):
    first, second = MNIST(root, train=False), MNIST(root, train=False)
    first.data[0].fill_(0)
    assert int(second.data[0].max()) == 255


def test_missing_without_download(tmp_path):
    with pytest.raises(MlplabError) as caught:
        MNIST(tmp_path, train=True)
    message = str(caught.value)
    assert "\n" not in message and "download=True" in message and str(tmp_path / "MNIST" / "raw") in message


def test_wrong_dataset_is_rejected(root, tmp_path):
    link_files(root / "MNIST" / "raw", tmp_path / "FashionMNIST" / "raw")
    with pytest.raises(MlplabError, match="does not match fashion-mnist's checksum"):
        FashionMNIST(tmp_path)
    with pytest.raises(MlplabError, match="Kuzushiji-MNIST files not found"):
        KMNIST(tmp_path)


def test_download_into_torchvision_layout(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    routes = {f"/m/{name}": Route((mnist_dir / name).read_bytes()) for name in NAMES}
    with serve(routes) as (base, _):
        monkeypatch.setitem(registry.DATASET_SPECS, "mnist", dataclasses.replace(get_spec("mnist"), mirrors=[base + "/m/"]))
        dataset = MNIST(tmp_path / "data", train=False, download=True)
    assert len(dataset) == 10000
    assert sorted(p.name for p in (tmp_path / "data" / "MNIST" / "raw").iterdir()) == sorted(NAMES)
