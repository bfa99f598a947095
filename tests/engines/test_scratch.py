"""`--engine scratch`: NumPy training inside mlplab's loop, against the torch engines on real MNIST."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from mlplab import scratch
from mlplab.cli.main import main
from mlplab.config import DataConfig
from mlplab.data import Batches, load_data
from mlplab.data.loading import TensorSplit
from mlplab.errors import MlplabError
from mlplab.losses import build_loss
from mlplab.models import MLP
from mlplab.optim import build_optimizer, build_schedule
from mlplab.training import train, load_checkpoint, train_epoch
from mlplab.runs.reader import load_model
from mlplab.engines import AutogradStep, ScratchStep

from helpers import plain_optim

pytestmark = pytest.mark.usefixtures("one_thread")


def _relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.fixture(scope="module")
def float64_train_split(mnist_dir):
    """MNIST's 50k training split in float64, as the torch engine would see it."""
    data = load_data(DataConfig(data_dir=str(mnist_dir), download=False))
    return TensorSplit(data.train.images.double(), data.train.labels, "train")


def test_one_epoch_of_sgd_ends_at_the_torch_engines_weights(float64_train_split):
    """The lab net, the same start and the same 782 batches: scratch and autograd agree to 1e-8 (float64)."""
    torch.manual_seed(0)
    model = MLP(hidden=(16, 32, 24), output="log_softmax").double()
    network = scratch.from_torch(model)  # a copy of the starting weights
    config = plain_optim(optimizer="sgd", lr=0.01, momentum=0.9)
    batches = Batches(float64_train_split, 64, shuffle=True, seed=0)

    loss_fn = scratch.NLL()
    optimizer = scratch.SGD(network.parameters(), lr=0.01, momentum=0.9)
    batches.set_epoch(1)
    scratch_losses, sizes = [], []
    for x, y in batches:
        scratch_losses.append(scratch.train_step(network, loss_fn, optimizer, x.numpy(), y.numpy())[1])
        sizes.append(len(y))

    batches.set_epoch(1)
    result = train_epoch(model, batches, build_loss("nll", "log_softmax"),
                         build_optimizer(model.parameters(), config), engine="autograd")
    assert len(scratch_losses) == 782 and scratch_losses[-1] < scratch_losses[0] / 5  # it learned
    assert np.average(scratch_losses, weights=sizes) == pytest.approx(result["loss"], rel=1e-10)
    for (name, tensor), weights in zip(model.state_dict().items(), network.state_dict().values()):
        assert _relative_error(weights, tensor) <= 1e-8, name


def test_the_scratch_step_trains_the_model_as_autograd_does(float64_train_split):
    """Through train_epoch: the shared weights and momentum buffers end where autograd's do (float64)."""
    results = {}
    for engine in ("scratch", "autograd"):
        torch.manual_seed(0)
        model = MLP(hidden=(16, 32, 24)).double()
        optimizer = build_optimizer(model.parameters(), plain_optim(lr=0.01, momentum=0.9, nesterov=True))
        batches = Batches(float64_train_split, 256, shuffle=True, seed=1)
        record = train_epoch(model, batches, build_loss("cross_entropy"), optimizer, engine=engine)
        buffers = [optimizer.state[p]["momentum_buffer"] for p in model.parameters()]
        results[engine] = record, model.state_dict(), buffers
    (record, weights, buffers), (want_record, want_weights, want_buffers) = results["scratch"], results["autograd"]
    assert record["loss"] == pytest.approx(want_record["loss"], rel=1e-10)
    assert record["accuracy"] == want_record["accuracy"] > 0.5  # 196 steps of lr 0.01 from scratch
    for name in weights:
        assert _relative_error(weights[name], want_weights[name]) <= 1e-8, name
    for got, want in zip(buffers, want_buffers):
        assert _relative_error(got, want) <= 1e-8


@pytest.mark.filterwarnings("error")  # no "lr_scheduler.step() before optimizer.step()" warning
@pytest.mark.parametrize("optimizer_name", ["adam", "adamw"])
def test_scratch_step_follows_adam_and_the_learning_rate_schedule(optimizer_name):
    """Adam's moments live in the torch optimizer's state; a OneCycle schedule's lr is read every step."""
    models = {}
    for step_kind in (ScratchStep, AutogradStep):
        torch.manual_seed(0)
        model = MLP(hidden=(12,)).double()
        config = plain_optim(optimizer=optimizer_name, lr=0.01, weight_decay=0.01, scheduler="onecycle")
        optimizer = build_optimizer(model.parameters(), config)
        schedule = build_schedule(optimizer, config, epochs=1, steps_per_epoch=30)
        step = step_kind(model, build_loss("cross_entropy"), optimizer)
        generator = torch.Generator().manual_seed(0)
        for _ in range(30):
            step(torch.randn(16, 784, generator=generator, dtype=torch.float64), torch.randint(0, 10, (16,), generator=generator))
            schedule.step_batch()
        models[step_kind] = model, optimizer
    (model, optimizer), (want_model, want_optimizer) = models[ScratchStep], models[AutogradStep]
    for got, want in zip(model.parameters(), want_model.parameters()):
        assert _relative_error(got.detach(), want.detach()) <= 1e-10
        state, want_state = optimizer.state[got], want_optimizer.state[want]
        assert float(state["step"]) == float(want_state["step"]) == 30
        assert _relative_error(state["exp_avg_sq"], want_state["exp_avg_sq"]) <= 1e-10


