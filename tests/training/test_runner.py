"""The loop: determinism, exact resume, refusals, run-directory contents."""

import contextlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlplab.errors import MlplabError
from mlplab.runs.reader import load_model
from helpers import StopAfter
from mlplab.training import Callback, History, load_checkpoint, train


def _weights(path):
    return load_checkpoint(path)["model"]


def _without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history.epochs]


def test_run_directory_holds_config_history_checkpoints_metrics(make_config):
    config = make_config(epochs=1, hidden="16", batch_size=64, log_batches=True)
    history = train(config)
    run_dir = history.run_dir
    for name in ("config.toml", "config.json", "history.json", "history.csv", "batches.csv",
                 "last.pt", "best.pt", "metrics.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_count"] == 10_000
    assert 0.0 < metrics["test_accuracy"] <= 1.0
    assert len(metrics["per_class_accuracy"]) == 10
    assert sum(map(sum, metrics["confusion"])) == 10_000
    assert len(history.batch_losses) == 782  # ceil(50000 / 64): the partial batch is kept
    assert History.load(run_dir).epochs == history.epochs
    record = history[0]
    assert record["step"] == 782 and record["val_accuracy"] is not None


@pytest.mark.parametrize("overrides", [dict(dropout=0.2), dict(momentum=0.9)], ids=["autograd", "manual"])
def test_same_seed_same_history_and_weights(make_config, tmp_path, overrides):
    first = train(make_config(epochs=2, out=str(tmp_path / "a"), **overrides))
    second = train(make_config(epochs=2, out=str(tmp_path / "b"), **overrides))
    engine = json.loads((first.run_dir / "metrics.json").read_text())["engine"]
    assert engine == ("autograd" if "dropout" in overrides else "manual")
    assert _without_seconds(first) == _without_seconds(second)
    for name, tensor in _weights(first.run_dir / "last.pt").items():
        assert torch.equal(tensor, _weights(second.run_dir / "last.pt")[name])


def test_other_seed_differs(make_config, tmp_path):
    first = train(make_config(epochs=1, out=str(tmp_path / "a")))
    second = train(make_config(epochs=1, seed=1, out=str(tmp_path / "b")))
    assert _without_seconds(first) != _without_seconds(second)


@pytest.mark.parametrize("overrides", [
    dict(optimizer="sgd", momentum=0.9, scheduler="exponential", gamma=0.7, dropout=0.1),
    dict(optimizer="adam", lr=1e-3, scheduler="onecycle"),
    dict(precision="bf16-mixed"),  # the manual engine's bfloat16 products
    dict(precision="bf16-mixed", dropout=0.1),  # autograd under autocast
])
def test_interrupted_then_resumed_run_is_bit_identical(make_config, tmp_path, overrides):
    straight = train(make_config(epochs=3, out=str(tmp_path / "straight"), **overrides))
    config = make_config(epochs=3, out=str(tmp_path / "resumed"), **overrides)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfter(2)])
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 2
    resumed = train(config, resume=True)
    assert _without_seconds(resumed) == _without_seconds(straight)
    for name, tensor in _weights(straight.run_dir / "last.pt").items():
        assert torch.equal(tensor, _weights(resumed.run_dir / "last.pt")[name]), name
    straight_metrics = json.loads((straight.run_dir / "metrics.json").read_text())
    resumed_metrics = json.loads((resumed.run_dir / "metrics.json").read_text())
    assert resumed_metrics["test_loss"] == straight_metrics["test_loss"]


def test_extending_epochs_on_resume_matches_a_longer_run(make_config, tmp_path):
    settings = dict(hidden="16,32,24", scheduler="exponential", lr=0.05)  # a schedule defined epoch by epoch
    straight = train(make_config(epochs=3, out=str(tmp_path / "straight"), **settings))
    train(make_config(epochs=2, out=str(tmp_path / "resumed"), **settings))
    resumed = train(make_config(epochs=3, out=str(tmp_path / "resumed"), **settings), resume=True)
    assert _without_seconds(resumed) == _without_seconds(straight)


