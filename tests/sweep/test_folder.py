"""`mlplab.sweep.folder` through `run_sweep`: a stopped sweep run again resumes to the results of one never
stopped, a finished one is read back, another sweep's folder is refused naming what differs.

The sweeps here stop by a Ctrl-C (KeyboardInterrupt) raised from an epoch hook or from a results
write; tests/sweep/test_fault_injection.py kills the `mlplab sweep` process itself.
"""

from __future__ import annotations

import json

import pytest

from mlplab.config import Config, apply_overrides
from mlplab.errors import MlplabError
from mlplab.sweep import directory
from mlplab.sweep.directory import run_sweep
from mlplab.sweep.folder import read_saved, saved_sweep
from mlplab.sweep.grid import expand, parse_grid
from sweep_helpers import assert_same_sweep, sweep_state

pytestmark = pytest.mark.usefixtures("one_thread")

# 784-16-10, two epochs of 40 steps on 10,000 training images; lr 5e3 diverges in its first epoch.
# Groups of 3, seed-major: group 1 is seed 0 (members 0, 2, 4: lr 0.05, 0.1, 5e3), group 2 seed 1 (1, 3, 5).
TINY = dict(hidden=(16,), epochs=2, val_size=50_000, device="cpu", progress=False, download=False, threads=1)
GRID = parse_grid(["lr=0.05,0.1,5e3", "seed=0-1"])
GROUP_SIZE = 3


def _halt_member_1(report):
    """A pruner's verdict after the first epoch: member 1 (lr 0.05, seed 1) trains one epoch only."""
    if report.epoch == 1 and 1 in report.members:
        report.halt(1, "pruned")


def _sweep(out, **options):
    hooks = [_halt_member_1, *options.pop("hooks", [])]
    options.setdefault("max_group_size", GROUP_SIZE)
    return run_sweep(apply_overrides(Config(), TINY), expand(GRID), out, grid=GRID, calibrate=False,
                     on_epoch_end=hooks, **options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep, never stopped: its folder's `sweep_state`."""
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("reference") / "sweep"
    _sweep(out)
    return sweep_state(out)


def _stop_at(group, epoch):
    def stop(report):
        if (report.group, report.epoch) == (group, epoch):
            raise KeyboardInterrupt
    return stop


# (group, epoch) whose end is interrupted before it is saved: what each leaves saved, in words.
STOPS = [((0, 1), "0 of 6 members finished"),
         ((0, 2), "0 of 6 members finished, group 1 saved after epoch 1 of 2"),
         ((1, 1), "3 of 6 members finished"),
         ((1, 2), "3 of 6 members finished, group 2 saved after epoch 1 of 2")]


@pytest.mark.parametrize("stop, saved", STOPS, ids=[f"group{g + 1}-epoch{e}" for (g, e), _ in STOPS])
def test_a_sweep_stopped_in_any_epoch_resumes_to_the_same_members(tmp_path, reference, stop, saved):
    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        _sweep(out, hooks=[_stop_at(*stop)])
    assert not (out / "results.json").exists()
    assert read_saved(out).describe() == saved
    told = []
    # Without --max-group-size the plan would be one group of 6: the saved plan.json is followed.
    outcome = _sweep(out, max_group_size=None, on_resume=told.append)
    assert [s.describe() for s in told] == [saved] and outcome.kept == 3 * (stop[0] == 1)
    assert not outcome.complete and len(outcome.rows) == 6
    assert_same_sweep(sweep_state(out), reference)
    rows = json.loads((out / "results.json").read_text())
    assert [row["diverged"] is not None for row in rows] == [False] * 4 + [True] * 2
    assert [member["halted"] for member in json.loads((out / "members.json").read_text())["members"]] == [
        None, "pruned", None, None, None, None]


def test_a_sweep_stopped_while_writing_its_results_writes_them_again(tmp_path, reference, monkeypatch):
    out = tmp_path / "sweep"
    write = directory._write

    def stop_at_settings(path, text):
        if path.name == "settings.json":
            raise KeyboardInterrupt
        return write(path, text)

    monkeypatch.setattr(directory, "_write", stop_at_settings)
    with pytest.raises(KeyboardInterrupt):
        _sweep(out)
    assert (out / "results.csv").exists() and not (out / "results.json").exists()
    monkeypatch.setattr(directory, "_write", write)
    saved = read_saved(out)
    assert saved.kept == 6 and not saved.complete
    outcome = _sweep(out)
    assert outcome.kept == 6 and not outcome.complete
    assert_same_sweep(sweep_state(out), reference)


def test_a_finished_sweep_run_again_is_read_back_and_left_as_it_was(tmp_path, reference):
    out = tmp_path / "sweep"
    first = _sweep(out)
    files = {path: path.read_bytes() for path in out.rglob("*") if path.is_file() and path.name != ".lock"}
    again = _sweep(out)
    assert again.complete and again.kept == 6
    assert again.rows == first.rows and again.settings == first.settings and again.best == first.best
    assert {path: path.read_bytes() for path in files} == files


@pytest.mark.parametrize("change, said", [
    (dict(grid=parse_grid(["lr=0.05,0.1", "seed=0-1"])),
     "grid.lr [0.05, 0.1, 5000.0] in its sweep.toml, [0.05, 0.1] asked"),
    (dict(base={"epochs": 3}), "epochs 2 in its sweep.toml, 3 asked"),
    (dict(random=(1, 0)), "random.count not set in its sweep.toml, 1 asked"),
])
def test_another_sweep_into_the_folder_is_refused_naming_what_differs(tmp_path, change, said):
    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        _sweep(out, hooks=[_stop_at(0, 2)])
    files = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    base = apply_overrides(Config(), {**TINY, **change.get("base", {})})
    grid = change.get("grid", GRID)
    with pytest.raises(MlplabError, match="already holds a sweep of another plan") as refused:
        run_sweep(base, expand(grid), out, grid=grid, random=change.get("random"), calibrate=False)
    message = str(refused.value)
    assert said in message and "\n" not in message and f"mlplab sweep --resume {out}" in message
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == files


def test_settings_that_cannot_change_a_result_may_differ(tmp_path):
    """Where the data is read from and what is shown are not the sweep; a base lr the grid replaces neither."""
    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        _sweep(out, hooks=[_stop_at(0, 1)])
    recipe = directory.sweep_toml(apply_overrides(Config(), {**TINY, "progress": True, "lr": 0.3, "cache_dir": "x"}),
                                  GRID, None)
    assert saved_sweep(out, recipe) is not None


def test_a_file_or_checkpoints_without_a_sweep_are_refused(tmp_path):
    recipe = directory.sweep_toml(apply_overrides(Config(), TINY), GRID, None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MlplabError, match="is a file"):
        saved_sweep(tmp_path / "file", recipe)
    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        _sweep(out, hooks=[_stop_at(0, 2)])
    (out / "sweep.toml").unlink()
    with pytest.raises(MlplabError, match="holds a sweep's checkpoints but no sweep.toml"):
        saved_sweep(out, recipe)


def test_a_damaged_group_checkpoint_is_one_line_and_nothing_trains(tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        _sweep(out, hooks=[_stop_at(0, 2)])
    path = out / "checkpoints" / "group-1.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(MlplabError) as refused:
        _sweep(out)
    assert str(refused.value).startswith(f"{path} is ") and "\n" not in str(refused.value)
    assert not (out / "checkpoints" / "group-2.pt").exists()
