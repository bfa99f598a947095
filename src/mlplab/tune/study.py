"""A study shared by any number of workers: `tune` runs one worker until the study has its trials.

Every worker started with the same storage and study name joins the same study, on one
machine (SQLite, or a journal file) or many (PostgreSQL). A worker runs trials while places
are left (`mlplab.tune.objective`); when the remaining places are all held by other workers'
running trials it waits, and takes over any whose worker dies (its heartbeat stops: see
`mlplab.tune.storage`). It returns once the study has ``trials`` finished trials (COMPLETE or
PRUNED), so each worker ends by reporting the same best trial. A study that is killed and
started again goes on where it was; one started again with a larger ``trials`` grows.

With ``batch`` > 1 a worker takes up to that many trials at once and trains those that can
share a vectorised program together (`mlplab.tune.batch`); places, heartbeats and take-overs
work as for one trial.

The study folder (``--out``, default ``runs/tune-<study>``) holds the SQLite file (when the
storage is the default) or the journal file (``--storage journal``), ``trials/NNNN`` (each
trial's run directory) and ``best.toml``, the best trial's config, written atomically after
every trial that improves on it and at the end: ``mlplab train --config STUDY_DIR/best.toml``
trains it again.

The first worker records the study's settings (the training flags, the space, the pruner and
the heartbeat) in the study; a worker started with other settings is refused, since its
trials would not be comparable.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplab.choices import PRUNERS
from mlplab.config import PLACE_FIELDS, Config, apply_overrides, to_dict, to_toml
from mlplab.errors import MlplabError, check_choice
from mlplab.files import atomic_write_text
from mlplab.tune.batch import BatchRunner
from mlplab.tune.objective import (
    NEEDS_VALIDATION,
    SURPLUS,
    WORKER,
    Objective,
    SurplusTrial,
    describe,
    requeue,
    trial_config,
)
from mlplab.tune.space import Space, default_space, load_space
from mlplab.tune.storage import (
    GRACE_HEARTBEATS,
    is_storage_error,
    open_storage,
    require_optuna,
    resolve_storage,
    shown_url,
    storage_error,
)

# The settings that may differ between the workers of one study: where they write and run.
LOCAL_FIELDS = (*PLACE_FIELDS, "device")
SETTINGS_KEY = "mlplab"  # the study's user attribute holding the settings its first worker recorded
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class TuneConfig:
    """How a study runs: the flags of ``mlplab tune`` other than the training flags.

    Args:
        study: the study's name; workers with the same storage and name share it.
        trials: finished trials (COMPLETE or PRUNED) the study ends at, over all its workers.
        storage: where the study lives (`mlplab.tune.storage`): default ``sqlite:///STUDY_DIR/study.db``;
            a journal file's path ending in .log (``journal``: ``STUDY_DIR/study.log``) for many workers
            of one machine; ``postgresql://...`` for many machines.
        out: the study's folder (trial run directories, best.toml); default ``runs/tune-<study>``.
        space: a search space TOML file (`mlplab.tune.space`); default `mlplab.tune.space.DEFAULT_SPACE`.
        pruner: median or hyperband (`build_pruner`).
        heartbeat: seconds between a running trial's heartbeats; one silent for three is taken for dead.
        batch: trials this worker takes at once; those that can share a vectorised program train
            together (`mlplab.tune.batch`); 1 trains one trial at a time. Workers of a study may differ in it.
        sampler_seed: seeds this worker's sampler (Optuna's ``TPESampler(seed=...)``), so that a study run
            by one worker draws the same settings every time; None draws afresh. Workers sharing a study
            should each take their own seed, or they draw the same first settings.
    """

    study: str
    trials: int
    storage: str | None = None
    out: str | None = None
    space: str | None = None
    pruner: str = "median"
    heartbeat: int = 10
    batch: int = 1
    sampler_seed: int | None = None

    @property
    def study_dir(self) -> Path:
        """The study's folder."""
        return Path(self.out or f"runs/tune-{self.study}")

    @property
    def storage_url(self) -> str:
        """The storage as workers and optuna-dashboard take it: the default SQLite file filled in,
        a journal file's path made absolute (`mlplab.tune.storage.resolve_storage`)."""
        return resolve_storage(self.storage, self.study_dir)


@dataclass
class TuneResult:
    """What `tune` leaves: the Optuna study (for its own plots and tables) and its best trial."""

    study: Any  # optuna.Study
    study_dir: Path
    complete: int  # finished trials that ran every epoch
    pruned: int  # finished trials stopped early (or diverged)
    best_trial: int | None = None  # the best complete trial's number (None: none completed)
    best_value: float | None = None  # its best epoch's validation accuracy
    best_params: dict[str, Any] = field(default_factory=dict)
    best_config: Config | None = None  # the config best.toml holds
    best_path: Path | None = None  # best.toml


