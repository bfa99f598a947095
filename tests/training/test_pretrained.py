"""`mlplab.pretrained`: a preset's model trained once, then loaded from the cache; a damaged, unfinished
or stale model is trained again, never loaded; two processes at once train it once.

The preset is made tiny (784-16-10, one epoch, seconds): the real digits recipe is never trained here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlplab
import mlplab.config
from helpers import StopAfter
from mlplab.training.pretrained import Notice, fingerprint, model_dir, pretrained

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY = dict(hidden=(16,), epochs=1, batch_size=512, device="cpu", threads=1)


@pytest.fixture
def tiny(monkeypatch):
    """The digits preset as a recipe that trains in a second or two."""
    monkeypatch.setitem(mlplab.config.PRESETS, "digits", dict(TINY))
    return mlplab.config.PRESETS["digits"]


class Notices(list):
    """A `notify` that keeps every `Notice`."""

    def __call__(self, notice: Notice) -> None:
        self.append(notice)

    @property
    def kinds(self) -> list[str]:
        return [notice.kind for notice in self]


def test_the_first_call_trains_and_later_calls_load_without_training(tiny, trainings, tmp_path):
    first = Notices()
    run = pretrained(cache_dir=tmp_path, progress=False, notify=first)
    assert len(trainings) == 1 and first.kinds == ["training"]
    assert run.path == model_dir(cache_dir=tmp_path) and run.finished and run.architecture == "784-16-10"
    assert run.path.name == f"digits-{fingerprint(mlplab.config.from_preset('digits'))}"
    assert sorted(path.name for path in (tmp_path / "models").iterdir()) == [".digits.lock", run.path.name]
    written = (run.path / "best.pt").stat().st_mtime_ns

    again = Notices()
    cached = mlplab.pretrained(cache_dir=tmp_path, progress=False, notify=again)
    assert len(trainings) == 1 and again.kinds == ["loaded"]
    assert cached.path == run.path and (run.path / "best.pt").stat().st_mtime_ns == written
    assert cached.metrics == run.metrics and 0.5 < cached.metrics["test_accuracy"] <= 1


def test_the_cache_folder_defaults_to_mlplab_cache_dir(tiny, trainings, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLAB_CACHE_DIR", str(tmp_path / "env"))
    assert pretrained(progress=False).path.parent == tmp_path / "env" / "models"


def _flip_middle(path: Path) -> None:
    """Flip 8 bytes in the middle of the checkpoint's largest tensor (the first layer's weights): the
    file's own middle may fall in the zip's alignment padding, which no reader looks at."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
    middle = entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2
    data[middle:middle + 8] = bytes(byte ^ 0xFF for byte in data[middle:middle + 8])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name, damage, reason", [
    ("best.pt", _flip_middle, "best.pt is damaged"),
    ("last.pt", _flip_middle, "last.pt is damaged"),
    ("last.pt", lambda path: path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2]),
     "last.pt is not a readable checkpoint"),
    ("best.pt", lambda path: path.unlink(), "no best.pt"),
    ("last.pt", lambda path: path.unlink(), "it has no last.pt"),
])
def test_a_damaged_cached_model_is_reported_deleted_and_trained_again(tiny, trainings, tmp_path, name, damage,
                                                                     reason):
    run = pretrained(cache_dir=tmp_path, progress=False)
    damage(run.path / name)
    notices = Notices()
    again = pretrained(cache_dir=tmp_path, progress=False, notify=notices)
    assert len(trainings) == 2 and notices.kinds == ["discarded", "training"]
    assert reason in notices[0].detail and "\n" not in str(notices[0]), notices[0]
    assert again.path == run.path and again.finished
    mlplab.load_model(again.path)  # the new files pass every check


def test_a_discarded_model_is_a_warning_by_default(tiny, trainings, tmp_path):
    run = pretrained(cache_dir=tmp_path, progress=False)
    _flip_middle(run.path / "best.pt")
    with pytest.warns(UserWarning, match=r"is unusable \(.*best.pt is damaged"):
        pretrained(cache_dir=tmp_path, progress=False)
    assert len(trainings) == 2


def test_a_changed_recipe_trains_a_new_model_and_removes_the_old(tiny, trainings, tmp_path):
    old = pretrained(cache_dir=tmp_path, progress=False).path
    tiny["hidden"] = (8,)
    notices = Notices()
    new = pretrained(cache_dir=tmp_path, progress=False, notify=notices)
    assert len(trainings) == 2 and new.path != old and new.architecture == "784-8-10"
    assert notices.kinds == ["training", "removed"] and notices[1].path == old
    assert not old.exists() and new.path.exists()


