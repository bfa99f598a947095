"""User mistakes on `mlplab train`: exit status 2, one line on stderr, no traceback, no run directory.

Every bad number is refused while the config is resolved, before any data loads; OS errors
(a file where a folder belongs, a place the kernel refuses, a full disk) become one line
at the CLI's edge.
"""

import errno
import os
from pathlib import Path

import pytest

from mlplab.cli.main import main
from helpers import cli_status

QUICK = ["--device", "cpu", "--no-progress"]
TINY = ["--hidden", "8", "--epochs", "1", "--batch-size", "512", *QUICK]  # one epoch in about a second


def _one_line_error(capsys) -> str:
    """The single stderr line of a refused command (a traceback would have failed the test already)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mlplab: error: "), lines[0]
    return lines[0]


def _too_many_threads() -> str:
    return str(4 * (os.cpu_count() or 1) + 1)


@pytest.mark.parametrize("flags, fragment", [
    (["--seed", "-1"], "seed must be a whole number in [0, 2**63 - 1]"),
    (["--seed", str(2**63)], "seed must be a whole number in [0, 2**63 - 1]"),
    (["--seed", str(2**64 + 1)], "seed must be a whole number in [0, 2**63 - 1]"),
    (["--threads", "0"], "threads must be a whole number in [1, 4096]"),
    (["--threads", "100000"], "threads must be a whole number in [1, 4096]"),
    (["--threads", _too_many_threads()], "per CPU"),
    (["--init", "uniform", "--init-range", "1e308"], "init_range must be a number in (0, 10]"),
    (["--init-range", "0"], "init_range must be a number in (0, 10]"),
    (["--init-range", "nan"], "init_range"),
    (["--momentum", "2"], "momentum must be a number in [0, 1); got 2.0"),
    (["--momentum", "1"], "momentum must be a number in [0, 1)"),
    (["--momentum", "-0.1"], "momentum must be a number in [0, 1)"),
    (["--dropout", "1"], "dropout must be a number in [0, 1)"),
    (["--dropout", "-0.5"], "dropout must be a number in [0, 1)"),
    (["--batch-size", "0"], "batch_size must be a whole number in [1, 1000000]"),
    (["--batch-size", str(10**20)], "batch_size must be a whole number in [1, 1000000]"),
    (["--eval-batch-size", "-1"], "eval_batch_size must be a whole number in [1, 1000000]"),
    (["--epochs", "0"], "epochs must be a whole number in [1, 1000000]"),
    (["--val-size", "0"], "val_size must be a whole number in [1, 1000000]"),
    (["--step-size", "0"], "step_size must be a whole number in [1, 1000000]"),
    (["--gamma", "0"], "gamma must be a number in (0, 1]"),
    (["--gamma", "-1"], "gamma must be a number in (0, 1]"),
    (["--lr", "0"], "lr must be a number in (0, 1000000]"),
    (["--lr", "-0.1"], "lr must be a number in (0, 1000000]"),
    (["--lr", "inf"], "lr must be a number in (0, 1000000]"),
    (["--lr", "nan"], "lr must be a number in (0, 1000000]"),
    (["--weight-decay=-1e-4"], "weight_decay must be a number in [0, 1000000]"),
    (["--weight-decay", "inf"], "weight_decay must be a number in [0, 1000000]"),
    (["--beta", "nan"], "beta must be a number in [0, 1000000]"),
    (["--beta", "inf"], "beta must be a number in [0, 1000000]"),
    (["--hidden", "16,0"], "hidden layer widths must be positive"),
    (["--hidden", "16,,32"], "hidden has an empty entry in '16,,32'"),
    (["--hidden", "16,"], "hidden has an empty entry"),
    (["--hidden", ",16"], "hidden has an empty entry"),
    (["--hidden", ""], "hidden needs layer widths"),
])
def test_bad_numbers_are_refused_before_anything_is_written(flags, fragment, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, *flags, "--out", str(out)]) == 2
    assert fragment in _one_line_error(capsys)
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("mine")
    assert main(["train", *TINY, "--out", str(out)]) == 2
    assert f"--out {out} is a file, not a folder" in _one_line_error(capsys)
    assert out.read_text() == "mine"


def test_an_out_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 2
    assert f"{tmp_path / 'file'} is a file, not a folder" in _one_line_error(capsys)


def test_an_out_holding_a_run_is_refused_before_any_data_loads(monkeypatch, tmp_path, capsys):
    import mlplab.training.runner

    def no_data(*_args, **_kwargs):
        raise AssertionError("the data was loaded before --out was checked")

    monkeypatch.setattr(mlplab.training.runner, "prepare", no_data)
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"")
    assert main(["train", *TINY, "--out", str(out)]) == 2
    assert _one_line_error(capsys) == (
        f"mlplab: error: {out} already holds a run (last.pt); continue it with "
        f"`mlplab train --resume {out}` or choose another --out")
    assert sorted(path.name for path in out.iterdir()) == [".lock", "last.pt"]


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="no /proc on this system")
def test_an_out_the_kernel_refuses_is_one_line(mnist_dir, capsys):
    """Root may write /proc by its mode bits, so only creating the folder fails: the edge reports it."""
    out = Path("/proc/mlplab-run")
    assert main(["train", *TINY, "--data-dir", str(mnist_dir), "--out", str(out)]) == 2
    assert "(/proc/mlplab-run)" in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("code, advice", [
    (errno.ENOSPC, "free some disk space"),
    (errno.EACCES, "check its permissions"),
    (errno.EROFS, "read-only"),
    (errno.ENOTDIR, "a part of the path is a file"),
    (errno.EEXIST, "already has that name"),
    (errno.EIO, ""),
])
def test_os_errors_are_one_line(code, advice, monkeypatch, tmp_path, capsys):
    import mlplab.training.runner

    path = tmp_path / "run" / "last.pt"

    def failing_fit(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(mlplab.training.runner, "fit", failing_fit)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 2
    line = _one_line_error(capsys)
    assert f": {os.strerror(code)} ({path})" in line and advice in line


def test_a_full_disk_during_training_is_one_line(mnist_dir, monkeypatch, tmp_path, capsys):
    """The first checkpoint hits a full disk: one line naming the file, what is kept and how to go on; no temporary left."""
    import mlplab.files

    real = mlplab.files.temporary_beside

    class FullDisk:
        """A temporary file whose writes fail as they do on a full disk (no path in the error)."""

        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exception):
            self.handle.close()

    def temporary_beside(path):
        handle, temporary = real(path)
        return (FullDisk(handle) if path.suffix == ".pt" else handle), temporary

    monkeypatch.setattr(mlplab.files, "temporary_beside", temporary_beside)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--data-dir", str(mnist_dir), "--out", str(out)]) == 2
    line = _one_line_error(capsys)
    assert line == (f"mlplab: error: cannot write: No space left on device ({out / '.best-next.pt'}); "
                    "free some disk space, or write somewhere else; no epoch was saved yet; once there is room, "
                    f"start it again with `mlplab train --config {out / 'config.toml'} --out {out}`")
    assert not (out / "last.pt").exists()
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_resume_refuses_another_preset(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--data-dir", str(mnist_dir), "--out", str(out)]) == 0
    before = sorted(os.listdir(out))
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--preset", "tutorial", "--epochs", "2", *QUICK]) == 2
    assert "--preset cannot change a resumed run" in _one_line_error(capsys)
    assert sorted(os.listdir(out)) == before


def test_a_run_stopped_by_a_full_disk_resumes_once_there_is_space(monkeypatch, tmp_path, capsys):
    """The disk fills up in epoch 2: one line; with space again, --resume ends where an unstopped run does."""
    import mlplab.files
    from mlplab.training import load_checkpoint

    common = ["--hidden", "8", "--batch-size", "2000", "--epochs", "3", "--scheduler", "none", *QUICK]
    assert main(["train", *common, "--out", str(tmp_path / "straight")]) == 0
    real, writes = mlplab.files.temporary_beside, []

    def full_from_the_third_checkpoint(path):
        handle, temporary = real(path)
        if path.suffix == ".pt":
            writes.append(path.name)
            if len(writes) >= 3:  # epoch 1 wrote .best-next.pt and last.pt; epoch 2's first one fails
                handle.close()
                temporary.unlink()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return handle, temporary

    monkeypatch.setattr(mlplab.files, "temporary_beside", full_from_the_third_checkpoint)
    out = tmp_path / "run"
    assert main(["train", *common, "--out", str(out)]) == 2
    assert "No space left on device" in _one_line_error(capsys)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    monkeypatch.setattr(mlplab.files, "temporary_beside", real)  # space again
    assert main(["train", "--resume", str(out), *QUICK]) == 0
    for name, tensor in load_checkpoint(tmp_path / "straight" / "last.pt")["model"].items():
        assert (load_checkpoint(out / "last.pt")["model"][name] == tensor).all(), name


def test_small_mistakes_found_by_a_hostile_user_are_one_line_each(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--data-dir", str(mnist_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    # A checkpoint given to --resume: the folder that holds it is the run.
    assert main(["train", "--resume", str(out / "best.pt")]) == 2
    assert _one_line_error(capsys).endswith(f"is a file, not a run directory; resume the run that holds it: "
                                            f"`mlplab train --resume {out}`")
    # best.pt that is a folder: never the last epoch silently in its place.
    (out / "best.pt").rename(out / "kept.pt")
    (out / "best.pt").mkdir()
    assert main(["eval", str(out)]) == 2
    assert "best.pt is not a file (a folder?), so the run's best epoch cannot be read" in _one_line_error(capsys)
    # A config file's text field given a list: refused, not a folder named "['a']".
    bad = tmp_path / "bad.toml"
    bad.write_text('out = ["a"]\n')
    assert main(["train", "--config", str(bad), "--data-dir", str(mnist_dir)]) == 2
    assert _one_line_error(capsys) == "mlplab: error: out must be text (a quoted string in a TOML file); got ['a']"
    assert not (tmp_path / "['a']").exists() and not os.path.exists("['a']")
    # data info follows train's rule for a seed.
    assert cli_status(["data", "info", "--data-dir", str(mnist_dir), "--seed", "-1"]) == 2
    assert capsys.readouterr().err == ("mlplab data info: error: argument --seed: must be a whole number in "
                                       "[0, 2**63 - 1]; got -1 (see `mlplab data info --help`)\n")
