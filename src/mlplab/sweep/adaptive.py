"""Adam, AdamW, RMSprop and Adagrad for K members at once, each with its own lr and weight decay.

Each class updates K members' (K, P) parameter buffers with one operation per term, as
`StackedSGD` does, and follows the PyTorch implementation a single run takes
(`mlplab.optim.build_optimizer`), term by term and rounding by rounding: the fused CPU
kernels of Adam, AdamW and Adagrad, and the multi-tensor (foreach) RMSprop. PyTorch's
defaults hold for every setting a config does not carry: Adam betas (0.9, 0.999), eps
1e-8; RMSprop alpha 0.99, eps 1e-8, not centered; Adagrad eps 1e-10, lr_decay 0,
initial accumulator 0. Every member takes every step, so Adam's step count t is the group's.

Learning rates arrive with every step as a (K, 1) column of minus each member's rate, in
float64 like a single run's Python float, so that coefficients such as Adam's
lr / (1 - beta1^t) are rounded once, from double, as the kernels round them.

Two details follow the machine code rather than the source (both found, and checked bit
for bit against PyTorch, once per process by `adam_tail_width`; `StackedSGD` has its own,
`mlplab.sweep.update.kernel_tail_width`):

- The fused kernels take a square root with the processor's exact instruction, while
  ``torch.sqrt`` on the CPU (MKL's vector math) is off by one unit in the last place for
  some numbers; `exact_sqrt` takes NumPy's, which is exact. RMSprop's foreach path calls
  ``torch.sqrt`` itself, so `StackedRMSprop` does too.
- The fused Adam kernel walks each tensor in vectors of W numbers and finishes the last
  (numel mod W) in a scalar loop, where the compiler fused the second moment's update
  differently: v = fma(v, beta2, (1 - beta2) g g) there, v = fma((1 - beta2) g, g, beta2 v)
  in the vectors. Those columns (`tail_columns`) get the scalar loop's formula.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy
import torch
from torch import Tensor

from mlplab.sweep.update import tail_columns

BETAS = (0.9, 0.999)  # Adam's
ADAM_EPS = 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10
_WIDTHS = (1, 2, 4, 8, 16, 32, 64)
_PROBE_SIZE = 63  # numbers per probe tensor: 63 mod W differs for every W in `_WIDTHS`


def column(values: Sequence[float], like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``values`` as a (K, 1) column on ``like``'s device, in ``dtype`` (default ``like``'s)."""
    return torch.tensor(values, dtype=torch.float64).to(dtype or like.dtype).to(like.device).unsqueeze(1)


def exact_sqrt(values: Tensor, out: Tensor) -> Tensor:
    """The correctly rounded square root of ``values``, written into ``out`` (any shape) and returned.

    On the CPU through NumPy (``torch.sqrt`` there may be one unit in the last place off);
    elsewhere ``torch.sqrt``, which is exact on CUDA.
    """
    if values.device.type == "cpu":
        numpy.sqrt(values.numpy(), out=out.numpy())
        return out
    return torch.sqrt(values, out=out)


