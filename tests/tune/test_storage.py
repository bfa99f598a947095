"""mlplab.tune.storage and mlplab.tune.journal: what a --storage value names, the optuna-dashboard
command, and the heartbeats a journal file keeps (Optuna's JournalStorage keeps none): recorded
by study.optimize, a silent trial failed once its grace period is over and queued again once, a
copied heartbeat not taken for the queued trial's own, a late heartbeat ignored. The clock is
a fake one, so no test waits for a heartbeat; a lock a killed worker left is taken over (after
3 s, instead of 10). Workers killed for real, on a journal file, are in
tests/cli/test_tune_cmd.py and tests/tune/test_batch.py."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlplab.tune.storage import dashboard_command, is_journal, open_storage, resolve_storage

optuna = pytest.importorskip("optuna", reason='the tune extra is not installed: pip install -e ".[dev]"')

from mlplab.tune import journal  # noqa: E402 - imports Optuna

from tune_helpers import plain_storage  # noqa: E402


# --- what --storage names ------------------------------------------------------------------------

def test_a_storage_value_resolves_as_workers_and_optuna_dashboard_take_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study_dir = tmp_path / "runs" / "tune-x"
    assert resolve_storage(None, study_dir) == f"sqlite:///{study_dir.resolve()}/study.db"
    assert resolve_storage("journal", study_dir) == f"{study_dir.resolve()}/study.log"
    assert resolve_storage("shared/x.JSONL", study_dir) == f"{tmp_path.resolve()}/shared/x.JSONL"  # from here
    for url in ("sqlite:///a.db", "postgresql://me:secret@host/db", "sqlite:///study.log"):
        assert resolve_storage(url, study_dir) == url  # a URL is the database's, whatever its name ends in
    assert [is_journal(value) for value in ("a.log", "b.jsonl", "a.db", "journal", "sqlite:///a.log")] == [
        True, True, False, False, False]


def test_the_dashboard_command_names_the_storage_as_optuna_dashboard_takes_it(tmp_path):
    assert dashboard_command("sqlite:////runs/tune-x/study.db") == "optuna-dashboard sqlite:////runs/tune-x/study.db"
    assert dashboard_command("/my runs/study.log") == "optuna-dashboard '/my runs/study.log'"  # pastes into a shell
    assert dashboard_command("postgresql://me:secret@db:5432/studies") == (
        "optuna-dashboard 'postgresql+psycopg://me:***@db:5432/studies'")  # the driver the tune extra installs


def test_open_storage_opens_a_journal_with_the_studys_heartbeat(tmp_path):
    storage = open_storage(str(tmp_path / "new" / "study.log"), heartbeat=4)
    assert isinstance(storage, journal.JournalHeartbeatStorage)
    assert storage.get_heartbeat_interval() == 4 and storage.grace_period == 12  # three heartbeats
    assert (tmp_path / "new" / "study.log").exists()


# --- heartbeats in a journal file ----------------------------------------------------------------

class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(journal, "time", SimpleNamespace(time=fake.time))
    return fake


def _study(tmp_path, heartbeat=2):
    storage = open_storage(str(tmp_path / "study.log"), heartbeat=heartbeat)
    return optuna.create_study(storage=storage, study_name="beats", direction="maximize")


def _ask(study):
    with warnings.catch_warnings():  # a trial asked for outside study.optimize: the test beats for it
        warnings.simplefilter("ignore")
        trial = study.ask()
    trial.suggest_float("x", 0, 1)
    return trial


def _fail_stale(study):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return [trial.state.name for trial in study.get_trials()]


def test_study_optimize_records_a_trials_heartbeat_in_the_journal(tmp_path):
    study = _study(tmp_path)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    (trial,) = optuna.load_study(study_name="beats", storage=plain_storage(str(tmp_path / "study.log"))).trials
    trial_id, seconds = trial.system_attrs[journal.HEARTBEAT_ATTR]
    assert trial_id == trial._trial_id and seconds > 0  # read back by plain Optuna, from the file


def test_a_silent_trial_is_failed_after_its_grace_period_and_queued_again_once(tmp_path, clock):
    study = _study(tmp_path, heartbeat=2)  # grace: 6 seconds
    first = _ask(study)
    study._storage.record_heartbeat(first._trial_id)
    clock.now += 6
    assert _fail_stale(study) == ["RUNNING"]  # silent for the grace period, not longer
    clock.now += 1
    assert _fail_stale(study) == ["FAIL", "WAITING"]  # queued again with its settings
    retry = _ask(study)
    assert retry.number == 1 and retry.params == first.params
    assert study.trials[1].system_attrs["failed_trial"] == 0
    clock.now += 100  # it carries trial 0's heartbeat, copied, but has none of its own yet: not stale
    assert _fail_stale(study) == ["FAIL", "RUNNING"]
    study._storage.record_heartbeat(retry._trial_id)
    clock.now += 7
    assert _fail_stale(study) == ["FAIL", "FAIL"]  # dead again: retried once only, not queued a second time


def test_a_beating_trial_is_never_failed(tmp_path, clock):
    study = _study(tmp_path, heartbeat=2)
    trial = _ask(study)
    for _ in range(5):
        study._storage.record_heartbeat(trial._trial_id)
        clock.now += 5
        assert _fail_stale(study) == ["RUNNING"]


def test_a_heartbeat_due_after_the_trial_ended_is_ignored(tmp_path, clock):
    study = _study(tmp_path)
    trial = _ask(study)
    study._storage.record_heartbeat(trial._trial_id)
    study.tell(trial, 0.5)
    clock.now += 1
    study._storage.record_heartbeat(trial._trial_id)  # the heartbeat thread's last beat, after tell: no error
    (told,) = study.trials
    assert told.state.name == "COMPLETE" and told.system_attrs[journal.HEARTBEAT_ATTR] == [trial._trial_id, 1_000.0]


def test_a_lock_left_by_a_worker_killed_while_appending_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "LOCK_GRACE", 3)  # seconds (10 in use): the shortest Optuna takes without a warning
    study = _study(tmp_path)
    lock = tmp_path / "study.log.lock"
    os.symlink(tmp_path / "study.log", lock)  # what a worker killed between taking and releasing the lock leaves
    start = time.monotonic()
    study.set_user_attr("after", True)
    assert 3 < time.monotonic() - start < 15 and not os.path.lexists(lock)  # not Optuna's 30 s
    assert optuna.load_study(study_name="beats", storage=plain_storage(str(tmp_path / "study.log"))).user_attrs == {
        "after": True}


# --- SQLite: workers take turns to change a trial's state ----------------------------------------

def _rendezvous(monkeypatch, parties=2, seconds=1.5):
    """Make each worker, once it has read a trial's state for an update, wait (up to ``seconds``) until
    the other has read it too: the moment two workers race for the same trial, every time."""
    import threading

    from optuna.storages._rdb import models

    barrier = threading.Barrier(parties, timeout=seconds)
    read = models.TrialModel.find_or_raise_by_id

    def read_then_meet(trial_id, session, for_update=False):
        trial = read(trial_id, session, for_update=for_update)
        if for_update:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:  # the other worker waits for the lock: it reads after this one writes
                pass
        return trial

    monkeypatch.setattr(models.TrialModel, "find_or_raise_by_id", read_then_meet)


def _race(action, studies):
    """Run ``action(study)`` for each study at once, in threads; their results."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(studies)) as pool:
        return list(pool.map(action, studies))


