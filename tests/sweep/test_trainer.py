"""`mlplab.sweep.trainer`: a group's divergence, halting and early stopping per member, and its memory."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from mlplab.sweep import member_bytes, partition, train_vectorised
from mlplab.training.loop import TrainingDiverged
from sweep_helpers import FLOAT32_TOLERANCE, MEMBERS, assert_member_equals_run, bit_for_bit, member_configs, single_run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_diverging_member_is_stopped_and_the_others_are_untouched(make_config):
    members = [MEMBERS[0], dict(seed=5, lr=5e3, momentum=0.9), MEMBERS[2]]
    configs = member_configs(make_config, members)
    result = train_vectorised(configs)
    diverged = result[1].diverged
    assert diverged is not None and diverged.epoch == 1 and 1 <= diverged.step <= 157
    assert str(diverged).startswith(f"diverged at epoch 1, step {diverged.step} (")
    assert len(result[1].history) == 0 and result[1].metrics is None
    assert bool(torch.isfinite(result[1].weights).all())  # the last finite weights, from before that step
    with pytest.raises(TrainingDiverged) as refused:  # its single run refuses the same epoch
        single_run(configs[1])
    assert refused.value.epoch == diverged.epoch
    for index in (0, 2):
        history, weights = single_run(configs[index])
        assert_member_equals_run(result[index], history, weights, FLOAT32_TOLERANCE,
                                 bit_for_bit("sgd", torch.float32))


def test_a_hook_can_halt_a_member_and_the_others_go_on_untouched(make_config):
    configs = member_configs(make_config, MEMBERS[:3])

    def halt_member_1(report):
        if report.epoch == 1:
            report.halt(1, "pruned at epoch 1")

    halted = train_vectorised(configs, on_epoch_end=[halt_member_1])
    plain = train_vectorised(configs)
    assert halted[1].halted == "pruned at epoch 1" and halted[1].diverged is None
    assert len(halted[1].history) == 1 and len(plain[1].history) == 2
    assert halted[1].metrics["tested_epoch"] == 1  # tested with its best (only) epoch's weights
    first = {name: value for name, value in halted[1].history[0].items() if name != "seconds"}
    assert first == {name: value for name, value in plain[1].history[0].items() if name != "seconds"}
    assert not torch.equal(halted[1].weights, plain[1].weights)  # it stopped training after epoch 1
    for k in (0, 2):
        assert halted[k].halted is None and torch.equal(halted[k].weights, plain[k].weights)
    with pytest.raises(ValueError, match="member 7 is not in this group"):
        train_vectorised(configs[:1], on_epoch_end=[lambda report: report.halt(7)])


def test_members_stop_early_as_their_runs_do_and_the_others_go_on(make_config):
    """--patience: a member is halted after the epoch its own run stops at; a member without patience runs on."""
    from mlplab.training import load_checkpoint, train

    settings = dict(hidden="32", epochs=8, val_size=50_000, batch_size=128, lr=2.0, momentum=0.0, nesterov=False,
                    scheduler="none")  # lr 2 oscillates: the validation accuracy stalls within a few epochs
    configs = [make_config(**settings, seed=0, patience=1), make_config(**settings, seed=0),
               make_config(**settings, seed=1, patience=2)]
    assert partition(configs) == [[0, 1, 2]]  # patience is a member's own setting
    result = train_vectorised(configs)
    assert result[1].history.stopped is None and len(result[1].history) == 8
    for k in (0, 2):
        run = train(dataclasses.replace(configs[k], train=dataclasses.replace(configs[k].train,
                                                                                  out=f"{configs[k].train.out}{k}")))
        member = result[k]
        assert run.stopped is not None and member.history.stopped == run.stopped
        assert member.halted == run.stopped["reason"] and member.diverged is None
        assert [r["val_accuracy"] for r in member.history.epochs] == [r["val_accuracy"] for r in run.epochs]
        assert member.metrics["test_accuracy"] == run.metrics["test_accuracy"]
        weights = parameters_to_vector(load_checkpoint(run.run_dir / "last.pt")["model"].values())
        if bit_for_bit("sgd", torch.float32):
            assert torch.equal(member.weights, weights)


def test_the_groups_tensors_stay_within_the_predicted_bytes(make_config):
    from mlplab.sweep import VectorisedGroup, load_sweep_data

    configs = [make_config("lab", seed=seed, momentum=0.9) for seed in range(5)]
    data = load_sweep_data(configs[0])
    group = VectorisedGroup(configs, range(5), data)
    predicted = member_bytes(configs[0])
    persistent = ("parameters", "gradients", "optimizer_state", "best_weights", "inputs")
    assert group.persistent_bytes() <= 5 * sum(predicted[name] for name in persistent)
