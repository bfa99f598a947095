"""`mlplab.sweep.checkpoints`: a group stopped after any epoch and restored from its file trains on bit for bit,
for every stacked optimizer and schedule; a file of another group is refused in one line."""

from __future__ import annotations

import pytest
import torch

from mlplab.config import Config, apply_overrides
from mlplab.errors import MlplabError
from mlplab.sweep import SweepDataCache, train_vectorised
from mlplab.sweep.checkpoints import GroupCheckpoints, saved_weights

pytestmark = pytest.mark.usefixtures("one_thread")

# 784-16-10 on 10,000 training images, batch 256: 40 steps an epoch; three epochs, so that a group
# stopped after its first or second epoch has both a saved state and epochs left.
TINY = dict(hidden=(16,), epochs=3, val_size=50_000, device="cpu", progress=False, download=False, threads=1)
# Each optimizer with the state it keeps (momentum buffers, moments and their step count, mean squares,
# sums of squares), under a schedule of each kind (stepped by batch, by epoch, laid out for the run).
OPTIMIZERS = {
    "sgd": dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3, scheduler="onecycle", lr=0.2),
    "adam": dict(optimizer="adam", lr=3e-3, scheduler="step", step_size=1, gamma=0.5),
    "adamw": dict(optimizer="adamw", lr=3e-3, weight_decay=1e-2, scheduler="cosine"),
    "rmsprop": dict(optimizer="rmsprop", lr=1e-3, momentum=0.5, scheduler="exponential", gamma=0.7),
    "adagrad": dict(optimizer="adagrad", lr=0.05, scheduler="none"),
}


@pytest.fixture(scope="module")
def data():
    return SweepDataCache()


def _configs(optimizer):
    base = apply_overrides(Config(), {**TINY, **OPTIMIZERS[optimizer]})
    lr = base.optim.lr
    return [apply_overrides(base, {"seed": seed, "lr": lr * scale}) for seed in (0, 1) for scale in (1.0, 0.5)]


def _stop_after(epoch):
    def stop(report):
        if report.epoch == epoch + 1:
            raise KeyboardInterrupt  # before epoch + 1 is saved: the file holds epoch
    return stop


# Every optimizer once, stopped after its first or its second epoch (the schedules walked through one or two).
STOPS = [("sgd", 1), ("sgd", 2), ("adam", 2), ("adamw", 1), ("rmsprop", 2), ("adagrad", 1)]


@pytest.mark.parametrize("optimizer, stopped_after", STOPS, ids=[f"{o}-after-epoch-{e}" for o, e in STOPS])
def test_a_group_restored_after_any_epoch_trains_on_bit_for_bit(tmp_path, data, optimizer, stopped_after):
    configs = _configs(optimizer)
    whole = train_vectorised(configs, data=data)
    store = GroupCheckpoints(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train_vectorised(configs, data=data, store=store, on_epoch_end=[_stop_after(stopped_after)])
    assert store.saved() == {0: {"epoch": stopped_after, "epochs": 3, "finished": False, "members": [0, 1, 2, 3]}}
    resumed = train_vectorised(configs, data=data, store=store)
    assert store.saved()[0]["finished"]
    for got, want in zip(resumed, whole):
        assert torch.equal(got.weights, want.weights) and torch.equal(got.best_weights, want.best_weights)
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in got.history.epochs] == \
               [{k: v for k, v in r.items() if k != "seconds"} for r in want.history.epochs]
        assert got.metrics["test_loss"] == want.metrics["test_loss"]
        assert got.metrics["confusion"] == want.metrics["confusion"]
    kept = saved_weights(store.path(0), "best")
    assert all(torch.equal(kept[k], whole[k].best_weights) for k in range(4))


def test_a_finished_group_is_tested_again_not_trained(tmp_path, data):
    configs = _configs("sgd")
    store = GroupCheckpoints(tmp_path)
    first = train_vectorised(configs, data=data, store=store)
    epochs = []
    again = train_vectorised(configs, data=data, store=store, on_epoch_end=[epochs.append])
    assert epochs == []  # no epoch ran
    for got, want in zip(again, first):
        assert torch.equal(got.weights, want.weights) and got.metrics["test_loss"] == want.metrics["test_loss"]


def test_a_file_of_another_group_is_refused_in_one_line(tmp_path, data):
    configs = _configs("sgd")
    store = GroupCheckpoints(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train_vectorised(configs, data=data, store=store, on_epoch_end=[_stop_after(1)])
    with pytest.raises(MlplabError, match=r"cannot resume from .*group-1\.pt: it does not fit group 1") as refused:
        train_vectorised(configs[:2], data=data, store=store)  # other members
    assert "\n" not in str(refused.value)
    with pytest.raises(MlplabError, match="does not fit group 1"):
        train_vectorised(configs, data=data, store=store, dtype=torch.float64)  # another dtype
