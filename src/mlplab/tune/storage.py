"""Where a study lives: a database URL or a journal file, opened with heartbeats.

``--storage`` takes one of three kinds of storage:

    sqlite:///STUDY_DIR/study.db     the default: an SQLite file, for the workers of one machine
                                     (who take turns to change a trial's state: `mlplab.tune.sqlite`)
    STUDY_DIR/study.log              an Optuna journal file (a path ending in .log or .jsonl;
                                     ``journal`` names this one), for many workers of one machine
                                     (`mlplab.tune.journal`)
    postgresql://user:password@host:5432/database
                                     a PostgreSQL server, for workers on many machines (through
                                     psycopg 3, which the tune extra installs; ``postgresql+psycopg2://``
                                     uses psycopg2 where it is installed)

Every worker records a heartbeat of its running trial every ``heartbeat`` seconds. A trial
whose heartbeat is older than three heartbeats belongs to a worker that died (killed, its
machine gone): the next worker that looks marks it FAIL and queues its settings again, once
(`RETRIES`), as a new trial, so no trial is lost and none is counted twice. A database keeps
the heartbeats itself (Optuna's `RDBStorage`); a journal file keeps them in the trials' system
attributes (`mlplab.tune.journal`), with the same interval, grace and retry.

Every worker of a study must use the same heartbeat: a shorter one would take a slower
worker's live trials for dead. `mlplab.tune.study` records it in the study and checks it.

``study.optimize`` beats for its one trial; a worker that trains several trials at once
(``--batch``, `mlplab.tune.batch`) beats for all of them with `Heartbeats`.

Every kind opens in optuna-dashboard as `resolve_storage` writes it (`dashboard_command`).
"""

from __future__ import annotations

import random
import re
import shlex
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from mlplab.errors import MlplabError, one_line

INSTALL = 'pip install "mlplab[tune]"'
RETRIES = 1  # how often a dead worker's trial is queued again (a second death frees its place)
GRACE_HEARTBEATS = 3  # a trial is dead after this many heartbeats of silence
_OPEN_ATTEMPTS = 5  # workers starting together race to create the tables: the loser tries again
JOURNAL = "journal"  # --storage journal: the journal file STUDY_DIR/study.log
JOURNAL_SUFFIXES = (".log", ".jsonl")  # a --storage path with one of these is a journal file


def require_optuna() -> Any:
    """The optuna module, or a one-line error saying how to install the tune extra."""
    try:
        import optuna
    except ImportError:
        raise MlplabError(f"mlplab tune needs Optuna: {INSTALL}") from None
    return optuna


def default_storage(study_dir: Path) -> str:
    """``sqlite:////absolute/STUDY_DIR/study.db``: the study's own SQLite file."""
    return f"sqlite:///{Path(study_dir).resolve() / 'study.db'}"


def resolve_storage(storage: str | None, study_dir: Path) -> str:
    """The storage a ``--storage`` value names, as workers and optuna-dashboard take it.

    None: the default SQLite file; ``journal``: the journal file ``STUDY_DIR/study.log``; a
    journal file's path: made absolute (workers started elsewhere, and the dashboard, find it);
    a URL: as it is.
    """
    if storage is None:
        return default_storage(study_dir)
    if storage == JOURNAL:
        return str(Path(study_dir).resolve() / "study.log")
    if is_journal(storage):
        return str(Path(storage).expanduser().resolve())
    return storage


def is_journal(storage: str) -> bool:
    """Whether ``storage`` is a journal file's path (not a URL; ending in .log or .jsonl)."""
    return "://" not in storage and storage.lower().endswith(JOURNAL_SUFFIXES)


def dashboard_command(storage: str) -> str:
    """``optuna-dashboard sqlite:////abs/study.db``: the command that shows the study (its password hidden)."""
    return f"optuna-dashboard {shlex.quote(shown_url(with_driver(storage)))}"


def with_driver(url: str) -> str:
    """``postgresql://...`` as ``postgresql+psycopg://...``: the driver the tune extra installs (psycopg 3),
    whichever SQLAlchemy picks by default (psycopg2 before 2.1). A URL naming its driver is kept."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def shown_url(url: str) -> str:
    """The URL as given, its password (if any) hidden, for messages."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@/]*@", r"\1:***@", url)


