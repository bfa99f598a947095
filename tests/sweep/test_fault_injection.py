"""Crash consistency of `mlplab sweep`: killed (SIGKILL), interrupted (SIGINT) or stopped by a full disk
(an injected ENOSPC) at a write, the sweep's folder describes one consistent state, and the same command
run again ends with every member's records, tables and weights bit-identical to a sweep never stopped.

The kill points are the named moments inside mlplab's atomic writes (`mlplab.files.fault_point`,
driven by ``MLPLAB_FAULT``), as in tests/runs/test_fault_injection.py. The sweep: 4 members
(lr 0.05 and 5e3, which diverges, over seeds 0 and 1) in 2 groups of 2, 2 epochs each, so its
writes are sweep.toml, plan.json, checkpoints/group-1.pt twice, group-2.pt twice, then
members.json, best.toml, results.csv, settings.csv, settings.json, results.json, and the
figures. The default run stops it once in each kind of window (about a minute here);
``pytest --soak`` at every write, with each signal and a full disk (about 15 minutes).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from mlplab.runs.checkpoint import load_record
from sweep_helpers import assert_same_sweep, sweep_state
from helpers import mlplab_process

pytestmark = pytest.mark.faults

# One thread, fixed: sums over another count of threads differ in their last bits (mlplab.threads).
SWEEP = ["sweep", "--grid", "lr=0.05,5e3", "seed=0-1", "--max-group-size", "2", "--hidden", "16", "--epochs", "2",
         "--val-size", "50000", "--threads", "1", "--device", "cpu", "--no-progress", "--no-download"]
WRITES = [("sweep.toml", 1), ("plan.json", 1), ("group-1.pt", 2), ("group-2.pt", 2), ("members.json", 1),
          ("best.toml", 1), ("results.csv", 1), ("settings.csv", 1), ("settings.json", 1), ("results.json", 1),
          ("curves.png", 1)]

DEFAULT_POINTS = [
    ("group-1.pt:after-rename", 2, "KILL"),  # between groups: group 1 finished, group 2 not begun
    ("group-2.pt:before-rename", 1, "KILL"),  # inside a group's checkpoint write: its temporary file left
    ("settings.json:before-rename", 1, "KILL"),  # while writing the summary: some tables new, no results.json
    ("group-2.pt:after-rename", 1, "INT"),  # Ctrl-C with group 2 saved after its first epoch
    ("group-2.pt:write", 2, "ENOSPC"),  # a full disk inside a group's checkpoint write
]
SOAK_POINTS = [(f"{name}:{moment}", n, how) for name, last in WRITES for n in range(1, last + 1)
               for moment, hows in (("before-rename", ("KILL", "INT")), ("after-rename", ("KILL", "INT")),
                                    ("write", ("ENOSPC",)))
               for how in hows]


_mlplab = mlplab_process


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The same sweep, never stopped."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    result = _mlplab(*SWEEP, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return sweep_state(out)


def assert_consistent(out: Path) -> None:
    """What a reader sees: results.json only with every table; every group file whole (its checksum holds)."""
    if (out / "results.json").exists():
        for name in ("sweep.toml", "plan.json", "members.json", "results.csv", "settings.csv", "settings.json"):
            assert (out / name).is_file(), name
    for path in (out / "checkpoints").glob("group-*.pt"):
        load_record(path)


def _stop_resume_and_compare(out: Path, point: str, occurrence: int, how: str, reference: dict) -> None:
    stopped = _mlplab(*SWEEP, "--out", str(out), fault=f"{point}@{occurrence}:{how}")
    if how == "KILL":
        assert stopped.returncode == -signal.SIGKILL, (stopped.returncode, stopped.stderr[-2000:])
    elif how == "INT":
        assert stopped.returncode == 130, (stopped.returncode, stopped.stderr[-2000:])
        if not point.endswith(".png:before-rename") and not point.endswith(".png:after-rename"):
            said = [line for line in stopped.stdout.splitlines() if line.startswith("interrupted: ")]
            assert said and said[0].endswith("; run the same command again to continue"), stopped.stdout[-2000:]
    elif point.endswith(".png:write"):  # the sweep is finished: a figure that cannot be written is a note
        assert stopped.returncode == 0 and "no figures: cannot write: No space left" in stopped.stdout, stopped.stdout
    else:
        lines = stopped.stderr.strip().splitlines()
        assert stopped.returncode == 2 and len(lines) == 1, (stopped.returncode, stopped.stderr[-2000:])
        assert lines[0].startswith("mlplab: error: cannot write: No space left on device"), lines[0]
        if (out / "sweep.toml").exists():
            assert "keeps what it saved" in lines[0] and "run the same command again" in lines[0], lines[0]
    assert_consistent(out)

    resumed = _mlplab(*SWEEP, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not list(out.rglob("*.tmp")), list(out.rglob("*.tmp"))
    assert sorted(path.name for path in (out / "figures").iterdir()) == ["accuracy_by_lr.png", "curves.png"]
    assert_same_sweep(sweep_state(out), reference)


@pytest.mark.parametrize("point, occurrence, how", DEFAULT_POINTS,
                         ids=[f"{p}@{n}:{h}" for p, n, h in DEFAULT_POINTS])
def test_a_stop_in_each_kind_of_window_resumes_bit_identically(tmp_path, reference, point, occurrence, how):
    _stop_resume_and_compare(tmp_path / "sweep", point, occurrence, how, reference)


def test_a_kill_while_resuming_resumes_again(tmp_path, reference):
    """Killed, resumed, killed again inside the resumed group's next write: the second resume still ends the same."""
    out = tmp_path / "sweep"
    assert _mlplab(*SWEEP, "--out", str(out), fault="group-1.pt:after-rename@1:KILL").returncode == -signal.SIGKILL
    again = _mlplab(*SWEEP, "--out", str(out), fault="group-2.pt:before-rename@2:KILL")
    assert again.returncode == -signal.SIGKILL and "resuming the sweep in" in again.stdout
    resumed = _mlplab(*SWEEP, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming the sweep in {out}: 2 of 4 members finished, group 2 saved after epoch 1 of 2; 2 to train" \
        in resumed.stdout
    assert_same_sweep(sweep_state(out), reference)


@pytest.mark.soak
@pytest.mark.parametrize("point, occurrence, how", SOAK_POINTS, ids=[f"{p}@{n}:{h}" for p, n, h in SOAK_POINTS])
def test_soak_every_write(tmp_path, reference, point, occurrence, how):
    _stop_resume_and_compare(tmp_path / "sweep", point, occurrence, how, reference)
