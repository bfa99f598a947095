"""One group of members trained as one program: the epoch loop of a vectorised sweep, what it returns, and its timing.

`VectorisedGroup` holds K members' stacked parameters and walks them through an epoch
the way ``mlplab train`` walks one run: each member's batches in its own order
(``Batches.order(epoch)`` of its seed, epochs counted from 1 as `fit` counts them), one
`BatchedStep` and one stacked optimizer update (`mlplab.sweep.optimizers`) per batch with
each member's learning rate of that step, then validation, the best epoch, and at the end
the test metrics of the best epoch's weights, one `MemberResult` per member: the history a
single run's `fit` would give, and its weights.

Divergence is handled per member, per step: the update is written into the spare buffer,
and a member whose loss or new weights are not finite keeps its last finite weights from
then on (`Divergence`); the others go on untouched. A member whose validation loss is not
finite is stopped at the end of that epoch, as `fit` would stop.

`time_groups` times a few steps and one evaluation batch of throwaway groups, so that the
planner (`mlplab.sweep.plan`) can predict a sweep's seconds.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import vector_to_parameters

from mlplab.config import Config, to_dict
from mlplab.data import Batches
from mlplab.metrics import per_class_accuracy
from mlplab.models import MLP
from mlplab.runs.history import History, epoch_record, new_best, test_metrics
from mlplab.sweep.members import SweepData, initial_model
from mlplab.sweep.optimizers import MemberRates, stacked_optimizer
from mlplab.sweep.stacked import BatchedStep, StackedMLP, StackedScores, evaluate_stacked, parameter_sizes
from mlplab.threads import active_governor
from mlplab.training.callbacks import early_stop

CALIBRATION_STEPS = 12  # timed training steps per group size, at least (after 2 untimed ones)
# ... and timed for at least this long: on a busy machine the scheduler shares a core in slices of a few
# ms, and two OpenMP threads beside another process stall now and then for one; 12 steps of a small
# net (5 ms) saw neither and predicted a third of the time beside two busy processes.
CALIBRATION_SECONDS = 0.3


@dataclass(frozen=True)
class Divergence:
    """Where a member's loss or weights stopped being finite: its updates stopped there."""

    epoch: int  # 1-based
    step: int  # the optimizer step, counted from the start of the run (1-based), that was not applied
    reason: str  # e.g. "the training loss is nan"

    def __str__(self) -> str:
        return f"diverged at epoch {self.epoch}, step {self.step} ({self.reason})"