def open_storage(url: str, heartbeat: int) -> Any:
    """The Optuna storage ``url`` names (`resolve_storage`), with heartbeats every ``heartbeat`` seconds
    and dead workers' trials retried once.

    A journal file's path opens a `mlplab.tune.journal.JournalHeartbeatStorage`; an SQLite file a
    `mlplab.tune.sqlite.SQLiteStorage`; another database URL an `optuna.storages.RDBStorage`. A bad
    URL or path, a missing driver or an unreachable server is one line.
    """
    optuna = require_optuna()
    if is_journal(url):
        from mlplab.tune.journal import open_journal

        return open_journal(url, heartbeat, GRACE_HEARTBEATS * heartbeat, RETRIES)
    if "://" not in url:
        raise MlplabError(
            f"--storage takes a database URL like sqlite:///study.db, a journal file path "
            f"ending in .log (or journal: STUDY_DIR/study.log), or "
            f"postgresql://user:password@host/database; got {url!r}"
        )
    storage_class = optuna.storages.RDBStorage
    if url.startswith("sqlite:///"):
        from mlplab.tune.sqlite import SQLiteStorage, sqlite_file

        database = sqlite_file(url)  # None: SQLite in memory
        if database is not None:  # workers take turns to change a trial's state (`mlplab.tune.sqlite`)
            database.parent.mkdir(parents=True, exist_ok=True)
            storage_class = SQLiteStorage
    # Two workers writing one SQLite file wait for each other's locks; a server's connections may
    # go stale while a long trial runs.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback
    for attempt in range(1, _OPEN_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return storage_class(
                    with_driver(url),
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat,
                    grace_period=GRACE_HEARTBEATS * heartbeat,
                    heartbeat_stale_trial_callback=retry(max_retry=RETRIES),
                )
        except ImportError as error:
            driver = getattr(error.__cause__, "name", None) or "its database driver"
            install = (
                INSTALL if driver == "psycopg" else "install it, or use postgresql://... (the tune extra's driver)"
            )
            raise MlplabError(f"--storage {shown_url(url)} needs the Python module {driver}: {install}") from None
        except Exception as error:
            if not is_storage_error(error):
                raise
            if attempt == _OPEN_ATTEMPTS or not _lost_race(error):
                raise storage_error(url, error) from None
            time.sleep(random.uniform(0.2, 1.0))
    raise AssertionError("unreachable")


def is_storage_error(error: BaseException) -> bool:
    """Whether ``error`` comes from the database (SQLAlchemy, or Optuna's wrapper of it)."""
    import sqlalchemy.exc

    optuna = require_optuna()
    return isinstance(error, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError))


def _lost_race(error: BaseException) -> bool:
    """Whether opening failed because another worker was creating the same tables, or held SQLite's lock."""
    text = str(error).lower()
    return any(sign in text for sign in ("already exists", "unique constraint", "duplicate key", "database is locked"))


def storage_error(url: str, error: BaseException) -> MlplabError:
    """One line for a database that cannot be opened or reached."""
    import sqlalchemy.exc

    if isinstance(error, sqlalchemy.exc.ArgumentError):
        return MlplabError(
            f"--storage {shown_url(url)} is not a database URL SQLAlchemy knows ({one_line(error)}); "
            "use sqlite:///FILE.db or postgresql://user:password@host/database"
        )
    reason = one_line(getattr(error, "orig", None) or error)
    return MlplabError(
        f"cannot use the study storage {shown_url(url)}: {reason}; check that the database "
        "server is running and the URL is right (finished trials are kept there)"
    )


class Heartbeats:
    """Record the heartbeat of every trial of a batch from one thread, as ``study.optimize`` does for its one.

    Used as a context manager: entering records each trial's first heartbeat at once (so from
    then on a killed worker's trials age and are taken over), a thread records them every
    interval after that, `finish` drops a trial once it is told, and leaving stops the thread.

    Args:
        storage: the study's storage (an Optuna ``BaseHeartbeat``: what `open_storage` opens).
        study_name: the study's name; ``numbers``: the trials' numbers.
    """

    def __init__(self, storage: Any, study_name: str, numbers: list[int]) -> None:
        study_id = storage.get_study_id_from_name(study_name)
        self.storage = storage
        self.interval = storage.get_heartbeat_interval()  # seconds; None: heartbeats are off
        self.trials = {number: storage.get_trial_id_from_study_id_trial_number(study_id, number) for number in numbers}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="mlplab-heartbeats", daemon=True)

    def __enter__(self) -> Heartbeats:
        if self.interval is not None:
            self._record()
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()

    def finish(self, number: int) -> None:
        """Stop beating for trial ``number`` (it has been told COMPLETE, PRUNED or FAIL)."""
        with self.lock:
            self.trials.pop(number, None)

    def _record(self) -> None:
        with self.lock:
            trial_ids = list(self.trials.values())
        for trial_id in trial_ids:
            self.storage.record_heartbeat(trial_id)

    def _beat(self) -> None:
        while not self.stopped.wait(timeout=self.interval):
            self._record()