def tune(
    config: Config,
    settings: TuneConfig,
    *,
    space: Space | None = None,
    pruner: Any = None,
    say: Callable[[str], None] | None = None,
) -> TuneResult:
    """Run one worker of the study ``settings`` names until the study has ``settings.trials`` finished trials.

    Args:
        config: the base config every trial starts from (``mlplab train``'s flags); ``out`` is ignored.
        settings: study name, trials, storage, folder, space file, pruner and heartbeat.
        space: a `Space` to sample instead of ``settings.space``'s file (or the default space).
        pruner: an Optuna pruner instead of ``settings.pruner``'s.
        say: called with each line of progress (``print`` shows them; the CLI does).
    """
    optuna = require_optuna()
    check_settings(settings)
    space = space or (load_space(settings.space) if settings.space else default_space())
    base = apply_overrides(config, {"out": None})
    if base.data.val_split == "none":
        raise MlplabError(NEEDS_VALIDATION)
    say = say or (lambda line: None)
    url = settings.storage_url
    storage = open_storage(url, settings.heartbeat)
    try:
        pruner = pruner or build_pruner(settings.pruner, base.train.epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                storage=storage,
                study_name=settings.study,
                direction="maximize",
                load_if_exists=True,
                # constant_liar: workers avoid each other's running trials
                sampler=optuna.samplers.TPESampler(constant_liar=True, seed=settings.sampler_seed),
                pruner=pruner,
            )
        check_same_study(study, recorded_settings(base, space, type(pruner).__name__, settings.heartbeat), url)
        finished = count_states(study)
        say(
            f"study {settings.study}: {finished['finished']} of {settings.trials} trials finished; "
            f"storage {shown_url(url)}; trials in {settings.study_dir}"
        )
        worker = Worker(study, base, space, settings, say, storage=storage)
        worker.run()
        return worker.result()
    except Exception as error:
        if is_storage_error(error):
            raise storage_error(url, error) from None
        raise


def check_settings(settings: TuneConfig) -> None:
    """Refuse a study name, trial count, pruner or heartbeat that cannot work, in one line."""
    if not STUDY_NAME.fullmatch(settings.study or ""):
        raise MlplabError(f"--study must be a name of letters, digits, '.', '_' and '-'; got {settings.study!r}")
    if isinstance(settings.trials, bool) or not isinstance(settings.trials, int) or settings.trials < 1:
        raise MlplabError(f"--trials must be a whole number >= 1; got {settings.trials!r}")
    if isinstance(settings.heartbeat, bool) or not isinstance(settings.heartbeat, int) or settings.heartbeat < 1:
        raise MlplabError(f"--heartbeat must be a whole number of seconds >= 1; got {settings.heartbeat!r}")
    if isinstance(settings.batch, bool) or not isinstance(settings.batch, int) or settings.batch < 1:
        raise MlplabError(f"--batch must be a whole number >= 1; got {settings.batch!r}")
    seed = settings.sampler_seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise MlplabError(f"--sampler-seed must be a whole number in [0, 2**32 - 1]; got {seed!r}")
    check_choice("pruner", settings.pruner, PRUNERS)


def build_pruner(name: str, epochs: int) -> Any:
    """The Optuna pruner ``name`` (one of `mlplab.choices.PRUNERS`), for trials of ``epochs`` epochs.

    median: after 5 finished trials, stop a trial whose accuracy at an epoch is below the median
    of the earlier trials at that epoch. hyperband: successive halving from 1 epoch to ``epochs``.
    """
    import optuna

    check_choice("pruner", name, PRUNERS)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)


def recorded_settings(base: Config, space: Space, pruner: str, heartbeat: int) -> dict[str, Any]:
    """What every worker of a study must share, as plain JSON data."""
    sections = to_dict(base)
    for name in LOCAL_FIELDS:
        for values in sections.values():
            if isinstance(values, dict):
                values.pop(name, None)
    record = {"base": sections, "space": space.to_dict(), "pruner": pruner, "heartbeat": heartbeat}
    return json.loads(json.dumps(record))  # as the storage gives it back (tuples as lists)


