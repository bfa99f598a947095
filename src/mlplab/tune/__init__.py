"""Hyperparameter studies with Optuna: ``mlplab tune``, on one machine or many.

Needs the ``tune`` extra (``pip install "mlplab[tune]"``: Optuna and a PostgreSQL driver);
``import mlplab.tune`` itself does not import Optuna, only running a study does.

    space      `Space`, `parse_space`, `load_space`, `default_space`: what a study samples (TOML)
    objective  `Objective`: one trial trains a config with `mlplab.train`, reports every epoch, is pruned
    storage    `open_storage`: the study's storage (SQLite, a journal file, PostgreSQL) with heartbeats and retries
    journal    `JournalHeartbeatStorage`: Optuna's journal file storage, with the heartbeats it lacks
    batch      `BatchRunner`: ``--batch K``, trials that share a vectorised program train together
    study      `TuneConfig`, `tune`, `TuneResult`: one worker of a study shared by any number

A study from a notebook::

    from mlplab import Config
    from mlplab.tune import TuneConfig, tune

    result = tune(Config(), TuneConfig(study="first", trials=20), say=print)
    result.best_value, result.best_config      # also in runs/tune-first/best.toml

Many workers of one machine share a study best through a journal file
(``TuneConfig(..., storage="journal")``: ``runs/tune-first/study.log``); optuna-dashboard
shows any study: ``dashboard_command(settings.storage_url)`` is the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

_EXPORTS = {
    "Space": "space",
    "Dimension": "space",
    "parse_space": "space",
    "load_space": "space",
    "default_space": "space",
    "DEFAULT_SPACE": "space",
    "Objective": "objective",
    "PruningReporter": "objective",
    "trial_config": "objective",
    "open_storage": "storage",
    "default_storage": "storage",
    "resolve_storage": "storage",
    "dashboard_command": "storage",
    "Heartbeats": "storage",
    "BatchRunner": "batch",
    "TuneConfig": "study",
    "TuneResult": "study",
    "tune": "study",
    "build_pruner": "study",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mlplab.tune.batch import BatchRunner as BatchRunner
    from mlplab.tune.objective import Objective as Objective
    from mlplab.tune.objective import PruningReporter as PruningReporter
    from mlplab.tune.objective import trial_config as trial_config
    from mlplab.tune.space import DEFAULT_SPACE as DEFAULT_SPACE
    from mlplab.tune.space import Dimension as Dimension
    from mlplab.tune.space import Space as Space
    from mlplab.tune.space import default_space as default_space
    from mlplab.tune.space import load_space as load_space
    from mlplab.tune.space import parse_space as parse_space
    from mlplab.tune.storage import Heartbeats as Heartbeats
    from mlplab.tune.storage import dashboard_command as dashboard_command
    from mlplab.tune.storage import default_storage as default_storage
    from mlplab.tune.storage import open_storage as open_storage
    from mlplab.tune.storage import resolve_storage as resolve_storage
    from mlplab.tune.study import TuneConfig as TuneConfig
    from mlplab.tune.study import TuneResult as TuneResult
    from mlplab.tune.study import build_pruner as build_pruner
    from mlplab.tune.study import tune as tune

__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