def test_a_finished_onecycle_run_says_how_to_train_longer(make_config, tmp_path):
    train(make_config(epochs=1, hidden="8", scheduler="onecycle"))
    with pytest.raises(MlplabError, match="onecycle schedule cannot be extended: train a new run") as error:
        train(make_config(epochs=1, hidden="8", scheduler="onecycle"), resume=True)
    assert "--epochs N" not in str(error.value)  # that advice would only lead to the next refusal
    with pytest.raises(MlplabError, match="laid out for 1 epochs; resume with --epochs 1"):
        train(make_config(epochs=2, hidden="8", scheduler="onecycle"), resume=True)


def test_resume_with_another_model_is_refused(make_config, tmp_path):
    train(make_config(epochs=1))
    with pytest.raises(MlplabError, match="cannot resume"):
        train(make_config(epochs=2, hidden="64,64"), resume=True)
    with pytest.raises(MlplabError, match="lr"):
        train(make_config(epochs=2, lr=0.5), resume=True)


def test_resume_without_checkpoint_fails_loudly(make_config):
    with pytest.raises(MlplabError, match="no checkpoint"):
        train(make_config(epochs=1), resume=True)


def test_fresh_run_never_overwrites_an_existing_run(make_config):
    train(make_config(epochs=1))
    with pytest.raises(MlplabError, match="already holds a run"):
        train(make_config(epochs=1))


def test_best_checkpoint_is_the_best_validation_epoch(make_config):
    history = train(make_config(epochs=3, lr=0.05))
    best = history.best_epoch("val_accuracy")
    assert load_checkpoint(history.run_dir / "best.pt")["epoch"] == best["epoch"]
    model = load_model(history.run_dir / "best.pt")
    assert not model.training


def test_custom_loss_callable_is_used(make_config):
    calls = []

    def loss_fn(outputs, labels):
        calls.append(len(labels))
        return torch.nn.functional.cross_entropy(outputs, labels)

    train(make_config(epochs=1, hidden="8", batch_size=64), loss_fn=loss_fn)
    assert sum(calls[:782]) == 50_000  # ceil(50000 / 64) training batches, then evaluation


class CountBatches(Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, loss):
        self.losses.append(float(loss))


def test_divergence_is_reported_at_the_first_non_finite_loss(make_config):
    """With --lr 1e6 the loss is inf within a few steps: training stops there, not after the epoch."""
    counter = CountBatches()
    with pytest.raises(MlplabError, match=r"diverged in epoch 1: the training loss of step \d+ \(batch \d+\) is "
                                          r"(nan|inf)") as error:
        train(make_config(epochs=1, lr=1e6, momentum=0.9), callbacks=[counter])
    assert "lower --lr (now 1000000.0) or --momentum (now 0.9)" in str(error.value)
    step = int(str(error.value).split("step ")[1].split()[0])
    assert len(counter.losses) == step - 1 < 50  # every step before it was finite, none after it ran
    assert all(math.isfinite(loss) for loss in counter.losses)
    assert not (Path(make_config().train.out) / "last.pt").exists()


class BreakWeightsInEpoch(Callback):
    """Sets one weight to nan after the last batch of an epoch, whose batch losses all stayed finite."""

    def __init__(self, epoch):
        self.epoch, self.model, self.batches = epoch, None, 0

    def on_fit_start(self, state):
        self.model, self.batches = state.model, self.epoch * state.num_batches

    def on_batch_end(self, loss):
        self.batches -= 1
        if self.batches == 0:
            with torch.no_grad():
                self.model.layers[0].weight[0, 0] = float("nan")


def test_non_finite_weights_are_never_saved(make_config):
    """A weight that turns nan in the epoch's last step is caught before last.pt or best.pt is written."""
    config = make_config(epochs=2, hidden="8", batch_size=5000, scheduler="none")
    with pytest.raises(MlplabError, match="diverged in epoch 2: .*parameters layers.0.weight hold inf or nan") as error:
        train(config, callbacks=[BreakWeightsInEpoch(2)])
    assert "validation loss is nan" in str(error.value)
    assert load_checkpoint(Path(config.train.out) / "last.pt")["epoch"] == 1
    assert torch.isfinite(load_model(Path(config.train.out) / "best.pt").layers[0].weight).all()


