"""`mlplab tune` as workers run it: real processes (``python -m mlplab tune``) sharing one study.

Two workers on one SQLite file, or one journal file, finish exactly --trials trials between
them; a worker killed (SIGKILL) in the middle of a trial and started again leaves no trial lost
or counted twice; best.toml trains again to the same accuracy with `mlplab train --config`; the
storage each worker's last lines name opens in optuna-dashboard, which lists the study and its
trials (skipped without optuna-dashboard). The same two workers on a real PostgreSQL server:
``MLPLAB_TEST_POSTGRES_URL`` names it (``.ci/postgres.sh`` starts a throwaway one; CI does);
without it that test skips, saying so, and fails instead when ``MLPLAB_REQUIRE_POSTGRES`` is
set, as in CI. Trials are tiny: 784-16-10 (or 8-8), 2 epochs on
10,000 images, one thread, heartbeats every second.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from mlplab.cli.main import main

optuna = pytest.importorskip("optuna", reason='the tune extra is not installed: pip install -e ".[dev]"')

from tune_helpers import (SRC, STORAGES, best_line, check_study, finish, plain_storage, start_worker,  # noqa: E402
                          storage_flag, storage_url, trials_of, tune_args, with_driver)
from helpers import cli_status


# --- two workers, one SQLite file or one journal file ---------------------------------------

@pytest.fixture(scope="module", params=STORAGES)
def shared_study(request, tmp_path_factory, mnist_dir):
    """Two workers started together on one study of 6 trials, in one folder (its SQLite or journal file)."""
    folder = tmp_path_factory.mktemp(f"shared-{request.param}")
    args = tune_args("shared", 6, folder, mnist_dir, storage=storage_flag(request.param, folder))
    workers = [start_worker(args, folder) for _ in range(2)]
    outputs = [finish(worker) for worker in workers]
    return folder, outputs, [worker.pid for worker in workers], storage_url(request.param, folder)


def test_two_workers_share_a_study_and_finish_exactly_its_trials(shared_study):
    _, outputs, pids, url = shared_study
    trials = trials_of("shared", url)
    check_study(trials, 6)
    ran_by = {trial.user_attrs["worker"].rsplit(":", 1)[1] for trial in trials if "worker" in trial.user_attrs}
    assert ran_by == {str(pid) for pid in pids}  # both workers ran trials of the one study
    assert best_line(outputs[0]) == best_line(outputs[1])  # and each ends on the study's best
    for output in outputs:
        assert "study shared done: 6 trials finished" in output
        assert f"; storage {url}; " in output.splitlines()[0]
        assert any(line.startswith("trial ") and " started: lr=" in line for line in output.splitlines())


def test_best_toml_trains_again_to_the_same_accuracy(shared_study, tmp_path):
    folder, _, _, url = shared_study
    best = optuna.load_study(study_name="shared", storage=plain_storage(url)).best_trial
    run_dir = tmp_path / "again"
    rerun = subprocess.run([sys.executable, "-m", "mlplab", "train", "--config", str(folder / "best.toml"),
                            "--out", str(run_dir), "--no-progress"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": SRC}, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    history = json.loads((run_dir / "history.json").read_text())
    records = history["epochs"] if isinstance(history, dict) else history
    assert max(record["val_accuracy"] for record in records) == pytest.approx(best.value, abs=1e-9)


@pytest.mark.parametrize("kind", STORAGES)
def test_a_worker_killed_in_a_trial_and_started_again_loses_nothing(tmp_path, mnist_dir, kind):
    args = tune_args("killed", 5, tmp_path, mnist_dir, storage=storage_flag(kind, tmp_path))
    victim = start_worker(args, tmp_path)
    line = victim.stdout.readline()
    while " started: " not in line:  # its first trial is under way: kill it there
        assert line, victim.communicate()[1]
        line = victim.stdout.readline()
    other = start_worker(args, tmp_path)
    killed = int(line.split()[1])
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    again = start_worker(args, tmp_path)  # the same command, started again
    outputs = [finish(other), finish(again)]
    trials = trials_of("killed", storage_url(kind, tmp_path))
    check_study(trials, 5, killed={killed})
    assert trials[killed].state.name == "FAIL"
    assert best_line(outputs[0]) == best_line(outputs[1])


# --- optuna-dashboard ----------------------------------------------------------------------------

def test_the_storage_a_worker_names_opens_in_optuna_dashboard(shared_study, tmp_path):
    """Each worker ends with ``browse it: optuna-dashboard STORAGE``; that command serves the study."""
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed: pip install optuna-dashboard")
    _, outputs, _, url = shared_study
    hints = {line for output in outputs for line in output.splitlines() if line.startswith("browse it: ")}
    assert hints == {f"browse it: optuna-dashboard {url}"}
    command = shlex.split(hints.pop().removeprefix("browse it: "))
    executable = Path(sys.executable).with_name(command[0])  # the venv's optuna-dashboard
    if not executable.exists():
        pytest.skip(f"optuna-dashboard is installed without its command {executable}")
    port = _free_port()
    with (tmp_path / "dashboard.log").open("w") as log:
        server = subprocess.Popen([str(executable), *command[1:], "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        studies = _get_json(f"http://127.0.0.1:{port}/api/studies", server, tmp_path / "dashboard.log")
        (study,) = [summary for summary in studies["study_summaries"] if summary["study_name"] == "shared"]
        detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}", server, None)
    finally:
        server.terminate()
        server.wait(timeout=30)
    shown = [(trial["number"], trial["state"].upper()) for trial in detail["trials"]]
    assert shown == [(trial.number, trial.state.name) for trial in trials_of("shared", url)]
    assert sum(state in ("COMPLETE", "PRUNED") for _, state in shown) == 6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(address: str, server: subprocess.Popen, log: Path | None, seconds: float = 60) -> dict:
    """GET ``address`` as JSON, waiting for the server to listen (its log in the failure, if it exits)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(address, timeout=10) as answer:
                return json.loads(answer.read())
        except OSError:
            assert server.poll() is None, log.read_text() if log else "optuna-dashboard exited"
            assert time.monotonic() < deadline, f"optuna-dashboard did not answer {address} in {seconds} s"
            time.sleep(0.2)


