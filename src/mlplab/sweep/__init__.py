"""Vectorised sweeps: many MLPs trained as a few batched programs, each member as its own run would train.

Modules, in the order a sweep uses them (each imports only those above it):
    members      which configs train together as one program (`partition`, `check_members`), initial models,
                 each dataset the sweep reads, in its layout, loaded once (`SweepDataCache`)
    stacked      K members' parameters as one (K, P) buffer with per-layer views (`StackedMLP`), the manual
                 engine's forward and backward with a member dimension (`BatchedStep`), every member's
                 loss, accuracy and confusion matrix on a split (`evaluate_stacked`)
    optimizers   SGD, Adam, AdamW, RMSprop and Adagrad for all members at once (`stacked_optimizer`), each
                 member's learning rate at every step, from its own scheduler (`MemberRates`)
    trainer      one group's epoch loop, divergence, best epoch and test (`VectorisedGroup`), what comes
                 back per member (`MemberResult`), and a group's timing
    checkpoints  a group's state saved after every epoch and restored by a resume (`GroupCheckpoints`)
    plan         bytes per member, group size for a memory budget, predicted seconds (`plan_sweep`)
    vectorised   the entry point (`train_vectorised`) and what it returns (`SweepResult`, `member_model`)
    grid         the command's grid of configurations (`parse_grid`, `expand`)
    folder       a sweep's folder met again: the same sweep stopped (resumed), finished, or another (`saved_sweep`)
    directory    the command's run and folder: `run_sweep`, its files and tables

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
    "check_members": "members",
    "check_program": "members",
    "partition": "members",
    "initial_model": "members",
    "member_settings": "members",
    "SHARED_FIELDS": "members",
    "VARYING_FIELDS": "members",
    "load_sweep_data": "members",
    "SweepData": "members",
    "SweepDataCache": "members",
    "StackedMLP": "stacked",
    "BatchedStep": "stacked",
    "evaluate_stacked": "stacked",
    "StackedSGD": "optimizers",
    "StackedAdam": "optimizers",
    "StackedRMSprop": "optimizers",
    "StackedAdagrad": "optimizers",
    "stacked_optimizer": "optimizers",
    "MemberRates": "optimizers",
    "VectorisedGroup": "trainer",
    "MemberResult": "trainer",
    "Divergence": "trainer",
    "plan_sweep": "plan",
    "SweepPlan": "plan",
    "ProgramPlan": "plan",
    "member_bytes": "plan",
    "available_memory": "plan",
    "train_vectorised": "vectorised",
    "SweepEpoch": "vectorised",
    "SweepResult": "vectorised",
    "member_model": "vectorised",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.sweep.members import (
        SHARED_FIELDS,
        VARYING_FIELDS,
        SweepData,
        SweepDataCache,
        check_members,
        check_program,
        initial_model,
        load_sweep_data,
        member_settings,
        partition,
    )
    from mlplab.sweep.optimizers import (
        MemberRates,
        StackedAdagrad,
        StackedAdam,
        StackedRMSprop,
        StackedSGD,
        stacked_optimizer,
    )
    from mlplab.sweep.plan import ProgramPlan, SweepPlan, available_memory, member_bytes, plan_sweep
    from mlplab.sweep.stacked import BatchedStep, StackedMLP, evaluate_stacked
    from mlplab.sweep.trainer import Divergence, MemberResult, VectorisedGroup
    from mlplab.sweep.vectorised import SweepEpoch, SweepResult, member_model, train_vectorised


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
