"""SGD for K members at once, each with its own lr, momentum, weight decay and Nesterov flag.

The update of one member is PyTorch's SGD (dampening 0), in the order and roundings of
its fused CPU kernel, the one mlplab's single runs take (`mlplab.engines.optimizer_step`):

    g = grad + weight_decay * p            one rounding (skipped when weight_decay is 0)
    buf = momentum * buf + g               two roundings (buf = g at the first step; skipped when momentum is 0)
    g = g + momentum * buf   if nesterov,  one rounding; else g = buf
    p = p + (-lr) * g                      one rounding

"One rounding" is a fused multiply-add, here ``torch.addcmul``, whose CPU kernel rounds
once as that kernel does. One detail follows the kernel's machine code rather than its
source: it walks each tensor in vectors of W numbers and finishes the last (numel mod W)
in a scalar loop, where the compiler fused the momentum update too (one rounding). Which
W (8 floats on an AVX2 build) is found once per process by `kernel_tail_width`, which
also checks the whole update bit for bit against the kernel; if anything differs, the
update keeps the formulas above and matches a single run to rounding only.

Every coefficient is a (K, 1) column of the parameters' dtype, so one operation on the
whole (K, P) buffers updates every layer of every member; where members differ in a flag,
the flag is a mask. A member whose momentum or weight decay is 0 while others' are not
gets the numbers it would alone: buf = 0 buf + g = g, and g + 0 p = g.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

_PROBE_SIZE = 63  # numbers per probe tensor: 63 mod W differs for every W in 1, 2, 4, ..., 64
_WIDTHS = (1, 2, 4, 8, 16, 32, 64)


def tail_columns(sizes: Sequence[int], width: int) -> Tensor:
    """Columns of a (K, P) buffer, tensors of ``sizes`` end to end, that a W-wide kernel leaves to its scalar loop."""
    columns, start = [], 0
    for size in sizes:
        columns.extend(range(start + size - size % width, start + size))
        start += size
    return torch.tensor(columns, dtype=torch.int64)


@functools.cache
def kernel_tail_width(dtype: torch.dtype) -> int | None:
    """The vector width W of PyTorch's fused CPU SGD kernel for ``dtype``, checked bit for bit; None if unknown.

    One SGD step (momentum, Nesterov, weight decay) on 64 tensors of 63 random numbers,
    taken by ``torch.optim.SGD(fused=True)`` and by `StackedSGD` for each candidate W; the
    W whose parameters and momentum buffers agree exactly is the kernel's. None when none
    does (another torch, or no fused kernel): `StackedSGD` then uses no scalar-loop columns.
    """
    generator = torch.Generator().manual_seed(0)
    draw = lambda: torch.randn(64, _PROBE_SIZE, generator=generator, dtype=dtype)  # noqa: E731
    start, grads, buffers = draw(), draw() * 0.1, draw() * 0.1
    lr, momentum, weight_decay = 0.05, 0.9, 1e-3
    try:
        params = [row.clone().requires_grad_() for row in start]
        optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay,
                                    fused=True)
        for param, grad, buffer in zip(params, grads, buffers):
            param.grad = grad.clone()
            optimizer.state[param]["momentum_buffer"] = buffer.clone()
        optimizer.step()
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this dtype in this torch
        return None
    want = torch.stack([param.detach() for param in params])
    want_buffers = torch.stack([optimizer.state[param]["momentum_buffer"] for param in params])
    for width in _WIDTHS:
        sgd = StackedSGD([momentum] * 64, [weight_decay] * 64, [True] * 64, like=start, sizes=[_PROBE_SIZE],
                         tail_width=width)
        sgd.buffers.copy_(buffers)
        got = sgd.step(start, grads.clone(), torch.full((64, 1), -lr, dtype=dtype), out=torch.empty_like(start))
        if torch.equal(got, want) and torch.equal(sgd.buffers, want_buffers):
            return width
    return None


class StackedSGD:
    """SGD's update for K members' (K, P) parameter buffers; learning rates come with every step.

    Args:
        momentum, weight_decay, nesterov: one value per member.
        like: a (K, P) tensor of the parameters' shape, dtype and device (for the momentum buffers).
        sizes: the numbers in each parameter tensor of a member, in the buffer's order (for the
            kernel's scalar-loop columns); None: none are treated apart.
        tail_width: the kernel's vector width; by default `kernel_tail_width` on the CPU, none elsewhere.
    """

    def __init__(self, momentum: Sequence[float], weight_decay: Sequence[float], nesterov: Sequence[bool],
                 like: Tensor, sizes: Sequence[int] | None = None, tail_width: int | None = None) -> None:
        def column(values: Sequence[float]) -> Tensor:
            return torch.tensor(values, dtype=torch.float64).to(like.dtype).to(like.device).unsqueeze(1)

        self.momentum = column(momentum) if any(momentum) else None  # None: no member uses momentum
        self.weight_decay = column(weight_decay) if any(weight_decay) else None
        # Nesterov for every member (True), none (False), or a (K, 1) mask of those that use it.
        self.nesterov: bool | Tensor = all(nesterov) or (
            torch.tensor(nesterov, device=like.device).unsqueeze(1) if any(nesterov) else False)
        self.buffers = torch.zeros_like(like) if self.momentum is not None else None  # (K, P)
        if tail_width is None and sizes is not None and like.device.type == "cpu":
            tail_width = kernel_tail_width(like.dtype)
        tail = tail_columns(sizes, tail_width) if sizes is not None and tail_width else None
        self.tail = tail.to(like.device) if tail is not None and len(tail) else None  # (T,) columns

    @property
    def state_tensors(self) -> list[Tensor]:
        """The tensors the update keeps between steps: the momentum buffers (K, P), if any member uses momentum."""
        return [self.buffers] if self.buffers is not None else []

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
        if self.momentum is not None:
            buffers = self._update_buffers(g)  # buf = mu buf + g
            if self.nesterov is True:
                g.addcmul_(buffers, self.momentum)  # g = g + mu buf
            elif self.nesterov is False:
                g = buffers
            else:
                g = torch.where(self.nesterov, g.addcmul_(buffers, self.momentum), buffers)
        return torch.addcmul(parameters, g, negative_lr, out=out)  # p + (-lr) g

    def _update_buffers(self, g: Tensor) -> Tensor:
        """buf = mu buf + g: two roundings, one in the kernel's scalar-loop columns."""
        if self.tail is None:
            return self.buffers.mul_(self.momentum).add_(g)
        tail = torch.addcmul(g.index_select(1, self.tail), self.buffers.index_select(1, self.tail), self.momentum)
        return self.buffers.mul_(self.momentum).add_(g).index_copy_(1, self.tail, tail)
