"""Where a study lives: an Optuna RDB storage opened from a database URL, with heartbeats.

``sqlite:///STUDY_DIR/study.db`` (the default) serves the workers of one machine;
``postgresql://user:password@host:5432/database`` serves workers on many (through psycopg 3,
which the tune extra installs; ``postgresql+psycopg2://`` uses psycopg2 where it is installed). Every worker
records a heartbeat of its running trial every ``heartbeat`` seconds. A trial whose
heartbeat is older than three heartbeats belongs to a worker that died (killed, its
machine gone): the next worker that looks marks it FAIL and queues its settings again,
once (`RETRIES`), as a new trial, so no trial is lost and none is counted twice.

Every worker of a study must use the same heartbeat: a shorter one would take a slower
worker's live trials for dead. `mlplab.tune.study` records it in the study and checks it.
"""

from __future__ import annotations

import random
import re
import time
import warnings
from pathlib import Path
from typing import Any

from mlplab.errors import MlplabError, one_line

INSTALL = 'pip install "mlplab[tune]"'
RETRIES = 1  # how often a dead worker's trial is queued again (a second death frees its place)
GRACE_HEARTBEATS = 3  # a trial is dead after this many heartbeats of silence
_OPEN_ATTEMPTS = 5  # workers starting together race to create the tables: the loser tries again


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
    """An `optuna.storages.RDBStorage` for ``url`` with heartbeats every ``heartbeat`` seconds and
    dead workers' trials retried once; a bad URL, a missing driver or an unreachable server is one line."""
    optuna = require_optuna()
    if "://" not in url:
        raise MlplabError(f"--storage takes a database URL like sqlite:///study.db or "
                          f"postgresql://user:password@host/database; got {url!r}")
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # Two workers writing one SQLite file wait for each other's locks; a server's connections may
    # go stale while a long trial runs.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback
    for attempt in range(1, _OPEN_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    with_driver(url), engine_kwargs=engine, heartbeat_interval=heartbeat,
                    grace_period=GRACE_HEARTBEATS * heartbeat, heartbeat_stale_trial_callback=retry(max_retry=RETRIES))
        except ImportError as error:
            driver = getattr(error.__cause__, "name", None) or "its database driver"
            install = INSTALL if driver == "psycopg" else "install it, or use postgresql://... (the tune extra's driver)"
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
        return MlplabError(f"--storage {shown_url(url)} is not a database URL SQLAlchemy knows ({one_line(error)}); "
                           "use sqlite:///FILE.db or postgresql://user:password@host/database")
    reason = one_line(getattr(error, "orig", None) or error)
    return MlplabError(f"cannot use the study storage {shown_url(url)}: {reason}; check that the database "
                       "server is running and the URL is right (finished trials are kept there)")
