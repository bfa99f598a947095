"""Label smoothing, early stopping, max-norm and the weight average: each does what it says, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from mlplab.config import ModelConfig
from mlplab.engines.manual import ManualStep
from mlplab.errors import MlplabError
from mlplab.losses import build_loss
from mlplab.models import build_model
from helpers import StopAfter
from mlplab.training import History, load_checkpoint, train
from mlplab.training.callbacks import EarlyStopping, FitState
from mlplab.training.loop import _update_best
from mlplab.training.weights import MaxNorm, WeightAverage

SMALL = dict(hidden="32", epochs=3, val_size=50_000, batch_size=128)  # 10,000 training images: 79 steps an epoch


def _without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history.epochs]


# Label smoothing


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_smoothed_losses_equal_pytorchs_cross_entropy(smoothing):
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 10, dtype=torch.float64), torch.randint(0, 10, (8,))
    want = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    assert torch.allclose(build_loss("cross_entropy", "logits", label_smoothing=smoothing)(logits, labels), want)
    log_p = F.log_softmax(logits, dim=1)
    assert torch.allclose(build_loss("nll", "log_softmax", label_smoothing=smoothing)(log_p, labels), want)
    # by hand: the target q = (1 - e) e_y + e / C
    q = torch.full_like(log_p, smoothing / 10).scatter_add_(1, labels[:, None], torch.full((8, 1), 1 - smoothing,
                                                                                              dtype=log_p.dtype))
    assert torch.allclose(-(q * log_p).sum(dim=1).mean(), want)


@pytest.mark.parametrize("loss,output", [("cross_entropy", "logits"), ("nll", "log_softmax")])
def test_the_manual_engine_follows_autograd_with_label_smoothing_in_float64(loss, output):
    torch.manual_seed(1)
    model = build_model(ModelConfig(hidden=(16, 12), output=output), in_features=20, num_classes=10).double()
    loss_fn = build_loss(loss, output, label_smoothing=0.2)
    images, labels = torch.randn(32, 20, dtype=torch.float64), torch.randint(0, 10, (32,))
    want_loss = loss_fn(model(images), labels)
    want_loss.backward()
    want = [p.grad.clone() for p in model.parameters()]
    step = ManualStep(model, loss_fn, torch.optim.SGD(model.parameters(), lr=0.0))
    _, got_loss = step(images, labels)
    assert abs(float(got_loss) - float(want_loss.detach())) < 1e-12
    for parameter, grad in zip(model.parameters(), want):
        assert (parameter.grad - grad).abs().max() < 1e-12


def test_label_smoothing_is_refused_where_it_means_nothing():
    with pytest.raises(MlplabError, match="label smoothing applies to the cross_entropy and nll losses, not mse"):
        build_loss("mse", label_smoothing=0.1)
    from mlplab.engines import ENGINE_TABLE

    model = build_model(ModelConfig(hidden=(8,)), in_features=784, num_classes=10)
    reason = ENGINE_TABLE["scratch"].unsupported(model, build_loss("cross_entropy", label_smoothing=0.1), "sgd")
    assert "no label smoothing" in reason


# Early stopping


def _scripted(accuracies, patience, epochs=None):
    """Feed a scripted validation-accuracy history through fit's best-epoch rule and EarlyStopping."""
    state = FitState(model=torch.nn.Linear(1, 1), optimizer=None, schedule=None, loss=None, engine="autograd",
                     epochs=epochs or len(accuracies), train_data=[], device=torch.device("cpu"))
    stopping = EarlyStopping(patience)
    for epoch, accuracy in enumerate(accuracies, start=1):
        state.epoch = epoch
        record = {"epoch": epoch, "val_accuracy": accuracy, "train_accuracy": 0.0}
        _update_best(state, record)
        stopping.on_epoch_end(state, record)
        if state.stop:
            return epoch, state.stop_reason
    return None, None


def test_early_stopping_stops_at_the_right_epoch_on_a_scripted_history():
    history = [0.50, 0.70, 0.69, 0.70, 0.72, 0.71, 0.70, 0.60]
    # patience 2: epoch 4 ties epoch 2's 0.70, which is no improvement: two epochs behind
    assert _scripted(history, 2) == (4, "early stopping: no better val accuracy than epoch 2's 0.7000 in 2 epochs")
    assert _scripted(history, 3, epochs=10)[0] == 8  # best at 5; 6, 7, 8 behind
    assert _scripted(history, 3)[0] is None  # ... but 8 is the last epoch: training ends anyway, not "stopped"
    assert _scripted(history, 4, epochs=10)[0] is None  # never 4 behind
    assert _scripted(history[:3], 1, epochs=3)[0] is None  # the last epoch ends training anyway: no "stop"
    with pytest.raises(ValueError, match="patience must be a whole number >= 1"):
        EarlyStopping(0)


