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
    "available_memory": "mlplab.memory",
    "train_vectorised": "vectorised",
    "SweepEpoch": "vectorised",
    "SweepResult": "vectorised",
    "member_model": "vectorised",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.memory import available_memory as available_memory
    from mlplab.sweep.members import SHARED_FIELDS as SHARED_FIELDS
    from mlplab.sweep.members import VARYING_FIELDS as VARYING_FIELDS
    from mlplab.sweep.members import SweepData as SweepData
    from mlplab.sweep.members import SweepDataCache as SweepDataCache
    from mlplab.sweep.members import check_members as check_members
    from mlplab.sweep.members import check_program as check_program
    from mlplab.sweep.members import initial_model as initial_model
    from mlplab.sweep.members import load_sweep_data as load_sweep_data
    from mlplab.sweep.members import member_settings as member_settings
    from mlplab.sweep.members import partition as partition
    from mlplab.sweep.optimizers import MemberRates as MemberRates
    from mlplab.sweep.optimizers import StackedAdagrad as StackedAdagrad
    from mlplab.sweep.optimizers import StackedAdam as StackedAdam
    from mlplab.sweep.optimizers import StackedRMSprop as StackedRMSprop
    from mlplab.sweep.optimizers import StackedSGD as StackedSGD
    from mlplab.sweep.optimizers import stacked_optimizer as stacked_optimizer
    from mlplab.sweep.plan import ProgramPlan as ProgramPlan
    from mlplab.sweep.plan import SweepPlan as SweepPlan
    from mlplab.sweep.plan import member_bytes as member_bytes
    from mlplab.sweep.plan import plan_sweep as plan_sweep
    from mlplab.sweep.stacked import BatchedStep as BatchedStep
    from mlplab.sweep.stacked import StackedMLP as StackedMLP
    from mlplab.sweep.stacked import evaluate_stacked as evaluate_stacked
    from mlplab.sweep.trainer import Divergence as Divergence
    from mlplab.sweep.trainer import MemberResult as MemberResult
    from mlplab.sweep.trainer import VectorisedGroup as VectorisedGroup
    from mlplab.sweep.vectorised import SweepEpoch as SweepEpoch
    from mlplab.sweep.vectorised import SweepResult as SweepResult
    from mlplab.sweep.vectorised import member_model as member_model
    from mlplab.sweep.vectorised import train_vectorised as train_vectorised


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
