"""The optimizer step of the autograd and manual engines: ``optimizer.step()``, made cheap for fused SGD.

``torch.optim.SGD(fused=True).step()`` spends about 40 µs per call on the lab net gathering
parameters, gradients and state before one fused kernel call that takes 5-8 µs (2-core
CPU). `OptimizerStep` gives that kernel the same arguments itself, so the update is bit
for bit the one ``.step()`` makes (tests/engines/test_optimizer_step.py), without the
bookkeeping.

That kernel, ``torch._fused_sgd_``, and the hook registries checked before using it are
private PyTorch: a release may rename or change them. So the fast path is guarded three
times, and ``optimizer.step()`` (public API) is taken whenever any guard fails:

1. `fast_path_works` tries it once per process on a small problem and compares it, bit for
   bit, with ``.step()``; a missing name, a changed signature or a different result turns
   the fast path off for the process (with one warning).
2. `uses_fast_path` refuses any optimizer where ``.step()`` would do more than the kernel:
   another optimizer, several param groups, hooks, tensor learning rates, AMP scaling, or
   a hook registry that cannot be read.
3. A call that raises anyway falls back to ``.step()`` for that step and every later one.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
import torch.optim.optimizer as optimizer_module
from torch.optim import Optimizer

_KERNEL = "_fused_sgd_"  # torch._fused_sgd_: the fused SGD kernel behind SGD(fused=True)


def _kernel() -> Any:
    return getattr(torch, _KERNEL, None)


def _hooks_absent(optimizer: Optimizer) -> bool:
    """True only when no step hook is registered, on the optimizer or globally; False when unknowable."""
    for holder, name in ((optimizer, "_optimizer_step_pre_hooks"), (optimizer, "_optimizer_step_post_hooks"),
                         (optimizer_module, "_global_optimizer_pre_hooks"),
                         (optimizer_module, "_global_optimizer_post_hooks")):
        registry = getattr(holder, name, None)
        if registry is None or len(registry) != 0:
            return False
    return True


def uses_fast_path(optimizer: Optimizer) -> bool:
    """Whether `OptimizerStep` may call the fused SGD kernel itself for this optimizer now."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    if not group.get("fused") or group.get("differentiable") or isinstance(group["lr"], torch.Tensor):
        return False
    if not _hooks_absent(optimizer):
        return False
    if getattr(optimizer, "grad_scale", None) is not None or getattr(optimizer, "found_inf", None) is not None:
        return False
    if group["momentum"] != 0:  # buffers exist after the first step; that one PyTorch takes
        return all("momentum_buffer" in optimizer.state[p] for p in group["params"])
    return True


def _direct_update(optimizer: Optimizer, params: list[torch.Tensor], grads: list[torch.Tensor],
                   buffers: list[torch.Tensor], kernel: Any = None) -> None:
    """The fused kernel with the arguments ``SGD(fused=True).step()`` gives it after its first step."""
    group = optimizer.param_groups[0]
    (kernel or _kernel())(params, grads, buffers, weight_decay=group["weight_decay"], momentum=group["momentum"], lr=group["lr"],
              dampening=group["dampening"], nesterov=group["nesterov"], maximize=group["maximize"],
              is_first_step=False, grad_scale=None, found_inf=None)


@functools.cache
def fast_path_works() -> bool:
    """Whether this torch's fused SGD kernel, called directly, updates exactly as ``.step()`` does.

    Tried once per process on a small problem (two steps with momentum and weight decay);
    anything but a bit-identical result turns the fast path off, with a warning.
    """
    results = []
    for direct in (False, True):
        generator = torch.Generator().manual_seed(0)
        params = [torch.randn(5, 3, generator=generator).requires_grad_(), torch.randn(5, generator=generator).requires_grad_()]
        try:
            optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3, fused=True)
            for step in range(2):
                for p in params:
                    p.grad = torch.randn(p.shape, generator=generator)
                if direct and step > 0:
                    buffers = [optimizer.state[p]["momentum_buffer"] for p in params]
                    _direct_update(optimizer, params, [p.grad for p in params], buffers)
                else:
                    optimizer.step()
        except Exception as error:  # noqa: BLE001 - any failure of private API means: use the public one
            if direct:
                _warn(f"{type(error).__name__}: {error}")
            return False  # not direct: this torch has no fused SGD at all; .step() it is
        results.append([p.detach().clone() for p in params])
    same = all(torch.equal(a, b) for a, b in zip(*results))
    if not same:
        _warn("its update differs from optimizer.step()")
    return same


def _warn(reason: str) -> None:
    warnings.warn(f"mlplab: the fast SGD step is off for this process (torch.{_KERNEL}: {reason}); "
                  "training continues with optimizer.step(), the same update, somewhat slower", RuntimeWarning,
                  stacklevel=3)


class OptimizerStep:
    """``step()``: ``optimizer.step()``, calling the fused SGD kernel directly where that is the same update.

    The first call always goes through ``optimizer.step()``: it creates the momentum buffers
    as PyTorch does and lets an LR scheduler see that a step ran. The lists handed to the
    kernel are kept between calls while the same gradient and momentum tensors are in place
    (autograd's ``zero_grad(set_to_none=True)`` makes new gradients every step; the manual
    engine reuses its own).
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.steps = 0  # taken so far
        self.fast = fast_path_works()  # False: every step is optimizer.step()
        self._kernel = _kernel() if self.fast else None  # looked up once: torch resolves it through __getattr__
        self._tensors: tuple[Any, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None = None

    def __call__(self) -> None:
        if self.fast and self.steps > 0 and uses_fast_path(self.optimizer):
            try:
                _direct_update(self.optimizer, *self._kernel_tensors(self.optimizer.param_groups[0]), self._kernel)
            except Exception as error:  # noqa: BLE001 - raised before any update: take the public step
                self.fast = False
                _warn(f"{type(error).__name__}: {error}")
                self.optimizer.step()
        else:
            self.optimizer.step()
        self.steps += 1

    def _kernel_tensors(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Parameters with a gradient, their gradients and momentum buffers: reused while still current."""
        state = self.optimizer.state  # load_state_dict replaces it, and with it every buffer
        if self._tensors is not None and self._tensors[0] is state:
            _, params, grads, buffers = self._tensors
            if len(params) == len(group["params"]) and all(p.grad is g for p, g in zip(params, grads)):
                return params, grads, buffers
        params = [p for p in group["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        buffers = [state[p]["momentum_buffer"] for p in params] if group["momentum"] != 0 else []
        self._tensors = (state, params, grads, buffers)
        return params, grads, buffers
