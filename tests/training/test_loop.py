"""`mlplab.fit` on small synthetic tensors: any model, any batches, any loss, optimizer and scheduler."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import mlplab
from mlplab.data.loading import TensorSplit
from mlplab.errors import MlplabError
from mlplab.training import Callback, train_epoch

pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(count=256, features=12, classes=3, seed=0):
    """Samples ``seed`` of three separable clusters (the same clusters for every seed): inputs and labels."""
    centres = torch.randn(classes, features, generator=torch.Generator().manual_seed(100)) * 3
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (count,), generator=generator)
    return centres[labels] + torch.randn(count, features, generator=generator), labels


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))


def _loader(seed=0, generator=None, **kwargs):
    images, labels = _blobs(seed=seed)
    return DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True, generator=generator, **kwargs)


def _without_seconds(history):
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history.epochs]


def test_fit_trains_any_module_and_writes_nothing_without_a_run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _net()
    history = mlplab.fit(model, _loader(), val_data=_loader(seed=1), test_data=_loader(seed=2), epochs=3,
                         optimizer=functools.partial(torch.optim.Adam, lr=0.01))
    assert list(tmp_path.iterdir()) == []
    assert [record["epoch"] for record in history.epochs] == [1, 2, 3]
    assert history[-1]["train_accuracy"] > 0.9 and history[-1]["val_accuracy"] is not None
    assert history.metrics["test_accuracy"] > 0.9 and history.metrics["test_count"] == 256
    assert history.metrics["engine"] == "autograd" and history.run_dir is None
    assert history[-1]["step"] == 3 * 8  # 256 / 32 batches per epoch


@pytest.mark.parametrize("kind", ["list", "dataloader", "batches"])
def test_fit_takes_any_iterable_of_batches(kind):
    images, labels = _blobs()
    data = {"list": list(zip(images.split(32), labels.split(32))),
            "dataloader": DataLoader(TensorDataset(images, labels), batch_size=32),
            "batches": mlplab.Batches(TensorSplit(images, labels, "train"), batch_size=32, shuffle=True)}[kind]
    history = mlplab.fit(_net(), data, epochs=4, optimizer=functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9))
    assert history[-1]["train_accuracy"] > 0.9
    assert history[-1]["step"] == 4 * 8


def test_a_loss_function_and_an_nn_loss_module_both_train():
    def quadratic(outputs, labels):
        probabilities = outputs.softmax(dim=1)
        return 0.5 * (probabilities - nn.functional.one_hot(labels, 3)).square().sum(dim=1).mean()

    for loss in (quadratic, nn.CrossEntropyLoss()):
        history = mlplab.fit(_net(), _loader(), loss=loss, epochs=4,
                             optimizer=functools.partial(torch.optim.SGD, lr=0.5, momentum=0.9))
        assert history[-1]["train_accuracy"] > 0.9, loss


def test_per_step_and_per_epoch_schedulers_are_stepped_where_they_belong():
    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    onecycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3 * 8)
    mlplab.fit(model, _loader(), optimizer=optimizer, scheduler=onecycle, epochs=3)
    assert onecycle.last_epoch == 3 * 8  # once per batch: exactly the steps it was laid out for

    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = mlplab.fit(model, _loader(), optimizer=optimizer, epochs=3,
                         scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5))
    assert history.column("lr") == pytest.approx([0.1, 0.05, 0.025])

    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=10.0)
    history = mlplab.fit(model, _loader(), optimizer=optimizer, scheduler=plateau, epochs=3)
    assert history.column("lr") == pytest.approx([0.1, 0.05, 0.025])  # no 10x improvement: halved every epoch


def test_a_hand_written_loop_over_train_epoch_is_fit_exactly():
    """The schedule is stepped inside train_epoch, so a loop of train_epoch and fit cannot drift."""
    def parts():
        model = _net()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3 * 8)

    model, optimizer, scheduler = parts()
    loss = nn.CrossEntropyLoss()
    data = _loader()
    torch.manual_seed(5)
    losses = [train_epoch(model, data, loss, optimizer, scheduler)["loss"] for _ in range(3)]

    fitted, optimizer, scheduler = parts()
    torch.manual_seed(5)
    history = mlplab.fit(fitted, _loader(), loss=loss, optimizer=optimizer, scheduler=scheduler, epochs=3)
    assert history.column("train_loss") == losses
    for name, tensor in model.state_dict().items():
        assert torch.equal(fitted.state_dict()[name], tensor), name


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, state):
        self.calls.append("fit_start")

    def on_epoch_start(self, state, epoch):
        self.calls.append(f"epoch_start {epoch}")

    def on_batch_end(self, loss):
        if self.calls[-1] != "batch":
            self.calls.append("batch")

    def on_epoch_end(self, state, record):
        self.calls.append(f"epoch_end {record['epoch']}")

    def on_fit_end(self, state):
        self.calls.append("fit_end")

    def close(self):
        self.calls.append("close")


def test_callbacks_hear_every_hook_in_order_and_are_closed_when_training_fails():
    recorder = Recorder()
    mlplab.fit(_net(), _loader(), epochs=2, callbacks=[recorder])
    assert recorder.calls == ["fit_start", "epoch_start 1", "batch", "epoch_end 1", "epoch_start 2", "batch",
                              "epoch_end 2", "fit_end", "close"]

    class Fail(Callback):
        def on_epoch_end(self, state, record):
            raise RuntimeError("stop")

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="stop"):
        mlplab.fit(_net(), _loader(), epochs=2, callbacks=[Fail(), recorder])
    assert recorder.calls[-1] == "close" and "fit_end" not in recorder.calls


def test_what_is_not_a_callback_or_a_model_is_refused_with_what_to_do():
    class Probe:
        def on_epoch_end(self, record):
            pass

    with pytest.raises(TypeError, match="subclass mlplab.Callback"):
        mlplab.fit(_net(), _loader(), callbacks=[Probe()])
    with pytest.raises(TypeError, match=r"use mlplab.train\(config\)"):
        mlplab.fit(mlplab.Config(), _loader())
    with pytest.raises(TypeError, match="optimizer must be"):
        mlplab.fit(_net(), _loader(), optimizer="adam")
    with pytest.raises(MlplabError, match="epochs must be"):
        mlplab.fit(_net(), _loader(), epochs=0)
    with pytest.raises(MlplabError, match="--engine manual cannot train this run: .*Sequential"):
        mlplab.fit(_net(), _loader(), engine="manual")


def test_the_test_metrics_are_the_best_epochs_and_the_model_keeps_the_last():
    """Epoch 3 is ruined after epoch 2: the test metrics score the best epoch's weights, not the last."""
    class Ruin(Callback):
        def on_epoch_end(self, state, record):
            if record["epoch"] == 2:
                with torch.no_grad():
                    state.model[-1].weight.neg_()
                for group in state.optimizer.param_groups:
                    group["lr"] = 0.0

    model = _net()
    history = mlplab.fit(model, _loader(), val_data=_loader(seed=0), test_data=_loader(seed=0), epochs=3,
                         optimizer=functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9), callbacks=[Ruin()])
    best = history.metrics["best"]["epoch"]
    assert best < 3 and history.metrics["tested_epoch"] == best
    assert history.metrics["test_accuracy"] == history[best - 1]["val_accuracy"] > 0.9
    assert mlplab.evaluate(model, _loader(seed=0))["accuracy"] == history[2]["val_accuracy"] < 0.5


