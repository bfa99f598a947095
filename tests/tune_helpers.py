"""Helpers of the tests that run `mlplab tune` workers as processes (tests/cli/test_tune_cmd.py,
tests/tune/test_batch.py): the command line of a tiny worker, starting and finishing one, and
the check that a study finished exactly its trials, none lost or counted twice. The storage
kinds one machine's workers can share (`STORAGES`) parametrize the tests of those guarantees."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mlplab.tune.storage import is_journal, with_driver

optuna = pytest.importorskip("optuna", reason='the tune extra is not installed: pip install -e ".[dev]"')

SRC = str(Path(__file__).resolve().parents[1] / "src")
SPACE = """\
[lr]
low = 0.01
high = 0.5
log = true

[hidden]
choices = ["16", "8,8"]
"""


# The storages of one machine: the default SQLite file, and a journal file (--storage FILE.log).
STORAGES = ("sqlite", "journal")


def storage_flag(kind: str, folder: Path) -> str | None:
    """The ``--storage`` value of a study of ``kind`` in ``folder`` (None: the default, SQLite)."""
    return str(folder / "study.log") if kind == "journal" else None


def storage_url(kind: str, folder: Path) -> str:
    """Where a study of ``kind`` in ``folder`` lives, as mlplab prints it and optuna-dashboard takes it."""
    return str(folder.resolve() / "study.log") if kind == "journal" else f"sqlite:///{folder.resolve() / 'study.db'}"


def plain_storage(url: str):
    """Optuna's own storage for ``url``, opened without mlplab (a journal file read as Optuna reads it)."""
    if is_journal(url):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    return with_driver(url)


def tune_args(study: str, trials: int, folder: Path, mnist_dir: Path, storage: str | None = None) -> list[str]:
    """The command line of one worker: tiny trials, heartbeats every second."""
    space = folder / "space.toml"
    if not space.exists():
        space.write_text(SPACE)
    args = ["tune", "--study", study, "--trials", str(trials), "--space", str(space), "--epochs", "2",
            "--batch-size", "512", "--val-size", "50000", "--threads", "1", "--device", "cpu",
            "--data-dir", str(mnist_dir), "--no-download", "--heartbeat", "1"]
    return args + (["--storage", storage] if storage else [])


def start_worker(args: list[str], out: Path) -> subprocess.Popen:
    """``python -m mlplab ARGS`` writing its study folder ``out``; its lines come on stdout."""
    return subprocess.Popen([sys.executable, "-m", "mlplab", *args, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC})


def finish(worker: subprocess.Popen) -> str:
    """Wait for a worker; its output, which must end in success."""
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, out + err
    assert "Traceback" not in err, err
    return out


def trials_of(study: str, storage: str) -> list:
    """The trials of ``study`` in ``storage`` (a URL or a journal file), as Optuna reads them."""
    return optuna.load_study(study_name=study, storage=plain_storage(storage)).get_trials()


def check_study(trials: list, budget: int, killed: set[int] = frozenset()) -> None:
    """Exactly ``budget`` finished trials; the only failures are the killed ones (or places found taken),
    each killed trial run again exactly once with its settings; nothing left running or queued."""
    states = Counter(trial.state.name for trial in trials)
    assert states["COMPLETE"] + states["PRUNED"] == budget, states
    assert states["RUNNING"] == states["WAITING"] == 0, states
    assert sorted(trial.number for trial in trials) == list(range(len(trials)))
    failed = {trial.number for trial in trials if trial.state.name == "FAIL" and not trial.user_attrs.get("surplus")}
    assert failed == set(killed)
    for number in killed:
        retries = [trial for trial in trials if trial.system_attrs.get("failed_trial") == number]
        assert len(retries) == 1 and retries[0].state.name in ("COMPLETE", "PRUNED")
        assert retries[0].params == trials[number].params


def best_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("best: trial "))