def check_same_study(study: Any, record: dict[str, Any], url: str) -> None:
    """Record the settings in a new study; refuse a worker whose settings differ from the recorded ones."""
    saved = study.user_attrs.get(SETTINGS_KEY)
    if saved is None:
        # A study made elsewhere is taken only while it is empty but for queued trials (enqueue_trial).
        ran = [trial for trial in study.get_trials(deepcopy=False) if trial.state.name != "WAITING"]
        if ran or [direction.name for direction in study.directions] != ["MAXIMIZE"]:
            raise MlplabError(
                f"study {study.study_name} in {shown_url(url)} was not made by mlplab tune; choose another --study"
            )
        study.set_user_attr(SETTINGS_KEY, record)
        saved = study.user_attrs[SETTINGS_KEY]  # two first workers at once: the later write holds
    if saved != record:
        raise MlplabError(
            f"study {study.study_name} was started with other settings ({_differences(saved, record)}); "
            "start every worker with the same training flags, --space, --pruner and --heartbeat, "
            "or choose another --study"
        )


def _differences(saved: dict[str, Any], record: dict[str, Any]) -> str:
    """``lr 0.2 there, 0.1 here; the search space``: what a refused worker does differently, briefly."""
    notes = []
    for section, values in record["base"].items():
        there = saved.get("base", {}).get(section)
        if isinstance(values, dict) and isinstance(there, dict):
            notes += [
                f"{name} {there.get(name)!r} there, {value!r} here"
                for name, value in values.items()
                if there.get(name) != value
            ]
        elif there != values:
            notes.append(f"{section} {there!r} there, {values!r} here")
    notes += [
        f"the {what}"
        for what, key in (("search space", "space"), ("pruner", "pruner"), ("heartbeat", "heartbeat"))
        if saved.get(key) != record[key]
    ]
    return "; ".join(notes[:4]) or "another mlplab version"


def count_states(study: Any) -> Counter:
    """Trials by state name (``COMPLETE``, ``RUNNING``, ...), plus ``finished``: COMPLETE and PRUNED."""
    counts = Counter(trial.state.name for trial in study.get_trials(deepcopy=False))
    counts["finished"] = counts["COMPLETE"] + counts["PRUNED"]
    return counts


def best_trial(study: Any) -> Any:
    """The complete trial with the highest score, or None before any trial completes."""
    try:
        return study.best_trial
    except ValueError:
        return None


