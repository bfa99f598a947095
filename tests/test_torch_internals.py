"""The probe registry of `mlplab.torch_internals`: every private path has a public fallback that agrees with it,
and with internals off every caller takes the fallback and still trains as its single run does (to rounding).

Tolerances: the fallbacks' results are compared with the private path's in float64, where
one rounding is 1e-16 relative: 1e-12 for the activation derivatives (as tests/engines/test_manual.py),
1e-13 for a few optimizer steps; ``torch.sqrt`` against the correctly rounded root: one unit
in the last place. A sweep member with internals off against its run: the weights within
1e-5 relative in float32 (tests/sweep/test_vectorised.py gives the reasoning).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from mlplab import torch_internals
from mlplab.choices import ACTIVATIONS
from mlplab.config import OptimConfig
from mlplab.engines.optimizer_step import OptimizerStep, fast_path_works
from mlplab.models import ACTIVATION_FUNCTIONS, MLP
from mlplab.optim import build_optimizer
from mlplab.sweep import stacked_optimizer, train_vectorised
from sweep_helpers import FLOAT32_TOLERANCE, SMALL, assert_member_equals_run, single_run

SIZES = [37, 5, 63, 16, 1]  # numbers per tensor of one member: tails of every length mod 8


@pytest.fixture
def public_only():
    """Every private path forbidden for the test (as MLPLAB_NO_TORCH_INTERNALS=1 forbids them)."""
    torch_internals.use_internals(False)
    yield
    torch_internals.use_internals(True)


def test_every_probe_names_what_it_uses_and_its_fallback():
    assert set(torch_internals.PROBES) == {"fused_sgd_kernel", "optimizer_hooks", "activation_backward",
                                           "fused_optimizer", "sgd_tail_width", "adam_tail_width", "exact_sqrt",
                                           "batched_products"}
    for name, probe in torch_internals.PROBES.items():
        assert probe.name == name and probe.uses and probe.fallback and callable(probe.check)


def test_answers_are_cached_and_internals_off_answers_no(public_only):
    torch_internals.use_internals(True)
    first = torch_internals.result("sgd_tail_width", torch.float32)
    assert torch_internals.result("sgd_tail_width", torch.float32) is first
    torch_internals.use_internals(False)
    assert torch_internals.result("sgd_tail_width", torch.float32) is None
    assert not torch_internals.works("fused_sgd_kernel") and not fast_path_works()
    assert not torch_internals.bit_for_bit("sgd", torch.float32)


def test_the_environment_switch_turns_every_probe_off():
    code = ("import torch; from mlplab import torch_internals as t; "
            "assert not t.internals_enabled(); assert t.result('fused_sgd_kernel') is None; "
            "assert t.activation_gradient('relu') is t.PUBLIC_GRADIENTS['relu']; "
            "assert not any(t.works(n, torch.float32) for n in ('sgd_tail_width', 'exact_sqrt'))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={**os.environ, torch_internals.ENV_SWITCH: "1"})


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activation_kernels_and_their_public_formulas_agree(activation):
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(200, dtype=torch.float64, generator=generator) * 3
    grad = torch.randn(200, dtype=torch.float64, generator=generator)
    h = ACTIVATION_FUNCTIONS[activation](z)
    public = torch_internals.PUBLIC_GRADIENTS[activation](grad, z, h)
    kernel = torch_internals.KERNEL_GRADIENTS[activation](grad, z, h)
    assert torch.allclose(public, kernel, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch_internals.internals_enabled(), reason="MLPLAB_NO_TORCH_INTERNALS=1: no private path")
def test_without_the_fused_sgd_kernel_the_step_is_the_same(public_only):
    """``optimizer.step()`` instead of the kernel called directly: the same update, bit for bit."""
    def train(internals):
        torch_internals.use_internals(internals)
        torch.manual_seed(0)
        model = MLP(in_features=12, hidden=(6,), num_classes=3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, fused=True)
        stepper = OptimizerStep(optimizer)
        generator = torch.Generator().manual_seed(1)
        for _ in range(5):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=generator)
            stepper()
        return stepper.fast, [p.detach().clone() for p in model.parameters()]

    (fast, private), (public_fast, public) = train(True), train(False)
    assert not public_fast and fast == (torch_internals.sgd_kernel() is not None)
    assert all(torch.equal(a, b) for a, b in zip(private, public))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "adagrad"])
def test_without_fused_kernels_the_optimizers_take_foreach_and_agree(public_only, optimizer):
    def steps(internals):
        torch_internals.use_internals(internals)
        params = [torch.linspace(-1, 1, 30, dtype=torch.float64).requires_grad_()]
        built = build_optimizer(params, OptimConfig(optimizer=optimizer, lr=0.01, momentum=0.0, nesterov=False,
                                                    weight_decay=1e-3))
        for step in range(4):
            params[0].grad = torch.cos(params[0].detach() * (step + 1))
            built.step()
        assert bool(built.defaults.get("fused")) == torch_internals.works("fused_optimizer", optimizer,
                                                                          torch.device("cpu"), torch.float64)
        return built.defaults, params[0].detach()

    (_, fused), (public_defaults, public) = steps(True), steps(False)
    assert public_defaults["foreach"] and not public_defaults.get("fused")
    assert torch.allclose(fused, public, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "adagrad"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_the_stacked_updates_without_the_kernels_rounding_agree_to_rounding(public_only, optimizer, dtype):
    """The scalar-loop copies and the exact sqrt against the formulas alone: equal to a few roundings."""
    settings = [OptimConfig(optimizer=optimizer, lr=0.01, momentum=0.9 if optimizer == "sgd" else 0.0,
                            nesterov=optimizer == "sgd", weight_decay=1e-3)] * 3
    generator = torch.Generator().manual_seed(3)
    start = torch.randn(3, sum(SIZES), generator=generator, dtype=dtype)
    grads = [torch.randn(start.shape, generator=generator, dtype=dtype) * 0.1 for _ in range(4)]

    def steps(internals):
        torch_internals.use_internals(internals)
        stacked = stacked_optimizer(settings, like=start, sizes=SIZES)
        got = start
        for grad in grads:
            got = stacked.step(got, grad.clone(), torch.full((3, 1), -0.01, dtype=torch.float64),
                               out=torch.empty_like(start))
        return got

    private, public = steps(True), steps(False)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-14
    assert ((private - public).abs().max() / private.abs().max()).item() <= tolerance


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_torch_sqrt_is_within_one_unit_of_the_exact_root(public_only, dtype):
    values = torch.rand(10_000, dtype=dtype) * 100
    torch_internals.use_internals(True)
    exact = torch_internals.kernel_sqrt(dtype, values.device)(values, torch.empty_like(values))
    torch_internals.use_internals(False)
    public = torch_internals.kernel_sqrt(dtype, values.device)(values, torch.empty_like(values))
    assert torch.all((exact - public).abs() <= torch.finfo(dtype).eps * exact)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_with_internals_off_sweep_members_equal_their_runs_to_rounding(make_config, public_only, optimizer):
    """The public path end to end: every fallback taken by the sweep and by the single runs alike."""
    members = [dict(seed=0, lr=0.05 if optimizer == "sgd" else 2e-3, weight_decay=1e-3),
               dict(seed=1, lr=0.1 if optimizer == "sgd" else 1e-3)]
    configs = [make_config("lab", **{**SMALL, "epochs": 1, "val_size": 55_000, "optimizer": optimizer,
                                     "momentum": 0.9 if optimizer == "sgd" else 0.0, "nesterov": False, **member})
               for member in members]
    assert not torch_internals.bit_for_bit(optimizer, torch.float32)
    result = train_vectorised(configs)
    for member, config in zip(result.members, configs):
        history, weights = single_run(config)
        assert_member_equals_run(member, history, weights, FLOAT32_TOLERANCE, False)
