"""A study in an SQLite file, its workers taking turns to change a trial's state.

Optuna changes a trial's state (a queued trial taken to run, a dead worker's trial failed) by
reading the trial ``FOR UPDATE`` and writing it in one transaction. A database server locks the
row it read, so of two workers taking the same queued trial one finds it already taken. SQLite
has no row locks and ignores ``FOR UPDATE``: both workers read the trial as queued, both write
it as running, and both train it in the same run directory ``trials/NNNN`` (the second one is
refused there, and fails the first one's trial). A dead worker's trial, failed by two workers
at once, is likewise queued again twice. Optuna's issue 4002 shows the same double run.

`SQLiteStorage` makes that change one step for all the workers of the machine: each holds a
lock file beside the database, ``.study.db.lock``, while it reads and writes the trial's state
(`mlplab.files.waiting_lock`), so the second worker reads what the first wrote and takes the
next trial. The lock is held for the milliseconds of one transaction; the kernel releases it
when its holder dies, however it dies. Workers of one SQLite file share a machine (SQLite's
locking is not meant for network file systems), so a lock file serves them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import TrialState

from mlplab.files import waiting_lock


def sqlite_file(url: str) -> Path | None:
    """The database file of an ``sqlite:///FILE`` URL; None for another database or SQLite in memory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def lock_file(database: Path) -> Path:
    """``.study.db.lock`` beside ``study.db``: the lock the workers of that file take turns on."""
    return database.with_name(f".{database.name}.lock")


class SQLiteStorage(RDBStorage):
    """Optuna's `RDBStorage` on an SQLite file, with a trial's change of state taken in turns (see the module).

    Args:
        url: ``sqlite:///FILE``; the rest as `optuna.storages.RDBStorage`.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        database = sqlite_file(url)
        if database is None:
            raise ValueError(f"SQLiteStorage needs an sqlite:///FILE URL, got {url!r}")
        self.lock_file = lock_file(database)
        super().__init__(url, **kwargs)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        """As `RDBStorage.set_trial_state_values`, holding the lock: False if another worker took the trial first."""
        with waiting_lock(self.lock_file):
            return super().set_trial_state_values(trial_id, state, values)
