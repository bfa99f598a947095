"""Optimizers and schedules: they descend, validate, follow the documented lr, and resume exactly."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from mlplab import optim
from mlplab.choices import OPTIMIZERS, SCHEDULERS
from mlplab.errors import MlplabError
from mlplab.models import MLP
from mlplab.optim import build_optimizer, build_schedule, load_optimizer_state

from helpers import plain_optim


pytestmark = pytest.mark.usefixtures("one_thread")

# Settings that exercise every option an optimizer takes.
SETTINGS = {
    "sgd": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": dict(lr=0.05, weight_decay=1e-3),
    "adamw": dict(lr=0.05, weight_decay=1e-2),
    "rmsprop": dict(lr=0.01, momentum=0.5, weight_decay=1e-3),
    "adagrad": dict(lr=0.1, weight_decay=1e-3),
}
REFERENCE = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def quadratic_loss(weights: torch.Tensor) -> torch.Tensor:
    return ((weights - torch.arange(5, dtype=weights.dtype)) ** 2).sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_one_step_lowers_a_quadratic(name, dtype):
    weights = torch.zeros(5, dtype=dtype, requires_grad=True)
    optimizer = build_optimizer([weights], plain_optim(optimizer=name, **SETTINGS[name]))
    before = quadratic_loss(weights)
    before.backward()
    optimizer.step()
    assert quadratic_loss(weights) < before


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_matches_pytorch_default_implementation(name):
    """The fast path (fused/foreach) takes the same steps as PyTorch's plain loop, in float64."""
    def train(make_optimizer):
        torch.manual_seed(0)
        model = MLP(in_features=12, hidden=(6,), num_classes=3).double()
        optimizer = make_optimizer(model.parameters())
        generator = torch.Generator().manual_seed(1)
        for _ in range(5):
            x = torch.randn(8, 12, dtype=torch.float64, generator=generator)
            y = torch.randint(0, 3, (8,), generator=generator)
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        return torch.cat([p.flatten() for p in model.parameters()])

    config = plain_optim(optimizer=name, **SETTINGS[name])
    ours = train(lambda params: build_optimizer(params, config))
    theirs = train(lambda params: REFERENCE[name](params, **SETTINGS[name], foreach=False))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_cpu_uses_a_fast_path(name):
    optimizer = build_optimizer(MLP().parameters(), plain_optim(optimizer=name))
    assert optimizer.defaults.get("fused") or optimizer.defaults.get("foreach")


def test_falls_back_to_foreach_without_a_fused_kernel(monkeypatch):
    monkeypatch.setattr(optim, "works", lambda name, *key: False)  # the probe says no fused kernel
    optimizer = build_optimizer(MLP().parameters(), plain_optim(optimizer="adam"))
    assert optimizer.defaults["foreach"] and not optimizer.defaults["fused"]


def test_falls_back_to_the_default_where_no_fast_path_applies():
    weights = torch.zeros(3, device="meta", requires_grad=True)  # no fused or foreach kernels on meta
    optimizer = build_optimizer([weights], plain_optim(optimizer="adam"))
    assert not optimizer.defaults["fused"] and not optimizer.defaults["foreach"]


def test_param_groups_are_accepted():
    model = MLP(in_features=4, hidden=(3,), num_classes=2)
    first, last = model.linears()
    groups = [{"params": first.parameters()}, {"params": last.parameters(), "lr": 0.5}]
    optimizer = build_optimizer(groups, plain_optim(optimizer="sgd", lr=0.1))
    assert [group["lr"] for group in optimizer.param_groups] == [0.1, 0.5]
    assert [len(group["params"]) for group in optimizer.param_groups] == [2, 2]


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(optimizer="lbfgs"), "optimizer must be one of: sgd, adam, adamw, rmsprop, adagrad; got 'lbfgs'"),
        (dict(lr=0.0), r"lr must be a number in \(0, 1000000\]; got 0.0"),
        (dict(lr=-1.0), r"lr must be a number in \(0, 1000000\]"),
        (dict(lr=1e7), r"lr must be a number in \(0, 1000000\]; got 10000000.0"),
        (dict(momentum=-0.5), r"momentum must be a number in \[0, 1\); got -0.5"),
        (dict(weight_decay=-1e-4), r"weight_decay must be a number in \[0, 1000000\]"),
        (dict(nesterov=True), "nesterov needs momentum > 0; set --momentum"),
        (dict(optimizer="adam", nesterov=True), "nesterov applies only to --optimizer sgd, not adam"),
        (dict(optimizer="adam", momentum=0.9), "momentum applies only to sgd and rmsprop, not adam"),
    ],
)
def test_bad_optimizer_settings_are_refused_in_one_line_when_the_config_is_built(settings, message):
    with pytest.raises(MlplabError, match=message) as error:
        plain_optim(**settings)  # before any optimizer: build_optimizer trusts the config
    assert "\n" not in str(error.value)


def lr_per_step(scheduler: str, epochs: int, steps_per_epoch: int, **settings) -> list[list[float]]:
    """The lr every optimizer step used, grouped by epoch, driving the schedule like the loop does."""
    weights = torch.zeros(2, requires_grad=True)
    config = plain_optim(optimizer="sgd", lr=0.1, scheduler=scheduler, **settings)
    optimizer = build_optimizer([weights], config)
    schedule = build_schedule(optimizer, config, epochs, steps_per_epoch)
    rates = []
    for _ in range(epochs):
        rates.append([])
        for _ in range(steps_per_epoch):
            rates[-1].append(schedule.lr)
            optimizer.step()
            schedule.step_batch()
        schedule.step_epoch()
    return rates


def test_none_keeps_the_lr():
    assert lr_per_step("none", 2, 3) == [[0.1] * 3] * 2


