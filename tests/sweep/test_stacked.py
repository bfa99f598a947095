"""`mlplab.sweep.stacked`: the batched step follows the manual engine for every loss, activation and
label smoothing, and members of one seed share their images; each member checked against its single run."""

from __future__ import annotations

import pytest
import torch

from mlplab.sweep import train_vectorised

from sweep_helpers import FLOAT32_TOLERANCE, FLOAT64_TOLERANCE, SMALL, assert_member_equals_run, bit_for_bit, single_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("loss,output,activation", [
    ("cross_entropy", "logits", "tanh"), ("quadratic", "logits", "sigmoid"), ("ccql", "log_softmax", "gelu"),
    ("mse", "logits", "elu"), ("nll", "log_softmax", "leaky_relu")])
def test_every_loss_and_activation_follows_the_manual_engine_in_float64(make_config, loss, output, activation):
    members = [dict(seed=0, lr=0.1, momentum=0.9, nesterov=True), dict(seed=1, lr=0.1, momentum=0.5, weight_decay=1e-3)]
    configs = [make_config("lab", **{**member, "loss": loss, "output": output, "activation": activation,
                                     "beta": 0.7, "epochs": 1, "val_size": 58_000}) for member in members]
    result = train_vectorised(configs, dtype=torch.float64)
    for member, config in zip(result.members, configs):
        history, weights = single_run(config, torch.float64)
        assert_member_equals_run(member, history, weights, FLOAT64_TOLERANCE, False)


@pytest.mark.parametrize("preset", ["lab", "logistic"])
def test_members_of_one_seed_share_their_batches_and_still_equal_their_runs(make_config, preset):
    """Two seeds x two settings: the images are gathered once per seed and the first layer is one product
    per seed (`BatchedStep.per_seed`); the configs come in an order that is not seed-major."""
    members = [dict(seed=seed, lr=lr, momentum=momentum) for lr, momentum in ((0.05, 0.9), (0.2, 0.0))
               for seed in (4, 1)]
    configs = [make_config(preset, **{**SMALL, "epochs": 1, **member}) for member in members]
    result = train_vectorised(configs)
    assert [member.index for member in result.members] == [0, 1, 2, 3]
    for member, config in zip(result.members, configs):
        history, weights = single_run(config)
        assert_member_equals_run(member, history, weights, FLOAT32_TOLERANCE,
                                 bit_for_bit("sgd", torch.float32))


@pytest.mark.parametrize("loss,output", [("cross_entropy", "logits"), ("nll", "log_softmax")])
def test_label_smoothed_members_equal_their_runs(make_config, loss, output):
    """The fast recipe's label smoothing: the same target q = (1 - e) e_y + e / C as the manual engine."""
    configs = [make_config("fast", **{**SMALL, "epochs": 1, "seed": seed, "lr": lr, "loss": loss, "output": output,
                                      "batch_size": 128, "precision": "32-true"})
               for seed, lr in ((0, 0.3), (1, 0.1))]
    assert configs[0].train.label_smoothing == 0.1
    result = train_vectorised(configs)
    for member, config in zip(result.members, configs):
        history, weights = single_run(config)
        assert_member_equals_run(member, history, weights, FLOAT32_TOLERANCE,
                                 bit_for_bit("sgd", torch.float32))
    float64 = train_vectorised(configs[:1], dtype=torch.float64)
    history, weights = single_run(configs[0], torch.float64)
    assert_member_equals_run(float64[0], history, weights, FLOAT64_TOLERANCE, False)
