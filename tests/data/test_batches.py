"""Batches: every sample once per epoch, reproducible orders from (seed, epoch), eval never drops."""

from __future__ import annotations

import pytest
import torch

from mlplab.data import Batches, TensorSplit
from mlplab.errors import MlplabError


def make_split(count: int = 103) -> TensorSplit:
    """Image i is filled with the value i, and its label is i, so batches show which samples they hold."""
    images = torch.arange(count, dtype=torch.float32).view(count, 1, 1, 1).expand(count, 1, 28, 28).contiguous()
    return TensorSplit(images, torch.arange(count), "train")


def visits(batches: Batches) -> list[int]:
    return torch.cat([labels for _, labels in batches]).tolist()


def test_shapes_and_consistency():
    for images, labels in Batches(make_split(), 10, shuffle=True):
        assert images.dtype == torch.float32 and images.shape[1:] == (1, 28, 28)
        assert labels.dtype == torch.int64 and len(images) == len(labels)
        assert torch.equal(images[:, 0, 0, 0].long(), labels)  # images travel with their labels


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_once_and_last_batch_kept(shuffle):
    batches = Batches(make_split(103), 10, shuffle=shuffle)
    sizes = [len(labels) for _, labels in batches]
    assert len(batches) == 11 and sizes == [10] * 10 + [3]
    assert sorted(visits(batches)) == list(range(103))


def test_drop_last():
    batches = Batches(make_split(103), 10, shuffle=True, drop_last=True)
    seen = visits(batches)
    assert len(batches) == 10 and len(seen) == 100 and len(set(seen)) == 100
    assert len(Batches(make_split(5), 10, drop_last=True)) == 0


def test_evaluation_keeps_order_never_drops_and_does_not_copy():
    split = make_split(103)
    batches = Batches(split, 25)
    assert visits(batches) == list(range(103))
    images, _ = next(iter(batches))
    assert images.data_ptr() == split.images.data_ptr()  # a view, not a copy


def test_same_seed_and_epoch_same_order():
    first, second = Batches(make_split(), 16, shuffle=True, seed=5), Batches(make_split(), 16, shuffle=True, seed=5)
    first.set_epoch(3)
    second.set_epoch(3)
    assert visits(first) == visits(second)
    assert visits(first) != list(range(103))


def test_different_epoch_or_seed_different_order():
    batches = Batches(make_split(), 16, shuffle=True, seed=5)
    orders = []
    for epoch in range(3):
        batches.set_epoch(epoch)
        orders.append(visits(batches))
    other_seed = Batches(make_split(), 16, shuffle=True, seed=6)
    other_seed.set_epoch(0)
    assert len({tuple(o) for o in orders}) == 3 and visits(other_seed) != orders[0]


def test_order_independent_of_global_rng():
    batches = Batches(make_split(), 16, shuffle=True, seed=1)
    torch.manual_seed(0)
    batches.set_epoch(2)
    first = visits(batches)
    torch.manual_seed(12345)
    torch.rand(10)
    state = torch.get_rng_state()
    batches.set_epoch(2)
    assert visits(batches) == first
    assert torch.equal(torch.get_rng_state(), state)  # and the global RNG is not consumed


def test_resume_reproduces_order_without_saved_state():
    running = Batches(make_split(), 16, shuffle=True, seed=9)
    orders = [visits(running) for _ in range(3)]  # each pass advances the epoch: 0, 1, 2
    assert orders[0] != orders[1]
    resumed = Batches(make_split(), 16, shuffle=True, seed=9)
    resumed.set_epoch(2)
    assert visits(resumed) == orders[2]


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "64"])
def test_bad_batch_size(batch_size):
    with pytest.raises(MlplabError, match="batch size must be a whole number of at least 1"):
        Batches(make_split(), batch_size)
