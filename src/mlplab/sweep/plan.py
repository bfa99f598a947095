"""Before a sweep runs: how many bytes each member takes, how many members train at once, and how long it will take.

`member_bytes` counts what one member adds to a group, tensor by tensor (P parameters per
member, B the batch size, n_i the widths, N the training images, s bytes per number):

    parameters     2 P s    current and next (the update writes the next, then they swap)
    gradients      P s
    optimizer state  n P s  n = 0, 1 or 2 (`state_count`): SGD's momentum buffers (when any member
                            uses momentum), Adam's two moments, RMSprop's mean squares (and momentum
                            buffers), Adagrad's sums of squares
    best weights   P s      the best epoch's, for the test at the end
    update         P s      one temporary of the update (a Nesterov mask, Adam's step, a denominator)
    first layer    2 n_1 n_0 s   its weights and their gradient regrouped by seed (when seeds repeat)
    inputs         B n_0 s  the member's gathered batch (shared by the members of one seed: counted whole)
    activations    B (4 sum n_i + 6 C) s   z, f(z), the gradients through each layer; the softmax's
    evaluation     E (3 sum n_i + 3 C) s   one evaluation batch of E images through every layer
    data order     4 N 8    the epoch's permutation (int64), laid out by step, and the labels by step

The datasets are held once for all groups (`shared_bytes`) and are not part of the
budget: they are in memory before the groups are made. `plan_sweep` splits the members
into programs (those that can share one batched program, `mlplab.sweep.members.partition`);
for each program it divides the budget (by default half the memory available now) by the
bytes of a member to get the group size, splits the program's members into groups of at
most that size, and, unless told not to, times a few training steps and one evaluation
batch of a real group to predict the seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from mlplab.config import Config
from mlplab.errors import MlplabError
from mlplab.memory import available_memory
from mlplab.models import parameter_count
from mlplab.sweep.members import SweepData, SweepDataCache, as_cache, check_members, describe_program, partition
from mlplab.sweep.optimizers import state_count
from mlplab.sweep.trainer import CALIBRATION_SECONDS, CALIBRATION_STEPS, time_groups
from mlplab.threads import ThreadGovernor

BUDGET_FRACTION = 0.5  # of the memory available when no budget is given
MiB = 2**20


def member_bytes(
    config: Config,
    dtype: torch.dtype = torch.float32,
    train_size: int = 50_000,
    in_features: int = 784,
    num_classes: int = 10,
) -> dict[str, int]:
    """The bytes one member of ``config``'s shape adds to a group, by what they hold (see the module docstring)."""
    widths = (in_features, *config.model.hidden, num_classes)
    size = torch.empty(0, dtype=dtype).element_size()
    count = parameter_count(widths)
    batch, evaluation = config.train.batch_size, config.train.eval_batch_size
    hidden = sum(widths[1:-1])
    return {
        "parameters": 2 * count * size,
        "gradients": count * size,
        "optimizer_state": state_count([config.optim]) * count * size,
        "best_weights": count * size,
        "update": count * size,
        "first_layer": 2 * widths[1] * in_features * size,
        "inputs": batch * in_features * size,
        "activations": batch * (4 * hidden + 6 * num_classes) * size,
        "evaluation": evaluation * (3 * hidden + 3 * num_classes) * size,
        "data_order": 4 * train_size * 8,
    }


