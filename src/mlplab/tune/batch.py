"""Several trials at once (``mlplab tune --batch K``): the trials that can share a vectorised program train together.

A worker with ``--batch K`` takes up to K trials at a time (``study.ask``), each claiming its
place as a single trial does (`mlplab.tune.objective.claim_place`: one that finds none left
ends FAIL, marked ``surplus``, having run nothing), and samples their settings
(`Objective.start`). The trials whose config the vectorised trainer takes (`refusal` is None)
train with `mlplab.sweep.train_vectorised`, one batched program per shape
(`mlplab.sweep.partition`: trials that differ in widths, batch size, ... form several); the
others train one by one with `mlplab.train` (`Objective.fit`), as without ``--batch``.

After every epoch each member reports its validation accuracy to its trial and is halted when
the pruner says so (`SweepEpoch.halt`); a member that diverges is pruned, with the ``diverged``
user attribute, as a diverged run is. A member that runs every epoch is COMPLETE with its best
epoch's validation accuracy (``best_epoch``). Each member trains as its own ``mlplab train`` run
with the manual engine would (`mlplab.sweep.vectorised`), so a trial's score does not depend
on ``--batch``. Its run directory, ``STUDY_DIR/trials/NNNN``, is written by
`mlplab.runs.writer.write_trained_run`: eval, plot, report and `mlplab.open_run` read it
like any run (it holds no optimizer state, so it cannot be resumed).

**Heartbeats.** `mlplab.tune.storage.Heartbeats` beats for every trial of the batch from the
moment it is taken until it is told, so a worker killed in the middle of a batch leaves every
one of its trials to be failed and queued again by the next worker, as it leaves one trial.
Ctrl-C queues every unfinished trial of the batch again.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.config import Config
from mlplab.errors import MlplabError
from mlplab.tune.objective import Objective, SurplusTrial, claim_place, requeue, scored_epoch
from mlplab.tune.storage import Heartbeats

# What a single run does that the vectorised trainer does not: such trials train alone.
SINGLE_RUN_ONLY = ("log_batches", "tensorboard", "wandb")
VECTORISED_ENGINES = ("auto", "manual")  # the vectorised trainer computes as the manual engine


def refusal(config: Config) -> str | None:
    """Why ``config`` cannot train in a vectorised program, in a few words; None when it can."""
    from mlplab.sweep.members import check_program

    if config.train.engine not in VECTORISED_ENGINES:
        return f"--engine {config.train.engine} (the vectorised trainer computes as the manual engine)"
    logged = [f"--{name.replace('_', '-')}" for name in SINGLE_RUN_ONLY if getattr(config.train, name)]
    if logged:
        return f"{' and '.join(logged)} (only a single run logs batches or tracks)"
    try:
        check_program([config])
    except MlplabError as error:
        return str(error)
    return None


@dataclass
class BatchRunner:
    """Takes up to ``size`` trials of ``study`` at a time and trains them (see the module docstring).

    Args:
        study: the Optuna study; ``storage``: its storage (for the heartbeats).
        objective: starts a trial (claim, sample, run directory) and trains one alone.
        size: ``--batch``, the most trials taken at once.
        finished: called with ``(study, frozen_trial)`` after each trial is told (the worker's progress line).
        say: called with each other line of progress (which trials train together, which alone).
    """

    study: Any
    storage: Any
    objective: Objective
    size: int
    finished: Callable[[Any, Any], None]
    say: Callable[[str], None]
    data: Any = None  # the datasets the programs read, loaded once per worker (a SweepDataCache)

    def run(self, free: int) -> None:
        """Take up to ``min(size, free)`` trials and train them; each one taken is told before this returns."""
        import optuna

        taken = self.take(min(self.size, free))
        if not taken:
            return
        told: set[int] = set()
        with Heartbeats(self.storage, self.study.study_name, [trial.number for trial in taken]) as beats:

            def tell(trial: Any, **outcome: Any) -> None:
                frozen = self.study.tell(trial, **outcome)
                beats.finish(trial.number)
                told.add(trial.number)
                self.finished(self.study, frozen)

            try:
                self.train(taken, tell)
            except BaseException as error:
                for trial in taken:
                    if trial.number in told:
                        continue
                    if isinstance(error, KeyboardInterrupt):
                        requeue(self.study, trial)  # the settings run again when a worker next starts
                        self.say(f"trial {trial.number} interrupted: its settings are queued to run again")
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                raise

    def take(self, count: int) -> list[Any]:
        """Ask for up to ``count`` trials, each claiming a place; stop at the first that finds none."""
        import optuna

        taken = []
        for _ in range(count):
            with (
                warnings.catch_warnings()
            ):  # heartbeats for asked trials are `Heartbeats`' work, which Optuna cannot see
                warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
                trial = self.study.ask()
            try:
                claim_place(trial, self.objective.budget)
            except SurplusTrial:
                self.finished(self.study, self.study.tell(trial, state=optuna.trial.TrialState.FAIL))
                break
            taken.append(trial)
        return taken

    def train(self, trials: list[Any], tell: Callable[..., None]) -> None:
        """Start every trial, train the vectorisable ones program by program, then the others one by one."""
        from mlplab.sweep.members import describe_program, partition

        started = [(trial, self.objective.start(trial)) for trial in trials]
        together, alone = [], []
        for trial, config in started:
            reason = refusal(config)
            if reason is None:
                together.append((trial, config))
            else:
                alone.append((trial, config))
                self.say(f"trial {trial.number} trains alone: {reason}")
        for program in partition([config for _, config in together]):
            members = [together[index] for index in program]
            numbers = ", ".join(str(trial.number) for trial, _ in members)
            self.say(
                f"trials {numbers} train together, vectorised: {describe_program(members[0][1])}"
                if len(members) > 1
                else f"trial {numbers} trains vectorised: {describe_program(members[0][1])}"
            )
            self.train_program(members, tell)
        for trial, config in alone:
            self.train_alone(trial, config, tell)

    def train_alone(self, trial: Any, config: Config, tell: Callable[..., None]) -> None:
        """Train one trial with `mlplab.train`, as without ``--batch``."""
        import optuna

        try:
            value = self.objective.fit(trial, config)
        except optuna.TrialPruned:
            tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        tell(trial, values=value)

    def train_program(self, members: list[tuple[Any, Config]], tell: Callable[..., None]) -> None:
        """Train trials of one program with `train_vectorised`, reporting and pruning every epoch; tell each."""
        import optuna

        from mlplab.sweep.members import SweepDataCache
        from mlplab.sweep.vectorised import SweepEpoch, train_vectorised

        trials = [trial for trial, _ in members]
        configs = [config for _, config in members]
        epochs = configs[0].train.epochs

        def report(epoch: SweepEpoch) -> None:
            for index, record in zip(epoch.members, epoch.records, strict=True):
                if record is None:
                    continue  # diverged or halted before this epoch
                trial = trials[index]
                trial.report(record["val_accuracy"], record["epoch"])
                # The last epoch ends the trial anyway: a trial that ran every epoch counts as complete.
                if record["epoch"] < epochs and trial.should_prune():
                    epoch.halt(index, f"pruned after epoch {record['epoch']}")

        self.data = self.data or SweepDataCache()
        # The threads: the trials' --threads, else chosen for the machine's load and re-checked (mlplab.threads).
        result = train_vectorised(configs, data=self.data, on_epoch_end=[report])
        for trial, member in zip(trials, result.members, strict=True):
            out = member.config.train.out
            assert out is not None  # `Objective.start` gave every trial its run directory
            write_member_run(member, Path(out))
            if member.diverged is not None:
                trial.set_user_attr("diverged", member.diverged.epoch)
                tell(trial, state=optuna.trial.TrialState.PRUNED)
            elif member.halted is not None:
                tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                best = scored_epoch(member.history)
                trial.set_user_attr("best_epoch", best["epoch"])
                tell(trial, values=best["val_accuracy"])


def write_member_run(member: Any, run_dir: Path) -> None:
    """Write a vectorised member's run directory (`write_trained_run`); a diverged one gets its config and history.

    A diverged member's last weights are from the middle of an epoch, which no run directory
    describes; like a diverged run, it is pruned, and its folder says what it trained and how far.
    """
    from mlplab.data import get_spec
    from mlplab.runs.directory import write_config
    from mlplab.runs.writer import write_trained_run

    if member.diverged is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, member.config)
        member.history.save(run_dir)
        return
    last = member.model("last")
    info = {
        "in_features": member.in_features,
        "num_classes": member.num_classes,
        "classes": list(get_spec(member.config.data.dataset).classes),
        "output": last.output,
    }
    write_trained_run(
        run_dir,
        config=member.config,
        model_info=info,
        last_model=last,
        best_model=member.model("best"),
        history=member.history,
        best=member.metrics["best"],
    )