def test_exponential_decays_once_per_epoch():
    rates = lr_per_step("exponential", 3, 2, gamma=0.5)
    assert [rate for epoch in rates for rate in epoch] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_step_decays_every_step_size_epochs():
    rates = lr_per_step("step", 5, 1, gamma=0.5, step_size=2)
    assert [epoch[0] for epoch in rates] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_cosine_anneals_over_the_run():
    rates = lr_per_step("cosine", 4, 2)
    expected = [0.05 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(4)]
    assert [epoch[0] for epoch in rates] == pytest.approx(expected)
    assert all(epoch[0] == epoch[1] for epoch in rates)


def test_onecycle_rises_to_the_peak_then_falls_per_batch():
    rates = [rate for epoch in lr_per_step("onecycle", 2, 10) for rate in epoch]
    peak = rates.index(max(rates))
    assert rates[0] == pytest.approx(0.1 / 25)
    assert max(rates) == pytest.approx(0.1)
    assert 0 < peak < len(rates) - 1
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))
    assert all(a > b for a, b in zip(rates[peak:-1], rates[peak + 1 :]))
    assert rates[-1] < 0.1 / 1000


def test_onecycle_leaves_momentum_alone():
    config = plain_optim(optimizer="sgd", lr=0.1, momentum=0.9, scheduler="onecycle")
    optimizer = build_optimizer([torch.zeros(2, requires_grad=True)], config)
    schedule = build_schedule(optimizer, config, epochs=1, steps_per_epoch=5)
    optimizer.step()
    schedule.step_batch()
    assert optimizer.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(scheduler="plateau"), "scheduler must be one of: none, exponential, step, cosine, onecycle; got 'plateau'"),
        (dict(gamma=0.0), r"gamma must be a number in \(0, 1\]"),
        (dict(gamma=1.5), r"gamma must be a number in \(0, 1\]"),
        (dict(step_size=0), r"step_size must be a whole number in \[1, 1000000\]"),
    ],
)
def test_bad_schedule_settings_are_refused_when_the_config_is_built(settings, message):
    with pytest.raises(MlplabError, match=message):
        plain_optim(**settings)


def test_a_schedule_needs_a_run_of_at_least_one_step():
    optimizer = build_optimizer([torch.zeros(2, requires_grad=True)], plain_optim())
    with pytest.raises(MlplabError, match="a schedule needs epochs >= 1 and steps_per_epoch >= 1; got 3 and 0"):
        build_schedule(optimizer, plain_optim(scheduler="step"), epochs=3, steps_per_epoch=0)


def test_loading_another_schedules_state_fails_loudly():
    optimizer = build_optimizer([torch.zeros(2, requires_grad=True)], plain_optim())
    saved = build_schedule(optimizer, plain_optim(scheduler="cosine"), 3, 4).state_dict()
    schedule = build_schedule(optimizer, plain_optim(scheduler="step"), 3, 4)
    with pytest.raises(MlplabError, match="checkpoint's scheduler is 'cosine' but the config asks for 'step'"):
        schedule.load_state_dict(saved)


def through_checkpoint(state: dict) -> dict:
    """``state`` after torch.save and torch.load(weights_only=True), as checkpoints are loaded."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


EPOCHS, STEPS = 4, 3


class Run:
    """A tiny model, optimizer and schedule trained on a fixed stream of batches."""

    def __init__(self, name: str, scheduler: str, dtype: torch.dtype, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = MLP(in_features=10, hidden=(6,), num_classes=3).to(dtype)
        self.config = plain_optim(optimizer=name, scheduler=scheduler, gamma=0.7, step_size=2, **SETTINGS[name])
        self.optimizer = build_optimizer(self.model.parameters(), self.config)
        self.schedule = build_schedule(self.optimizer, self.config, EPOCHS, STEPS)
        generator = torch.Generator().manual_seed(5)
        self.batches = [
            (torch.randn(4, 10, generator=generator, dtype=dtype), torch.randint(0, 3, (4,), generator=generator))
            for _ in range(EPOCHS * STEPS)
        ]

    def train_epochs(self, first: int, last: int) -> None:
        for epoch in range(first, last):
            for x, y in self.batches[epoch * STEPS : (epoch + 1) * STEPS]:
                self.optimizer.zero_grad()
                F.cross_entropy(self.model(x), y).backward()
                self.optimizer.step()
                self.schedule.step_batch()
            self.schedule.step_epoch()

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict()}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_resume_from_checkpoint_is_bit_identical(name, scheduler, dtype):
    straight = Run(name, scheduler, dtype)
    straight.train_epochs(0, EPOCHS)

    stopped = Run(name, scheduler, dtype)
    stopped.train_epochs(0, 2)
    saved = through_checkpoint(stopped.state())
    resumed = Run(name, scheduler, dtype, seed=99)  # fresh weights, overwritten by the load
    resumed.load(saved)
    resumed.train_epochs(2, EPOCHS)

    assert resumed.schedule.lr == straight.schedule.lr
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_loading_optimizer_state_keeps_this_devices_fast_path():
    """A checkpoint from a fused CPU run must not force fused kernels where they may not exist."""
    weights = torch.zeros(5, requires_grad=True)
    fused = build_optimizer([weights], plain_optim(optimizer="adagrad"))
    quadratic_loss(weights).backward()
    fused.step()
    plain = torch.optim.Adagrad([torch.zeros(5, requires_grad=True)], lr=0.01)  # as on a device without fused
    load_optimizer_state(plain, through_checkpoint(fused.state_dict()))
    assert not plain.param_groups[0]["fused"] and plain.param_groups[0]["lr"] == fused.param_groups[0]["lr"]
    assert torch.equal(plain.state_dict()["state"][0]["sum"], fused.state_dict()["state"][0]["sum"])