def test_another_mlplab_version_trains_a_new_model(tiny, trainings, tmp_path, monkeypatch):
    import mlplab.runs.checkpoint
    import mlplab.training.pretrained

    old = pretrained(cache_dir=tmp_path, progress=False).path
    # the cache's key, and the version each checkpoint records
    for module in (mlplab.training.pretrained, mlplab.runs.checkpoint):
        monkeypatch.setattr(module, "__version__", "99.0")
    new = pretrained(cache_dir=tmp_path, progress=False)
    assert len(trainings) == 2 and new.path != old and not old.exists()


def test_a_folder_holding_another_recipe_than_its_name_says_is_not_loaded(tiny, trainings, tmp_path):
    other = pretrained(cache_dir=tmp_path / "other", progress=False).path
    tiny["hidden"] = (8,)
    target = model_dir(cache_dir=tmp_path)
    target.parent.mkdir(parents=True)
    other.rename(target)  # a 784-16-10 under the name of the 784-8-10
    notices = Notices()
    run = pretrained(cache_dir=tmp_path, progress=False, notify=notices)
    assert notices.kinds == ["discarded", "training"] and "another recipe" in notices[0].detail
    assert run.architecture == "784-8-10"


def test_an_unfinished_run_is_trained_again(tiny, trainings, tmp_path):
    tiny["epochs"] = 2
    config = mlplab.config.apply_overrides(mlplab.config.from_preset("digits"),
                                           {"out": str(model_dir(cache_dir=tmp_path)), "progress": False})
    with pytest.raises(KeyboardInterrupt):
        mlplab.train(config, callbacks=[StopAfter(1)])  # as if stopped after its first epoch
    notices = Notices()
    run = pretrained(cache_dir=tmp_path, progress=False, notify=notices)
    assert notices.kinds == ["discarded", "training"]
    assert "stopped after 1 of 2 epochs" in notices[0].detail
    assert run.finished and run.epochs == 2


def test_retrain_replaces_a_usable_model(tiny, trainings, tmp_path):
    run = pretrained(cache_dir=tmp_path, progress=False)
    notices = Notices()
    again = pretrained(cache_dir=tmp_path, progress=False, retrain=True, notify=notices)
    assert len(trainings) == 2 and notices.kinds == ["training"] and again.path == run.path
    assert sorted(path.name for path in (tmp_path / "models").iterdir()) == [".digits.lock", run.path.name]


def test_a_training_killed_midway_leaves_a_temporary_folder_the_next_call_removes(tiny, trainings, tmp_path):
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), json.dumps(TINY)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": SRC,
                                                       "MLPLAB_FAULT": "last.pt:before-rename@1:KILL"})
    assert done.returncode == -9, done.stderr
    models = tmp_path / "models"
    left = [path.name for path in models.iterdir() if path.name != ".digits.lock"]
    assert len(left) == 1 and left[0].startswith(".digits-") and left[0].endswith(".tmp")  # never the final name
    run = pretrained(cache_dir=tmp_path, progress=False)
    assert sorted(path.name for path in models.iterdir()) == [".digits.lock", run.path.name] and run.finished


# A process asking for the tiny digits model: prints what it was told and the model it got.
_SCRIPT = """
import hashlib, json, sys
import mlplab, mlplab.config
mlplab.config.PRESETS["digits"] = json.loads(sys.argv[2])
kinds = []
run = mlplab.pretrained(cache_dir=sys.argv[1], progress=False, notify=lambda notice: kinds.append(notice.kind))
print(json.dumps({"kinds": kinds, "path": str(run.path),
                  "best": hashlib.sha256((run.path / "best.pt").read_bytes()).hexdigest()}))
"""


def test_two_processes_at_once_train_one_model_and_both_use_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    processes = [subprocess.Popen([sys.executable, "-c", _SCRIPT, str(tmp_path), json.dumps(TINY)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        results = []
        for process in processes:
            out, err = process.communicate(timeout=180)
            assert process.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    trainer, other = sorted((result["kinds"] for result in results), key=lambda kinds: "training" not in kinds)
    assert trainer == ["training"], results
    assert other in (["waiting", "loaded"], ["loaded"]), results  # it waited for the trainer (or came after it)
    assert results[0]["path"] == results[1]["path"] and results[0]["best"] == results[1]["best"]


def test_the_fingerprint_ignores_where_and_how_a_run_trains_not_what_it_trains():
    config = mlplab.config.from_preset("digits")
    moved = mlplab.config.apply_overrides(config, {"out": "/elsewhere", "threads": 3, "progress": False,
                                                   "cache_dir": "/c", "data_dir": "/d", "download": False})
    assert fingerprint(moved) == fingerprint(config)
    for change in ({"lr": 0.05}, {"epochs": 3}, {"seed": 1}, {"hidden": (32,)}):
        assert fingerprint(mlplab.config.apply_overrides(config, change)) != fingerprint(config), change
    assert fingerprint(config, "0.0.1") != fingerprint(config)


def test_an_unknown_preset_is_one_line(tmp_path):
    with pytest.raises(mlplab.MlplabError, match="unknown preset 'digit'; choose one of"):
        pretrained("digit", cache_dir=tmp_path)
