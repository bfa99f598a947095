"""Files mlplab writes: atomic, and with the mode a plain open(path, "w") gives under the umask."""

from __future__ import annotations

import os
import stat

import pytest

from mlplab.cli.main import main
from mlplab.files import atomic_copy, atomic_write, atomic_write_text


@pytest.fixture
def umask():
    """Set the process umask for one test (returns a setter); the old one is restored after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_get_the_mode_open_would_give(tmp_path, umask, mask):
    umask(mask)
    with open(tmp_path / "plain.txt", "w") as handle:
        handle.write("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    atomic_copy(tmp_path / "plain.txt", tmp_path / "copied.txt")
    assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "copied.txt") == _mode(tmp_path / "plain.txt")
    assert _mode(tmp_path / "atomic.txt") == 0o666 & ~mask


def test_replacing_a_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "report.html"
    atomic_write_text(path, "old")
    os.chmod(path, 0o600)  # the user made it private: a rewrite must not publish it
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o600


def test_an_abandoned_write_leaves_the_old_file_and_no_temporary(tmp_path, umask):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "old")

    def fail(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_run_its_figures_report_and_export_are_readable_by_others(make_config, umask):
    from mlplab.plots import plot_run
    from mlplab.training import train

    run_dir = train(make_config(epochs=1, hidden="8", batch_size=512, log_batches=True)).run_dir
    plot_run(run_dir, ("png", "svg"))
    assert main(["report", str(run_dir)]) == 0
    assert main(["export", str(run_dir), "--out", str(run_dir / "model.safetensors")]) == 0
    files = sorted(p for p in run_dir.rglob("*") if p.is_file())
    names = {p.name for p in files}
    for expected in ("config.toml", "history.json", "history.csv", "batches.csv", "last.pt", "best.pt",
                     "metrics.json", "report.html", "model.safetensors", "curves.png", "confusion.svg"):
        assert expected in names, expected
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: oct(0o644) for p in files}
    assert _mode(run_dir) == 0o755