@pytest.mark.parametrize("own_generator", [False, True], ids=["global-rng", "loader-generator"])
def test_a_dataloader_run_resumes_bit_for_bit(tmp_path, own_generator):
    """The shuffled order of a DataLoader comes from the global RNG or its own generator: both are saved."""
    def run(out, epochs, resume=False):
        model = _net()
        generator = torch.Generator().manual_seed(7) if own_generator else None
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        history = mlplab.fit(model, _loader(generator=generator), val_data=_loader(seed=1), epochs=epochs,
                             optimizer=optimizer, run_dir=tmp_path / out, resume=resume,
                             scheduler=torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9))
        return history, model

    straight, straight_model = run("straight", 3)
    run("resumed", 1)
    resumed, resumed_model = run("resumed", 3, resume=True)
    assert _without_seconds(resumed) == _without_seconds(straight)
    for name, tensor in straight_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[name], tensor), name
    history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert len(history["epochs"]) == 3


def test_mlplabs_mlp_takes_the_manual_engine_by_itself():
    images, labels = _blobs(features=784)
    torch.manual_seed(0)
    model = mlplab.MLP(in_features=784, hidden=(16,), num_classes=3)
    history = mlplab.fit(model, list(zip(images.split(32), labels.split(32))), test_data=[(images, labels)],
                         epochs=2)
    assert history.metrics["engine"] == "manual" and history.metrics["test_accuracy"] > 0.9


