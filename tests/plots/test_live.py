"""`mlplab.LivePlot`: the curves it draws, when it redraws in a notebook, and the backend it leaves alone."""

from __future__ import annotations

import sys

import matplotlib
import pytest
import torch
from torch import nn

import mlplab
from mlplab.data.loading import TensorSplit
from mlplab import session
from mlplab.errors import MlplabError
from mlplab.plots import live as live_module

pytestmark = pytest.mark.usefixtures("one_thread")


def _batches():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (96,), generator=generator)
    images = torch.randn(3, 12, generator=generator)[labels] * 3 + torch.randn(96, 12, generator=generator)
    return mlplab.Batches(TensorSplit(images, labels, "train"), batch_size=32, shuffle=True, seed=0)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))


class FakeDisplay:
    """Stands in for IPython.display.display: records what is shown and each in-place update."""

    def __init__(self):
        self.shown, self.updates = [], []

    def __call__(self, image, display_id=None):
        assert display_id is True, "a live plot asks for a handle it can update"
        self.shown.append(image)
        return self

    def update(self, image):
        self.updates.append(image)


def test_as_a_callback_it_plots_what_fit_records(tmp_path):
    live = mlplab.LivePlot(title="blobs", show=False)
    history = mlplab.fit(_net(), _batches(), val_data=_batches(), epochs=3, callbacks=[live], progress=False)
    assert live.epochs == 3
    assert [record["epoch"] for record in live.records] == [1, 2, 3]
    for drawn, record in zip(live.records, history.epochs):
        assert drawn["train_loss"] == pytest.approx(record["train_loss"])
        assert drawn["val_accuracy"] == pytest.approx(record["val_accuracy"])
    assert [len(losses) for losses in live.batch_losses] == [3, 3, 3, 0]  # 96 images in batches of 32
    loss_axis, accuracy_axis = live.figure.axes
    assert (loss_axis.get_title(), accuracy_axis.get_title()) == ("Loss", "Accuracy")
    assert loss_axis.get_xlabel() == accuracy_axis.get_xlabel() == "epoch"
    assert accuracy_axis.get_ylabel() == "accuracy (%)" and "loss" in loss_axis.get_ylabel()
    validation = next(line for line in accuracy_axis.get_lines() if line.get_label() == "validation")
    assert list(validation.get_ydata()) == pytest.approx([100 * r["val_accuracy"] for r in history.epochs])
    assert "blobs: epoch 3/3" in live.figure.texts[0].get_text()
    assert live.save(tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_in_a_notebook_one_picture_is_replaced_after_every_epoch(monkeypatch):
    display = FakeDisplay()
    monkeypatch.setattr("IPython.display.display", display)
    live = mlplab.LivePlot(show=True, interval=0)  # interval 0: redraw only at epoch ends
    mlplab.fit(_net(), _batches(), epochs=2, callbacks=[live], progress=False)
    assert len(display.shown) == 1 and len(display.updates) == 1
    assert all(image.data.startswith(b"\x89PNG") for image in display.shown + display.updates)


def test_a_long_epoch_redraws_at_most_every_interval(monkeypatch):
    display = FakeDisplay()
    monkeypatch.setattr("IPython.display.display", display)
    clock = iter(range(1000))
    monkeypatch.setattr(live_module.time, "monotonic", lambda: float(next(clock)))  # one second a call
    live = mlplab.LivePlot(show=True, interval=2.5)
    for step in range(6):
        live.batch(torch.tensor(1.0 / (step + 1)))
    assert 1 <= len(display.shown) + len(display.updates) <= 3
    assert live.batch_losses[0] == pytest.approx([1 / (step + 1) for step in range(6)])


def test_slow_redraws_never_take_more_than_a_twentieth_of_the_time(monkeypatch):
    display = FakeDisplay()
    monkeypatch.setattr("IPython.display.display", display)
    now = [0.0]
    monkeypatch.setattr(live_module.time, "monotonic", lambda: now[0])

    def slow_png(self):
        now[0] += 0.5  # a redraw that takes half a second
        return b"\x89PNG"

    monkeypatch.setattr(live_module.LivePlot, "_png", slow_png)
    live = mlplab.LivePlot(show=True, interval=1.0)
    for _ in range(400):  # 400 batches of 0.1 s each
        now[0] += 0.1
        live.batch(0.5)
    draws = len(display.shown) + len(display.updates)
    assert draws >= 2, "a long epoch is still redrawn"
    assert draws * 0.5 <= 0.05 * now[0] + 0.5, "drawing took more than 5% of the time (one draw of slack)"


def test_a_loop_of_your_own_feeds_it_and_a_wrong_key_is_one_line():
    live = mlplab.LivePlot(epochs=4, show=False)
    live.update(train_loss=torch.tensor(0.5), train_accuracy=0.8)
    live.update(epoch=2, train_loss=0.3, val_accuracy=None)
    assert [(r["epoch"], r["train_loss"], r["val_accuracy"]) for r in live.records] == [(1, 0.5, None), (2, 0.3, None)]
    with pytest.raises(MlplabError, match="LivePlot.update takes epoch and train_loss"):
        live.update(epoch=3, test_accuracy=0.9)
    assert live.figure.axes[0].get_xlim()[1] >= 4, "the x axis spans the epochs to come"
    every_hundredth = mlplab.LivePlot(show=False, epoch_name="sweep")
    for sweep in (100, 200, 300):
        every_hundredth.update(epoch=sweep, train_loss=1 / sweep)
    assert every_hundredth.figure.axes[0].get_xlim()[1] >= 300, "numbered epochs stay inside the axis"


def test_a_resumed_fit_shows_the_epochs_it_already_had(tmp_path):
    mlplab.fit(_net(), _batches(), epochs=1, run_dir=tmp_path / "run", progress=False)
    live = mlplab.LivePlot(show=False)
    mlplab.fit(_net(), _batches(), epochs=2, run_dir=tmp_path / "run", resume=True, callbacks=[live], progress=False)
    assert [record["epoch"] for record in live.records] == [1, 2]


def test_in_a_notebook_mlplab_keeps_the_notebooks_matplotlib_backend(monkeypatch):
    from mlplab.plots.backend import pyplot

    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg", force=True)
        monkeypatch.setattr(session, "in_notebook", lambda: True)
        pyplot()
        assert matplotlib.get_backend() == "svg"
        monkeypatch.setattr(session, "in_notebook", lambda: False)
        pyplot()
        assert matplotlib.get_backend().lower() == "agg"
    finally:
        matplotlib.use(before, force=True)


def test_outside_a_kernel_it_shows_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert session.in_notebook() is False
    assert mlplab.LivePlot().show is False
