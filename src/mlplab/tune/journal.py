"""A study in an Optuna journal file: workers of one machine without a database server, with heartbeats.

``--storage runs/tune-x/study.log`` (a path ending in .log or .jsonl; ``--storage journal`` is
``STUDY_DIR/study.log``) keeps the study in Optuna's journal file storage
(`optuna.storages.JournalStorage` on a `optuna.storages.journal.JournalFileBackend`). Every
change to the study is one JSON line appended to the file while holding a lock file beside it
(``study.log.lock``) for that moment; reading takes no lock, and each worker keeps the study in
memory and reads only the lines it has not seen. With many workers of short trials that is much
faster than SQLite: 8 processes of 25 trials that train nothing (10 reports each) took 16 to 17 s
on a journal file and 58 s on SQLite, on 2 busy CPU cores. Trials that train for seconds or more
hardly notice the storage either way. Each heartbeat is a line too (about 150 bytes).
optuna-dashboard opens the file as it is (``optuna-dashboard runs/tune-x/study.log``).

**Heartbeats.** Optuna's JournalStorage records none (it is not a ``BaseHeartbeat`` in
Optuna 5.1), so `JournalHeartbeatStorage` adds them as `optuna.storages.RDBStorage`
keeps them: `record_heartbeat` writes the trial's id and the time to its system attribute
``mlplab:heartbeat``, and `_get_stale_trial_ids` names the running trials whose last heartbeat
is older than the grace period. ``study.optimize``, ``optuna.storages.fail_stale_trials`` and
`mlplab.tune.storage.Heartbeats` use them as they use a database's, so a killed worker's trial
is failed and queued again once, exactly as with SQLite or PostgreSQL. The times are this
machine's clock (a database uses its server's): a journal file serves the workers of one
machine; for workers on many, use PostgreSQL.

A heartbeat carries its trial's id because Optuna's retry callback copies a failed trial's
system attributes into the trial it queues: a copied heartbeat is not the new trial's own, and
a running trial with no heartbeat of its own is left to
`mlplab.tune.study.Worker.fail_unstarted`, as with a database.

**A worker killed while it appends** (a few milliseconds of each write) leaves the lock file
behind; the other workers wait, then remove it once it has been left for `LOCK_GRACE` seconds
and go on. Optuna's own default, 30 seconds, is meant for network file systems; on one machine
an append holds the lock for milliseconds, and 10 seconds is short enough that the heartbeats
held up meanwhile do not make a live trial look dead under the default ``--heartbeat`` (10 s,
so 30 s of grace).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage

# Optuna has no public name for the interface study.optimize and fail_stale_trials look for;
# RDBStorage implements this one.
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalFileOpenLock, JournalFileSymlinkLock
from optuna.trial import TrialState

from mlplab.errors import MlplabError, one_line

HEARTBEAT_ATTR = "mlplab:heartbeat"  # a trial's system attribute: [its trial id, seconds since the epoch]
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite file
LOCK_GRACE = 10  # seconds a lock file may stay unchanged before workers take it for a dead worker's


class JournalHeartbeatStorage(JournalStorage, BaseHeartbeat):
    """An Optuna `JournalStorage` that records heartbeats, as `optuna.storages.RDBStorage` does.

    Args:
        backend: the journal (a `JournalFileBackend`).
        heartbeat_interval: seconds between a running trial's heartbeats.
        grace_period: seconds of silence after which a running trial is taken for dead.
        stale_trial_callback: called with ``(study, frozen_trial)`` for each trial failed as dead
            (``optuna.storages.RetryHeartbeatStaleTrialCallback`` queues it again).
    """

    def __init__(
        self,
        backend: BaseJournalBackend,
        heartbeat_interval: int,
        grace_period: int,
        stale_trial_callback: Callable[[Any, Any], None] | None = None,
    ) -> None:
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        """Write trial ``trial_id``'s heartbeat: its id and the time now."""
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, [trial_id, time.time()])
        except UpdateFinishedTrialError:
            pass  # told (or failed by another worker) while this beat was due: nothing left to keep alive

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """The running trials of study ``study_id`` whose own last heartbeat is older than the grace period."""
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get(HEARTBEAT_ATTR)
            if beat is not None and beat[0] == trial._trial_id and now - beat[1] > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int:
        """Seconds between heartbeats."""
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, Any], None] | None:
        """What runs for each trial failed as dead."""
        return self.stale_trial_callback


def open_journal(path: str, heartbeat: int, grace_period: int, retries: int) -> JournalHeartbeatStorage:
    """A `JournalHeartbeatStorage` on the journal file ``path`` (made, with its folder, if missing), heartbeats
    every ``heartbeat`` seconds, a trial silent for ``grace_period`` failed and queued again ``retries`` times.

    A path that cannot be written, an SQLite file, or a file that is not a journal is one line.
    """
    file = Path(path)
    check_writable(file)
    check_journal(file)
    # Windows cannot make the symbolic link the default lock is; an exclusive file works there (Optuna's advice).
    kind = JournalFileOpenLock if os.name == "nt" else JournalFileSymlinkLock
    lock = kind(str(file), grace_period=LOCK_GRACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)
    try:
        return JournalHeartbeatStorage(
            JournalFileBackend(str(file), lock_obj=lock),
            heartbeat_interval=heartbeat,
            grace_period=grace_period,
            stale_trial_callback=retry,
        )
    except (ValueError, KeyError, TypeError, AssertionError) as error:  # what replaying a foreign file raises
        raise MlplabError(
            f"--storage {file} is not an Optuna journal file ({one_line(error)}); "
            "give a new path, or a journal that mlplab tune or Optuna wrote"
        ) from None


def check_journal(file: Path) -> None:
    """Refuse, in one line, a file that is not empty and does not start as a journal does.

    Optuna skips a last line it cannot read (one being written), so a foreign file of one line
    would open and fail only once a worker appends to it: its first line is read here.
    """
    with open(file, "rb") as lines:
        first = lines.readline(1 << 20)  # a journal's first line makes the study: a hundred bytes or so
    if not first:
        return  # a new journal
    if first.startswith(SQLITE_HEADER):
        raise MlplabError(f"--storage {file} is an SQLite database, not a journal file: use --storage sqlite:///{file}")
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not (isinstance(record, dict) and "op_code" in record):
        raise MlplabError(
            f"--storage {file} is not an Optuna journal file (its first line is not a journal "
            "record); give a new path, or a journal that mlplab tune or Optuna wrote"
        )


def check_writable(file: Path) -> None:
    """Make ``file`` (empty) and its folder if missing; one line if either cannot be written."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "ab"):
            pass
        if not os.access(file.parent, os.W_OK):  # the lock file is made beside the journal
            raise PermissionError(f"cannot write the folder {file.parent}")
    except OSError as error:
        raise MlplabError(
            f"cannot use the journal file {file}: {one_line(error)}; give --storage a path "
            "in a folder you can write, ending in .log"
        ) from None
