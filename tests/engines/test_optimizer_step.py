"""The guarded fast SGD step (`mlplab.engines.optimizer_step`): the same update as `.step()`, bit for bit,
with the private kernel (`mlplab.torch_internals`) or without it."""

import warnings

import pytest
import torch
import torch.nn.functional as F
import torch.optim.optimizer as optimizer_module

from helpers import plain_optim
from mlplab import torch_internals
from mlplab.engines.optimizer_step import OptimizerStep, fast_path_works, uses_fast_path
from mlplab.models import MLP
from mlplab.optim import build_optimizer, build_schedule, load_optimizer_state

# These tests take the private path on purpose: with MLPLAB_NO_TORCH_INTERNALS=1 there is none to test.
pytestmark = pytest.mark.skipif(not torch_internals.internals_enabled(), reason="MLPLAB_NO_TORCH_INTERNALS=1")


@pytest.mark.parametrize("settings", [
    dict(lr=0.1, momentum=0.0),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
], ids=["plain", "momentum", "nesterov-decay"])
def test_optimizer_step_is_bit_identical_to_step(settings):
    """`OptimizerStep` calls the fused SGD kernel itself: same weights and state as `.step()`, bit for bit."""
    def train(step):
        torch.manual_seed(0)
        model = MLP(in_features=12, hidden=(6,), num_classes=3)
        optimizer = build_optimizer(model.parameters(), plain_optim(optimizer="sgd", **settings))
        schedule = build_schedule(optimizer, plain_optim(scheduler="onecycle", lr=settings["lr"]), 1, 20)
        generator = torch.Generator().manual_seed(1)
        for index in range(20):
            inputs, targets = torch.randn(8, 12, generator=generator), torch.randint(0, 3, (8,), generator=generator)
            optimizer.zero_grad()
            F.cross_entropy(model(inputs), targets).backward()
            step(optimizer, index)
            schedule.step_batch()
        return model.state_dict(), optimizer.state_dict()["state"]

    direct_steps, steppers = [], {}

    def fast(optimizer, index):
        direct_steps.append(uses_fast_path(optimizer))
        steppers.setdefault(id(optimizer), OptimizerStep(optimizer))()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. the LR scheduler's "step() before optimizer.step()"
        fast_weights, fast_state = train(fast)
    weights, state = train(lambda optimizer, index: optimizer.step())
    assert all(direct_steps[1:])  # the direct path is what ran after the first step
    for name, tensor in weights.items():
        assert torch.equal(fast_weights[name], tensor), name
    for index, entry in state.items():
        for key, value in entry.items():
            assert value is None or torch.equal(fast_state[index][key], value)


def test_optimizer_step_takes_the_fast_path_only_where_it_is_the_same_update():
    model = MLP(in_features=12, hidden=(6,), num_classes=3)
    sgd = build_optimizer(model.parameters(), plain_optim(optimizer="sgd", momentum=0.9))
    assert not uses_fast_path(sgd)  # no momentum buffers yet: PyTorch's step creates them
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    stepper = OptimizerStep(sgd)
    assert not stepper._buffers_known()
    stepper()
    assert uses_fast_path(sgd)
    stepper()  # the fast path: it gathers the kernel's lists, buffers included
    assert stepper._buffers_known()
    handle = sgd.register_step_pre_hook(lambda optimizer, args, kwargs: None)
    assert not uses_fast_path(sgd) and not uses_fast_path(sgd, buffers_known=True)  # hooks run only through .step()
    handle.remove()
    sgd.load_state_dict(sgd.state_dict())  # a new state: its buffers are checked again
    assert not stepper._buffers_known()
    adam = build_optimizer(model.parameters(), plain_optim(optimizer="adam", lr=1e-3))
    assert not uses_fast_path(adam)
    plain = torch.optim.SGD(model.parameters(), lr=0.1)  # not fused: a different kernel
    assert not uses_fast_path(plain)


def test_optimizer_step_reuses_its_lists_only_while_the_tensors_are_current():
    """Gradients written in place, then a load_state_dict mid-run: still `.step()`, bit for bit."""
    def train(fast):
        torch.manual_seed(0)
        model = MLP(in_features=12, hidden=(6,), num_classes=3)
        optimizer = build_optimizer(model.parameters(), plain_optim(optimizer="sgd", lr=0.1, momentum=0.9))
        stepper = OptimizerStep(optimizer)
        grads = [torch.zeros_like(p) for p in model.parameters()]
        generator = torch.Generator().manual_seed(1)
        for index in range(12):
            for grad in grads:  # the same gradient tensors every step, as the manual engine keeps them
                grad.copy_(torch.randn(grad.shape, generator=generator))
            for parameter, grad in zip(model.parameters(), grads):
                parameter.grad = grad
            stepper() if fast else optimizer.step()
            if index == 5:  # new momentum buffers: the cached ones must not be used again
                state = optimizer.state_dict()
                for entry in state["state"].values():
                    entry["momentum_buffer"] = entry["momentum_buffer"] * 0.5
                load_optimizer_state(optimizer, state)
        return model.state_dict()

    fast, reference = train(fast=True), train(fast=False)
    for name, tensor in reference.items():
        assert torch.equal(fast[name], tensor), name


