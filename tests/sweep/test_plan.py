"""`mlplab.sweep.plan`: groups within the memory budget, calibrated seconds, and its one-line errors."""

from __future__ import annotations

import pytest
import torch

from mlplab.errors import MlplabError
from mlplab.sweep import member_bytes, plan_sweep, train_vectorised

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_a_budget_too_small_for_one_member_is_a_one_line_error(make_config):
    configs = [make_config("lab")]
    with pytest.raises(MlplabError, match="one member needs .* MiB but the memory budget is") as error:
        plan_sweep(configs, memory_budget=1000, calibrate=False)
    assert "\n" not in str(error.value)


def test_the_plan_is_timed_on_the_threads_training_will_use(make_config, monkeypatch):
    """Not on PyTorch's count of the moment (1 here, the fixture's): the configs ask for 2, and
    `train_vectorised` trains on 2, so its steps are timed on 2 (from Python, with no governor
    around: a busy machine's plan once predicted 80-620 s for a sweep of 8)."""
    import mlplab.sweep.plan

    counts = []
    time_groups = mlplab.sweep.plan.time_groups

    def counted(*args, **kwargs):
        counts.append(torch.get_num_threads())
        return time_groups(*args, **kwargs)

    monkeypatch.setattr(mlplab.sweep.plan, "time_groups", counted)
    configs = [make_config("lab", seed=seed, epochs=1, val_size=58_000, threads=2) for seed in range(2)]
    plan = plan_sweep(configs)
    assert counts == [2] and plan.predicted_seconds is not None
    assert torch.get_num_threads() == 1  # put back
    assert train_vectorised(configs, plan=plan).members[0].history.threads[0]["threads"] == 2
