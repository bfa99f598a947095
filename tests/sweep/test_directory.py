"""`run_sweep`: a tiny sweep's directory, its tables, best.toml rerun exactly, and refused folders
(resuming a stopped sweep: tests/sweep/test_folder.py)."""

from __future__ import annotations

import csv
import json
import statistics
import tomllib

import pytest

from mlplab.config import Config, apply_overrides, load_config
from mlplab.errors import MlplabError
from mlplab.sweep.directory import run_sweep
from mlplab.sweep.grid import expand, load_grid, parse_grid

pytestmark = pytest.mark.usefixtures("one_thread")

# 784-16-10, one epoch on 10,000 training images (val_size 50,000): 40 steps of batch 256.
TINY = dict(hidden=(16,), epochs=1, val_size=50_000, device="cpu", progress=False, download=False, threads=1)
GRID = ["lr=0.01,0.05", "seed=0-1"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The tiny sweep, run once: (its outcome, its folder, the base config)."""
    import torch

    torch.set_num_threads(1)
    base = apply_overrides(Config(), TINY)
    out = tmp_path_factory.mktemp("sweeps") / "tiny"
    outcome = run_sweep(base, expand(parse_grid(GRID)), out, grid=parse_grid(GRID), calibrate=False)
    return outcome, out, base


def test_the_directory_holds_every_file_and_no_temporary_one(sweep):
    _, out, _ = sweep
    names = sorted(path.name for path in out.iterdir())
    assert names == sorted([".lock", "sweep.toml", "plan.json", "checkpoints", "members.json", "results.csv",
                            "results.json", "settings.csv", "settings.json", "best.toml"])
    assert sorted(path.name for path in (out / "checkpoints").iterdir()) == ["group-1.pt"]


def test_results_have_one_row_per_configuration_with_its_values(sweep):
    outcome, out, _ = sweep
    rows = json.loads((out / "results.json").read_text())
    assert [(row["lr"], row["seed"]) for row in rows] == [(0.01, 0), (0.01, 1), (0.05, 0), (0.05, 1)]
    for row in rows:
        assert row["best_epoch"] == 1 and row["diverged"] is None
        assert 0.5 < row["test_accuracy"] <= 1 and row["test_loss"] > 0
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [float(row["test_accuracy"]) for row in table] == [row["test_accuracy"] for row in rows]


def test_settings_are_mean_and_std_over_seeds_of_the_rows(sweep):
    _, out, _ = sweep
    rows = json.loads((out / "results.json").read_text())
    settings = json.loads((out / "settings.json").read_text())
    assert sorted(s["lr"] for s in settings) == [0.01, 0.05]
    for setting in settings:
        mine = [row for row in rows if row["lr"] == setting["lr"]]
        assert setting["seeds"] == 2 and setting["diverged"] == 0
        test = [row["test_accuracy"] for row in mine]
        val = [row["best_val_accuracy"] for row in mine]
        assert setting["test_accuracy_mean"] == pytest.approx(statistics.fmean(test), abs=0)
        assert setting["test_accuracy_std"] == pytest.approx(statistics.stdev(test), abs=0)
        assert setting["val_accuracy_mean"] == pytest.approx(statistics.fmean(val), abs=0)
        assert setting["val_accuracy_std"] == pytest.approx(statistics.stdev(val), abs=0)
    assert settings[0]["val_accuracy_mean"] >= settings[1]["val_accuracy_mean"]  # best first


def test_sweep_toml_records_the_base_and_the_grid(sweep):
    _, out, base = sweep
    text = tomllib.loads((out / "sweep.toml").read_text())
    assert text["grid"] == {"lr": [0.01, 0.05], "seed": [0, 1]}
    assert load_grid(out / "sweep.toml") == parse_grid(GRID)
    assert text["model"]["hidden"] == [16] and text["train"]["epochs"] == 1


def test_best_toml_reruns_the_best_member_exactly(sweep, tmp_path):
    from mlplab.training import train

    outcome, out, _ = sweep
    best_index = outcome.settings[0]["best_index"]
    config = load_config(out / "best.toml")
    assert config.train.out is None
    history = train(apply_overrides(config, {"out": str(tmp_path / "rerun")}))
    assert history.metrics["test_accuracy"] == outcome.rows[best_index]["test_accuracy"]
    assert history.best_epoch()["val_accuracy"] == outcome.rows[best_index]["best_val_accuracy"]


def test_a_folder_holding_another_sweep_is_refused_and_left_as_it_was(sweep):
    _, out, base = sweep
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    with pytest.raises(MlplabError, match="already holds a sweep of another plan.*choose another folder"):
        run_sweep(base, [{"lr": 0.01}], out, calibrate=False)
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before


def test_a_file_as_out_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(MlplabError, match="is a file"):
        run_sweep(apply_overrides(Config(), TINY), [{"lr": 0.01}], tmp_path / "file", calibrate=False)


def test_members_the_trainer_cannot_train_are_refused_before_anything_is_written(tmp_path):
    base = apply_overrides(Config(), TINY)
    with pytest.raises(MlplabError, match="does not implement dropout"):
        run_sweep(base, [{"dropout": 0.0}, {"dropout": 0.2}], tmp_path / "out", calibrate=False)
    assert not (tmp_path / "out").exists()


def test_figures_are_drawn_from_the_directory(sweep, tmp_path):
    import shutil

    pytest.importorskip("matplotlib")
    from mlplab.plots.sweep import plot_sweep

    _, out, _ = sweep
    copy = shutil.copytree(out, tmp_path / "copy")
    written = plot_sweep(copy)
    assert sorted(path.name for path in written) == ["accuracy_by_lr.png", "curves.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (copy / "figures").iterdir()) == ["accuracy_by_lr.png", "curves.png"]
