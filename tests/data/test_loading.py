"""load_data on the real MNIST copy: split sizes, seeded random splits, normalisations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import pixel_stats

from mlplab.config import DataConfig
from mlplab.data import get_spec, load_data, normalize
from mlplab.data.arrays import read_dataset
from mlplab.errors import MlplabError

MNIST = get_spec("mnist")


@pytest.fixture(scope="module")
def raw(mnist_dir):
    return read_dataset(MNIST, mnist_dir)


def load(mnist_dir, seed=0, **fields):
    return load_data(DataConfig(data_dir=str(mnist_dir), **fields), seed=seed)


def test_default_split_is_last_10k(mnist_dir, raw):
    bundle = load(mnist_dir)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (50000, 10000, 10000)
    assert bundle.source == mnist_dir and bundle.spec is MNIST
    for split, name in ((bundle.train, "train"), (bundle.val, "val"), (bundle.test, "test")):
        assert split.name == name
        assert split.images.dtype == torch.float32 and split.images.shape[1:] == (1, 28, 28)
        assert split.images.is_contiguous() and split.labels.dtype == torch.int64
    np.testing.assert_array_equal(bundle.val.labels.numpy(), raw.train_labels[50000:])
    np.testing.assert_array_equal(bundle.test.labels.numpy(), raw.test_labels)
    assert bundle.val.indices.tolist() == list(range(50000, 60000))


def test_no_validation(mnist_dir):
    bundle = load(mnist_dir, val_split="none")
    assert bundle.val is None and len(bundle.train) == 60000


def test_random_split_is_seeded_disjoint_and_complete(mnist_dir, raw):
    first = load(mnist_dir, seed=1, val_split="random", val_size=5000)
    again = load(mnist_dir, seed=1, val_split="random", val_size=5000)
    other = load(mnist_dir, seed=2, val_split="random", val_size=5000)
    assert (len(first.train), len(first.val)) == (55000, 5000)
    assert torch.equal(first.val.indices, again.val.indices) and torch.equal(first.val.images, again.val.images)
    assert not torch.equal(first.val.indices, other.val.indices)
    both = torch.cat([first.train.indices, first.val.indices])
    assert torch.equal(both.sort().values, torch.arange(60000))  # disjoint and covering
    assert first.val.indices.min() < 50000  # not just the tail
    np.testing.assert_array_equal(first.val.labels.numpy(), raw.train_labels[first.val.indices.numpy()])


def test_random_split_ignores_global_rng(mnist_dir):
    torch.manual_seed(0)
    first = load(mnist_dir, seed=3, val_split="random").val.indices
    torch.manual_seed(99)
    assert torch.equal(first, load(mnist_dir, seed=3, val_split="random").val.indices)


@pytest.mark.parametrize("val_size", [60000, 70000])
def test_a_val_size_past_the_training_set_is_refused_once_its_size_is_known(mnist_dir, val_size):
    with pytest.raises(MlplabError, match="val_size must be a whole number between 1 and 59999"):
        load(mnist_dir, val_size=val_size)


@pytest.mark.parametrize("val_size", [0, -5])
def test_a_val_size_below_one_is_refused_by_the_config(mnist_dir, val_size):
    with pytest.raises(MlplabError, match=rf"val_size must be a whole number in \[1, 1000000\]; got {val_size}"):
        DataConfig(data_dir=str(mnist_dir), val_size=val_size)


@pytest.mark.parametrize("field,value,phrase", [("normalize", "zscore", "standard, unit, symmetric"),
                                                ("val_split", "first", "last, random, none"),
                                                ("dataset", "cifar10", "mnist, fashion-mnist, kmnist")])
def test_unknown_choices_listed(mnist_dir, field, value, phrase):
    with pytest.raises(MlplabError, match=phrase):
        load(mnist_dir, **{field: value})


def test_normalizations(mnist_dir):
    standard = load(mnist_dir).train.images
    std, mean = torch.std_mean(standard)
    assert abs(float(mean)) < 0.01 and abs(float(std) - 1) < 0.01
    unit = load(mnist_dir, normalize="unit").train.images
    assert float(unit.min()) == 0.0 and float(unit.max()) == 1.0
    symmetric = load(mnist_dir, normalize="symmetric").train.images
    assert float(symmetric.min()) == -1.0 and float(symmetric.max()) == 1.0
    torch.testing.assert_close(symmetric[:2000], unit[:2000] * 2 - 1)
    torch.testing.assert_close(standard[:2000], (unit[:2000] - MNIST.mean) / MNIST.std)


def test_normalize_values():
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8)
    torch.testing.assert_close(normalize(pixels, "unit", MNIST), torch.tensor([0.0, 0.2, 1.0]))
    torch.testing.assert_close(normalize(pixels, "symmetric", MNIST), torch.tensor([-1.0, -0.6, 1.0]))
    expected = (torch.tensor([0.0, 0.2, 1.0]) - 0.1307) / 0.3081
    torch.testing.assert_close(normalize(pixels, "standard", MNIST), expected)
    assert pixels.tolist() == [0, 51, 255]  # input untouched
    with pytest.raises(MlplabError, match="choose one of"):
        normalize(pixels, "minmax", MNIST)


def test_recorded_mnist_statistics_match_the_data(raw):
    mean, std = pixel_stats(raw.train_images)
    assert abs(mean - MNIST.mean) < 1e-4 and abs(std - MNIST.std) < 1e-4


def test_device_argument(mnist_dir):
    bundle = load_data(DataConfig(data_dir=str(mnist_dir)), device=torch.device("cpu"))
    assert bundle.train.images.device.type == "cpu" and bundle.test.labels.device.type == "cpu"
