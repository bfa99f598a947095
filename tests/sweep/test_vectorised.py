"""The vectorised trainer against single runs: every member ends where its own manual-engine run ends.

Each member's reference is the same config trained alone by ``prepare`` + ``fit(engine="manual")``
on the bundled MNIST, on one CPU thread. The training split is cut to 10,000 images (val_size
50,000), so two epochs of batch 64 are 314 optimizer steps.

Tolerances. The weights are compared by max |difference| / max |weight| per member:
- float32: 1e-5. One float32 rounding is 6e-8 relative; when two programs round one number per
  step differently, 314 steps of SGD with momentum amplify it to about 7e-7 (measured while
  the update still differed from PyTorch's kernel in one rounding). On this torch the members are
  in fact bit for bit equal to their runs, which the tests also assert wherever the probes of
  `mlplab.torch_internals` pass (`bit_for_bit`: the SGD kernel's layout recognised, bmm slices as mm).
- float64: 1e-10, as the brief and tests/engines/test_manual.py ask; measured 0.
The per-epoch losses are means of float32 batch losses summed in another order than
``F.nll_loss`` sums them: equal to 1e-6 relative (measured about 1e-8). Accuracies are counts: equal.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from mlplab.errors import MlplabError
from mlplab.models import MLP
from mlplab.sweep import check_program, initial_model, member_model, partition, plan_sweep, train_vectorised
from mlplab.training import prepare

from sweep_helpers import (FLOAT32_TOLERANCE, FLOAT64_TOLERANCE, MEMBERS, SMALL, assert_member_equals_run, bit_for_bit,
                           member_configs, relative_difference, single_run)

pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_each_member_equals_its_single_run(make_config, dtype):
    configs = member_configs(make_config, MEMBERS)
    result = train_vectorised(configs, dtype=dtype)
    tolerance = FLOAT32_TOLERANCE if dtype == torch.float32 else FLOAT64_TOLERANCE
    for member, config in zip(result.members, configs):
        history, weights = single_run(config, dtype)
        assert_member_equals_run(member, history, weights, tolerance, bit_for_bit("sgd", dtype))
        assert member.history[-1]["val_accuracy"] > 0.75  # they learned


def test_without_validation_and_with_drop_last_members_still_equal_their_runs(make_config):
    """No validation split (the best epoch is judged on training accuracy) and the last partial batch dropped."""
    configs = [make_config("lab", seed=seed, lr=0.05, epochs=2, val_split="none", drop_last=True, batch_size=100)
               for seed in (0, 1)]
    result = train_vectorised(configs)
    for member, config in zip(result.members, configs):
        history, weights = single_run(config)
        assert member.history[0]["val_loss"] is None and member.history[0]["step"] == 600
        assert_member_equals_run(member, history, weights, FLOAT32_TOLERANCE,
                                 bit_for_bit("sgd", torch.float32))


def test_schedules_follow_each_members_own_scheduler(make_config):
    """Step, one-cycle, exponential and cosine schedules, three epochs: the lr record and the weights of each member."""
    members = [dict(seed=0, lr=0.05, scheduler="step", step_size=1, gamma=0.5),
               dict(seed=1, lr=0.1, scheduler="onecycle", nesterov=True),
               dict(seed=2, lr=0.2, scheduler="onecycle", momentum=0.5),
               dict(seed=3, lr=0.05, scheduler="exponential", gamma=0.7),
               dict(seed=4, lr=0.05, scheduler="cosine")]
    configs = member_configs(make_config, members, epochs=3, val_size=55_000)  # 5,000 images: 79 steps an epoch
    result = train_vectorised(configs)
    for member, config in zip(result.members, configs):
        history, weights = single_run(config)
        assert [r["lr"] for r in member.history.epochs] == [r["lr"] for r in history.epochs]
        assert relative_difference(member.weights, weights) <= FLOAT32_TOLERANCE


def test_a_random_validation_split_puts_each_seed_in_a_program_of_its_own(make_config):
    configs = [make_config("lab", val_split="random", seed=seed, lr=lr, epochs=1, val_size=50_000)
               for seed in (0, 1) for lr in (0.05, 0.1)]
    with pytest.raises(MlplabError, match="val-split last or none, or one seed"):
        check_program(configs)
    assert partition(configs) == [[0, 1], [2, 3]]
    result = train_vectorised(configs)
    for index in (1, 2):  # each seed's members trained on that seed's split
        history, weights = single_run(configs[index])
        assert_member_equals_run(result[index], history, weights, FLOAT32_TOLERANCE,
                                 bit_for_bit("sgd", torch.float32))


def test_member_model_is_an_ordinary_mlp_computing_what_the_member_computes(make_config):
    configs = member_configs(make_config, MEMBERS[:2], epochs=1)
    result = train_vectorised(configs)
    _, weights = single_run(configs[1])
    reference = initial_model(configs[1], 784, 10)
    vector_to_parameters(weights, reference.parameters())
    images = prepare(configs[1]).data.test.images[:100]
    for which, row in (("last", result[1].weights), ("best", result[1].best_weights)):
        model = member_model(result, 1, which)
        assert isinstance(model, MLP) and model.widths == (784, 16, 32, 24, 10) and not model.training
        assert torch.equal(parameters_to_vector(model.parameters()), row)
        with torch.no_grad():
            assert torch.allclose(model(images), reference(images), rtol=1e-5, atol=1e-6)


def test_importing_mlplab_sweep_does_not_import_torch():
    code = "import sys, mlplab, mlplab.sweep; assert 'torch' not in sys.modules; mlplab.sweep.plan_sweep"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_members_of_other_shapes_activations_and_losses_train_as_programs_and_equal_their_runs(make_config):
    """The issue's grid: widths 16-32-24 and 64-64, two activations, two losses, two lrs and seeds: four programs."""
    combinations = [dict(hidden=hidden, activation=activation, loss=loss, lr=lr, seed=seed)
                    for hidden, activation, loss in (((16, 32, 24), "relu", "cross_entropy"), ((64, 64), "relu",
                                                     "cross_entropy"), ((16, 32, 24), "tanh", "cross_entropy"),
                                                     ((16, 32, 24), "relu", "mse"))
                    for lr, seed in ((0.05, 0), (0.1, 1))]
    configs = [make_config("lab", **{**SMALL, "epochs": 1, **c}) for c in combinations]
    assert partition(configs) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    plan = plan_sweep(configs, calibrate=False)
    assert len(plan.programs) == 4 and plan.groups == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert plan.programs[1].name.startswith("mnist 784-64-64-10 relu, cross_entropy, sgd, batch 64")
    assert "8 members in 4 programs (4 groups)" in plan.describe()
    assert plan.member_total == plan.programs[1].member_total > plan.programs[0].member_total
    epochs = []
    result = train_vectorised(configs, plan=plan, on_epoch_end=[lambda report: epochs.append(report.members)])
    assert epochs == plan.groups  # one call per group epoch, in the plan's order
    assert [member.index for member in result.members] == list(range(8))
    for index in (1, 2, 5, 6):  # a member of each program
        history, weights = single_run(configs[index])
        assert result[index].model().widths == (784, *combinations[index]["hidden"], 10)
        assert_member_equals_run(result[index], history, weights, FLOAT32_TOLERANCE,
                                 bit_for_bit("sgd", torch.float32))
