"""What the sweep tests share: the small training set, the single-run reference and the comparison.

A member's reference is the same config trained alone by ``prepare`` + ``fit(engine="manual")``
on the bundled MNIST (`single_run`); `assert_member_equals_run` compares the weights (max
|difference| / max |weight|), the history record by record and the test metrics.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from mlplab import torch_internals
from mlplab.optim import build_optimizer, build_schedule
from mlplab.training import fit, prepare

SMALL = dict(epochs=2, val_size=50_000)  # 10,000 training images: 157 steps an epoch at batch 64
FLOAT32_TOLERANCE, FLOAT64_TOLERANCE = 1e-5, 1e-10
MEMBERS = [  # SGD members differing in seed, lr, momentum, weight decay and Nesterov
    dict(seed=0, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(seed=1, lr=0.2, momentum=0.0),
    dict(seed=2, lr=0.1, momentum=0.5, weight_decay=5e-4),
    dict(seed=3, lr=0.03, momentum=0.8, nesterov=True),
]


def member_configs(make_config, members, **shared):
    """One lab config per member: the small training set, ``shared`` settings, then the member's own."""
    return [make_config("lab", **{**SMALL, **shared, **member}) for member in members]


def single_run(config, dtype=torch.float32):
    """The reference: ``config`` trained alone by mlplab's own loop with the manual engine (in ``dtype``)."""
    setup = prepare(config)
    optimizer, schedule = setup.optimizer, setup.schedule
    if dtype == torch.float64:  # the model and the data in float64, the optimizer rebuilt over them
        setup.model.double()
        for split in (setup.data.train, setup.data.val, setup.data.test):
            split.images = split.images.double()
        optimizer = build_optimizer(setup.model.parameters(), config.optim)
        schedule = build_schedule(optimizer, config.optim, config.train.epochs, len(setup.train_batches))
    history = fit(setup.model, setup.train_batches, val_data=setup.val_batches, test_data=setup.test_batches,
                  loss=setup.loss_fn, optimizer=optimizer, scheduler=schedule, epochs=config.train.epochs,
                  engine="manual")
    return history, parameters_to_vector(setup.model.parameters()).detach()


def bit_for_bit(optimizer, dtype=torch.float32):
    """Whether members trained with ``optimizer`` must equal their runs bit for bit here (the registry's verdict)."""
    return torch_internals.bit_for_bit(optimizer, dtype)


def relative_difference(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def assert_member_equals_run(member, history, weights, tolerance, bit_for_bit):
    assert member.diverged is None
    assert relative_difference(member.weights, weights) <= tolerance
    if bit_for_bit:
        assert torch.equal(member.weights, weights)
    assert len(member.history) == len(history)
    loss_tolerance = 1e-6 if weights.dtype == torch.float32 else 1e-12
    for got, want in zip(member.history.epochs, history.epochs):
        assert got["epoch"] == want["epoch"] and got["step"] == want["step"] and got["lr"] == want["lr"]
        assert got["train_accuracy"] == want["train_accuracy"] and got["val_accuracy"] == want["val_accuracy"]
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=loss_tolerance)
        if want["val_loss"] is None:  # no validation split
            assert got["val_loss"] is None
        else:
            assert got["val_loss"] == pytest.approx(want["val_loss"], rel=loss_tolerance)
    got, want = member.metrics, history.metrics
    assert got["test_accuracy"] == want["test_accuracy"] and got["confusion"] == want["confusion"]
    assert got["tested_epoch"] == want["tested_epoch"] and got["best"] == want["best"]
    assert got["test_loss"] == pytest.approx(want["test_loss"], rel=loss_tolerance)


def sweep_state(out):
    """What a finished sweep folder holds that must not depend on when it was stopped: every table and
    best.toml as text, each member's record (wall times and thread choices aside) and its last and best
    weights from the group checkpoints."""
    import json

    from mlplab.sweep.checkpoints import FOLDER, saved_weights

    members = json.loads((out / "members.json").read_text())["members"]
    for member in members:
        member["history"].pop("threads", None)
        for record in member["history"]["epochs"]:
            record.pop("seconds")
        if member["metrics"] is not None:
            member["metrics"].pop("threads", None)
    texts = {name: (out / name).read_text() for name in ("results.json", "results.csv", "settings.json",
                                                         "settings.csv", "best.toml", "sweep.toml", "plan.json")}
    weights = {}
    for path in sorted((out / FOLDER).glob("group-*.pt")):
        for which in ("last", "best"):
            weights.update({(index, which): row for index, row in saved_weights(path, which).items()})
    return {"members": members, "texts": texts, "weights": weights}


def assert_same_sweep(got, want):
    """Two `sweep_state`s equal: records and tables exactly, weights bit for bit."""
    assert got["texts"].keys() == want["texts"].keys()
    for name, text in want["texts"].items():
        if name != "plan.json":  # its predicted seconds come from timings
            assert got["texts"][name] == text, name
    assert got["members"] == want["members"]
    assert got["weights"].keys() == want["weights"].keys()
    for key, row in want["weights"].items():
        assert torch.equal(got["weights"][key], row), key
