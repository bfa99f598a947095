"""The optimizer step of the autograd and manual engines: ``optimizer.step()``, made cheap for fused SGD.

``torch.optim.SGD(fused=True).step()`` spends about 40 µs per call on the lab net gathering
parameters, gradients and state before one fused kernel call that takes 5-8 µs (2-core
CPU). `OptimizerStep` gives that kernel the same arguments itself, so the update is bit
for bit the one ``.step()`` makes (tests/engines/test_optimizer_step.py), without the
bookkeeping.

That kernel and the hook registries checked before using it are private PyTorch, kept in
`mlplab.torch_internals` with their probes. ``optimizer.step()`` (public API) is taken
whenever any guard fails:

1. The probes ``fused_sgd_kernel`` and ``optimizer_hooks`` try the kernel once per process
   on a small problem against ``.step()``, bit for bit; a missing name, a changed signature
   or a different result turns the fast path off for the process (with one warning).
2. `uses_fast_path` refuses any optimizer where ``.step()`` would do more than the kernel:
   another optimizer, several param groups, hooks, tensor learning rates, AMP scaling, or
   a hook registry that cannot be read.
3. A call that raises anyway falls back to ``.step()`` for that step and every later one.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.optim import Optimizer

from mlplab import torch_internals
from mlplab.torch_internals import fused_sgd_step, hooks_absent


def fast_path_works() -> bool:
    """Whether the fused SGD kernel may be called directly here (probes ``fused_sgd_kernel``, ``optimizer_hooks``)."""
    return torch_internals.works("fused_sgd_kernel") and torch_internals.works("optimizer_hooks")


def uses_fast_path(optimizer: Optimizer, buffers_known: bool = False) -> bool:
    """Whether `OptimizerStep` may call the fused SGD kernel itself for this optimizer now.

    ``buffers_known``: the caller has seen every momentum buffer in this very state (the loop over
    the parameters is then skipped: at batch 4 it was a tenth of a step).
    """
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    if not group.get("fused") or group.get("differentiable") or isinstance(group["lr"], torch.Tensor):
        return False
    if not hooks_absent(optimizer):
        return False
    if getattr(optimizer, "grad_scale", None) is not None or getattr(optimizer, "found_inf", None) is not None:
        return False
    if group["momentum"] != 0 and not buffers_known:  # buffers exist after the first step; that one PyTorch takes
        return all("momentum_buffer" in optimizer.state[p] for p in group["params"])
    return True


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
        self._kernel = (
            torch_internals.sgd_kernel() if self.fast else None
        )  # looked up once: torch resolves it through __getattr__
        self._tensors: tuple[Any, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None = None

    def __call__(self) -> None:
        if self.fast and self.steps > 0 and uses_fast_path(self.optimizer, self._buffers_known()):
            try:
                fused_sgd_step(self.optimizer, *self._kernel_tensors(self.optimizer.param_groups[0]), self._kernel)
            except Exception as error:  # noqa: BLE001 - raised before any update: take the public step
                self.fast = False
                warnings.warn(
                    f"mlplab: the fast SGD step is off for this process ({type(error).__name__}: {error}); "
                    "training continues with optimizer.step(), the same update",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.optimizer.step()
        else:
            self.optimizer.step()
        self.steps += 1

    def _buffers_known(self) -> bool:
        """Whether the kernel's lists were gathered from the optimizer's current state, buffers and all
        (load_state_dict replaces the state, and a new parameter group changes the count)."""
        if self._tensors is None or self._tensors[0] is not self.optimizer.state:
            return False
        group = self.optimizer.param_groups[0]
        return len(self._tensors[1]) == len(group["params"]) and (group["momentum"] == 0 or bool(self._tensors[3]))

    def _kernel_tensors(
        self, group: dict[str, Any]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Parameters with a gradient, their gradients and momentum buffers: reused while still current."""
        state = self.optimizer.state  # load_state_dict replaces it, and with it every buffer
        if self._tensors is not None and self._tensors[0] is state:
            _, params, grads, buffers = self._tensors
            if len(params) == len(group["params"]) and all(p.grad is g for p, g in zip(params, grads, strict=True)):
                return params, grads, buffers
        params, grads = [], []
        for p in group["params"]:
            if p.grad is not None:  # the kernel, as .step(), skips a parameter without a gradient
                params.append(p)
                grads.append(p.grad)
        buffers = [state[p]["momentum_buffer"] for p in params] if group["momentum"] != 0 else []
        self._tensors = (state, params, grads, buffers)
        return params, grads, buffers
