"""The MLP lab's own module, loss and DataLoader trained by `mlplab.fit`: a run directory, an
exact resume, and learning on the real MNIST copy.

Written as the lab writes it: ``nn.Module`` with ``nn.LogSoftmax`` trained with ``nn.NLLLoss``,
and the lab's ``quadratic_loss`` as a plain function.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

import mlplab

pytestmark = [pytest.mark.learning, pytest.mark.usefixtures("one_thread")]

TRAIN_IMAGES, TEST_IMAGES = 6000, 2000  # a slice of MNIST: the DataLoader walks it sample by sample


class MLP(nn.Module):
    """The lab's network: 784-16-32-24-10, ReLU, log-probabilities out."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, 16)
        self.fc2 = nn.Linear(16, 32)
        self.fc3 = nn.Linear(32, 24)
        self.fc4 = nn.Linear(24, 10)
        self.relu = nn.ReLU()
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        x = self.relu(self.fc3(x))
        return self.log_softmax(self.fc4(x))


def quadratic_loss(outputs, targets):
    """The lab's quadratic loss on log-probabilities: 1/2 mean of ||p - e_y||^2."""
    probabilities = torch.exp(outputs)
    one_hot = F.one_hot(targets, num_classes=10).float()
    return 0.5 * ((probabilities - one_hot) ** 2).sum(dim=1).mean()


def normalize(image):
    return (image - 0.1307) / 0.3081


def _setup(mnist_dir, loss_name):
    """Everything the lab builds, seeded: model, loss, optimizer, data loaders."""
    torch.manual_seed(0)
    train_set = Subset(mlplab.MNIST(mnist_dir, train=True, transform=normalize), range(TRAIN_IMAGES))
    test_set = Subset(mlplab.MNIST(mnist_dir, train=False, transform=normalize), range(TEST_IMAGES))
    model = MLP()
    loss = nn.NLLLoss() if loss_name == "nll" else quadratic_loss
    lr = 0.01 if loss_name == "nll" else 0.1  # the quadratic loss's gradients are smaller
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    return dict(model=model, train_data=DataLoader(train_set, batch_size=64, shuffle=True),
                test_data=DataLoader(test_set, batch_size=1000), loss=loss, optimizer=optimizer, scheduler=scheduler)


def _fit(mnist_dir, loss_name, epochs, run_dir=None, resume=False):
    built = _setup(mnist_dir, loss_name)
    history = mlplab.fit(built.pop("model"), built.pop("train_data"), **built, epochs=epochs, run_dir=run_dir,
                         resume=resume)
    return history


def _without_seconds(history):
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history.epochs]


@pytest.mark.parametrize("loss_name", ["nll", "quadratic"])
def test_the_labs_module_trains_stops_and_resumes_bit_for_bit(mnist_dir, tmp_path, loss_name):
    straight = _fit(mnist_dir, loss_name, epochs=3, run_dir=tmp_path / "straight")
    first = _fit(mnist_dir, loss_name, epochs=2, run_dir=tmp_path / "resumed")
    assert len(first) == 2 and first.metrics is not None
    resumed = _fit(mnist_dir, loss_name, epochs=3, run_dir=tmp_path / "resumed", resume=True)

    assert _without_seconds(resumed) == _without_seconds(straight)
    assert [record["lr"] for record in resumed.epochs] == pytest.approx([lr * 0.7 ** e for e, lr in
                                                                        enumerate([straight[0]["lr"]] * 3)])
    for which in ("last.pt", "best.pt"):
        want = mlplab.load_checkpoint(tmp_path / "straight" / which)
        got = mlplab.load_checkpoint(tmp_path / "resumed" / which)
        assert got["epoch"] == want["epoch"]
        for name, tensor in want["model"].items():
            assert torch.equal(got["model"][name], tensor), (which, name)
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    # How it ran may differ (versions; the thread choices, one more where the resume started); not what it computed.
    assert metrics == {**json.loads((tmp_path / "straight" / "metrics.json").read_text()),
                       "versions": metrics["versions"], "threads": metrics["threads"]}
    assert [entry["step"] for entry in metrics["threads"]] == [0, resumed[1]["step"]]
    assert metrics["test_count"] == TEST_IMAGES
    assert list(metrics["per_class_accuracy"])[0] == "0 - zero"  # the dataset's class names
    assert metrics["test_accuracy"] >= 0.80, metrics["test_accuracy"]

    run = mlplab.open_run(tmp_path / "resumed")
    assert run.config is None and len(run.history) == 3
    model = run.model(into=MLP())
    assert not model.training
    for name, tensor in mlplab.load_checkpoint(run.checkpoint_path("best"))["model"].items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_a_run_of_a_users_module_checkpoints_its_class_and_refuses_another(mnist_dir, tmp_path):
    _fit(mnist_dir, "nll", epochs=1, run_dir=tmp_path / "run")
    info = mlplab.load_checkpoint(tmp_path / "run" / "last.pt")["model_info"]
    assert info["class"].endswith("test_fit_lab_module.MLP")
    with pytest.raises(mlplab.MlplabError, match="cannot resume .*does not fit this run"):
        mlplab.fit(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), [], epochs=2, run_dir=tmp_path / "run",
                   resume=True)
    with pytest.raises(mlplab.MlplabError, match="MLP"):
        mlplab.open_run(tmp_path / "run").model()  # no config to rebuild it from: pass into=
