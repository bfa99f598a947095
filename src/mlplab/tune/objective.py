"""One trial of a study: claim a place, sample a config, train it, report each epoch, prune or score.

A trial's config is the study's base config (the training flags, as for ``mlplab train``)
with the sampled values on top (`trial_config`); it trains with `mlplab.train` into its own
run directory, ``STUDY_DIR/trials/NNNN``, a run like any other (eval, plot, resume). After
each epoch the trial reports its validation accuracy to Optuna; when the pruner says the
trial is behind, `PruningReporter` stops training after that epoch and the trial ends as
PRUNED. A trial that runs to the end scores its **best** epoch's validation accuracy: the
epoch its best.pt holds. A run that diverges (a loss of nan or inf) is pruned too: its
settings are known to be bad, and counting it keeps the study from drawing them again.

**Places.** A study runs ``--trials N`` trials, whatever number of workers share it. A
trial claims one of the N places when it starts (`claim_place`): the places are taken by
finished trials (COMPLETE or PRUNED) and by running or queued trials numbered before it.
Trial numbers are handed out one by one by the database, so of two workers that start a
trial at the same moment the later-numbered one sees the other's and yields when no place
is left (it ends as FAIL, marked ``surplus``, having run nothing). No study overshoots N.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.config import Config, apply_overrides
from mlplab.errors import MlplabError
from mlplab.runs.state import Callback, FitState
from mlplab.tune.space import Space

if TYPE_CHECKING:
    from mlplab.runs.history import History

NEEDS_VALIDATION = "mlplab tune compares trials on their validation accuracy: set --val-split last or random"

SURPLUS = "surplus"  # the user attribute of a trial that found every place taken and ran nothing
WORKER = "worker"  # the user attribute naming the worker (host:pid) that trains a trial, set as it starts


class SurplusTrial(Exception):
    """Raised by a trial that found all the study's places taken (see the module docstring)."""


def trial_config(base: Config, space: Space, params: dict[str, Any], run_dir: Path | str | None) -> Config:
    """The config a trial trains: ``base`` with the sampled ``params`` on top, writing into ``run_dir``."""
    return apply_overrides(base, {**space.overrides(params), "out": None if run_dir is None else str(run_dir)})


def scored_epoch(history: History) -> dict[str, Any]:
    """The record a finished trial is scored by: its best epoch by validation accuracy, the one best.pt holds
    (the earliest of equals)."""
    best = history.best_epoch()
    if best is None:
        raise MlplabError(NEEDS_VALIDATION)
    return best


def trial_dir(study_dir: Path, number: int) -> Path:
    """``STUDY_DIR/trials/0007``: the run directory of trial 7."""
    return Path(study_dir) / "trials" / f"{number:04d}"


class PruningReporter(Callback):
    """Report each epoch's validation accuracy to an Optuna trial; stop training when the trial should be pruned.

    After training, ``pruned_epoch`` is the epoch the pruner stopped the trial at (None: it ran to the end).
    """

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.pruned_epoch: int | None = None

    def on_epoch_end(self, state: FitState, record: dict[str, Any]) -> None:
        """Report ``record["val_accuracy"]`` at step ``epoch``; set ``state.stop`` if the pruner says so."""
        self.trial.report(record["val_accuracy"], record["epoch"])
        # The last epoch ends the trial anyway: a trial that ran every epoch counts as complete.
        if record["epoch"] < state.epochs and self.trial.should_prune():
            self.pruned_epoch = record["epoch"]
            state.stop = True
            state.stop_reason = f"pruned by Optuna's pruner after epoch {record['epoch']}"


def claim_place(trial: Any, budget: int) -> None:
    """Take one of the study's ``budget`` places for ``trial``, or raise `SurplusTrial` if none is left."""
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    taken = sum(
        1
        for other in trial.study.get_trials(deepcopy=False)
        if other.state in finished
        or (other.state in (TrialState.RUNNING, TrialState.WAITING) and other.number < trial.number)
    )
    if taken >= budget:
        trial.set_user_attr(SURPLUS, True)
        raise SurplusTrial(f"all {budget} trials of the study are taken")


@dataclass
class Objective:
    """The function Optuna calls once per trial: ``objective(trial) -> best validation accuracy``.

    Args:
        base: the study's base config (the training flags); ``out`` is replaced per trial.
        space: what each trial samples.
        study_dir: the folder the trials' run directories go in.
        budget: the study's number of trials (``--trials``).
        say: called with a line of progress when a trial starts or is interrupted (the CLI prints them).
    """

    base: Config
    space: Space
    study_dir: Path
    budget: int
    say: Callable[[str], None] | None = None

    def __call__(self, trial: Any) -> float:
        claim_place(trial, self.budget)
        try:
            config = self.start(trial)
            return self.fit(trial, config)
        except KeyboardInterrupt:
            requeue(trial.study, trial)  # the settings run again when a worker next starts
            self._say(f"trial {trial.number} interrupted: its settings are queued to run again")
            raise

    def start(self, trial: Any, how: str = "") -> Config:
        """Mark ``trial`` (its place claimed) as this worker's, sample its settings, and return the config it trains.

        ``how``: said after the sampled settings on the "started" line (e.g. that it trains with others).
        """
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")  # started: its heartbeat counts
        params = self.space.sample(trial)
        run_dir = trial_dir(self.study_dir, trial.number)
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        self._say(f"trial {trial.number} started: {describe(params)}{how}")
        return trial_config(self.base, self.space, params, run_dir)

    def fit(self, trial: Any, config: Config) -> float:
        """Train ``config`` (from `start`) with `mlplab.train`, reporting every epoch; the best epoch's val accuracy.

        Raises ``optuna.TrialPruned`` when the pruner stops it or it diverges (user attribute ``diverged``).
        """
        from optuna import TrialPruned

        from mlplab.training.loop import TrainingDiverged
        from mlplab.training.runner import train

        reporter = PruningReporter(trial)
        try:
            history = train(config, callbacks=[reporter])
        except TrainingDiverged as error:
            trial.set_user_attr("diverged", error.epoch)
            raise TrialPruned(f"diverged in epoch {error.epoch}") from None
        if reporter.pruned_epoch is not None:
            raise TrialPruned(f"pruned after epoch {reporter.pruned_epoch}")
        best = scored_epoch(history)
        trial.set_user_attr("best_epoch", best["epoch"])
        return best["val_accuracy"]

    def _say(self, line: str) -> None:
        if self.say is not None:
            self.say(line)


def describe(params: dict[str, Any]) -> str:
    """``lr=0.0123 depth=2 width=64``: sampled values, numbers to 4 significant digits."""
    return " ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}" for name, value in params.items()
    )


def requeue(study: Any, trial: Any) -> None:
    """Queue a trial's settings again, as a dead worker's trial is (once; see `mlplab.tune.storage`)."""
    import optuna

    from mlplab.tune.storage import RETRIES

    frozen = next(other for other in study.get_trials(deepcopy=False) if other.number == trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES)(study, frozen)
