"""`mlplab.Steering`: a new learning rate or momentum applied at a step and recorded, replayed bit for bit,
kept by a resume; pause holds training, stop ends it after the epoch, abort leaves a resumable run."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import mlplab
from mlplab.errors import MlplabError
from mlplab.training.steering import Steering, TrainingAborted


class At(mlplab.Callback):
    """Calls ``action()`` before the step that follows ``step`` steps (on the training thread, as a
    server's request would land between two steps)."""

    def __init__(self, step: int, action) -> None:
        self.step, self.action = step, action

    def on_batch_start(self, images, step):
        if step == self.step:
            self.action()
        return images


class Rates(mlplab.Callback):
    """Every step's learning rate and momentum, as the optimizer uses them."""

    def __init__(self) -> None:
        self.lrs, self.momenta = [], []

    def on_fit_start(self, state):
        self.optimizer = state.optimizer

    def on_step_end(self):
        group = self.optimizer.param_groups[0]
        self.lrs.append(group["lr"])
        self.momenta.append(group.get("momentum"))


def small_run(make_config, steering=None, *extra, scheduler="none", optimizer="sgd", epochs=2, resume=False,
              out=None, **fields):
    """Train a 784-32-10 net on a 6,000-image slice of MNIST (the training set's first images) with
    the callbacks given; returns the history and the setup."""
    from mlplab.training.runner import prepare, train_prepared

    config = make_config(hidden=(32,), epochs=epochs, batch_size=100, scheduler=scheduler, optimizer=optimizer,
                         lr=0.05, momentum=0.9 if optimizer == "sgd" else 0.0, val_size=54_000, **({"out": str(out)} if out else {}), **fields)
    setup = prepare(config)
    callbacks = [c for c in (*extra, steering) if c is not None]  # an At first: its request lands before the step
    return train_prepared(setup, callbacks=callbacks, resume=resume), setup


def weights(model):
    return [tensor.clone() for tensor in model.state_dict().values()]


def same(first, second):
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_new_rate_applies_at_its_step_is_recorded_and_replays_bit_for_bit(make_config, tmp_path):
    steering = Steering()
    rates = Rates()
    history, setup = small_run(make_config, steering, At(37, lambda: steering.set(lr=0.01)), rates,
                               out=tmp_path / "steered")
    assert history.changes == [{"step": 37, "epoch": 1, "lr": 0.01}]
    assert rates.lrs[:37] == [0.05] * 37 and set(rates.lrs[37:]) == {0.01}  # from the 38th step on
    assert mlplab.History.load(tmp_path / "steered").changes == history.changes  # in history.json
    # The second epoch's record starts at the new rate: the run can be explained from its files.
    assert [record["lr"] for record in history.epochs] == [0.05, 0.01]
    steered = weights(setup.model)

    replayed_history, replayed = small_run(make_config, Steering(replay=history.changes), out=tmp_path / "replay")
    assert replayed_history.changes == history.changes
    assert same(weights(replayed.model), steered)
    _, unsteered = small_run(make_config, out=tmp_path / "plain")
    assert not same(weights(unsteered.model), steered)  # the change did change the run


def test_a_new_rate_scales_a_one_cycle_schedule_from_then_on(make_config, tmp_path):
    plain = Rates()
    small_run(make_config, None, plain, scheduler="onecycle", out=tmp_path / "plain")
    steering, steered = Steering(), Rates()
    # Before the 51st step, whose rate would have been plain.lrs[50]: a quarter of it.
    history, _ = small_run(make_config, steering, At(50, lambda: steering.set(lr=plain.lrs[50] / 4)), steered,
                           scheduler="onecycle", out=tmp_path / "steered")
    assert steered.lrs[:50] == plain.lrs[:50]
    assert steered.lrs[50] == plain.lrs[50] / 4  # exactly the rate asked for
    # Every later rate is the schedule's own, a quarter as high: the cycle still anneals to its floor.
    assert steered.lrs[51:] == pytest.approx([rate / 4 for rate in plain.lrs[51:]], rel=1e-9)
    assert history.changes[0]["step"] == 50


def test_momentum_is_changed_for_sgd_and_refused_for_adam(make_config, tmp_path):
    steering, rates = Steering(), Rates()
    history, _ = small_run(make_config, steering, At(10, lambda: steering.set(momentum=0.5)), rates, epochs=1,
                           out=tmp_path / "sgd")
    assert rates.momenta[:10] == [0.9] * 10 and set(rates.momenta[10:]) == {0.5}
    assert history.changes == [{"step": 10, "epoch": 1, "momentum": 0.5}]

    adam, errors = Steering(), []

    def ask():
        try:
            adam.set(momentum=0.5)
        except MlplabError as error:
            errors.append(str(error))

    history, _ = small_run(make_config, adam, At(5, ask), epochs=1, optimizer="adam", out=tmp_path / "adam")
    assert errors == ["Adam has no momentum setting to change; change its learning rate instead"]
    assert history.changes == []


@pytest.mark.parametrize("settings, message", [
    ({"lr": 0.0}, "lr must be a number > 0; got 0.0"),
    ({"lr": -1}, "lr must be a number > 0; got -1"),
    ({"lr": float("nan")}, "lr must be a number > 0; got nan"),
    ({"lr": "0.1"}, "lr must be a number > 0; got '0.1'"),
    ({"momentum": 1.0}, "momentum must be a number in [0, 1); got 1.0"),
    ({"momentum": -0.1}, "momentum must be a number in [0, 1); got -0.1"),
    ({}, "give a new lr or momentum"),
])
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(MlplabError) as raised:
        Steering().set(**settings)
    assert str(raised.value) == message


def test_a_replay_refuses_a_change_of_an_unknown_setting():
    with pytest.raises(MlplabError, match="unknown setting weight_decay"):
        Steering(replay=[{"step": 3, "weight_decay": 0.1}])


def test_pause_holds_training_until_resume_and_stop_ends_it_after_the_epoch(make_config, tmp_path):
    holds = []  # (holding, steps asked for by then), as on_hold hears them on the training thread
    steps = []
    steering, rates = Steering(on_hold=lambda holding: holds.append((holding, len(steps)))), Rates()

    class Count(mlplab.Callback):
        def on_batch_start(self, images, step):
            steps.append(step)
            return images

    thread = threading.Thread(target=small_run, args=(make_config, steering, Count(), rates),
                              kwargs={"epochs": 4, "out": tmp_path / "run"})
    steering.pause()  # held before its first step
    thread.start()
    deadline = time.monotonic() + 60
    while not steps and time.monotonic() < deadline:  # the data loads, then the first step is asked for
        time.sleep(0.005)
    time.sleep(0.3)
    assert steps == [0] and thread.is_alive()  # and held
    assert holds == [(True, 1)]  # told once it held, before its first step
    steering.resume()
    deadline = time.monotonic() + 60
    while len(steps) < 70 and time.monotonic() < deadline:
        time.sleep(0.005)
    steering.stop("stopped by the test")
    thread.join(60)
    assert not thread.is_alive()
    history = mlplab.open_run(tmp_path / "run").history
    stopped_epoch = history.stopped["epoch"]
    assert history.stopped["reason"] == "stopped by the test" and stopped_epoch < 4
    assert len(history.epochs) == stopped_epoch  # the epoch in progress was finished and saved
    assert (tmp_path / "run" / "metrics.json").is_file()  # and the best epoch was tested
    assert steering.paused_seconds >= 0.3
    assert holds == [(True, 1), (False, 1)]


def test_abort_leaves_a_run_that_resumes_bit_for_bit(make_config, tmp_path):
    whole, whole_setup = small_run(make_config, Steering(replay=[{"step": 20, "lr": 0.02}]), epochs=3,
                                   out=tmp_path / "whole")
    steering = Steering()
    second_epoch = 60 + 15  # 60 steps an epoch: the middle of the second
    with pytest.raises(TrainingAborted, match="the test stopped"):
        small_run(make_config, steering, At(20, lambda: steering.set(lr=0.02)),
                  At(second_epoch, lambda: steering.abort("the test stopped")), epochs=3, out=tmp_path / "cut")
    kept = mlplab.open_run(tmp_path / "cut")
    assert len(kept.history.epochs) == 1 and kept.history.changes == [{"step": 20, "epoch": 1, "lr": 0.02}]
    resumed, resumed_setup = small_run(make_config, epochs=3, resume=True, out=tmp_path / "cut")
    assert resumed.changes == whole.changes
    assert [record["lr"] for record in resumed.epochs] == [0.05, 0.02, 0.02]
    assert same(weights(resumed_setup.model), weights(whole_setup.model))
    assert resumed.metrics["test_accuracy"] == whole.metrics["test_accuracy"]


def test_the_report_explains_what_was_changed_and_why_it_stopped(make_config, tmp_path):
    from mlplab.plots.report import write_report

    steering = Steering()
    small_run(make_config, steering, At(12, lambda: steering.set(lr=0.01, momentum=0.5)),
              At(70, lambda: steering.stop("stopped from the studio")), epochs=3, out=tmp_path / "run")
    page = write_report(tmp_path / "run").read_text()
    assert "<h2>Changed while training</h2>" in page
    assert "<tr><td>12</td><td>1</td><td class=k>lr</td><td>0.01</td></tr>" in page
    assert "<tr><td>12</td><td>1</td><td class=k>momentum</td><td>0.5</td></tr>" in page
    assert "<p>Stopped after epoch 2: stopped from the studio.</p>" in page
    plain = tmp_path / "plain"
    small_run(make_config, epochs=1, out=plain)
    assert "Changed while training" not in write_report(plain).read_text()


def test_a_run_without_test_data_stopped_early_says_so_in_its_files(tmp_path):
    """fit with a run directory but no test data: no metrics to save at the end, but why it stopped is saved."""
    torch.manual_seed(0)
    images, labels = torch.rand(256, 1, 28, 28), torch.randint(0, 10, (256,))
    batches = mlplab.Batches(mlplab.data.loading.TensorSplit(images, labels, "train"), batch_size=32)
    steering = Steering()
    mlplab.fit(mlplab.MLP(hidden=(8,)), batches, epochs=4, run_dir=tmp_path / "run",
               callbacks=[At(12, lambda: steering.stop("stopped by hand")), steering])
    saved = mlplab.History.load(tmp_path / "run")
    assert saved.stopped == {"epoch": 2, "reason": "stopped by hand"} and len(saved) == 2


def test_a_resume_from_the_best_epoch_still_tests_it_when_no_later_epoch_beats_it(make_config, tmp_path):
    """Resumed from the epoch that stays the best (later epochs only tie it), the run tests that epoch's
    weights, as the uninterrupted run does, not the last epoch's."""
    tiny = [{"step": 60, "lr": 1e-12}]  # from the second epoch on the weights barely move: accuracy ties
    whole, _ = small_run(make_config, Steering(replay=tiny), epochs=3, out=tmp_path / "whole")
    assert whole.metrics["tested_epoch"] == 1 and whole.metrics["best"]["epoch"] == 1
    from helpers import StopAfter

    with pytest.raises(KeyboardInterrupt):
        small_run(make_config, Steering(replay=tiny), StopAfter(1), epochs=3, out=tmp_path / "cut")
    # The change had not happened when it stopped: the resume is told it, as the whole run was.
    resumed, _ = small_run(make_config, Steering(replay=tiny), epochs=3, resume=True, out=tmp_path / "cut")
    assert [record["val_accuracy"] for record in resumed.epochs] == [record["val_accuracy"] for record in whole.epochs]
    assert resumed.metrics["tested_epoch"] == 1
    assert resumed.metrics["test_accuracy"] == whole.metrics["test_accuracy"]
