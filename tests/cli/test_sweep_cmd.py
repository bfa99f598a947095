"""`mlplab sweep`: a tiny sweep through the CLI, its output and files, a rerun from sweep.toml, and one-line errors."""

from __future__ import annotations

import json

import pytest

from mlplab.cli.main import main
from helpers import cli_status

pytestmark = pytest.mark.usefixtures("one_thread")

# 784-16-10, one epoch on 10,000 training images: a second or two with the plan's calibration.
BASE = ["--hidden", "16", "--epochs", "1", "--val-size", "50000", "--threads", "1", "--device", "cpu",
        "--no-progress", "--no-download"]


def _one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mlplab") and ": error: " in lines[0], lines[0]  # mlplab, or mlplab sweep for a flag
    return lines[0]


def test_a_tiny_sweep_prints_the_plan_the_best_settings_and_the_files(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--grid", "lr=0.01,0.05", "seed=0-1", "--out", str(out), *BASE]) == 0
    printed = capsys.readouterr().out
    assert printed.index("4 members in 1 group") < printed.index("trained 4 configurations")
    assert "predicted:" in printed and "lr=0.05" in printed and "+-" in printed
    assert f"mlplab train --config {out / 'best.toml'}" in printed
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 4

    # sweep.toml holds the base and the grid: given as both, it reruns the same sweep.
    again = tmp_path / "again"
    assert main(["sweep", "--config", str(out / "sweep.toml"), "--grid-file", str(out / "sweep.toml"),
                 "--out", str(again)]) == 0
    assert json.loads((again / "results.json").read_text()) == rows

    # The folder holds a sweep now: refused, in one line, before anything trains.
    capsys.readouterr()
    assert main(["sweep", "--grid", "lr=0.01", "--out", str(out), *BASE]) == 2
    assert "already holds a sweep" in _one_line_error(capsys)


def test_a_random_part_of_the_grid_keeps_whole_settings(tmp_path, capsys):
    out = tmp_path / "random"
    assert main(["sweep", "--grid", "lr=0.01,0.02,0.05", "seed=0-1", "--random", "2", "--random-seed", "3",
                 "--out", str(out), *BASE]) == 0
    assert "random search: 2 of the grid's 6 configurations" in capsys.readouterr().out
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 2 and rows[0]["lr"] == rows[1]["lr"] and {r["seed"] for r in rows} == {0, 1}
    assert "[random]\ncount = 2\nseed = 3" in (out / "sweep.toml").read_text()


@pytest.mark.parametrize("flags, fragment", [
    (["--grid", "lr"], "a grid entry is field=values"),
    (["--grid", "lr=0.01,-1"], "lr must be"),
    (["--grid", "bogus=1,2"], "unknown config field 'bogus'"),
    (["--grid", "seed=4-0"], "runs backwards"),
    (["--grid", "out=a,b"], "out cannot be swept"),
    (["--grid", "dropout=0,0.2"], "does not implement dropout"),
    (["--grid", "lr=0.01", "--augment", "affine"], "does not augment batches"),
    (["--grid", "lr=0.01", "--stroke", "1"], "does not augment batches"),
    (["--grid", "blur=0,1"], "does not augment batches"),
    ([], "give the grid with --grid"),
    (["--grid", "lr=0.01", "--grid-file", "x.toml"], "one of the two"),
    (["--grid-file", "missing.toml"], "grid file missing.toml does not exist"),
    (["--grid", "lr=0.01", "--random", "0"], "argument --random: must be a whole number in [1, 1000000]; got 0"),
])
def test_grid_and_member_mistakes_are_one_line_with_exit_2(tmp_path, capsys, flags, fragment):
    out = tmp_path / "refused"
    assert cli_status(["sweep", *flags, "--out", str(out), *BASE]) == 2
    assert fragment in _one_line_error(capsys)
    assert not out.exists()


def test_without_matplotlib_the_sweep_is_written_and_the_figures_are_a_note(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "sweep"
    assert main(["sweep", "--grid", "lr=0.01,0.05", "--out", str(out), *BASE]) == 0
    assert 'no figures: plots need matplotlib: pip install "mlplab[plots]"' in capsys.readouterr().out
    assert (out / "results.json").exists() and not (out / "figures").exists()


def test_a_stopped_sweep_resumes_with_the_same_command_or_with_resume(tmp_path, capsys, monkeypatch):
    from mlplab.cli.sweep_cmd import SweepProgress

    out = tmp_path / "sweep"
    command = ["sweep", "--grid", "lr=0.01,0.05", "seed=0-1", "--max-group-size", "2", "--out", str(out), *BASE]

    def ctrl_c_in_group_2(self, report):
        if report.group == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(SweepProgress, "on_epoch_end", ctrl_c_in_group_2)
    assert main(command) == 130
    assert "interrupted: 2 of 4 members finished; run the same command again to continue" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert f"resuming the sweep in {out}: 2 of 4 members finished; 2 to train" in printed
    assert "trained 2 configurations in " in printed and " s (2 more kept from before)" in printed
    rows = json.loads((out / "results.json").read_text())

    # Finished: the same command, or --resume, shows it and trains nothing.
    assert main(["sweep", "--resume", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"the sweep in {out} is complete: 4 configurations, nothing to train" in printed
    assert "lr=0.05" in printed and f"files: {out / 'sweep.toml'}" in printed
    assert json.loads((out / "results.json").read_text()) == rows


@pytest.mark.parametrize("flags, fragment", [
    (["--resume", "{out}", "--grid", "lr=0.1"], "--resume takes the grid and the base config from"),
    (["--resume", "{out}", "--out", "elsewhere"], "--out cannot move a resumed sweep"),
    (["--resume", "{out}/missing"], "holds no sweep (no sweep.toml)"),
    (["--grid", "lr=0.1"], "give the sweep's folder with --out DIR"),
])
def test_resume_mistakes_are_one_line_with_exit_2(tmp_path, capsys, flags, fragment):
    (tmp_path / "sweep.toml").write_text("[grid]\nlr = [0.1]\n")
    assert main(["sweep", *[flag.format(out=tmp_path) for flag in flags]]) == 2
    assert fragment in _one_line_error(capsys)
