"""Train K MLPs as a few batched programs: `train_vectorised`.

A sweep over seeds, learning rates, momenta, weight decays, Nesterov and schedules of one
architecture and one optimizer (sgd, adam, adamw, rmsprop or adagrad) runs K separate
trainings that each spend most of their time on per-operation overhead. Here the K members
train together: their parameters stacked into (K, P) buffers, their batches gathered into
one (K, B, 784) tensor, the forward and backward passes done with
``torch.baddbmm``/``torch.bmm`` (the manual engine's equations with a member dimension,
`mlplab.sweep.stacked`), and one optimizer update for all (`mlplab.sweep.optimizers`). Each
member still gets exactly what its own ``mlplab train`` run would: the same initial weights
(`initial_model`), the same data order (``Batches.order(epoch)`` of its seed), the learning
rate its own scheduler gives at every step (`mlplab.sweep.optimizers.MemberRates`). On one
CPU thread the weights come out equal to its single run's with the manual engine, bit for
bit in float32 and float64 where the probes of `mlplab.torch_internals` pass
(`bit_for_bit`), to rounding elsewhere, and so do its accuracies; its losses, means of
float32 batch losses, to rounding (tests/sweep/test_vectorised.py). `train_vectorised`
returns a `SweepResult`: per member, a `MemberResult` (`mlplab.sweep.trainer`).

Members that differ in more than these (widths, depth, activation, loss, optimizer, batch
size, epochs, dataset) are split into programs, each one batched program, trained one after
another (`mlplab.sweep.members.partition`). A member whose loss or weights stop being
finite is stopped alone (`Divergence`); the others go on untouched. Members that do not fit
in the memory budget at once train in several groups, one after another (`plan_sweep`). Given
a ``store`` (`mlplab.sweep.checkpoints.GroupCheckpoints`, as `mlplab sweep` gives one), each
group is saved after every epoch, and the same sweep started again continues where it stopped.

    configs = [apply_overrides(from_preset("lab"), {"seed": s, "lr": lr}) for s in range(4) for lr in (0.01, 0.1)]
    print(plan_sweep(configs).describe())       # groups, memory, predicted seconds
    result = train_vectorised(configs)
    result[3].history.column("val_accuracy")    # member 3's validation accuracy by epoch
    model = result.model(3, "best")             # an ordinary mlplab MLP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mlplab.config import Config
from mlplab.models import MLP
from mlplab.sweep.checkpoints import GroupCheckpoints
from mlplab.sweep.members import SweepData, SweepDataCache, as_cache, check_members
from mlplab.sweep.plan import SweepPlan, plan_sweep, sweep_work
from mlplab.sweep.trainer import MemberResult, VectorisedGroup
from mlplab.threads import ThreadGovernor, active_governor

DTYPES = (torch.float32, torch.float64)


@dataclass
class SweepEpoch:
    """What an ``on_epoch_end`` hook is told after each epoch of each group; `halt` ends a member's training."""

    group: int  # 0-based, in the plan's order (over all programs)
    epoch: int  # 1-based
    members: list[int]  # the group's member indices
    records: list[dict[str, Any] | None]  # each member's history record of the epoch; None once it stopped
    seconds: float  # the epoch's wall time, the whole group's
    trainer: VectorisedGroup | None = field(default=None, repr=False)

    def halt(self, member: int, reason: str = "halted") -> None:
        """End member ``member``'s (a sweep index) training after this epoch, as a pruner stops a trial.

        Its history keeps the epochs so far and it is tested with its best epoch's weights;
        `MemberResult.halted` says why. The other members go on.
        """
        if self.trainer is None or member not in self.members:
            raise ValueError(f"member {member} is not in this group ({self.members})")
        self.trainer.halt(self.members.index(member), reason)


@dataclass
class SweepResult:
    """Every member's result, in the order of the configs, and how the sweep ran."""

    members: list[MemberResult]
    plan: SweepPlan  # the plan it followed
    seconds: float  # wall time of the whole sweep, plan included
    extras: dict[str, Any] = field(default_factory=dict)  # threads, dtype, device

    def model(self, index: int, which: str = "last") -> MLP:
        """Member ``index`` as an `MLP` (see `MemberResult.model`)."""
        return self.members[index].model(which)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> MemberResult:
        return self.members[index]


def member_model(result: SweepResult, index: int, which: str = "last") -> MLP:
    """Member ``index`` of a sweep as an ordinary `MLP`, its ``"last"`` or ``"best"`` epoch's weights.

    The model has the member's architecture and the sweep's dtype, is on the CPU and in
    eval mode; ``model(images)`` gives what member ``index`` computes.
    """
    return result.model(index, which)