# --- PostgreSQL ------------------------------------------------------------------------------

def postgres_url() -> str:
    """The test server's URL; skip (or fail, where it must run) without one."""
    url = os.environ.get("MLPLAB_TEST_POSTGRES_URL")
    reason = None
    if not url:
        reason = ("MLPLAB_TEST_POSTGRES_URL is not set: start a throwaway server with dir=$(bash .ci/postgres.sh "
                  "start) and set it to $(bash .ci/postgres.sh url $dir)")
    else:
        try:
            import psycopg  # noqa: F401 - the tune extra's driver
        except ImportError:
            reason = 'psycopg is not installed: pip install -e ".[dev]"'
    if reason and os.environ.get("MLPLAB_REQUIRE_POSTGRES"):
        pytest.fail(f"{reason} (MLPLAB_REQUIRE_POSTGRES is set: the PostgreSQL test must run)", pytrace=False)
    if reason:
        pytest.skip(reason)
    return url


def test_two_workers_share_a_study_on_postgresql(tmp_path, mnist_dir):
    url = postgres_url()
    study = f"pg-{uuid.uuid4().hex[:8]}"  # a server may keep studies of earlier runs
    args = tune_args(study, 4, tmp_path, mnist_dir, storage=url)
    workers = [start_worker(args, tmp_path / name) for name in ("a", "b")]  # as if on two machines
    try:
        outputs = [finish(worker) for worker in workers]
        check_study(trials_of(study, url), 4)
        assert best_line(outputs[0]) == best_line(outputs[1])
        assert all((tmp_path / name / "best.toml").exists() for name in ("a", "b"))
    finally:
        optuna.delete_study(study_name=study, storage=with_driver(url))


# --- one-line errors --------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["tune", "--trials", "2"], "mlplab tune needs --study NAME (see mlplab tune --help)"),
    (["tune", "--study", "s"], "mlplab tune needs --trials N"),
    (["tune", "--study", "s", "--trials", "0"], "argument --trials: must be a whole number in [1, 1000000]; got 0"),
    (["tune", "--study", "s", "--trials", "1", "--storage", "foo://x"], "--storage foo://x is not a database URL"),
    (["tune", "--study", "s", "--trials", "1", "--storage", "postgresql://me:secret@127.0.0.1:1/db"],
     "cannot use the study storage postgresql://me:***@127.0.0.1:1/db: "),
    (["tune", "--study", "s", "--trials", "1", "--lr", "-1"], "lr must be a number in (0, 1000000]; got -1.0"),
])
def test_mistakes_are_one_line_with_status_2(tmp_path, capsys, args, message):
    assert cli_status([*args, "--out", str(tmp_path / "study")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "secret" not in lines[0]


def _sqlite_file(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as database:
        database.execute("create table trials (number integer)")


@pytest.mark.parametrize("name, make, message", [
    ("file.txt/study.log", lambda folder: (folder / "file.txt").write_text("x"),
     "cannot use the journal file {path}: "),  # its folder is a file
    ("study.log", lambda folder: (folder / "study.log").mkdir(), "cannot use the journal file {path}: "),
    ("old.log", lambda folder: _sqlite_file(folder / "old.log"),
     "--storage {path} is an SQLite database, not a journal file: use --storage sqlite:///{path}"),
    ("notes.log", lambda folder: (folder / "notes.log").write_text("hello\n"),
     "--storage {path} is not an Optuna journal file"),
    ("other.jsonl", lambda folder: (folder / "other.jsonl").write_text('{"a": 1}\n'), "is not an Optuna journal file"),
])
def test_a_journal_path_that_cannot_be_used_is_one_line(tmp_path, capsys, name, make, message):
    make(tmp_path)
    path = tmp_path / name
    assert cli_status(["tune", "--study", "s", "--trials", "1", "--storage", str(path),
                       "--out", str(tmp_path / "study")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message.format(path=path) in lines[0], lines
    assert not (tmp_path / "study").exists() or not any((tmp_path / "study").iterdir())  # no trial ran


def test_a_bad_space_file_is_one_line(tmp_path, capsys):
    space = tmp_path / "space.toml"
    space.write_text("[lrr]\nlow = 0.1\nhigh = 0.2\n")
    assert main(["tune", "--study", "s", "--trials", "1", "--space", str(space)]) == 2
    assert capsys.readouterr().err.strip() == (f"mlplab: error: search space {space}: unknown setting [lrr] (did you "
                                               "mean [lr]?); a table is named as a config field (see mlplab train "
                                               "--help), or depth or width")


def test_without_the_extra_tune_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", "--study", "s", "--trials", "1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == 'mlplab: error: mlplab tune needs Optuna: pip install "mlplab[tune]"'


def test_print_space_prints_the_default_space(capsys):
    from mlplab.tune.space import default_space, parse_space

    assert main(["tune", "--print-space"]) == 0
    assert parse_space(capsys.readouterr().out) == default_space()
