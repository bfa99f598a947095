"""Vectorised sweeps: many MLPs trained as a few batched programs, each member as its own run would train.

Modules, in the order a sweep uses them:
    members        which configs train together as one program (`partition`, `check_members`), initial models
    data           each dataset the sweep reads, in its layout, loaded once (`SweepDataCache`)
    plan           bytes per member, group size for a memory budget, predicted seconds (`plan_sweep`)
    stacked        K members' parameters as one (K, P) buffer with per-layer views (`StackedMLP`)
    schedules      each member's learning rate at every step, from its own scheduler (`MemberRates`)
    batched_step   the manual engine's forward and backward with a member dimension (`BatchedStep`)
    update         SGD for all members at once, per-member lr, momentum, weight decay, Nesterov (`StackedSGD`)
    adaptive       Adam, AdamW, RMSprop and Adagrad likewise (`StackedAdam`, `StackedRMSprop`, `StackedAdagrad`)
    optimizers     the update for a group's optimizer settings, and the state it keeps (`stacked_optimizer`)
    evaluation     every member's loss, accuracy and confusion matrix on a split (`evaluate_stacked`)
    group          one group's epoch loop, divergence, best epoch and test (`VectorisedGroup`)
    results        what comes back per member (`MemberResult`, `SweepResult`, `member_model`)
    vectorised     the entry point (`train_vectorised`)

Names are imported on first use, so ``import mlplab.sweep`` does not import torch::

    from mlplab.sweep import plan_sweep, train_vectorised
    plan = plan_sweep(configs)            # check, group, time; plan.describe() says it in words
    result = train_vectorised(configs, plan=plan)
    result[k].history, result[k].metrics, result[k].diverged, result.model(k)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

_EXPORTS = {
    "train_vectorised": "vectorised", "SweepEpoch": "vectorised",
    "load_sweep_data": "data", "SweepData": "data", "SweepDataCache": "data",
    "plan_sweep": "plan", "SweepPlan": "plan", "ProgramPlan": "plan", "member_bytes": "plan", "available_memory": "plan",
    "check_members": "members", "check_program": "members", "partition": "members",
    "initial_model": "members", "member_settings": "members",
    "SHARED_FIELDS": "members", "VARYING_FIELDS": "members",
    "SweepResult": "results", "MemberResult": "results", "Divergence": "results", "member_model": "results",
    "VectorisedGroup": "group",
    "StackedMLP": "stacked", "BatchedStep": "batched_step", "StackedSGD": "update", "MemberRates": "schedules",
    "StackedAdam": "adaptive", "StackedRMSprop": "adaptive", "StackedAdagrad": "adaptive",
    "stacked_optimizer": "optimizers",
    "evaluate_stacked": "evaluation",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.sweep.adaptive import StackedAdagrad, StackedAdam, StackedRMSprop
    from mlplab.sweep.batched_step import BatchedStep
    from mlplab.sweep.evaluation import evaluate_stacked
    from mlplab.sweep.data import SweepData, SweepDataCache, load_sweep_data
    from mlplab.sweep.group import VectorisedGroup
    from mlplab.sweep.members import (SHARED_FIELDS, VARYING_FIELDS, check_members, check_program, initial_model,
                                      member_settings, partition)
    from mlplab.sweep.optimizers import stacked_optimizer
    from mlplab.sweep.plan import ProgramPlan, SweepPlan, available_memory, member_bytes, plan_sweep
    from mlplab.sweep.results import Divergence, MemberResult, SweepResult, member_model
    from mlplab.sweep.schedules import MemberRates
    from mlplab.sweep.stacked import StackedMLP
    from mlplab.sweep.update import StackedSGD
    from mlplab.sweep.vectorised import SweepEpoch, train_vectorised


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