def _train_sgd(steps=12, momentum=0.9):
    """SGD (fused) with a one-cycle schedule on a small MLP, stepped by `OptimizerStep`: weights and state."""
    torch.manual_seed(0)
    model = MLP(in_features=12, hidden=(6,), num_classes=3)
    optimizer = build_optimizer(model.parameters(), plain_optim(optimizer="sgd", lr=0.1, momentum=momentum,
                                                                nesterov=momentum > 0, weight_decay=1e-3))
    schedule = build_schedule(optimizer, plain_optim(scheduler="onecycle", lr=0.1), 1, steps)
    stepper = OptimizerStep(optimizer)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        inputs, targets = torch.randn(8, 12, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        stepper()
        schedule.step_batch()
    return stepper, model.state_dict(), optimizer.state_dict()["state"]


def _assert_same(first, second):
    for name, tensor in first.items():
        assert torch.equal(second[name], tensor), name


@pytest.fixture
def fresh_probe():
    """The once-per-process probe of the private kernel, forgotten before and after the test."""
    torch_internals.forget()
    yield
    torch_internals.forget()


def test_the_fast_path_runs_by_default_on_this_torch(fresh_probe):
    stepper, _, _ = _train_sgd()
    assert fast_path_works() and stepper.fast


def test_without_the_private_kernel_training_falls_back_to_the_same_update(monkeypatch, fresh_probe):
    """The forced fallback: torch without ``_fused_sgd_`` trains to the same weights, bit for bit."""
    _, fast_weights, fast_state = _train_sgd()
    torch_internals.forget()
    monkeypatch.setattr(torch_internals, "SGD_KERNEL", "_fused_sgd_renamed_in_a_later_release")
    with pytest.warns(RuntimeWarning, match="fast SGD step is off"):
        stepper, weights, state = _train_sgd()
    assert not stepper.fast
    _assert_same(fast_weights, weights)
    for index, entry in state.items():
        _assert_same(fast_state[index], entry)


def test_a_kernel_whose_signature_changed_is_never_used(monkeypatch, fresh_probe):
    """The probe calls it as PyTorch's fused step would; a changed signature fails there, before training."""
    _, fast_weights, _ = _train_sgd()
    torch_internals.forget()

    def renamed_arguments(params, grads, buffers, *, decay, **kwargs):
        raise AssertionError("never called with these arguments")

    # Patched where mlplab looks it up: PyTorch's own fused step keeps the real kernel.
    monkeypatch.setattr(torch_internals, "sgd_kernel", lambda: renamed_arguments)
    with pytest.warns(RuntimeWarning, match="TypeError"):
        stepper, weights, _ = _train_sgd()
    assert not stepper.fast
    _assert_same(fast_weights, weights)


def test_a_kernel_that_updates_differently_is_never_used(monkeypatch, fresh_probe):
    real = torch._fused_sgd_

    def off_by_a_little(params, grads, buffers, **kwargs):
        real(params, grads, buffers, **kwargs)
        with torch.no_grad():
            torch._foreach_mul_(params, 1.0 + 1e-6)

    monkeypatch.setattr(torch_internals, "sgd_kernel", lambda: off_by_a_little)
    with pytest.warns(RuntimeWarning, match="differs from optimizer.step"):
        assert not fast_path_works()


def test_a_kernel_failing_mid_run_hands_over_to_step(monkeypatch, fresh_probe):
    """The probe passed, then the kernel raises: that step and every later one go through ``.step()``."""
    _, fast_weights, _ = _train_sgd()
    assert fast_path_works()

    def broken(*args, **kwargs):
        raise RuntimeError("kernel changed")

    monkeypatch.setattr(torch_internals, "sgd_kernel", lambda: broken)
    with pytest.warns(RuntimeWarning, match="kernel changed"):
        stepper, weights, _ = _train_sgd()
    assert not stepper.fast
    _assert_same(fast_weights, weights)


def test_unreadable_hook_registries_mean_the_public_step(monkeypatch):
    model = MLP(in_features=12, hidden=(6,), num_classes=3)
    sgd = build_optimizer(model.parameters(), plain_optim(optimizer="sgd", momentum=0.0))
    assert uses_fast_path(sgd)
    monkeypatch.delattr(optimizer_module, "_global_optimizer_pre_hooks")
    assert not uses_fast_path(sgd)