class Worker:
    """One worker's loop over a study (see the module docstring); `tune` builds and runs it."""

    def __init__(
        self,
        study: Any,
        base: Config,
        space: Space,
        settings: TuneConfig,
        say: Callable[[str], None],
        storage: Any = None,
    ) -> None:
        self.study, self.base, self.space, self.settings, self.say = study, base, space, settings, say
        self.budget = settings.trials
        self.best_path = settings.study_dir / "best.toml"
        self.written: int | None = None  # the trial best.toml last got from this worker
        self.unstarted: dict[int, float] = {}  # running trials not started, by number: when first seen so
        trial_base = apply_overrides(base, {"progress": False})  # trials print through `say`, not a bar
        self.objective = Objective(trial_base, space, settings.study_dir, self.budget, say=say)
        self.batch = (
            BatchRunner(study, storage, self.objective, settings.batch, self.finished, say)
            if settings.batch > 1
            else None
        )  # None: one trial at a time, through study.optimize

    def run(self) -> None:
        """Run trials while places are left; wait while other workers hold the rest; return when the study is done."""
        import optuna

        # After each trial: report it, then stop when finished and running trials fill the study.
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
        callbacks = [self.finished, optuna.study.MaxTrialsCallback(self.budget, states=states)]
        quiet = QuietFailures()
        logging.getLogger(QuietFailures.LOGGER).addFilter(quiet)
        try:
            self._loop(callbacks)
        finally:
            logging.getLogger(QuietFailures.LOGGER).removeFilter(quiet)
        self.write_best()

    def _loop(self, callbacks: list[Any]) -> None:
        import optuna

        waiting = False
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)  # dead workers' trials: FAIL, queued again
                counts = count_states(self.study)
                if counts["finished"] >= self.budget:
                    break
                if counts["finished"] + counts["RUNNING"] < self.budget:
                    waiting = False
                    if self.batch is None:
                        self._optimize(callbacks)
                    else:
                        self.batch.run(self.budget - counts["finished"] - counts["RUNNING"])
                    continue
            self.fail_unstarted()
            if not waiting:
                running = counts["RUNNING"]
                self.say(
                    f"waiting for {running} trial{'s' * (running > 1)} running in other workers "
                    "(this worker takes over any whose worker stops)"
                )
                waiting = True
            time.sleep(self.settings.heartbeat)

    def _optimize(self, callbacks: list[Any]) -> None:
        """Run trials until the study's places are taken. A trial of this worker that another worker
        failed, taking it for dead (its heartbeats came late on a loaded machine), is not this worker's
        end: Optuna cannot record its result, its settings are queued again, and the loop goes on."""
        try:
            self.study.optimize(self.objective, callbacks=callbacks, catch=(SurplusTrial,))
        except ValueError as error:
            if not str(error).startswith("Cannot tell a"):  # optuna.study._tell: the trial is already finished
                raise
            self.say("a trial of this worker was failed by another worker, which took it for dead; it runs again")

    def fail_unstarted(self) -> None:
        """Fail running trials that never started training (their worker died between taking the trial
        and its first heartbeat, so no heartbeat will ever age) once this worker has seen them so for a
        grace period, by its own clock; one that had settings to run is queued again."""
        import optuna

        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        now = time.monotonic()
        self.unstarted = {
            trial.number: self.unstarted.get(trial.number, now) for trial in running if WORKER not in trial.user_attrs
        }
        grace = GRACE_HEARTBEATS * self.settings.heartbeat
        for trial in running:
            if now - self.unstarted.get(trial.number, now) > grace:
                self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                if trial.params:
                    requeue(self.study, trial)

    def finished(self, study: Any, trial: Any) -> None:
        """After each of this worker's trials: one line of progress; best.toml if the study has a new best."""
        if trial.user_attrs.get(SURPLUS):
            self.say(f"trial {trial.number} not run: all {self.budget} trials of the study are taken")
            return
        counts = count_states(study)
        line = f"trial {trial.number} {_outcome(trial)}; {counts['finished']}/{self.budget} finished"
        best = best_trial(study)
        if best is not None:
            line += f", best: trial {best.number} ({best.value:.4f})"
            if self.write_best(best):
                line += f", written to {self.best_path}"
        self.say(line)

    def write_best(self, best: Any = None) -> bool:
        """Write best.toml (atomically) if it does not already say what the study's best trial is:
        not after every trial, nor after a worker that takes over a study finds it up to date."""
        best = best or best_trial(self.study)
        if best is None or (best.number == self.written and self.best_path.exists()):
            return False
        config = trial_config(self.base, self.space, best.params, None)
        header = (
            f"# mlplab tune, study {self.settings.study}: the best trial, {best.number}, best validation "
            f"accuracy {best.value:.4f} (epoch {best.user_attrs.get('best_epoch')})\n"
            f"# its run directory: {best.user_attrs.get('run_dir')}\n"
            f"# sampled: {describe(best.params)}\n"
            f"# train it again: mlplab train --config {self.best_path}\n\n"
        )
        text = header + to_toml(config)
        written_before = self.best_path.is_file() and self.best_path.read_bytes() == text.encode("utf-8")
        if not written_before:
            atomic_write_text(self.best_path, text)
        self.written = best.number
        return not written_before

    def result(self) -> TuneResult:
        """The study's counts and best trial, as the study stands now."""
        counts = count_states(self.study)
        result = TuneResult(self.study, self.settings.study_dir, counts["COMPLETE"], counts["PRUNED"])
        best = best_trial(self.study)
        if best is None:
            return result
        return dataclasses.replace(
            result,
            best_trial=best.number,
            best_value=best.value,
            best_params=best.params,
            best_config=trial_config(self.base, self.space, best.params, None),
            best_path=self.best_path,
        )


class QuietFailures(logging.Filter):
    """Drop Optuna's warnings (with a traceback) about a trial that found no place left (it ran
    nothing; no error) or was interrupted with Ctrl-C (its settings are queued again): the
    worker's own lines say so."""

    LOGGER = "optuna.study._optimize"  # where Optuna reports failed trials
    QUIET = (SurplusTrial.__name__, KeyboardInterrupt.__name__)

    def __init__(self) -> None:
        super().__init__()
        self.dropped: set[str] = set()  # numbers of the trials whose lines are dropped

    def filter(self, record: logging.LogRecord) -> bool:
        """False for both of Optuna's lines about such a trial."""
        message = record.getMessage()
        number = re.match(r"Trial (\d+) failed with", message)
        if number is None:
            return True
        if any(f"{name}(" in message for name in self.QUIET):
            self.dropped.add(number[1])
        return number[1] not in self.dropped


def _outcome(trial: Any) -> str:
    """``complete: val accuracy 0.9512 at epoch 2 (3.1 s)``, ``pruned after epoch 1: val accuracy 0.8012``."""
    seconds = f" ({trial.duration.total_seconds():.1f} s)" if trial.duration is not None else ""
    if trial.state.name == "COMPLETE":
        return f"complete: val accuracy {trial.value:.4f} at epoch {trial.user_attrs.get('best_epoch')}{seconds}"
    if trial.state.name == "PRUNED":
        if "diverged" in trial.user_attrs:
            return f"pruned: diverged in epoch {trial.user_attrs['diverged']}{seconds}"
        steps = trial.intermediate_values
        last = max(steps) if steps else 0
        return f"pruned after epoch {last}: val accuracy {steps.get(last, float('nan')):.4f}{seconds}"
    return f"{trial.state.name.lower()}{seconds}"