def _workers(tmp_path, count=2):
    """``count`` workers' views of one SQLite study, each with its own connection, as processes have."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(storage=open_storage(url, heartbeat=1), study_name="race", direction="maximize")
    return [first] + [optuna.load_study(study_name="race", storage=open_storage(url, heartbeat=1))
                      for _ in range(count - 1)]


def test_an_sqlite_study_opens_as_a_storage_whose_workers_take_turns(tmp_path):
    from mlplab.tune.sqlite import SQLiteStorage, lock_file, sqlite_file

    storage = open_storage(f"sqlite:///{tmp_path / 'new' / 'study.db'}", heartbeat=4)
    assert isinstance(storage, SQLiteStorage) and storage.lock_file == tmp_path / "new" / ".study.db.lock"
    assert storage.get_heartbeat_interval() == 4 and storage.grace_period == 12
    assert lock_file(sqlite_file("sqlite:///runs/t/study.db?timeout=5")) == Path("runs/t/.study.db.lock")
    assert [sqlite_file(url) for url in ("sqlite://", "sqlite:///:memory:", "postgresql://me@db/x")] == [None] * 3


def test_two_workers_taking_the_same_queued_trial_at_once_on_sqlite_train_it_once(tmp_path, monkeypatch):
    """Optuna's FOR UPDATE is ignored by SQLite: without turns, both workers took the queued trial
    (both True) and both trained it in one run directory, which failed the tune test in CI."""
    studies = _workers(tmp_path)
    studies[0].enqueue_trial({"x": 0.5})
    _rendezvous(monkeypatch)
    taken = _race(lambda study: study._pop_waiting_trial_id(), studies)  # what study.ask and optimize call
    assert sorted(taken, key=str) == [studies[0].trials[0]._trial_id, None]  # one took it; the other found none
    assert [trial.state.name for trial in studies[1].get_trials()] == ["RUNNING"]


def test_a_dead_trial_failed_by_two_workers_at_once_on_sqlite_is_queued_again_once(tmp_path, monkeypatch):
    studies = _workers(tmp_path)
    dead = _ask(studies[0])
    studies[0]._storage.record_heartbeat(dead._trial_id)
    time.sleep(4.5)  # over three heartbeats of silence (SQLite's clock counts whole seconds): its worker is dead
    _rendezvous(monkeypatch)
    _race(_fail_stale, studies)
    trials = studies[1].get_trials()
    assert [trial.state.name for trial in trials] == ["FAIL", "WAITING"]  # queued again once, not twice
    assert trials[1].system_attrs["failed_trial"] == dead.number and trials[1].params == dead.params
