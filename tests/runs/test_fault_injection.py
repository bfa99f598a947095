"""Crash consistency: `mlplab train` killed (SIGKILL) or interrupted (SIGINT) at every write of
an epoch, or stopped by a full disk inside a write (an injected ENOSPC), leaves a run directory
that describes one consistent state, and resuming it ends bit-identical to a run that was never
stopped. A full disk is one line and exit 2, saying what is kept and how to go on.

The kill points are named moments inside mlplab's own writes (`mlplab.files.fault_point`,
driven by ``MLPLAB_FAULT``), so each window between two writes is hit on purpose rather than
by chance. The default run covers each kind of window once (about 90 s); ``pytest --soak``
runs every point at every epoch, with both signals (64 kills, about 15 minutes).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from mlplab.training import load_checkpoint
from mlplab.runs.directory import NEXT_BEST, repair_run_dir
from helpers import mlplab_process

pytestmark = pytest.mark.faults

EPOCHS = 3
# The batches distorted, the weights averaged and capped: what a killed run resumes includes the
# average's state, and the distortions come from the seed and the step. One thread, fixed: on a busy
# machine the thread policy may choose another count for the resume than the reference had, and
# sums over another count of threads differ in their last bits (mlplab.threads; what is tested
# here is the crash consistency).
TRAIN = ["train", "--hidden", "8", "--batch-size", "2000", "--epochs", str(EPOCHS), "--scheduler", "none",
         "--lr", "0.05", "--log-batches", "--device", "cpu", "--no-progress", "--augment", "both", "--ema", "0.9",
         "--max-norm", "3", "--label-smoothing", "0.1", "--threads", "1"]

# (point, occurrence): every write of an epoch, in the order they happen. Epoch e writes
# .best-next.pt (on a new best), last.pt (the commit), then publishes best.pt, history.csv,
# batches.csv, history.json; the finish writes last.pt once more (with the test metrics),
# then metrics.json. config.json is written once at the start.
DEFAULT_POINTS = [
    ("config.json:after-rename", 1),  # before any epoch is saved
    ("last.pt:before-rename", 2),  # a new best staged (.best-next.pt), the commit not yet done
    ("last.pt:after-rename", 2),  # committed, nothing published
    ("best.pt:before-rename", 3),  # the new best not yet in place
    ("history.csv:after-rename", 2),  # history.csv newer than history.json
    ("last.pt:after-rename", EPOCHS + 1),  # finished in last.pt, metrics.json not yet written
]
SOAK_POINTS = [(point, n) for point, last in (
    ("config.json:after-rename", 1), (f"{NEXT_BEST}:before-rename", EPOCHS), (f"{NEXT_BEST}:after-rename", EPOCHS),
    ("last.pt:before-rename", EPOCHS + 1), ("last.pt:after-rename", EPOCHS + 1), ("best.pt:before-rename", EPOCHS),
    ("history.csv:after-rename", EPOCHS), ("batches.csv:after-rename", EPOCHS), ("history.json:before-rename", EPOCHS),
    ("history.json:after-rename", EPOCHS), ("metrics.json:before-rename", 1), ("metrics.json:after-rename", 1),
) for n in range(1, last + 1)]


# A full disk inside a write: the first write of each file, each kind once (the soak: every file, every epoch).
FULL_DISK_POINTS = [("config.json:write", 1), (f"{NEXT_BEST}:write", 2), ("last.pt:write", 2),
                    ("history.csv:write", 2), ("last.pt:write", EPOCHS + 1), ("metrics.json:write", 1)]
SOAK_FULL_DISK_POINTS = [(f"{name}:write", n) for name, last in (
    ("config.toml", 1), ("config.json", 1), (NEXT_BEST, EPOCHS), ("last.pt", EPOCHS + 1), ("history.csv", EPOCHS),
    ("batches.csv", EPOCHS), ("history.json", EPOCHS), ("metrics.json", 1),
) for n in range(1, last + 1)]  # best.pt is never written: the staged .best-next.pt is renamed to it


_mlplab = mlplab_process


def _final_state(run_dir: Path) -> dict:
    last = load_checkpoint(run_dir / "last.pt")
    history = json.loads((run_dir / "history.json").read_text())
    return {
        "weights": last["model"],
        "history": [{k: v for k, v in r.items() if k != "seconds"} for r in history["epochs"]],
        "batch_losses": history["batch_losses"],
        "metrics": {k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).items()},
        "best_epoch": load_checkpoint(run_dir / "best.pt")["epoch"],
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The same run, never stopped."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = _mlplab(*TRAIN, "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    return _final_state(run_dir)


def assert_consistent(run_dir: Path) -> None:
    """What every reader sees (after the repair every reader does first): one state, last.pt's."""
    repair_run_dir(run_dir)
    leftovers = [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp") or p.name == NEXT_BEST]
    assert not leftovers, leftovers
    if not (run_dir / "last.pt").exists():
        assert not any((run_dir / name).exists() for name in ("best.pt", "history.json", "metrics.json"))
        return
    last = load_checkpoint(run_dir / "last.pt")
    assert load_checkpoint(run_dir / "best.pt")["epoch"] == last["best"]["epoch"]
    assert json.loads((run_dir / "history.json").read_text()) == last["history"]
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + last["epoch"]
    assert len((run_dir / "batches.csv").read_text().splitlines()) == 1 + len(last["history"]["batch_losses"])
    if last["metrics"] is None:
        assert not (run_dir / "metrics.json").exists()
    else:
        assert json.loads((run_dir / "metrics.json").read_text()) == last["metrics"]


def _kill_resume_and_compare(run_dir: Path, point: str, occurrence: int, how: str, reference: dict) -> None:
    killed = _mlplab(*TRAIN, "--out", str(run_dir), fault=f"{point}@{occurrence}:{how}")
    if how == "KILL":
        assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    elif how == "ENOSPC":
        lines = killed.stderr.strip().splitlines()
        assert killed.returncode == 2 and len(lines) == 1, (killed.returncode, killed.stderr[-2000:])
        assert lines[0].startswith("mlplab: error: cannot write: No space left on device"), lines[0]
        advice = ("--resume", "start it again", "the finished run is saved", "run the same command again")
        assert any(said in lines[0] for said in advice), lines[0]
    else:
        assert killed.returncode == 130, (killed.returncode, killed.stderr[-2000:])
        saved = load_checkpoint(run_dir / "last.pt")["epoch"] if (run_dir / "last.pt").exists() else 0
        said = [line for line in killed.stdout.splitlines() if line.startswith("interrupted")]
        expected = (f"interrupted: epoch {saved} is saved" if saved else "interrupted before the first epoch")
        assert said and said[0].startswith(expected), (said, saved)
    assert_consistent(run_dir)

    if not (run_dir / "config.toml").exists():
        # Stopped before its config was written (a full disk): the advice is the same command again.
        assert how == "ENOSPC" and "run the same command again" in killed.stderr, killed.stderr
        again = _mlplab(*TRAIN, "--out", str(run_dir))
        assert again.returncode == 0, again.stderr
    resumed = _mlplab("train", "--resume", str(run_dir))
    if not (run_dir / "last.pt").exists():
        # Stopped in its first epoch: the message says how to start again, and that works.
        assert resumed.returncode == 2 and "has no saved epoch yet" in resumed.stderr, resumed.stderr
        restarted = _mlplab("train", "--config", str(run_dir / "config.toml"), "--out", str(run_dir))
        assert restarted.returncode == 0, restarted.stderr
    elif resumed.returncode == 2:
        assert "already finished" in resumed.stderr, resumed.stderr  # killed after it finished
    else:
        assert resumed.returncode == 0, resumed.stderr
    assert_consistent(run_dir)
    final = _final_state(run_dir)
    for name, tensor in reference["weights"].items():
        assert torch.equal(final["weights"][name], tensor), name
    for key in ("history", "batch_losses", "best_epoch"):
        assert final[key] == reference[key], key
    for key in ("test_loss", "test_accuracy", "per_class_accuracy", "confusion", "best", "epochs"):
        assert final["metrics"][key] == reference["metrics"][key], key


@pytest.mark.parametrize("point, occurrence", DEFAULT_POINTS, ids=[f"{p}@{n}" for p, n in DEFAULT_POINTS])
def test_a_kill_at_each_window_resumes_bit_identically(tmp_path, reference, point, occurrence):
    _kill_resume_and_compare(tmp_path / "run", point, occurrence, "KILL", reference)


@pytest.mark.parametrize("point, occurrence", FULL_DISK_POINTS, ids=[f"{p}@{n}" for p, n in FULL_DISK_POINTS])
def test_a_full_disk_in_each_kind_of_write_is_one_line_and_resumes_bit_identically(tmp_path, reference, point,
                                                                                     occurrence):
    _kill_resume_and_compare(tmp_path / "run", point, occurrence, "ENOSPC", reference)


@pytest.mark.parametrize("point, occurrence", [("last.pt:after-rename", 2)])
def test_ctrl_c_at_a_write_reports_the_epoch_really_saved(tmp_path, reference, point, occurrence):
    _kill_resume_and_compare(tmp_path / "run", point, occurrence, "INT", reference)


@pytest.mark.soak
@pytest.mark.parametrize("how", ["KILL", "INT"])
@pytest.mark.parametrize("point, occurrence", SOAK_POINTS, ids=[f"{p}@{n}" for p, n in SOAK_POINTS])
def test_soak_every_point_every_epoch(tmp_path, reference, point, occurrence, how):
    _kill_resume_and_compare(tmp_path / "run", point, occurrence, how, reference)


@pytest.mark.soak
@pytest.mark.parametrize("point, occurrence", SOAK_FULL_DISK_POINTS,
                         ids=[f"{p}@{n}" for p, n in SOAK_FULL_DISK_POINTS])
def test_soak_a_full_disk_in_every_write_of_every_epoch(tmp_path, reference, point, occurrence):
    _kill_resume_and_compare(tmp_path / "run", point, occurrence, "ENOSPC", reference)