@contextlib.contextmanager
def lock_held_elsewhere(run_dir):
    """Another process holding ``run_dir``'s lock (as `mlplab train` does while it trains), until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, pathlib; from mlplab.runs.directory import locked\n"
         "with locked(pathlib.Path(sys.argv[1])):\n    print('locked', flush=True); sys.stdin.read()", str(run_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.communicate("", timeout=30)  # the holder exits: the kernel releases the lock


def test_a_second_writer_is_refused_with_the_holders_pid(make_config, tmp_path):
    """A process holding the run directory's lock (as `mlplab train` does while it trains) keeps others out."""
    config = make_config(epochs=1, hidden="8", batch_size=1000)
    run_dir = Path(config.train.out)
    run_dir.mkdir()
    with lock_held_elsewhere(run_dir) as holder:
        for resume in (False, True):
            with pytest.raises(MlplabError, match=f"is in use: another mlplab process \\(PID {holder.pid}\\)"):
                train(config, resume=resume)
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written
    assert train(config).run_dir == run_dir


def test_deleting_the_lock_file_does_not_let_a_second_writer_in(make_config):
    """`rm RUN/.lock` under a running writer: the lock is on the folder, so a second writer is still refused."""
    config = make_config(epochs=1, hidden="8", batch_size=1000)
    run_dir = Path(config.train.out)
    run_dir.mkdir()
    with lock_held_elsewhere(run_dir):
        (run_dir / ".lock").unlink()
        with pytest.raises(MlplabError, match="is in use: another mlplab process"):
            train(config)
        assert [p.name for p in run_dir.iterdir() if p.name != ".lock"] == []  # nothing written
    assert train(config).run_dir == run_dir


def test_a_folder_with_any_run_file_is_never_overwritten(make_config):
    config = make_config(epochs=1, hidden="8", batch_size=1000)
    run_dir = Path(config.train.out)
    run_dir.mkdir()
    for name in ("best.pt", "metrics.json"):
        (run_dir / name).write_text("someone's work")
    with pytest.raises(MlplabError, match=r"already holds a run \(best.pt, metrics.json\); choose another --out"):
        train(config)
    assert (run_dir / "best.pt").read_text() == "someone's work"


def test_the_next_writer_removes_temporaries_a_killed_one_left(make_config):
    config = make_config(epochs=1, hidden="8", batch_size=1000, scheduler="none")
    run_dir = train(config).run_dir
    stray = [run_dir / ".last.pt.0a1b2c3d.tmp", run_dir / ".history.json.deadbeef.tmp"]
    for path in stray:
        path.write_bytes(b"half")
    mine = run_dir / ".notes.txt.0a1b2c3d.tmp"  # not a run file's temporary: left alone
    mine.write_bytes(b"mine")
    train(make_config(epochs=2, hidden="8", batch_size=1000, scheduler="none"), resume=True)
    assert not any(path.exists() for path in stray) and mine.exists()


class StopAtEpoch(Callback):
    """Early stopping at its simplest: asks fit for no more epochs once ``epoch`` has ended."""

    def __init__(self, epoch):
        self.epoch, self.ended = epoch, False

    def on_epoch_end(self, state, record):
        state.stop = record["epoch"] == self.epoch

    def on_fit_end(self, state):
        self.ended = True


def test_a_callback_ends_training_early_by_setting_state_stop():
    from mlplab import MLP, fit

    torch.manual_seed(0)
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
    stopper = StopAtEpoch(2)
    history = fit(MLP(4, (5,), 3), batches, epochs=10, callbacks=[stopper])
    assert history.column("epoch") == [1, 2] and stopper.ended


def test_a_folder_in_use_or_holding_a_run_is_refused_before_any_data_loads(make_config, monkeypatch):
    """The refusals come first, not after the data is loaded and the model built (seconds on a busy laptop)."""
    from mlplab.training import runner

    def no_data(*_args, **_kwargs):
        raise AssertionError("the data was loaded before the folder was checked")

    config = make_config(epochs=1, hidden="8", batch_size=1000)
    run_dir = Path(config.train.out)
    run_dir.mkdir()
    monkeypatch.setattr(runner, "prepare", no_data)
    with lock_held_elsewhere(run_dir) as holder:
        for resume in (False, True):
            with pytest.raises(MlplabError, match=f"is in use: another mlplab process \\(PID {holder.pid}\\)"):
                train(config, resume=resume)
    (run_dir / "history.json").write_text("[]")
    with pytest.raises(MlplabError, match="already holds a run \\(history.json\\); choose another --out"):
        train(config)
    (run_dir / "config.toml").write_text("")
    (run_dir / "history.json").unlink()
    with pytest.raises(MlplabError, match="has no saved epoch yet"):
        train(config, resume=True)
