"""The engine interface and its one capability table (`mlplab.engines`)."""

from __future__ import annotations

import pytest
import torch

from mlplab.config import ModelConfig
from mlplab.engines import AUTO_ORDER, ENGINE_TABLE, Engine, capabilities, make_step, resolve_engine
from mlplab.errors import MlplabError
from mlplab.losses import build_loss
from mlplab.models import MLP


def test_every_engine_implements_the_interface():
    for name, engine in ENGINE_TABLE.items():
        assert isinstance(engine, Engine) and engine.name == name
    assert AUTO_ORDER[-1] == "autograd"  # the last resort trains anything


@pytest.mark.parametrize("model,loss,optimizer,able", [
    (MLP(hidden=(8,)), build_loss("cross_entropy"), "sgd", {"autograd", "manual", "scratch"}),
    (MLP(hidden=(8,)), build_loss("cross_entropy"), "rmsprop", {"autograd", "manual"}),
    (MLP(hidden=(8,), activation="gelu"), build_loss("cross_entropy"), "adam", {"autograd", "manual"}),
    (MLP(hidden=(8,), dropout=0.5), build_loss("cross_entropy"), "sgd", {"autograd"}),
    (MLP(hidden=(8,)), torch.nn.CrossEntropyLoss(), "sgd", {"autograd"}),
    (torch.nn.Linear(784, 10), build_loss("cross_entropy"), "sgd", {"autograd"}),
    (ModelConfig(hidden=(8,)), build_loss("cross_entropy"), "adamw", {"autograd", "manual", "scratch"}),
], ids=["mlp", "rmsprop", "gelu", "dropout", "nn-loss", "linear", "config"])
def test_the_capability_table_says_who_trains_what_and_why_not(model, loss, optimizer, able):
    table = capabilities(model, loss, optimizer)
    assert {name for name, reason in table.items() if reason is None} == able
    assert all(isinstance(reason, str) and reason for name, reason in table.items() if name not in able)
    expected = next(name for name in AUTO_ORDER if name in able)
    assert resolve_engine("auto", model, loss, optimizer).name == expected


def test_a_named_engine_that_cannot_train_is_one_line_with_the_reason():
    with pytest.raises(MlplabError, match=r"--engine scratch cannot train this run: it implements sgd, adam, adamw, "
                                          r"not rmsprop; use --engine auto"):
        resolve_engine("scratch", MLP(hidden=(8,)), build_loss("cross_entropy"), "rmsprop")


def test_resolving_an_engine_object_checks_it_still_applies():
    model = MLP(hidden=(8,), dropout=0.5)
    with pytest.raises(MlplabError, match="dropout"):
        resolve_engine(ENGINE_TABLE["manual"], model, build_loss("cross_entropy"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = make_step(ENGINE_TABLE["autograd"], model, build_loss("cross_entropy"), optimizer)
    images, labels = torch.randn(4, 784), torch.tensor([0, 1, 2, 3])
    outputs, loss = step(images, labels)
    assert outputs.shape == (4, 10) and not outputs.requires_grad and loss.ndim == 0