class StackedAdam:
    """Adam's update (AdamW's when ``decoupled``) for K members' (K, P) parameter buffers.

    Per member and per number, with t the step (from 1), in the fused kernel's order:

        g = grad + weight_decay * p             Adam: one rounding (skipped when weight_decay is 0)
        p = p * (1 - lr * weight_decay)         AdamW instead (the factor rounded once from double)
        m = lerp(m, g, 1 - beta1)               m + (1 - beta1)(g - m), one fused rounding after g - m
        v = beta2 v + (1 - beta2) g g           see the module docstring for its roundings
        denom = sqrt(v) / sqrt(1 - beta2^t) + eps
        p = p + ((-lr / (1 - beta1^t)) m) / denom

    Args:
        weight_decay: one value per member.
        decoupled: AdamW (weight decay applied to the parameters) rather than Adam (added to the gradient).
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the moments).
        sizes: the numbers in each parameter tensor of a member, in the buffer's order (for the
            kernel's scalar-loop columns); None: none are treated apart.
        tail_width: the kernel's vector width; by default `adam_tail_width` on the CPU, none elsewhere.
    """

    def __init__(self, weight_decay: Sequence[float], decoupled: bool, like: Tensor,
                 sizes: Sequence[int] | None = None, tail_width: int | None = None) -> None:
        self.decoupled = decoupled
        # (K, 1): Adam's in the parameters' dtype (a kernel operand); AdamW's in float64 (1 - lr wd is taken in double).
        self.weight_decay = (column(weight_decay, like, torch.float64 if decoupled else None)
                             if any(weight_decay) else None)
        self.exp_avg = torch.zeros_like(like)  # (K, P) first moment m
        self.exp_avg_sq = torch.zeros_like(like)  # (K, P) second moment v
        self.steps = 0
        if tail_width is None and sizes is not None and like.device.type == "cpu":
            tail_width = adam_tail_width("adamw" if decoupled else "adam", like.dtype)
        tail = tail_columns(sizes, tail_width) if sizes is not None and tail_width else None
        self.tail = tail.to(like.device) if tail is not None and len(tail) else None  # (T,) columns

    @property
    def state_tensors(self) -> list[Tensor]:
        """The tensors the update keeps between steps: m and v, (K, P) each."""
        return [self.exp_avg, self.exp_avg_sq]

    def step(self, parameters: Tensor, grads: Tensor, negative_lr: Tensor, out: Tensor) -> Tensor:
        """Write the updated parameters into ``out`` (K, P) and return it; ``grads`` (K, P) is used up as scratch.

        Args:
            parameters: (K, P) the current parameters (left unchanged).
            grads: (K, P) this step's gradients.
            negative_lr: (K, 1) minus each member's learning rate for this step (float64, or the parameters' dtype).
        """
        beta1, beta2 = BETAS
        self.steps += 1
        negative_lr = negative_lr.double()
        g, base = grads, parameters
        if self.weight_decay is not None and not self.decoupled:
            g.addcmul_(parameters, self.weight_decay)  # g = grad + wd p
        elif self.weight_decay is not None:
            base = torch.mul(parameters, (1 + negative_lr * self.weight_decay).to(parameters.dtype), out=out)
        self.exp_avg.lerp_(g, 1 - beta1)
        tail = None
        if self.tail is not None:  # the scalar loop's v = fma(v, beta2, ((1 - beta2) g) g)
            tail_grads = g.index_select(1, self.tail)
            tail = torch.addcmul(tail_grads.mul(1 - beta2).mul_(tail_grads), self.exp_avg_sq.index_select(1, self.tail),
                                 torch.tensor(beta2, dtype=g.dtype, device=g.device))
        self.exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        if tail is not None:
            self.exp_avg_sq.index_copy_(1, self.tail, tail)
        denom = exact_sqrt(self.exp_avg_sq, out=g).div_(math.sqrt(1 - beta2 ** self.steps)).add_(ADAM_EPS)
        step_size = (negative_lr / (1 - beta1 ** self.steps)).to(parameters.dtype)  # (K, 1) -lr / (1 - beta1^t)
        update = torch.mul(self.exp_avg, step_size).div_(denom)
        if base is out:
            return out.add_(update)
        return torch.add(parameters, update, out=out)


class StackedRMSprop:
    """RMSprop's update (not centered) for K members' (K, P) parameter buffers, as PyTorch's foreach path takes it.

    Per member and per number, each line one PyTorch operation and its roundings:

        g = grad + weight_decay * p            one rounding (skipped when weight_decay is 0)
        s = alpha s + (1 - alpha) g g          ``s.mul_(alpha).addcmul_(g, g, value=1 - alpha)``
        avg = sqrt(s) + eps                    ``torch.sqrt``, as the foreach path calls it
        with momentum:     buf = momentum buf + g / avg,  p = p + (-lr) buf       (``add_(buf, alpha=-lr)``)
        without momentum:  p = p + ((-lr) g) / avg                                 (``addcdiv_(g, avg, value=-lr)``)

    A member whose momentum is 0 takes the second form even where others take the first, as its run would.

    Args:
        momentum, weight_decay: one value per member.
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the state).
    """

    def __init__(self, momentum: Sequence[float], weight_decay: Sequence[float], like: Tensor) -> None:
        self.weight_decay = column(weight_decay, like) if any(weight_decay) else None
        self.momentum = column(momentum, like) if any(momentum) else None  # None: no member uses momentum
        # The members without momentum, as a (K, 1) mask, when some others have it; else None.
        self.plain = (torch.tensor([value == 0 for value in momentum], device=like.device).unsqueeze(1)
                      if any(momentum) and not all(momentum) else None)
        self.square_avg = torch.zeros_like(like)  # (K, P)
        self.buffers = torch.zeros_like(like) if self.momentum is not None else None  # (K, P)

    @property
    def state_tensors(self) -> list[Tensor]:
        """The tensors the update keeps between steps: the mean square and, with momentum, its buffer, (K, P) each."""
        return [self.square_avg] + ([self.buffers] if self.buffers is not None else [])

    def step(self, parameters: Tensor, grads: Tensor, negative_lr: Tensor, out: Tensor) -> Tensor:
        """Write the updated parameters into ``out`` (K, P) and return it; ``grads`` (K, P) is used up as scratch.

        Args:
            parameters: (K, P) the current parameters (left unchanged).
            grads: (K, P) this step's gradients.
            negative_lr: (K, 1) minus each member's learning rate for this step (float64, or the parameters' dtype).
        """
        negative_lr = negative_lr.to(parameters.dtype)
        g = grads
        if self.weight_decay is not None:
            g.addcmul_(parameters, self.weight_decay)  # g = grad + wd p
        self.square_avg.mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
        avg = torch.sqrt(self.square_avg).add_(RMSPROP_EPS)
        if self.momentum is None:
            return torch.add(parameters, g.mul_(negative_lr).div_(avg), out=out)  # p + ((-lr) g) / avg
        self.buffers.mul_(self.momentum).addcdiv_(g, avg)  # buf = mu buf + g / avg
        new = torch.addcmul(parameters, self.buffers, negative_lr, out=out)  # p + (-lr) buf
        if self.plain is not None:
            new.copy_(torch.where(self.plain, parameters + g.mul_(negative_lr).div_(avg), new))
        return new