@dataclass
class MemberResult:
    """One member of a vectorised sweep, as its own run would have ended.

    A diverged member's history holds the epochs before the one it diverged in (a single
    run refuses to record that epoch), ``history.metrics`` is None, and its weights are the
    last finite ones, from before the step that was not applied.
    """

    index: int  # position among the sweep's configs
    config: Config
    history: History
    weights: Tensor  # (P,) the last weights, in the order of MLP.parameters()
    best_weights: Tensor  # (P,) the weights of the best epoch (highest val accuracy, else train accuracy)
    in_features: int
    num_classes: int
    diverged: Divergence | None = None
    halted: str | None = None  # why its training was ended early by an ``on_epoch_end`` hook (`SweepEpoch.halt`)

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The test metrics of the best epoch's weights, as a single run's metrics.json (None if it diverged)."""
        return self.history.metrics

    def model(self, which: str = "last") -> MLP:
        """Member's weights in a new `MLP` (in the sweep's dtype, on the CPU): ``"last"`` or ``"best"`` epoch's."""
        if which not in ("last", "best"):
            raise ValueError(f"which must be 'last' or 'best'; got {which!r}")
        row = self.weights if which == "last" else self.best_weights
        model = initial_model(self.config, self.in_features, self.num_classes).to(row.dtype)
        vector_to_parameters(row.detach().cpu().clone(), model.parameters())
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (builtins only): the config, the history and metrics, and the divergence if any."""
        return {
            "index": self.index,
            "config": to_dict(self.config),
            "history": self.history.to_dict(),
            "metrics": self.metrics,
            "diverged": None if self.diverged is None else str(self.diverged),
            "halted": self.halted,
        }


def members_per_seed(seeds: Sequence[int]) -> int:
    """m, when ``seeds`` (sorted) are S distinct seeds m times each; else 1 (each member gathers its own images)."""
    counts = {seed: seeds.count(seed) for seed in seeds}
    same = len(set(counts.values())) == 1
    return next(iter(counts.values())) if same else 1


class VectorisedGroup:
    """K members (configs already checked by `check_members`) trained together on ``data``.

    Args:
        configs: the members' configs.
        indices: their positions among the sweep's configs (for the results).
        data: the shared data.
        dtype, device: of every tensor of the program.
    """

    def __init__(
        self,
        configs: Sequence[Config],
        indices: Sequence[int],
        data: SweepData,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        first = configs[0]
        # Seed-major order: members of one seed side by side, so that they can share their images.
        order = sorted(range(len(configs)), key=lambda k: configs[k].train.seed)
        configs, indices = [configs[k] for k in order], [list(indices)[k] for k in order]
        self.configs, self.indices, self.data = configs, indices, data
        self.device = torch.device(device)
        self.model_config, self.train_config = first.model, first.train
        models = [initial_model(config, data.in_features, data.num_classes) for config in configs]
        self.model = StackedMLP.from_models(models, dtype, self.device)
        self.per_seed = members_per_seed([config.train.seed for config in configs])
        self.step = BatchedStep(
            self.model,
            first.model.activation,
            first.train.loss,
            first.train.beta,
            self.per_seed,
            first.train.label_smoothing,
        )
        self.optimizer = stacked_optimizer(
            [config.optim for config in configs], like=self.model.flat, sizes=parameter_sizes(self.model.widths)
        )
        # One `Batches` per distinct seed (S of them; S = K unless seeds repeat evenly).
        self.batches = [
            Batches(
                data.bundle.train,
                first.train.batch_size,
                shuffle=True,
                drop_last=first.data.drop_last,
                seed=config.train.seed,
            )
            for config in configs[:: self.per_seed]
        ]
        self.steps_per_epoch = len(self.batches[0])
        self.rates = MemberRates([config.optim for config in configs], first.train.epochs, self.steps_per_epoch)
        count = len(configs)
        self.inputs = torch.empty(
            len(self.batches) * first.train.batch_size, data.in_features, dtype=dtype, device=self.device
        )
        self.alive = torch.ones(count, dtype=torch.bool, device=self.device)
        self.stopped: Tensor | None = None  # indices of the members stopped so far, once there are any
        self.diverged: list[Divergence | None] = [None] * count
        self.halted: list[str | None] = [None] * count  # why a member's training was ended early (`halt`)
        self.steps_taken = 0
        self.after_step: Callable[[], None] | None = None  # called after every step (the thread governor's re-check)
        self.histories = [History() for _ in configs]
        self.best_weights = self.model.flat.clone()
        self.best: list[dict[str, Any] | None] = [None] * count
        self.epoch_lr = torch.zeros(count, dtype=torch.float64)  # each member's lr at the start of the epoch

    @property
    def count(self) -> int:
        return len(self.configs)

    def persistent_bytes(self) -> int:
        """Bytes of the tensors the group holds between steps (parameters, gradients, optimizer state, best
        weights, inputs)."""
        tensors = [
            self.model.flat,
            self.model.spare,
            self.step.grads,
            self.best_weights,
            self.inputs,
            *self.optimizer.state_tensors,
        ]
        return sum(t.numel() * t.element_size() for t in tensors)

    def epoch_batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Each step's (S, B) indices into the training split, one row per seed in its own order, and (K, B) labels.

        The orders and labels are laid out when this is called (eagerly); the iterator only slices them.
        """
        orders = torch.stack([batches.order(epoch) for batches in self.batches]).to(self.device)  # (S, N)
        size, count = self.train_config.batch_size, len(self.batches)
        full = min(len(self.batches[0].split) // size, self.steps_per_epoch)
        stop = self.steps_per_epoch * size if self.batches[0].drop_last else orders.shape[1]
        # (steps, K, B): step s's indices for every member, contiguous, laid out once per epoch.
        steps = orders[:, : full * size].view(count, full, size).transpose(0, 1).contiguous()
        labels = self.data.train_labels[steps].repeat_interleave(self.per_seed, dim=1)  # (steps, K, B)
        batches = list(zip(steps, labels, strict=True))
        if stop > full * size:  # the last, smaller batch
            rest = orders[:, full * size : stop].contiguous()
            batches.append((rest, self.data.train_labels[rest].repeat_interleave(self.per_seed, dim=0)))
        return iter(batches)

    def epoch_rates(self) -> Tensor:
        """The next epoch's learning rates, negated, (steps, K, 1) float64 (as a run's Python floats); sets
        `epoch_lr`."""
        rates = self.rates.epoch()  # (steps, K) float64
        self.epoch_lr = rates[0]  # what a run's history records as the epoch's lr
        return (-rates).to(self.device).unsqueeze(2)

    def train_epoch(self, epoch: int, max_steps: int | None = None) -> tuple[Tensor, Tensor]:
        """One epoch for every member; returns each one's mean training loss and accuracy, (K,) float64 each.

        ``max_steps`` stops early (a timing calibration; the means then cover those steps only).
        """
        negative_lr = self.epoch_rates()
        return self.train_steps(self.epoch_batches(epoch), negative_lr, epoch, max_steps)

    def train_steps(
        self, batches: Iterator[tuple[Tensor, Tensor]], negative_lr: Tensor, epoch: int, max_steps: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """The steps of one epoch (see `train_epoch`): gather, forward and backward, update, divergence check."""
        losses, correct, sizes = [], [], []
        for s, (index, labels) in enumerate(batches):
            if max_steps is not None and s >= max_steps:
                break
            size = labels.shape[1]
            x = torch.index_select(self.data.train_images, 0, index.view(-1), out=self.inputs[: index.numel()]).view(
                len(index), size, -1
            )  # (S, B, n_0)
            logits, loss = self.step(x, labels)  # gradients into self.step.grads
            losses.append(loss)
            correct.append((logits.max(dim=1).indices == labels).sum(dim=1))  # arg-max, first of ties
            sizes.append(size)
            self.steps_taken += 1
            new = self.optimizer.step(self.model.flat, self.step.grads, negative_lr[s], out=self.model.spare)
            self._keep_finite(new, loss, epoch)
            self.model.swap()
            if self.after_step is not None:
                self.after_step()
        weights = torch.tensor(sizes, dtype=torch.float64, device=self.device)
        seen = sum(sizes)
        # Exact means, as AverageMeter takes them: each batch's mean loss times its size, summed in float64.
        mean_loss = (weights @ torch.stack(losses).double()) / seen
        accuracy = torch.stack(correct).sum(dim=0).double() / seen
        return mean_loss, accuracy

    def _keep_finite(self, new: Tensor, loss: Tensor, epoch: int) -> None:
        """Stop every member whose loss or new weights are not finite; stopped members keep their last weights."""
        # One reduction per member: a non-finite weight or loss makes the sum inf or nan (so does a
        # sum past the dtype's range, ~1e38 in float32: weights that large have diverged anyway).
        finite = torch.isfinite(new.sum(dim=1) + loss) | ~self.alive
        if not bool(finite.all()):
            for k in torch.nonzero(~finite).flatten().tolist():
                reason = (
                    f"the training loss is {float(loss[k])}"
                    if not math.isfinite(float(loss[k]))
                    else "its weights hold inf or nan after the update"
                )
                self.stop(k, Divergence(epoch, self.steps_taken, reason))
        if self.stopped is not None:
            new.index_copy_(0, self.stopped, self.model.flat.index_select(0, self.stopped))

    def stop(self, k: int, divergence: Divergence) -> None:
        """Stop member k, which diverged (its weights stay as they are from now on), and record why."""
        self.diverged[k] = divergence
        self._freeze(k)

    def halt(self, k: int, reason: str) -> None:
        """End member k's training after this epoch (a pruner's verdict): it is tested with its best weights."""
        if self.diverged[k] is None and self.halted[k] is None:
            self.halted[k] = reason
            self._freeze(k)

    def _freeze(self, k: int) -> None:
        self.alive[k] = False
        self.stopped = torch.nonzero(~self.alive).flatten()

    def evaluate(self, split: tuple[Tensor, Tensor], weights: Tensor | None = None) -> StackedScores:
        """Every member's scores on ``split`` (the current weights, or ``weights`` (K, P))."""
        images, labels = split
        return evaluate_stacked(
            self.model.flat if weights is None else weights,
            self.model.widths,
            images,
            labels,
            batch_size=self.train_config.eval_batch_size,
            activation=self.model_config.activation,
            output=self.model_config.output,
            loss=self.train_config.loss,
            beta=self.train_config.beta,
            label_smoothing=self.train_config.label_smoothing,
        )

    def run_epoch(self, epoch: int) -> list[dict[str, Any] | None]:
        """Train and validate one epoch, and record it for every member still training.

        Returns each member's record of the epoch, None for a member that has stopped.
        """
        started = time.perf_counter()
        train_loss, train_accuracy = self.train_epoch(epoch)
        val = self.evaluate(self.data.val) if self.data.val is not None else None
        if val is not None:
            for k in torch.nonzero(~torch.isfinite(val.loss) & self.alive).flatten().tolist():
                self.stop(k, Divergence(epoch, self.steps_taken, f"the validation loss is {float(val.loss[k])}"))
        seconds = time.perf_counter() - started
        records: list[dict[str, Any] | None] = []
        for k, history in enumerate(self.histories):
            if self.diverged[k] is not None or self.halted[k] is not None:
                records.append(None)
                continue
            record = epoch_record(
                epoch,
                self.steps_taken,
                float(self.epoch_lr[k]),
                float(train_loss[k]),
                float(train_accuracy[k]),
                float(val.loss[k]) if val else None,
                float(val.accuracy[k]) if val else None,
                seconds,
            )
            history.append(record)
            self._update_best(k, record)
            self._stop_early(k, epoch)
            records.append(record)
        return records

    def _stop_early(self, k: int, epoch: int) -> None:
        """Halt member k after ``epoch`` if its ``patience`` says so, as `EarlyStopping` stops a run."""
        patience = self.configs[k].train.patience
        reason = early_stop(self.best[k], epoch, self.train_config.epochs, patience) if patience else None
        if reason is not None:
            self.histories[k].stopped = {"epoch": epoch, "reason": reason}
            self.halt(k, reason)

    def _update_best(self, k: int, record: dict[str, Any]) -> None:
        """Keep member k's weights if this epoch is its best so far (as `fit` judges it)."""
        best = new_best(self.best[k], record)
        if best is not None:
            self.best[k], self.best_weights[k] = best, self.model.flat[k]

    def results(self) -> list[MemberResult]:
        """Test every member that did not diverge with its best epoch's weights; one `MemberResult` each."""
        test = self.evaluate(self.data.test, self.best_weights)
        classes = [str(name) for name in self.data.bundle.spec.classes]
        results = []
        for k, (index, config, history) in enumerate(zip(self.indices, self.configs, self.histories, strict=True)):
            best = self.best[k]
            if self.diverged[k] is None:
                assert best is not None  # set by its first epoch, which every member that did not diverge trained
                confusion = test.confusion[k]
                scores = {
                    "loss": float(test.loss[k]),
                    "accuracy": float(test.accuracy[k]),
                    "count": test.count,
                    "per_class_accuracy": per_class_accuracy(confusion),
                    "confusion": confusion.tolist(),
                }
                history.metrics = test_metrics(
                    scores, classes, history, best["epoch"], best, str(self.device), "vectorised"
                )
            results.append(
                MemberResult(
                    index=index,
                    config=config,
                    history=history,
                    weights=self.model.flat[k].clone(),
                    best_weights=self.best_weights[k].clone(),
                    in_features=self.data.in_features,
                    num_classes=self.data.num_classes,
                    diverged=self.diverged[k],
                    halted=self.halted[k],
                )
            )
        return results


@dataclass
class GroupTiming:
    """Seconds measured on a throwaway group of one size (`time_groups`)."""

    step: float  # a training step
    eval_batch: float  # an evaluation batch
    epoch_setup: float  # an epoch's batch orders and learning rates
    group_setup: float  # initial models, stacking, buffers


def time_groups(
    configs: Sequence[Config], data: SweepData, dtype: torch.dtype, sizes: Sequence[int]
) -> dict[int, GroupTiming]:
    """Time each group size of ``sizes`` on a throwaway group of the first members of ``configs`` (one program)."""
    governor = active_governor()  # the training's thread choice: timed steps run on the count training will
    # The calibration draws a second epoch's rates: a one-epoch onecycle schedule would refuse
    # to step past its last step, so the throwaway groups are given two epochs (same step cost).
    configs = [
        dataclasses.replace(c, train=dataclasses.replace(c.train, epochs=max(2, c.train.epochs))) for c in configs
    ]
    # Untimed: the first group of a process also runs one-time checks (the kernels' probes).
    VectorisedGroup(configs[:1], [0], data, dtype, data.train_images.device)
    timings = {}
    for size in sorted(set(sizes)):
        if governor is not None:
            governor.check_now()  # the load since training's threads were chosen (the data loaded meanwhile)
        timings[size] = _time_group(configs[:size], data, dtype)
    return timings


def _time_group(configs: Sequence[Config], data: SweepData, dtype: torch.dtype) -> GroupTiming:
    """Set up a group of ``configs``, then time its steps, an epoch's setup and one evaluation batch."""
    started = time.perf_counter()
    group = VectorisedGroup(configs, range(len(configs)), data, dtype, data.train_images.device)
    group_setup = time.perf_counter() - started
    group.train_epoch(1, max_steps=2)  # untimed: first calls allocate
    started = time.perf_counter()
    rates, batches = group.epoch_rates(), group.epoch_batches(2)  # once: the rates step the schedules on
    epoch_setup = time.perf_counter() - started
    step = _seconds_per_step(group, batches, rates)
    images, labels = data.test
    eval_batch = configs[0].train.eval_batch_size
    one_batch = (images[:eval_batch], labels[:eval_batch])
    group.evaluate(one_batch)  # untimed, as above
    return GroupTiming(
        step=step,
        eval_batch=_median_seconds(lambda: group.evaluate(one_batch)),
        epoch_setup=epoch_setup,
        group_setup=group_setup,
    )


def _median_seconds(work: Callable[[], Any], repeats: int = 3) -> float:
    """The median of ``repeats`` timings of ``work()``: one stall on a busy machine (a descheduled OpenMP thread
    can hold an operation up for a second) would otherwise stand for every epoch."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _seconds_per_step(group: VectorisedGroup, batches: Iterator[tuple[Tensor, Tensor]], rates: Tensor) -> float:
    """Seconds a training step of ``group`` takes: steps timed until `CALIBRATION_STEPS` and
    `CALIBRATION_SECONDS` are both passed."""
    started, first, drawn = time.perf_counter(), group.steps_taken, 0
    while True:
        group.train_steps(batches, rates, epoch=2, max_steps=CALIBRATION_STEPS)
        drawn += CALIBRATION_STEPS + 1  # train_steps draws one batch past its last step
        elapsed = time.perf_counter() - started
        if (
            elapsed >= CALIBRATION_SECONDS or drawn + CALIBRATION_STEPS > group.steps_per_epoch
        ):  # enough, or no batches left
            return elapsed / (group.steps_taken - first)
