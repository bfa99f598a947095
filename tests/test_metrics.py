"""Meters and metrics are exact: weighted by batch size, nothing dropped."""

import math

import torch

from mlplab.runs.history import History
from mlplab.metrics import AverageMeter, accuracy, confusion_matrix, per_class_accuracy


def test_average_meter_weights_by_batch_size_not_mean_of_means():
    meter = AverageMeter()
    meter.update(1.0, n=3)  # three samples of loss 1
    meter.update(5.0, n=1)  # one sample of loss 5
    assert meter.count == 4
    assert meter.avg == 2.0  # (3*1 + 5) / 4, where a mean of means would say 3.0


def test_average_meter_accepts_tensors_and_matches_sample_mean():
    torch.manual_seed(0)
    losses = torch.rand(103, dtype=torch.float64)
    meter = AverageMeter()
    for chunk in losses.split(10):  # last batch has 3 samples
        meter.update(chunk.mean(), chunk.numel())
    assert math.isclose(meter.avg, losses.mean().item(), rel_tol=1e-12)
    assert len(meter.values()) == 11


def test_average_meter_empty_is_nan():
    assert math.isnan(AverageMeter().avg)


def test_accuracy_and_confusion_matrix():
    outputs = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 4.0], [5.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2, 2, 1])
    assert accuracy(outputs, labels) == 0.5
    confusion = confusion_matrix(outputs.argmax(1), labels, 3)
    assert confusion.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert confusion.sum().item() == 4
    per_class = per_class_accuracy(confusion)
    assert per_class[0] == 1.0 and per_class[1] == 0.0 and per_class[2] == 0.5


def test_per_class_accuracy_of_absent_class_is_nan():
    confusion = confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 0]), 2)
    assert math.isnan(per_class_accuracy(confusion)[1])


def test_history_round_trips_through_json_and_csv(tmp_path):
    history = History()
    history.append({"epoch": 1, "step": 10, "lr": 0.1, "train_loss": 0.5, "train_accuracy": 0.8,
                    "val_loss": None, "val_accuracy": None, "seconds": 1.5})
    history.append({"epoch": 2, "step": 20, "lr": 0.05, "train_loss": 0.25, "train_accuracy": 0.9,
                    "val_loss": None, "val_accuracy": None, "seconds": 1.25})
    history.batch_losses = [0.7, 0.6, 0.4]
    history.save(tmp_path)
    again = History.load(tmp_path)
    assert again.epochs == history.epochs
    assert again.batch_losses == history.batch_losses
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0] == "epoch,step,lr,train_loss,train_accuracy,val_loss,val_accuracy,seconds"
    assert csv_lines[2].startswith("2,20,0.05,0.25,0.9,,,")
    assert (tmp_path / "batches.csv").read_text().splitlines()[1:] == ["1,0.7", "2,0.6", "3,0.4"]
    assert history.best_epoch("train_accuracy")["epoch"] == 2
