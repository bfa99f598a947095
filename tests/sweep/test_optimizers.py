"""The stacked Adam, AdamW, RMSprop and Adagrad updates against PyTorch's optimizers and against single runs.

One step at a time: `stacked_optimizer` on random (K, P) buffers, split into tensors of odd
sizes (so that the fused kernels' scalar loops are exercised), against each member's own
torch optimizer as `build_optimizer` makes it, over several steps (Adam's bias correction,
every kind's state). Measured: equal bit for bit, float32 and float64.

Whole runs: members differing in seed, lr and weight decay (and momentum, for RMSprop)
trained vectorised against their single runs (`sweep_helpers.single_run`), 2 epochs of
10,000 images at batch 128 (158 steps). Measured: bit for bit equal in float32 and float64
for every kind; asserted within the tolerances of tests/sweep/test_vectorised.py, and
bit for bit where the probes of `mlplab.torch_internals` pass (`bit_for_bit`).
"""

from __future__ import annotations

import pytest
import torch

from mlplab.config import OptimConfig
from mlplab.optim import build_optimizer, build_schedule
from mlplab.sweep import MemberRates, member_bytes, stacked_optimizer, train_vectorised
from mlplab.sweep.optimizers import state_count
from mlplab.torch_internals import bit_for_bit
from sweep_helpers import FLOAT32_TOLERANCE, FLOAT64_TOLERANCE, SMALL, assert_member_equals_run, single_run

pytestmark = pytest.mark.usefixtures("one_thread")

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
MEMBERS = {  # per optimizer: members differing in seed, lr, weight decay (and momentum)
    "adam": [dict(seed=0, lr=1e-3), dict(seed=1, lr=3e-3, weight_decay=1e-3),
             dict(seed=2, lr=2e-3, weight_decay=1e-2, scheduler="onecycle")],
    "adamw": [dict(seed=0, lr=1e-3, weight_decay=1e-2), dict(seed=1, lr=3e-3), dict(seed=2, lr=2e-3, weight_decay=0.1)],
    "rmsprop": [dict(seed=0, lr=1e-3), dict(seed=1, lr=5e-4, weight_decay=1e-3)],
    "rmsprop_momentum": [dict(seed=0, lr=5e-4, momentum=0.9), dict(seed=1, lr=1e-3),
                         dict(seed=2, lr=2e-4, momentum=0.5, weight_decay=1e-3)],
    "adagrad": [dict(seed=0, lr=0.01), dict(seed=1, lr=0.05, weight_decay=1e-3)],
}
SIZES = [37, 5, 63, 16, 1]  # numbers per tensor of one member: tails of every length mod 8


def optimizer_name(case):
    return case.removesuffix("_momentum")


@DTYPES
@pytest.mark.parametrize("case", MEMBERS)
def test_each_member_equals_its_single_run(make_config, case, dtype):
    optimizer = optimizer_name(case)
    configs = [make_config("lab", **{**SMALL, "batch_size": 128, "optimizer": optimizer, "momentum": 0.0, **member})
               for member in MEMBERS[case]]
    result = train_vectorised(configs, dtype=dtype)
    tolerance = FLOAT32_TOLERANCE if dtype == torch.float32 else FLOAT64_TOLERANCE
    for member, config in zip(result.members, configs):
        history, weights = single_run(config, dtype)
        assert_member_equals_run(member, history, weights, tolerance, bit_for_bit(optimizer, dtype))
        assert member.history[-1]["val_accuracy"] > 0.75  # they learned


def _settings(optimizer):
    momentum = [0.9, 0.0, 0.5] if optimizer == "rmsprop" else [0.0] * 3
    return [OptimConfig(optimizer=optimizer, lr=lr, momentum=mu, nesterov=False, weight_decay=wd)
            for lr, mu, wd in zip((0.01, 0.05, 0.003), momentum, (0.0, 1e-2, 0.1))]


@DTYPES
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "rmsprop", "adagrad"])
def test_stacked_steps_equal_torch_optimizers(optimizer, dtype):
    settings = _settings(optimizer)
    generator = torch.Generator().manual_seed(3)
    start = torch.randn(len(settings), sum(SIZES), generator=generator, dtype=dtype)
    grads = [torch.randn(start.shape, generator=generator, dtype=dtype) * 0.1 for _ in range(6)]
    stacked = stacked_optimizer(settings, like=start, sizes=SIZES)
    negative_lr = -torch.tensor([[config.lr] for config in settings], dtype=torch.float64)
    got = start
    for grad in grads:
        got = stacked.step(got, grad.clone(), negative_lr, out=torch.empty_like(start))
    for k, config in enumerate(settings):
        params = [piece.clone().requires_grad_() for piece in start[k].split(SIZES)]
        reference = build_optimizer(params, config)
        for grad in grads:
            for param, piece in zip(params, grad[k].split(SIZES)):
                param.grad = piece.clone()
            reference.step()
        want = torch.cat([param.detach() for param in params])
        tolerance = 1e-6 if dtype == torch.float32 else 1e-14
        assert ((got[k] - want).abs().max() / want.abs().max()).item() <= tolerance
        if bit_for_bit(optimizer, dtype):
            assert torch.equal(got[k], want)
    assert len(stacked.state_tensors) == state_count(settings)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
def test_a_step_leaves_the_parameters_as_they_were_and_the_state_is_counted(make_config, optimizer):
    settings = _settings(optimizer) if optimizer != "sgd" else [OptimConfig(momentum=0.9)] * 3
    start = torch.randn(3, sum(SIZES))
    before = start.clone()
    stacked = stacked_optimizer(settings, like=start, sizes=SIZES)
    stacked.step(start, torch.randn(3, sum(SIZES)), torch.full((3, 1), -0.01, dtype=torch.float64),
                 out=torch.empty_like(start))
    assert torch.equal(start, before)
    assert sum(t.numel() * t.element_size() for t in stacked.state_tensors) == \
        state_count(settings) * start.numel() * start.element_size()
    config = make_config("lab", optimizer=optimizer, lr=0.01, momentum=settings[0].momentum)
    per_member = member_bytes(config)
    assert per_member["optimizer_state"] == state_count([config.optim]) * per_member["gradients"]


def test_mixed_optimizers_are_refused_by_the_factory():
    with pytest.raises(ValueError, match="share their optimizer"):
        stacked_optimizer([OptimConfig(), OptimConfig(optimizer="adam", momentum=0.0, nesterov=False)], like=torch.zeros(2, 3))


def test_member_rates_equal_a_real_optimizers_learning_rate_at_every_step(make_config):
    configs = [make_config("lab", lr=0.1, scheduler="onecycle", epochs=2),
               make_config("lab", lr=0.3, scheduler="step", step_size=1, gamma=0.5, epochs=2)]
    rates = MemberRates([config.optim for config in configs], epochs=2, steps_per_epoch=7)
    table = torch.cat([rates.epoch(), rates.epoch()])  # (14, 2)
    for column, config in enumerate(configs):
        parameter = torch.zeros(1, requires_grad=True)
        optimizer = build_optimizer([parameter], config.optim)
        schedule = build_schedule(optimizer, config.optim, 2, 7)
        want = []
        for _ in range(2):
            for _ in range(7):
                want.append(optimizer.param_groups[0]["lr"])
                parameter.grad = torch.zeros(1)
                optimizer.step()
                schedule.step_batch()
            schedule.step_epoch()
        assert table[:, column].tolist() == want