def test_a_fresh_fit_never_overwrites_a_run_and_says_how_to_continue(tmp_path):
    mlplab.fit(_net(), _loader(), epochs=1, run_dir=tmp_path / "run")
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(MlplabError, match=r"already holds a run .*continue it with fit\(\.\.\., resume=True\)"):
        mlplab.fit(_net(), _loader(), epochs=1, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_the_progress_bar_prints_a_line_per_epoch_and_the_test_result():
    import io

    stream = io.StringIO()
    history = mlplab.fit(_net(), _loader(), val_data=_loader(seed=1), test_data=_loader(seed=2), epochs=2,
                         callbacks=[mlplab.ProgressBar(bar=False, stream=stream)])
    lines = stream.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2", "test loss " + lines[2][10:16]]
    assert f"val loss {history[1]['val_loss']:.4f}" in lines[1]
    assert f"accuracy {100 * history.metrics['test_accuracy']:.2f}%" in lines[2] and "256 images" in lines[2]


def _seeded():
    """The same batches in the same order, whatever else drew from torch's global generator."""
    return _loader(generator=torch.Generator().manual_seed(0))


class StepWatcher(Callback):
    """Sees every step's images (adding a constant to them) and counts the steps it is told about."""

    def __init__(self, shift=0.0):
        self.shift, self.steps, self.seen, self.after = shift, [], [], 0

    def on_batch_start(self, images, step):
        self.steps.append(step)
        self.seen.append(images.clone())
        return images + self.shift

    def on_step_end(self):
        self.after += 1


def test_a_callbacks_step_hooks_see_every_batch_in_order_and_may_change_the_images():
    watcher = StepWatcher()
    mlplab.fit(_net(), _loader(), epochs=2, callbacks=[watcher])
    assert watcher.steps == list(range(16)) and watcher.after == 16  # 256 samples, batch 32: 8 steps an epoch
    # Shifting the images in on_batch_start is the same run as an augment= that shifts them.
    net_a, net_b = _net(), _net()
    mlplab.fit(net_a, _seeded(), epochs=1, callbacks=[StepWatcher(shift=0.5)])
    mlplab.fit(net_b, _seeded(), epochs=1, augment=lambda images, step: images + 0.5)
    assert all(torch.equal(a, b) for a, b in zip(net_a.state_dict().values(), net_b.state_dict().values()))


def test_max_norm_and_the_average_as_callbacks_are_fits_arguments_exactly():
    nets = [_net() for _ in range(4)]
    mlplab.fit(nets[0], _seeded(), epochs=2, max_norm=0.5, average=0.9)
    average = mlplab.WeightAverage(nets[1], 0.9)
    mlplab.fit(nets[1], _seeded(), epochs=2, callbacks=[mlplab.MaxNorm(nets[1], 0.5), average])
    assert all(torch.equal(a, b) for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()))
    assert average.count == 16  # folded in after every step
    history = mlplab.fit(nets[2], _loader(), epochs=1, test_data=_loader(seed=1),
                         callbacks=[mlplab.WeightAverage(nets[2], 0.9)])
    plain = mlplab.fit(nets[3], _loader(), epochs=1, test_data=_loader(seed=1))
    assert history.metrics["test_loss"] != plain.metrics["test_loss"]  # the average, not the raw weights, is tested
    with pytest.raises(ValueError, match="one WeightAverage"):
        mlplab.fit(_net(), _loader(), average=0.9, callbacks=[mlplab.WeightAverage(nets[0], 0.9)])


@pytest.mark.parametrize("device", ["cpu", "cuda"])  # "cuda": the batched check, run here on CPU tensors
def test_the_loss_watch_names_the_first_non_finite_step(device):
    from mlplab.training.loop import LossNotFinite, LossWatch

    watch = LossWatch(torch.device(device), first_step=100, every=4)
    losses = [torch.tensor(2.0), torch.tensor(1.5), torch.tensor(float("inf")), torch.tensor(float("nan"))]
    with pytest.raises(LossNotFinite, match=r"loss of step 103 \(batch 3 of the pass\) is inf") as error:
        for loss in losses:
            watch.check(loss)
        watch.flush()
    assert (error.value.step, error.value.batch) == (103, 2)
    finite = LossWatch(torch.device(device), first_step=0, every=4)
    for value in (1.0, 0.5, 0.25):
        finite.check(torch.tensor(value))
    finite.flush()  # nothing raised: every loss was finite


def test_train_epoch_on_its_own_stops_at_the_first_non_finite_loss():
    """A notebook's own loop over train_epoch hears of the inf loss at its step, not from a nan epoch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    images, labels = torch.randn(64, 4), torch.randint(0, 3, (64,))
    batches = list(zip(images.split(8), labels.split(8)))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e3)  # the quadratic loss grows a thousandfold a step

    def quadratic(outputs, labels):
        return ((outputs - nn.functional.one_hot(labels, 3)) ** 2).sum(dim=1).mean()

    seen = []
    with pytest.raises(MlplabError, match="the training loss of step"):
        train_epoch(model, batches, quadratic, optimizer, engine="autograd", on_batch_end=[seen.append])
    assert 0 < len(seen) < len(batches)
    assert all(torch.isfinite(loss) for loss in seen)