def train_vectorised(
    configs: Sequence[Config],
    *,
    memory_budget: int | None = None,
    max_group_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    threads: int | None = None,
    data: SweepData | SweepDataCache | None = None,
    plan: SweepPlan | None = None,
    on_epoch_end: Sequence[Callable[[SweepEpoch], None]] = (),
    store: GroupCheckpoints | None = None,
) -> SweepResult:
    """Train every config of ``configs`` in vectorised programs (in groups where they do not all fit at once).

    Args:
        configs: the members: resolved `Config` objects. Members that share the data, the
            network, the loss, the optimizer's kind, the batch sizes and the epochs train as one
            batched program, and may differ in seed, lr, momentum, nesterov, weight_decay,
            scheduler, gamma and step_size; configs that differ in more form several programs,
            trained one after another (`mlplab.sweep.members`).
        memory_budget: bytes a group may take (see `plan_sweep`); default half the available memory.
        max_group_size: at most this many members a group (see `plan_sweep`).
        dtype: float32 (as ``mlplab train``), or float64 (to check against float64 single runs).
        threads: CPU threads for PyTorch while training; default the first config's ``threads``,
            else chosen for the machine's load and the work and re-checked as it trains
            (`mlplab.threads`; inside a caller's governor, as `run_sweep` has, the caller's holds).
        data: the data in the sweep's layout: one `SweepData` for every config (`load_sweep_data`),
            or a `SweepDataCache`; each config's data is loaded as needed when None.
        plan: a plan made by `plan_sweep` for these configs; made here (without timing) when None.
        on_epoch_end: plain callables, each called with a `SweepEpoch` after every epoch of every group.
        store: where each group is saved after every epoch and found again (`GroupCheckpoints`): a
            group it holds continues from its saved epoch (a finished one is only tested again), so
            a sweep stopped at any moment and started again ends as if it had never stopped. It
            must hold groups of this plan.

    Returns a `SweepResult`: per member, its history, test metrics, divergence and weights.
    Raises `MlplabError` (one line) when a config cannot train in a vectorised program.
    """
    started = time.perf_counter()
    check_members(configs)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    cache = as_cache(data, dtype)
    plan = (
        plan
        if plan is not None
        else plan_sweep(
            configs,
            memory_budget=memory_budget,
            dtype=dtype,
            data=cache,
            max_group_size=max_group_size,
            calibrate=False,
        )
    )
    if plan.members != len(configs):
        raise ValueError(f"the plan is for {plan.members} members, not {len(configs)}; make it with these configs")
    governor = ThreadGovernor(threads or configs[0].train.threads, work=sweep_work(configs))
    members, number, devices = [], 0, set()
    with governor:
        governing = governor if governor.active else active_governor()  # the one that chose: this or an outer one
        assert governing is not None  # a governor inside another's block is not active
        for program in plan.programs:
            first = configs[program.members[0]]
            program_data = cache.get(first)
            devices.add(str(program_data.train_images.device))
            for indices in program.groups:
                group = VectorisedGroup(
                    [configs[i] for i in indices], indices, program_data, dtype, program_data.train_images.device
                )
                group.after_step = governor  # re-checks the load (the caller's governor, when nested)
                train_group(group, number, on_epoch_end, store, governing)
                members.extend(group.results())
                number += 1
    members.sort(key=lambda member: member.index)
    return SweepResult(
        members=members,
        plan=plan,
        seconds=time.perf_counter() - started,
        extras={
            **thread_extras(governing),
            "dtype": str(dtype).removeprefix("torch."),
            "device": ", ".join(sorted(devices)),
        },
    )


def train_group(
    group: VectorisedGroup,
    number: int,
    on_epoch_end: Sequence[Callable[[SweepEpoch], None]],
    store: GroupCheckpoints | None,
    governing: ThreadGovernor,
) -> None:
    """Train group ``number`` from its saved epoch (none: the first) to its last, calling the hooks, then saving."""
    done = store.restore(number, group) if store is not None else 0
    # The thread choices each member trains under, as a run records them: those of the processes
    # that trained its saved epochs, then this one's.
    earlier = [history.threads for history in group.histories]
    if done and earlier[0]:
        governing.keep_count(earlier[0][-1]["threads"])  # as a resumed run does (`mlplab.threads`)

    def record_threads() -> None:
        for history, before in zip(group.histories, earlier, strict=True):
            history.threads = before + [dict(entry) for entry in governing.log]

    for epoch in range(done + 1, group.train_config.epochs + 1):
        if not bool(group.alive.any()):
            break  # every member diverged or was halted
        started = time.perf_counter()
        records = group.run_epoch(epoch)
        report = SweepEpoch(number, epoch, list(group.indices), records, time.perf_counter() - started, group)
        for hook in on_epoch_end:
            hook(report)
        if store is not None:  # after the hooks: one may have halted a member
            record_threads()
            store.save(number, group, epoch)
    record_threads()


def thread_extras(governor: ThreadGovernor) -> dict[str, Any]:
    """``threads`` (the count training started with) and ``threads_log`` (every choice, `mlplab.threads`)."""
    return {"threads": governor.log[0]["threads"], "threads_log": [dict(entry) for entry in governor.log]}
