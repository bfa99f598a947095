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


# A write that fails as a full disk fails: the file-size limit (RLIMIT_FSIZE, with SIGXFSZ
# ignored, as a shell's `ulimit -f` leaves it) makes every write past it fail with EFBIG, through
# the same path as ENOSPC, in a child process only.
_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
sys.argv = sys.argv[1:]
"""


def _limited(limit: int, code: str, *args: str, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", _LIMITED + code, str(limit), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_torchs_zip_writer_failing_on_a_full_disk_raises_the_os_error_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"the epoch before")
    code = """
import torch
from pathlib import Path
from mlplab.files import atomic_write
target = Path(sys.argv[1])
try:
    atomic_write(target, lambda handle: torch.save({"weights": torch.zeros(100_000)}, handle))
except OSError as error:  # torch alone raises RuntimeError("... unexpected pos ...")
    print(error.errno, error.filename)
"""
    done = _limited(50_000, code, str(target))
    assert done.returncode == 0, done.stderr
    import errno

    assert done.stdout.split() == [str(errno.EFBIG), str(target)]
    assert target.read_bytes() == b"the epoch before" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_mlplab_train_on_a_full_disk_says_in_one_line_what_is_kept_and_how_to_go_on(tmp_path):
    train = ["--hidden", "8", "--epochs", "1", "--batch-size", "2000", "--threads", "1", "--no-progress",
             "--device", "cpu", "--out", "run"]
    code = "from mlplab.cli.main import console; raise SystemExit(console(['train', *sys.argv[1:]]))"
    done = _limited(30_000, code, *train, cwd=tmp_path)  # the config files fit, a checkpoint (about 60 kB) does not
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("mlplab: error: cannot write: File too large (run/.best-next.pt)"), lines[0]
    advice = "start it again with `mlplab train --config run/config.toml --out run`"
    assert lines[0].endswith(f"no epoch was saved yet; once there is room, {advice}"), lines[0]
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith((".tmp", ".pt"))]  # nothing half-written
    run = tmp_path / "run"
    again = main(["train", "--config", str(run / "config.toml"), "--out", str(run), "--no-progress"])  # the advice
    assert again == 0 and (tmp_path / "run" / "metrics.json").is_file()