def test_an_early_stopped_run_records_why_and_a_killed_one_resumes_to_the_same_end(make_config, tmp_path):
    # lr 2 with plain SGD oscillates: validation accuracy stops improving within a few epochs
    settings = dict(SMALL, epochs=12, patience=1, lr=2.0, momentum=0.0, nesterov=False, scheduler="none")
    straight = train(make_config(out=str(tmp_path / "straight"), **settings))
    stopped = straight.stopped
    assert stopped is not None and stopped["epoch"] < 12 and len(straight) == stopped["epoch"]
    best = max(range(len(straight)), key=lambda i: (straight[i]["val_accuracy"], -i)) + 1
    assert stopped["epoch"] == best + 1  # patience 1: the first epoch that is not a new best
    assert History.load(straight.run_dir).stopped == stopped
    assert json.loads((straight.run_dir / "metrics.json").read_text())["tested_epoch"] == best
    with pytest.raises(MlplabError, match=f"already finished: it stopped after epoch {stopped['epoch']} "
                                          r"\(early stopping: .*\); train a new run with another --out"):
        train(make_config(out=str(tmp_path / "straight"), **settings), resume=True)
    # killed after the stopping epoch was saved but before the run was finished: the resume stops at once
    config = make_config(out=str(tmp_path / "killed"), **settings)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfter(stopped["epoch"])])
    resumed = train(config, resume=True)
    assert _without_seconds(resumed) == _without_seconds(straight) and resumed.stopped == stopped
    assert resumed.metrics["test_accuracy"] == straight.metrics["test_accuracy"]


# Max-norm


def test_max_norm_caps_every_units_incoming_weights_and_leaves_short_rows_alone():
    torch.manual_seed(2)
    model = build_model(ModelConfig(hidden=(6,)), in_features=5, num_classes=3)
    with torch.no_grad():
        model.linears()[0].weight.mul_(torch.tensor([10.0, 0.1, 10.0, 0.1, 1.0, 1.0])[:, None])
    before = [layer.weight.detach().clone() for layer in model.linears()]
    MaxNorm(model, 0.5)()
    for old, layer in zip(before, model.linears()):
        norms = layer.weight.norm(dim=1)
        assert bool((norms <= 0.5 * (1 + 1e-6)).all())
        short = old.norm(dim=1) <= 0.5
        assert torch.equal(layer.weight[short], old[short])  # untouched, bit for bit
        long = ~short
        assert torch.allclose(layer.weight[long], old[long] * (0.5 / old[long].norm(dim=1, keepdim=True)), rtol=1e-5)


def test_a_max_norm_run_keeps_its_weights_within_the_norm(make_config):
    history = train(make_config(**dict(SMALL, epochs=1), max_norm=1.5))
    weights = load_checkpoint(history.run_dir / "last.pt")["model"]
    for name, tensor in weights.items():
        if name.endswith("weight"):
            assert float(tensor.norm(dim=1).max()) <= 1.5 * (1 + 1e-6), name
    assert any(float(t.norm(dim=1).max()) > 1.49 for n, t in weights.items() if n.endswith("weight"))  # it bit
    assert history[-1]["val_accuracy"] > 0.85


# The weight average


def test_the_weight_average_is_the_exponential_moving_average_of_the_steps():
    torch.manual_seed(3)
    model = torch.nn.Linear(4, 2)
    average = WeightAverage(model, 0.9)
    want = None
    for _ in range(5):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        average()
        now = [p.detach().clone() for p in model.parameters()]
        want = now if want is None else [0.9 * a + 0.1 * w for a, w in zip(want, now)]
    assert average.count == 5
    for got, expected in zip(average.module.parameters(), want):
        assert torch.allclose(got, expected, atol=1e-6)


def test_an_averaged_run_saves_the_average_and_resumes_bit_for_bit(make_config, tmp_path):
    settings = dict(SMALL, ema=0.99, optimizer="adam", lr=3e-3, scheduler="none")
    straight = train(make_config(out=str(tmp_path / "straight"), **settings))
    last = load_checkpoint(straight.run_dir / "last.pt")
    assert last["average"] == {"decay": 0.99, "count": 3 * 79}
    assert any(not torch.equal(last["model"][k], last["training_model"][k]) for k in last["model"])
    # the history's validation accuracy is the averaged model's
    from mlplab.runs.reader import open_run

    run = open_run(straight.run_dir)
    assert run.metrics["test_accuracy"] == straight.metrics["test_accuracy"] > 0.9
    config = make_config(out=str(tmp_path / "resumed"), **settings)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfter(1)])
    resumed = train(config, resume=True)
    assert _without_seconds(resumed) == _without_seconds(straight)
    again = load_checkpoint(resumed.run_dir / "last.pt")
    for key in ("model", "training_model"):
        for name, tensor in last[key].items():
            assert torch.equal(tensor, again[key][name]), (key, name)


# Augmentation in the loop


def test_an_augmented_run_learns_and_resumes_bit_for_bit(make_config, tmp_path):
    settings = dict(SMALL, augment="both", label_smoothing=0.1, max_norm=3.0)
    straight = train(make_config(out=str(tmp_path / "straight"), **settings))
    plain = train(make_config(out=str(tmp_path / "plain"), **dict(settings, augment="none")))
    assert straight[0]["train_loss"] != plain[0]["train_loss"]  # the batches were distorted
    assert straight[-1]["val_accuracy"] > 0.9
    config = make_config(out=str(tmp_path / "resumed"), **settings)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfter(2)])
    resumed = train(config, resume=True)
    assert _without_seconds(resumed) == _without_seconds(straight)
    for name, tensor in load_checkpoint(straight.run_dir / "last.pt")["model"].items():
        assert torch.equal(tensor, load_checkpoint(resumed.run_dir / "last.pt")["model"][name]), name
