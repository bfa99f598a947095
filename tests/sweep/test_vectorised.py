"""The vectorised trainer against single runs: every member ends where its own manual-engine run ends.

Each member's reference is the same config trained alone by ``prepare`` + ``fit(engine="manual")``
on the bundled MNIST, on one CPU thread. The training split is cut to 10,000 images (val_size
50,000), so two epochs of batch 64 are 314 optimizer steps.

Tolerances. The weights are compared by max |difference| / max |weight| per member:
- float32: 1e-5. One float32 rounding is 6e-8 relative; when two programs round one number per
  step differently, 314 steps of SGD with momentum amplify it to about 7e-7 (measured while
  the update still differed from PyTorch's kernel in one rounding). On this torch the members are
  in fact bit for bit equal to their runs, which the tests also assert wherever the SGD kernel's
  layout was recognised (`kernel_tail_width`).
- float64: 1e-10, as the brief and tests/engines/test_manual.py ask; measured 0.
The per-epoch losses are means of float32 batch losses summed in another order than
``F.nll_loss`` sums them: equal to 1e-6 relative (measured about 1e-8). Accuracies are counts: equal.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from mlplab.errors import MlplabError
from mlplab.models import MLP
from mlplab.optim import build_optimizer, build_schedule
from mlplab.sweep import (MemberRates, check_members, check_program, initial_model, member_bytes, member_model,
                          partition, plan_sweep, train_vectorised)
from mlplab.sweep.update import kernel_tail_width
from mlplab.training import prepare
from mlplab.training.loop import TrainingDiverged
from sweep_helpers import (FLOAT32_TOLERANCE, FLOAT64_TOLERANCE, SMALL, assert_member_equals_run, relative_difference,
                           single_run)

pytestmark = pytest.mark.usefixtures("one_thread")

MEMBERS = [  # differing in seed, lr, momentum, weight decay and Nesterov
    dict(seed=0, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(seed=1, lr=0.2, momentum=0.0),
    dict(seed=2, lr=0.1, momentum=0.5, weight_decay=5e-4),
    dict(seed=3, lr=0.03, momentum=0.8, nesterov=True),
]


def _configs(make_config, members, **shared):
    return [make_config("lab", **{**SMALL, **shared, **member}) for member in members]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_each_member_equals_its_single_run(make_config, dtype):
    configs = _configs(make_config, MEMBERS)
    result = train_vectorised(configs, dtype=dtype)
    tolerance = FLOAT32_TOLERANCE if dtype == torch.float32 else FLOAT64_TOLERANCE
    for member, config in zip(result.members, configs):
        history, weights = single_run(config, dtype)
        assert_member_equals_run(member, history, weights, tolerance, kernel_tail_width(dtype) is not None)
        assert member.history[-1]["val_accuracy"] > 0.75  # they learned


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
                                 kernel_tail_width(torch.float32) is not None)


def test_without_validation_and_with_drop_last_members_still_equal_their_runs(make_config):
    """No validation split (the best epoch is judged on training accuracy) and the last partial batch dropped."""
    configs = [make_config("lab", seed=seed, lr=0.05, epochs=2, val_split="none", drop_last=True, batch_size=100)
               for seed in (0, 1)]
    result = train_vectorised(configs)
    for member, config in zip(result.members, configs):
        history, weights = single_run(config)
        assert member.history[0]["val_loss"] is None and member.history[0]["step"] == 600
        assert_member_equals_run(member, history, weights, FLOAT32_TOLERANCE,
                                 kernel_tail_width(torch.float32) is not None)


def test_schedules_follow_each_members_own_scheduler(make_config):
    """Step, one-cycle, exponential and cosine schedules, three epochs: the lr record and the weights of each member."""
    members = [dict(seed=0, lr=0.05, scheduler="step", step_size=1, gamma=0.5),
               dict(seed=1, lr=0.1, scheduler="onecycle", nesterov=True),
               dict(seed=2, lr=0.2, scheduler="onecycle", momentum=0.5),
               dict(seed=3, lr=0.05, scheduler="exponential", gamma=0.7),
               dict(seed=4, lr=0.05, scheduler="cosine")]
    configs = _configs(make_config, members, epochs=3, val_size=55_000)  # 5,000 images: 79 steps an epoch
    result = train_vectorised(configs)
    for member, config in zip(result.members, configs):
        history, weights = single_run(config)
        assert [r["lr"] for r in member.history.epochs] == [r["lr"] for r in history.epochs]
        assert relative_difference(member.weights, weights) <= FLOAT32_TOLERANCE


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


def test_a_diverging_member_is_stopped_and_the_others_are_untouched(make_config):
    members = [MEMBERS[0], dict(seed=5, lr=5e3, momentum=0.9), MEMBERS[2]]
    configs = _configs(make_config, members)
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
                                 kernel_tail_width(torch.float32) is not None)


def test_the_plan_fits_the_budget_and_groups_change_nothing(make_config):
    configs = [make_config("lab", seed=seed, lr=0.02 * (1 + seed % 3), epochs=1, val_size=58_000)
               for seed in range(7)]  # 2,000 training images: 32 steps
    per_member = sum(member_bytes(configs[0], train_size=2_000).values())
    budget = int(3.5 * per_member)
    plan = plan_sweep(configs, memory_budget=budget)
    assert plan.group_size == 3 and plan.groups == [[0, 1, 2], [3, 4, 5], [6]]
    assert plan.group_bytes <= budget and plan.member_total == per_member
    assert plan.predicted_seconds is not None and plan.predicted_seconds > 0
    assert "7 members in 3 groups of at most 3" in plan.describe()
    capped = plan_sweep(configs, memory_budget=budget, max_group_size=2, calibrate=False)
    assert capped.groups == [[0, 1], [2, 3], [4, 5], [6]] and capped.predicted_seconds is None
    grouped = train_vectorised(configs, plan=plan)
    whole = train_vectorised(configs)
    assert whole.plan.groups == [list(range(7))]
    for a, b in zip(grouped.members, whole.members):
        assert torch.equal(a.weights, b.weights) and a.history.epochs[0]["val_accuracy"] == b.history.epochs[0][
            "val_accuracy"]


def test_the_groups_tensors_stay_within_the_predicted_bytes(make_config):
    from mlplab.sweep import VectorisedGroup, load_sweep_data

    configs = [make_config("lab", seed=seed, momentum=0.9) for seed in range(5)]
    data = load_sweep_data(configs[0])
    group = VectorisedGroup(configs, range(5), data)
    predicted = member_bytes(configs[0])
    persistent = ("parameters", "gradients", "optimizer_state", "best_weights", "inputs")
    assert group.persistent_bytes() <= 5 * sum(predicted[name] for name in persistent)


def test_a_budget_too_small_for_one_member_is_a_one_line_error(make_config):
    configs = [make_config("lab")]
    with pytest.raises(MlplabError, match="one member needs .* MiB but the memory budget is") as error:
        plan_sweep(configs, memory_budget=1000, calibrate=False)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("second,fragment", [
    (dict(hidden="16,32"), "must share hidden: member 1 has (16, 32)"),
    (dict(batch_size=32), "must share batch_size"),
    (dict(loss="cross_entropy"), "must share loss"),
], ids=["hidden", "batch", "loss"])
def test_members_that_cannot_share_one_program_are_refused_by_check_program(make_config, second, fragment):
    configs = [make_config("lab"), make_config("lab", **second)]
    with pytest.raises(MlplabError, match="sweep them separately") as error:
        check_program(configs)
    assert fragment in str(error.value) and "\n" not in str(error.value)
    check_members(configs)  # a sweep takes them, as two programs
    assert partition(configs) == [[0], [1]]


def test_what_the_trainer_does_not_implement_is_refused(make_config):
    with pytest.raises(MlplabError, match="does not implement dropout"):
        check_members([make_config("lab", dropout=0.2)])


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
                                 kernel_tail_width(torch.float32) is not None)


def test_member_model_is_an_ordinary_mlp_computing_what_the_member_computes(make_config):
    configs = _configs(make_config, MEMBERS[:2], epochs=1)
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


def test_initial_weights_are_what_prepare_builds(make_config):
    for seed in (0, 7):
        config = make_config("lab", seed=seed)
        want = parameters_to_vector(prepare(config).model.parameters())
        torch.manual_seed(123)
        before = torch.random.get_rng_state()
        got = parameters_to_vector(initial_model(config, 784, 10).parameters())
        assert torch.equal(got, want)
        assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is left as it was


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
                                 kernel_tail_width(torch.float32) is not None)


def test_a_hook_can_halt_a_member_and_the_others_go_on_untouched(make_config):
    configs = _configs(make_config, MEMBERS[:3])

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


@pytest.mark.parametrize("loss,output", [("cross_entropy", "logits"), ("nll", "log_softmax")])
def test_label_smoothed_members_equal_their_runs(make_config, loss, output):
    """The fast recipe's label smoothing: the same target q = (1 - e) e_y + e / C as the manual engine."""
    configs = [make_config("fast", **{**SMALL, "epochs": 1, "seed": seed, "lr": lr, "loss": loss, "output": output,
                                      "batch_size": 128})
               for seed, lr in ((0, 0.3), (1, 0.1))]
    assert configs[0].train.label_smoothing == 0.1
    result = train_vectorised(configs)
    for member, config in zip(result.members, configs):
        history, weights = single_run(config)
        assert_member_equals_run(member, history, weights, FLOAT32_TOLERANCE,
                                 kernel_tail_width(torch.float32) is not None)
    float64 = train_vectorised(configs[:1], dtype=torch.float64)
    history, weights = single_run(configs[0], torch.float64)
    assert_member_equals_run(float64[0], history, weights, FLOAT64_TOLERANCE, False)


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
        if kernel_tail_width(torch.float32) is not None:
            assert torch.equal(member.weights, weights)