def test_fit_with_the_scratch_engine_writes_a_run_that_eval_and_resume_read(make_config, tmp_path):
    config = make_config("tutorial", engine="scratch", epochs=2, hidden=(32,), out=str(tmp_path / "straight"))
    history = train(config)
    metrics = json.loads((history.run_dir / "metrics.json").read_text())
    assert metrics["engine"] == "scratch" and metrics["device"] == "cpu" and metrics["test_accuracy"] > 0.9
    assert [record["epoch"] for record in history] == [1, 2]
    checkpoint = load_checkpoint(history.run_dir / "last.pt")
    assert set(checkpoint["optimizer"]["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    # The checkpoint's model is the trained network: mlplab eval reproduces the test accuracy.
    model = load_model(history.run_dir / "last.pt")
    assert main(["eval", str(history.run_dir / "last.pt"), "--data-dir", config.data.data_dir]) == 0
    with torch.no_grad():
        network = scratch.from_torch(model)
    assert network.widths == (784, 32, 10)
    # One epoch, then a resume to two: the same weights and Adam state bit for bit.
    first = copy.deepcopy(config)
    first.train.epochs, first.train.out = 1, str(tmp_path / "resumed")
    train(first)
    first.train.epochs = 2
    resumed = train(first, resume=True)
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in history]
    resumed_state = load_checkpoint(resumed.run_dir / "last.pt")
    for name, tensor in checkpoint["model"].items():
        assert torch.equal(resumed_state["model"][name], tensor), name
    assert torch.equal(resumed_state["optimizer"]["state"][0]["exp_avg"], checkpoint["optimizer"]["state"][0]["exp_avg"])


@pytest.mark.parametrize("overrides,message", [
    (dict(dropout=0.2), "no dropout"),
    (dict(activation="gelu"), "no activation 'gelu'"),
    (dict(optimizer="rmsprop"), "implements sgd, adam, adamw, not rmsprop"),
    (dict(device="cuda"), "computes in NumPy on the CPU"),
])
def test_what_the_scratch_engine_cannot_do_is_a_one_line_error(make_config, capsys, overrides, message):
    config = make_config("lab")
    with pytest.raises(MlplabError, match=message) as error:  # the device is refused by the config, the rest here
        train(make_config("lab", engine="scratch", **overrides))
    assert "\n" not in str(error.value)
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in overrides.items()]
    assert main(["train", "--preset", "lab", "--engine", "scratch", *flags, "--data-dir", config.data.data_dir,
                 "--out", config.train.out]) == 2
    assert message in capsys.readouterr().err


def test_a_custom_loss_needs_autograd(make_config):
    with pytest.raises(MlplabError, match="custom loss"):
        train(make_config("lab", engine="scratch"), loss_fn=lambda outputs, labels: outputs.sum())


@pytest.mark.learning
@pytest.mark.parametrize("preset", ["lab", "tutorial"])
def test_scratch_engine_reaches_the_torch_engines_accuracy(make_config, tmp_path, preset):
    """Within half a point of the torch engine's test accuracy, trained for the preset's epochs."""
    accuracy = {}
    for engine in ("scratch", "auto"):
        history = train(make_config(preset, engine=engine, out=str(tmp_path / engine)))
        accuracy[engine] = json.loads((history.run_dir / "metrics.json").read_text())["test_accuracy"]
    assert accuracy["scratch"] >= {"lab": 0.93, "tutorial": 0.96}[preset]
    assert abs(accuracy["scratch"] - accuracy["auto"]) <= 0.005, accuracy


def test_gradcheck_command_reports_every_parameter(capsys):
    assert main(["gradcheck", "--preset", "lab", "--entries", "50"]) == 0
    out = capsys.readouterr().out
    assert "784-16-32-24-10 relu MLP -> log_softmax" in out and "loss nll" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("layers.")]
    assert [row[0] for row in rows] == [f"layers.{i}.{kind}" for i in range(4) for kind in ("weight", "bias")]
    assert all(float(row[2]) <= 1e-10 and float(row[3]) <= 1e-6 for row in rows)
    assert out.rstrip().endswith("and the finite differences")


def test_gradcheck_command_fails_on_a_wrong_backward_rule(monkeypatch, capsys):
    """A ReLU whose backward lets every gradient through (the indicator forgotten) is caught both ways."""
    monkeypatch.setattr(scratch.ReLU, "backward", lambda self, grad_out: grad_out)
    assert main(["gradcheck", "--hidden", "6,5", "--entries", "0"]) == 1
    out = capsys.readouterr().out
    assert "layers.0.weight" in out and "FAILED" in out.splitlines()[-1]
    assert main(["gradcheck", "--activation", "gelu"]) == 2
    assert "no activation 'gelu'" in capsys.readouterr().err


def test_train_command_with_the_scratch_engine_on_logistic_regression(mnist_dir, tmp_path, capsys):
    """A network of one Linear layer: the first layer is also the last, and its dx is skipped."""
    run_dir = tmp_path / "logistic"
    assert main(["train", "--preset", "logistic", "--engine", "scratch", "--epochs", "1", "--data-dir", str(mnist_dir),
                 "--out", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "model: 784-10 logistic regression, output logits" in out and "engine scratch" in out
    assert json.loads((run_dir / "metrics.json").read_text())["test_accuracy"] > 0.88