class StackedAdagrad:
    """Adagrad's update (lr_decay 0) for K members' (K, P) parameter buffers, as the fused CPU kernel takes it.

    Per member and per number:

        g = grad + weight_decay * p          one rounding (skipped when weight_decay is 0)
        s = s + g g                          one rounding
        p = p + ((-lr) g) / (sqrt(s) + eps)

    Args:
        weight_decay: one value per member.
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the sums of squares).
    """

    def __init__(self, weight_decay: Sequence[float], like: Tensor) -> None:
        self.weight_decay = column(weight_decay, like) if any(weight_decay) else None
        self.sum = torch.zeros_like(like)  # (K, P)

    @property
    def state_tensors(self) -> list[Tensor]:
        """The tensors the update keeps between steps: the sum of squared gradients, (K, P)."""
        return [self.sum]

    def step(self, parameters: Tensor, grads: Tensor, negative_lr: Tensor, out: Tensor) -> Tensor:
        """Write the updated parameters into ``out`` (K, P) and return it; ``grads`` (K, P) is used up as scratch.

        Args:
            parameters: (K, P) the current parameters (left unchanged).
            grads: (K, P) this step's gradients.
            negative_lr: (K, 1) minus each member's learning rate for this step (float64, or the parameters' dtype).
        """
        g = grads
        if self.weight_decay is not None:
            g.addcmul_(parameters, self.weight_decay)  # g = grad + wd p
        self.sum.addcmul_(g, g)  # s + g g
        std = exact_sqrt(self.sum, out=torch.empty_like(g)).add_(ADAGRAD_EPS)
        update = g.mul_(negative_lr.to(parameters.dtype)).div_(std)
        return torch.add(parameters, update, out=out)


@functools.cache
def adam_tail_width(optimizer: str, dtype: torch.dtype) -> int | None:
    """The vector width W of PyTorch's fused CPU ``optimizer`` ("adam", "adamw") kernel, checked bit for bit; None if unknown.

    Two steps from random moments, taken by ``torch.optim.Adam(fused=True)`` (or AdamW) on 64
    tensors of 63 numbers and by `StackedAdam` for each candidate W; the W whose parameters and
    moments agree exactly is the kernel's. None when none does: `StackedAdam` then treats no
    columns apart.
    """
    generator = torch.Generator().manual_seed(0)
    draw: Callable[[], Tensor] = lambda: torch.randn(64, _PROBE_SIZE, generator=generator, dtype=dtype)  # noqa: E731
    start, grads = draw(), [draw() * 0.1 for _ in range(2)]
    kind = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    try:
        params = [row.clone().requires_grad_() for row in start]
        reference = kind(params, lr=0.05, weight_decay=1e-2, fused=True)
        for grad in grads:
            for param, row in zip(params, grad):
                param.grad = row.clone()
            reference.step()
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this dtype in this torch
        return None
    want = [torch.stack([param.detach() for param in params])] + [
        torch.stack([reference.state[param][key] for param in params]) for key in ("exp_avg", "exp_avg_sq")]
    for width in _WIDTHS:
        adam = StackedAdam([1e-2] * 64, optimizer == "adamw", like=start, sizes=[_PROBE_SIZE], tail_width=width)
        got = start
        for grad in grads:
            got = adam.step(got, grad.clone(), torch.full((64, 1), -0.05, dtype=torch.float64), out=torch.empty_like(start))
        if all(torch.equal(a, b) for a, b in zip([got, *adam.state_tensors], want)):
            return width
    return None