@dataclass
class ProgramPlan:
    """One program of a sweep (members that train as one batched program): its groups, memory and timing."""

    name: str  # its shared settings in words (`describe_program`)
    members: list[int]  # its members' indices among the sweep's configs
    group_size: int
    groups: list[list[int]]  # member indices, at most group_size each, seed-major
    bytes_per_member: dict[str, int]  # see `member_bytes`
    epochs: int
    steps_per_epoch: int
    seconds_per_step: dict[int, float] = field(default_factory=dict)  # by group size, from the calibration
    seconds_per_eval_batch: dict[int, float] = field(default_factory=dict)  # likewise
    seconds_per_epoch_setup: dict[int, float] = field(default_factory=dict)  # orders and rates of an epoch
    seconds_per_group_setup: dict[int, float] = field(default_factory=dict)  # initial models, stacking, buffers
    predicted_seconds: float | None = None  # None: not calibrated

    @property
    def member_total(self) -> int:
        """Bytes per member, all parts together."""
        return sum(self.bytes_per_member.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (builtins only)."""
        return {
            "name": self.name,
            "members": self.members,
            "group_size": self.group_size,
            "groups": self.groups,
            "bytes_per_member": dict(self.bytes_per_member),
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "seconds_per_step": dict(self.seconds_per_step),
            "seconds_per_eval_batch": dict(self.seconds_per_eval_batch),
            "seconds_per_epoch_setup": dict(self.seconds_per_epoch_setup),
            "seconds_per_group_setup": dict(self.seconds_per_group_setup),
            "predicted_seconds": self.predicted_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgramPlan:
        """Inverse of `to_dict` (JSON turned the group sizes that key the timings into text)."""
        timings = {name: {int(size): seconds for size, seconds in data[name].items()} for name in _TIMINGS}
        return cls(
            name=data["name"],
            members=list(data["members"]),
            group_size=data["group_size"],
            groups=[list(group) for group in data["groups"]],
            bytes_per_member=dict(data["bytes_per_member"]),
            epochs=data["epochs"],
            steps_per_epoch=data["steps_per_epoch"],
            predicted_seconds=data["predicted_seconds"],
            **timings,
        )


_TIMINGS = ("seconds_per_step", "seconds_per_eval_batch", "seconds_per_epoch_setup", "seconds_per_group_setup")


@dataclass
class SweepPlan:
    """How a sweep will run: its programs and their groups, the memory they take and, if calibrated, the seconds."""

    members: int
    programs: list[ProgramPlan]  # in the order they train
    shared_bytes: int  # the datasets, held once
    budget_bytes: int
    budget_source: str  # how the budget was chosen, in words

    @property
    def groups(self) -> list[list[int]]:
        """Every group of every program, in the order they train."""
        return [group for program in self.programs for group in program.groups]

    @property
    def group_size(self) -> int:
        """The largest group size of any program."""
        return max(program.group_size for program in self.programs)

    @property
    def member_total(self) -> int:
        """Bytes of the largest member, all parts together."""
        return max(program.member_total for program in self.programs)

    @property
    def group_bytes(self) -> int:
        """Predicted bytes of the largest group."""
        return max(program.member_total * len(group) for program in self.programs for group in program.groups)

    @property
    def group_epochs(self) -> int:
        """Epochs summed over the groups: how many times a sweep's ``on_epoch_end`` hooks are called."""
        return sum(len(program.groups) * program.epochs for program in self.programs)

    @property
    def predicted_seconds(self) -> float | None:
        """The whole sweep's predicted seconds; None when not calibrated."""
        seconds = [program.predicted_seconds for program in self.programs]
        known = [value for value in seconds if value is not None]
        return sum(known) if len(known) == len(seconds) else None

    def describe(self) -> str:
        """The plan in a few lines, for a person deciding whether to run it."""
        groups = _count(len(self.groups), "group")
        lines = [
            f"{self.members} members in "
            + (f"{_count(len(self.programs), 'program')} ({groups})" if len(self.programs) > 1 else groups)
            + f"; memory budget {self.budget_bytes / MiB:.0f} MiB ({self.budget_source}); the data: "
            f"{self.shared_bytes / MiB:.0f} MiB, held once"
        ]
        for program in self.programs:
            program_groups = _count(len(program.groups), "group")
            line = (
                f"{'  ' if len(self.programs) > 1 else ''}{program.name}: {len(program.members)} members in "
                f"{program_groups} of at most {program.group_size}, {program.steps_per_epoch} steps an "
                f"epoch, {program.member_total / MiB:.1f} MiB a member"
            )
            if program.predicted_seconds is not None:
                steps = ", ".join(
                    f"{seconds * 1e3:.1f} ms a step for {size}"
                    for size, seconds in sorted(program.seconds_per_step.items(), reverse=True)
                )
                line += f"; {program.predicted_seconds:.1f} s ({steps})"
            lines.append(line)
        if self.predicted_seconds is not None:
            lines.append(
                f"predicted: {self.predicted_seconds:.1f} s (timed on at least {CALIBRATION_STEPS} steps and "
                f"{CALIBRATION_SECONDS:g} s a group size)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (builtins only)."""
        return {
            "members": self.members,
            "groups": self.groups,
            "shared_bytes": self.shared_bytes,
            "budget_bytes": self.budget_bytes,
            "budget_source": self.budget_source,
            "predicted_seconds": self.predicted_seconds,
            "programs": [program.to_dict() for program in self.programs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepPlan:
        """Inverse of `to_dict`: a plan.json read back (a resumed sweep follows its saved plan)."""
        return cls(
            members=data["members"],
            programs=[ProgramPlan.from_dict(p) for p in data["programs"]],
            shared_bytes=data["shared_bytes"],
            budget_bytes=data["budget_bytes"],
            budget_source=data["budget_source"],
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def group_size_for(bytes_per_member: int, budget: int, members: int) -> int:
    """The most members whose bytes fit in ``budget`` (at most ``members``); a one-line error if not even one fits."""
    if bytes_per_member > budget:
        raise MlplabError(
            f"one member needs {bytes_per_member / MiB:.1f} MiB but the memory budget is "
            f"{budget / MiB:.1f} MiB; give a larger budget or a smaller batch size"
        )
    return min(members, budget // bytes_per_member)


def _budget(memory_budget: int | None, device: torch.device) -> tuple[int, str]:
    if memory_budget is not None:
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
            raise MlplabError(f"the memory budget must be a whole number of bytes of at least 1; got {memory_budget!r}")
        return memory_budget, "given"
    available = available_memory(device)
    if available is None:
        return 4 * 2**30, "4 GiB: the free memory could not be read"
    return int(available * BUDGET_FRACTION), f"{BUDGET_FRACTION:.0%} of the {available / 2**30:.1f} GiB available"


def plan_sweep(
    configs: Sequence[Config],
    *,
    memory_budget: int | None = None,
    max_group_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    calibrate: bool = True,
    data: SweepData | SweepDataCache | None = None,
) -> SweepPlan:
    """Plan a vectorised sweep of ``configs``: programs, groups, their memory and (with ``calibrate``) the seconds.

    The configs are split into programs (`mlplab.sweep.members.partition`): members that
    share the network, loss, optimizer kind, batch size, epochs and data train as one
    batched program; programs train one after another, each in groups that fit the budget.

    Args:
        configs: the members (checked by `check_members`).
        memory_budget: bytes a group may take; default half the memory available now.
        max_group_size: at most this many members a group, whatever the budget allows. Smaller
            groups can be faster per member when each member has its own seed: on a 2-core CPU,
            64 lab nets trained 9 at a time took 8.0 s an epoch against 8.7 s all at once (their
            gathered batches stay in the cache); members sharing a seed gain from larger groups.
        dtype: the training dtype (float32, or float64 for exactness checks).
        calibrate: time a few steps and one evaluation batch of real groups (a second or two a
            program) to predict the seconds; False plans the memory only.
        data: a `SweepData` for every config, or a `SweepDataCache`; loaded as needed when None.
    """
    check_members(configs)
    if max_group_size is not None and (
        isinstance(max_group_size, bool) or not isinstance(max_group_size, int) or max_group_size < 1
    ):
        raise MlplabError(f"the largest group size must be a whole number of at least 1; got {max_group_size!r}")
    cache = as_cache(data, dtype)
    # Timed on the threads training will choose for the load of the moment (`train_vectorised`'s
    # governor), not on whatever PyTorch has now; inside a caller's governor (`mlplab sweep`), on its.
    threads = ThreadGovernor(configs[0].train.threads, work=sweep_work(configs)) if calibrate else nullcontext()
    programs = []
    budget, source = None, ""
    with threads:
        for members in partition(configs):
            first = configs[members[0]]
            program_data = cache.get(first)
            if budget is None:
                budget, source = _budget(memory_budget, program_data.train_images.device)
            train_size = len(program_data.train_labels)
            # The member with the most optimizer state: a group keeps momentum buffers for all when one uses momentum.
            most_state = max((configs[k] for k in members), key=lambda config: state_count([config.optim]))
            per_member = member_bytes(most_state, dtype, train_size, program_data.in_features, program_data.num_classes)
            size = group_size_for(sum(per_member.values()), budget, len(members))
            if max_group_size is not None:
                size = min(size, max_group_size)
            # Seed-major, so that members of one seed land in one group and share their images there.
            order = sorted(members, key=lambda k: configs[k].train.seed)
            batch = first.train.batch_size
            program = ProgramPlan(
                name=describe_program(first, program_data.in_features, program_data.num_classes),
                members=list(members),
                group_size=size,
                groups=[order[start : start + size] for start in range(0, len(order), size)],
                bytes_per_member=per_member,
                epochs=first.train.epochs,
                steps_per_epoch=train_size // batch if first.data.drop_last else math.ceil(train_size / batch),
            )
            if calibrate:
                calibrate_program(program, [configs[k] for k in members], program_data, dtype)
            programs.append(program)
    assert budget is not None  # set by the first program: check_members refused a sweep of none
    return SweepPlan(
        members=len(configs), programs=programs, shared_bytes=cache.nbytes, budget_bytes=budget, budget_source=source
    )


def sweep_work(configs: Sequence[Config]) -> int:
    """Multiply-adds of one step of the largest program: its members x batch x an MNIST-shaped net's weights."""

    def weights(config: Config) -> int:
        widths = (784, *config.model.hidden, 10)  # every MNIST-family dataset: 28 x 28 in, 10 classes
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True))

    return max(
        len(program) * configs[program[0]].train.batch_size * weights(configs[program[0]])
        for program in partition(configs)
    )


def calibrate_program(plan: ProgramPlan, configs: Sequence[Config], data: SweepData, dtype: torch.dtype) -> None:
    """Time each group size of a program on throwaway groups (`time_groups`), and predict its seconds."""
    timings = time_groups(configs, data, dtype, [len(group) for group in plan.groups])
    plan.seconds_per_group_setup = {size: timing.group_setup for size, timing in timings.items()}
    plan.seconds_per_step = {size: timing.step for size, timing in timings.items()}
    plan.seconds_per_epoch_setup = {size: timing.epoch_setup for size, timing in timings.items()}
    plan.seconds_per_eval_batch = {size: timing.eval_batch for size, timing in timings.items()}
    eval_batch = configs[0].train.eval_batch_size
    val_batches = math.ceil(len(data.val[1]) / eval_batch) if data.val is not None else 0
    test_batches = math.ceil(len(data.test[1]) / eval_batch)
    plan.predicted_seconds = sum(
        plan.epochs
        * (
            plan.steps_per_epoch * timings[len(group)].step
            + timings[len(group)].epoch_setup
            + val_batches * timings[len(group)].eval_batch
        )
        + test_batches * timings[len(group)].eval_batch
        + timings[len(group)].group_setup
        for group in plan.groups
    )
