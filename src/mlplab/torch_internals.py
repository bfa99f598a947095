"""Every private PyTorch call and every copy of a kernel's rounding, each behind a probe with its public fallback.

mlplab reaches past PyTorch's public API in a few places, for speed (the lab's nets cost
per-call overhead, not arithmetic) or so that a sweep member equals its single run bit for
bit. Each place is a `Probe` in `PROBES`: its name, the private thing it uses, the public
path taken otherwise, and a check, run once per process and key (an activation, a dtype),
that says whether the private path works *and is exact here*:

    fused_sgd_kernel     ``torch._fused_sgd_`` called directly          ``optimizer.step()``
    optimizer_hooks      the optimizer step-hook registries             ``optimizer.step()``
    activation_backward  ``torch.ops.aten.*_backward`` kernels          f'(z) written with public operations
    fused_optimizer      ``fused=True`` for an optimizer, device, dtype ``foreach=True`` (or PyTorch's default)
    sgd_tail_width       the fused SGD kernel's scalar-loop rounding    the update's formulas (equal to rounding)
    adam_tail_width      the fused Adam kernel's scalar-loop rounding   the update's formulas (equal to rounding)
    exact_sqrt           NumPy's sqrt on a tensor's memory              ``torch.sqrt`` (may be 1 ulp off on CPU)
    batched_products     ``bmm`` computing each slice as ``mm`` does    none needed: members equal runs to rounding

A new PyTorch release or another CPU (AVX-512, Apple silicon) changes what these checks
find, and this file only. The rest of the package asks `result(name, *key)` once, where it
builds a step or an optimizer (never per step), and reads as public PyTorch. Setting
``MLPLAB_NO_TORCH_INTERNALS=1`` (or `use_internals(False)`) makes every probe answer no:
every caller then takes its public path, and a sweep member equals its run to rounding.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy
import torch
import torch.optim.optimizer as optimizer_module
from torch import Tensor
from torch.optim import Optimizer

from mlplab.models import ACTIVATION_FUNCTIONS

ENV_SWITCH = "MLPLAB_NO_TORCH_INTERNALS"  # "1": every probe answers no


@dataclass(frozen=True)
class Probe:
    """One use of PyTorch internals: what it uses, what is taken without it, and its check."""

    name: str
    uses: str  # the private thing (or the observed kernel behaviour) relied on
    fallback: str  # the public path taken when the check fails or internals are off
    check: Callable[..., Any]  # (*key) -> a true value (True, a width) when the private path works and is exact


PROBES: dict[str, Probe] = {}
_results: dict[tuple[Any, ...], Any] = {}
_enabled = [True]


def _probe(name: str, uses: str, fallback: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the check of probe ``name``."""

    def register(check: Callable[..., Any]) -> Callable[..., Any]:
        PROBES[name] = Probe(name, uses, fallback, check)
        return check

    return register


def internals_enabled() -> bool:
    """Whether private paths may be taken at all: not turned off by `use_internals` or ``MLPLAB_NO_TORCH_INTERNALS``."""
    return _enabled[0] and os.environ.get(ENV_SWITCH, "") in ("", "0")


def use_internals(enabled: bool) -> None:
    """Allow (True) or forbid (False) every private path from now on, for this process."""
    _enabled[0] = enabled


def result(name: str, *key: Any) -> Any:
    """Probe ``name``'s answer for ``key``, checked once per process: a true value where the private path may be taken.

    None when internals are off; otherwise whatever the check returned (False or None for no).
    """
    if not internals_enabled():
        return None
    if (name, *key) not in _results:
        _results[(name, *key)] = PROBES[name].check(*key)
    return _results[(name, *key)]


def works(name: str, *key: Any) -> bool:
    """Whether probe ``name`` says yes for ``key`` (see `result`)."""
    return bool(result(name, *key))


def forget() -> None:
    """Forget every cached answer (tests that change what a probe finds)."""
    _results.clear()


def _warn(kernel: str, reason: str) -> None:
    warnings.warn(
        f"mlplab: the fast SGD step is off for this process (torch.{kernel}: {reason}); "
        "training continues with optimizer.step(), the same update, somewhat slower",
        RuntimeWarning,
        stacklevel=4,
    )


# --- The fused SGD kernel, called directly (`mlplab.engines.optimizer_step`) -------------------------------------

SGD_KERNEL = "_fused_sgd_"  # torch._fused_sgd_: the kernel behind SGD(fused=True).step()
_HOOK_REGISTRIES = (
    (None, "_optimizer_step_pre_hooks"),
    (None, "_optimizer_step_post_hooks"),
    (optimizer_module, "_global_optimizer_pre_hooks"),
    (optimizer_module, "_global_optimizer_post_hooks"),
)


def sgd_kernel() -> Any:
    """``torch._fused_sgd_``, or None where this torch has none."""
    return getattr(torch, SGD_KERNEL, None)


def hooks_absent(optimizer: Optimizer) -> bool:
    """True only when no step hook is registered, on ``optimizer`` or globally; False when unknowable."""
    for holder, name in _HOOK_REGISTRIES:
        registry = getattr(optimizer if holder is None else holder, name, None)
        if registry is None or len(registry) != 0:
            return False
    return True


def fused_sgd_step(
    optimizer: Optimizer, params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], kernel: Any = None
) -> None:
    """The fused kernel with the arguments ``SGD(fused=True).step()`` gives it after its first step."""
    group = optimizer.param_groups[0]
    (kernel or sgd_kernel())(
        params,
        grads,
        buffers,
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        lr=group["lr"],
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        maximize=group["maximize"],
        is_first_step=False,
        grad_scale=None,
        found_inf=None,
    )


@_probe(
    "optimizer_hooks",
    "the step-hook registries of torch.optim.optimizer and of each optimizer",
    "optimizer.step(), which runs the hooks itself",
)
def _hook_registries_readable() -> bool:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    return all(hasattr(optimizer if holder is None else holder, name) for holder, name in _HOOK_REGISTRIES)


@_probe(
    "fused_sgd_kernel",
    f"torch.{SGD_KERNEL} called directly, without .step()'s bookkeeping (~40 µs a step)",
    "optimizer.step(): the same kernel through the public API",
)
def _fused_sgd_kernel_exact() -> bool:
    """Two SGD steps (momentum, Nesterov, weight decay) by ``.step()`` and by the kernel directly: bit for bit?"""
    results = []
    for direct in (False, True):
        generator = torch.Generator().manual_seed(0)
        params = [
            torch.randn(5, 3, generator=generator).requires_grad_(),
            torch.randn(5, generator=generator).requires_grad_(),
        ]
        try:
            optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3, fused=True)
            for step in range(2):
                grads = [torch.randn(p.shape, generator=generator) for p in params]
                for p, grad in zip(params, grads, strict=True):
                    p.grad = grad
                if direct and step > 0:
                    buffers = [optimizer.state[p]["momentum_buffer"] for p in params]
                    fused_sgd_step(optimizer, params, grads, buffers)
                else:
                    optimizer.step()
        except Exception as error:  # noqa: BLE001 - any failure of private API means: use the public one
            if direct:
                _warn(SGD_KERNEL, f"{type(error).__name__}: {error}")
            return False  # not direct: this torch has no fused SGD at all; .step() it is
        results.append([p.detach().clone() for p in params])
    same = all(torch.equal(a, b) for a, b in zip(*results, strict=True))
    if not same:
        _warn(SGD_KERNEL, "its update differs from optimizer.step()")
    return same


# --- Activation derivatives (`mlplab.engines.manual`, `mlplab.sweep.stacked`) --------------------------------------

ActivationGradient = Callable[[Tensor, Tensor, Tensor], Tensor]  # (grad, z, h) -> grad * f'(z), h = f(z)
_aten_ops: dict[str, Callable[..., Tensor]] = {}


def _aten(name: str) -> Callable[..., Tensor]:
    """``torch.ops.aten.<name>``'s C++ function where there is one (the packet's ``__call__`` costs ~2 µs a call)."""
    if name not in _aten_ops:
        packet = getattr(torch.ops.aten, name)
        _aten_ops[name] = getattr(packet, "_op", packet)
    return _aten_ops[name]


# f'(z) times the incoming gradient, given z (pre-activation) and h = f(z): the kernels autograd runs.
KERNEL_GRADIENTS: dict[str, ActivationGradient] = {
    "relu": lambda grad, z, h: _aten("threshold_backward")(grad, h, 0),
    "sigmoid": lambda grad, z, h: _aten("sigmoid_backward")(grad, h),
    "tanh": lambda grad, z, h: _aten("tanh_backward")(grad, h),
    "leaky_relu": lambda grad, z, h: _aten("leaky_relu_backward")(grad, z, 0.01, False),
    "elu": lambda grad, z, h: _aten("elu_backward")(grad, 1.0, 1, 1, True, h),
    "gelu": lambda grad, z, h: _aten("gelu_backward")(grad, z),
}

# The same derivatives written with public operations: the fallback.
PUBLIC_GRADIENTS: dict[str, ActivationGradient] = {
    "relu": lambda grad, z, h: grad * (h > 0),  # grad * [z > 0]
    "sigmoid": lambda grad, z, h: grad * h * (1 - h),  # grad * h (1 - h)
    "tanh": lambda grad, z, h: grad * (1 - h * h),  # grad * (1 - h^2)
    "leaky_relu": lambda grad, z, h: torch.where(z > 0, grad, grad * 0.01),  # grad * (1 or 0.01)
    "elu": lambda grad, z, h: torch.where(z > 0, grad, grad * (h + 1)),  # grad * (1 or h + 1)
    # grad * (Phi(z) + z phi(z)), Phi and phi the standard normal CDF and density
    "gelu": lambda grad, z, h: (
        grad * (0.5 * (1 + torch.erf(z * 0.5**0.5)) + z * torch.exp(-0.5 * z * z) * (2 * torch.pi) ** -0.5)
    ),
}


@_probe(
    "activation_backward",
    "torch.ops.aten.<f>_backward, the kernels autograd runs (one call each)",
    "PUBLIC_GRADIENTS: f'(z) written with public operations, equal to 1e-12 in float64",
)
def _aten_kernel_agrees(activation: str) -> bool:
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(64, dtype=torch.float64, generator=generator) * 3
    grad = torch.randn(64, dtype=torch.float64, generator=generator)
    h = ACTIVATION_FUNCTIONS[activation](z)
    try:
        kernel = KERNEL_GRADIENTS[activation](grad, z, h)
    except Exception:  # noqa: BLE001 - a renamed or changed internal kernel: use the public formula
        return False
    return torch.allclose(kernel, PUBLIC_GRADIENTS[activation](grad, z, h), rtol=1e-10, atol=1e-12)


def activation_gradient(activation: str) -> ActivationGradient:
    """``activation``'s derivative: autograd's kernel where the probe passes, else the public formula."""
    return KERNEL_GRADIENTS[activation] if works("activation_backward", activation) else PUBLIC_GRADIENTS[activation]


# --- Fused optimizers (`mlplab.optim`) ----------------------------------------------------------------------------

# The optimizers with a fused kernel in recent torch, by `mlplab.choices.OPTIMIZERS` name.
FUSED_OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
}


@_probe(
    "fused_optimizer",
    "fused=True: whether this torch has the kernel for the optimizer, device and dtype "
    "(it fails at the first step, not at construction)",
    "foreach=True on CPU and CUDA, else the default loop",
)
def _fused_step_runs(name: str, device: torch.device, dtype: torch.dtype) -> bool:
    probe = torch.zeros(1, device=device, dtype=dtype, requires_grad=True)
    probe.grad = torch.zeros_like(probe)
    try:
        FUSED_OPTIMIZERS[name]([probe], lr=0.1, fused=True).step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


# --- Copies of the fused CPU kernels' rounding (`mlplab.sweep.optimizers`) ----------------------------------------
#
# The fused CPU kernels walk each tensor in vectors of W numbers and finish the last (numel
# mod W) in a scalar loop, where the compiler fused a multiply-add that the vector loop
# rounds twice. W (8 floats on an AVX2 build) is found by trying every candidate against the
# kernel bit for bit; none matching means another CPU or torch: the formulas, equal to rounding.

_WIDTHS = (1, 2, 4, 8, 16, 32, 64)
_PROBE_SIZE = 63  # numbers per probe tensor: 63 mod W differs for every W in `_WIDTHS`
_ROWS = 64  # probe tensors


def tail_columns(sizes: Sequence[int], width: int) -> Tensor:
    """Columns of a (K, P) buffer, tensors of ``sizes`` end to end, that a W-wide kernel leaves to its scalar loop."""
    columns: list[int] = []
    start = 0
    for size in sizes:
        columns.extend(range(start + size - size % width, start + size))
        start += size
    return torch.tensor(columns, dtype=torch.int64)


def scalar_loop_columns(
    probe: str, dtype: torch.dtype, device: torch.device, sizes: Sequence[int] | None, *key: Any
) -> Tensor | None:
    """The (T,) columns a fused CPU kernel rounds in its scalar loop, where probe ``probe`` found its width; else
    None."""
    if sizes is None or device.type != "cpu":
        return None
    width = result(probe, dtype, *key)
    columns = tail_columns(sizes, width) if width else None
    return columns.to(device) if columns is not None and len(columns) else None


def momentum_update(buffers: Tensor, g: Tensor, momentum: Tensor, tail: Tensor | None) -> Tensor:
    """buf = mu buf + g in place, as the fused SGD kernel rounds it: twice, once (fma) in its scalar-loop ``tail``."""
    if tail is None:
        return buffers.mul_(momentum).add_(g)
    fused = torch.addcmul(g.index_select(1, tail), buffers.index_select(1, tail), momentum)
    return buffers.mul_(momentum).add_(g).index_copy_(1, tail, fused)


def second_moment_update(exp_avg_sq: Tensor, g: Tensor, beta2: float, tail: Tensor | None) -> Tensor:
    """v = beta2 v + (1 - beta2) g g in place, as the fused Adam kernel rounds it (the scalar loop:
    fma(v, beta2, ...))."""
    if tail is None:
        return exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    tail_grads = g.index_select(1, tail)
    fused = torch.addcmul(  # read before v is updated in place
        tail_grads.mul(1 - beta2).mul_(tail_grads),
        exp_avg_sq.index_select(1, tail),
        torch.tensor(beta2, dtype=g.dtype, device=g.device),
    )
    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    return exp_avg_sq.index_copy_(1, tail, fused)


def _numpy_sqrt(values: Tensor, out: Tensor) -> Tensor:
    numpy.sqrt(values.numpy(), out=out.numpy())
    return out


def kernel_sqrt(dtype: torch.dtype, device: torch.device) -> Callable[[Tensor, Tensor], Tensor]:
    """``sqrt(values, out)`` as the fused kernels take it (correctly rounded): NumPy's on the CPU where exact.

    Elsewhere ``torch.sqrt``: exact on CUDA, one unit in the last place off for some numbers on a CPU.
    """
    exact = torch.device(device).type == "cpu" and works("exact_sqrt", dtype)
    return _numpy_sqrt if exact else lambda values, out: torch.sqrt(values, out=out)


@_probe(
    "exact_sqrt",
    "numpy.sqrt on a CPU tensor's memory: the processor's correctly rounded square root, as the fused kernels take it",
    "torch.sqrt (MKL's vector math on the CPU: one unit in the last place off for some)",
)
def _numpy_sqrt_exact(dtype: torch.dtype) -> bool:
    values = torch.rand(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype) * 10
    try:
        got = torch.from_numpy(numpy.sqrt(values.numpy()))
    except (RuntimeError, TypeError):
        return False
    want = torch.tensor([math.sqrt(value) for value in values.tolist()], dtype=torch.float64).to(dtype)
    return torch.equal(got, want)  # float32: sqrt in double, rounded once more, is correctly rounded


def _draw(dtype: torch.dtype, count: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(_ROWS, _PROBE_SIZE, generator=generator, dtype=dtype) for _ in range(count)]


def _fused_steps(
    kind: Callable[..., Optimizer], start: Tensor, grads: Sequence[Tensor], state: dict[str, Tensor], **options: Any
) -> tuple[Tensor, dict[str, Tensor]] | None:
    """``kind(fused=True)`` from ``state``, stepped once per gradient on `_ROWS` tensors (the rows of ``start``).

    Returns the parameters and every state tensor but the step count, stacked (`_ROWS`, `_PROBE_SIZE`);
    None where this torch has no such fused kernel.
    """
    try:
        params = [row.clone().requires_grad_() for row in start]
        optimizer = kind(params, fused=True, **options)
        for k, param in enumerate(params):
            optimizer.state[param].update({name: rows[k].clone() for name, rows in state.items()})
        for grad in grads:
            for param, row in zip(params, grad, strict=True):
                param.grad = row.clone()
            optimizer.step()
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this dtype in this torch
        return None
    names = [name for name in optimizer.state[params[0]] if name != "step"]
    return (
        torch.stack([param.detach() for param in params]),
        {name: torch.stack([optimizer.state[param][name] for param in params]) for name in names},
    )


@_probe(
    "sgd_tail_width",
    "the fused CPU SGD kernel's vector width W: its scalar loop fuses buf = mu buf + g",
    "buf = mu buf + g rounded twice everywhere: the members equal their runs to rounding",
)
def _sgd_width(dtype: torch.dtype) -> int | None:
    """W for which one SGD step (momentum, Nesterov, weight decay) matches ``SGD(fused=True)`` bit for bit; else
    None."""
    start, grad, buffers = _draw(dtype, 3)
    lr, mu, wd = 0.05, 0.9, 1e-3
    want = _fused_steps(
        torch.optim.SGD,
        start,
        [grad * 0.1],
        {"momentum_buffer": buffers * 0.1},
        lr=lr,
        momentum=mu,
        nesterov=True,
        weight_decay=wd,
    )
    if want is None:
        return None
    momentum, decay = (torch.full((_ROWS, 1), value, dtype=dtype) for value in (mu, wd))
    for width in _WIDTHS:
        g, buf = (grad * 0.1).addcmul_(start, decay), buffers * 0.1  # g = grad + wd p
        buf = momentum_update(buf, g, momentum, tail_columns([_PROBE_SIZE], width))
        got = torch.addcmul(start, g.addcmul_(buf, momentum), torch.full((_ROWS, 1), -lr, dtype=dtype))
        if torch.equal(got, want[0]) and torch.equal(buf, want[1]["momentum_buffer"]):
            return width
    return None


@_probe(
    "adam_tail_width",
    "the fused CPU Adam/AdamW kernel's vector width W: its scalar loop rounds v's update "
    "as fma(v, beta2, (1 - beta2) g g), and its correctly rounded sqrt (exact_sqrt)",
    "the formulas' roundings and torch.sqrt: the members equal their runs to rounding",
)
def _adam_width(dtype: torch.dtype, decoupled: bool) -> int | None:
    """W for which two Adam (AdamW) steps match ``Adam(fused=True)`` bit for bit; else None."""
    start, *grads = _draw(dtype, 3)
    grads, (beta1, beta2), lr, wd = [grad * 0.1 for grad in grads], (0.9, 0.999), 0.05, 1e-2
    want = _fused_steps(torch.optim.AdamW if decoupled else torch.optim.Adam, start, grads, {}, lr=lr, weight_decay=wd)
    if want is None:
        return None
    for width in _WIDTHS:
        tail, p, m, v = (
            tail_columns([_PROBE_SIZE], width),
            start.clone(),
            torch.zeros_like(start),
            torch.zeros_like(start),
        )
        for t, grad in enumerate(grads, start=1):
            g = grad.clone()
            if decoupled:
                p.mul_(1 - lr * wd)
            else:
                g.addcmul_(p, torch.tensor(wd, dtype=dtype))
            m.lerp_(g, 1 - beta1)
            second_moment_update(v, g, beta2, tail)
            denom = kernel_sqrt(dtype, start.device)(v, torch.empty_like(v)).div_(math.sqrt(1 - beta2**t)).add_(1e-8)
            p.add_(torch.mul(m, -lr / (1 - beta1**t)).div_(denom))
        ours, fused = (p, m, v), (want[0], *want[1].values())
        # A state tensor this model lacks (another torch's Adam) is a mismatch, not a crash: fall back.
        if len(ours) == len(fused) and all(torch.equal(a, b) for a, b in zip(ours, fused, strict=True)):
            return width
    return None


# --- What the vectorised trainer's bit-for-bit promise rests on (`mlplab.sweep`) -----------------------------------


@_probe(
    "batched_products",
    "that bmm computes each member's slice as mm computes it alone (MKL does, on one thread; "
    "PyTorch does not promise it)",
    "none needed: the sweep's members then equal their runs to rounding",
)
def _bmm_slices_equal_mm(dtype: torch.dtype, threads: int) -> bool:
    generator = torch.Generator().manual_seed(0)
    for rows, inner, cols in ((64, 784, 16), (64, 16, 32), (32, 64, 10)):
        a = torch.randn(3, rows, inner, generator=generator, dtype=dtype)
        b = torch.randn(3, cols, inner, generator=generator, dtype=dtype).transpose(1, 2)
        batched = torch.bmm(a, b)
        if not all(torch.equal(batched[k], torch.mm(a[k], b[k])) for k in range(3)):
            return False
    return True


def bit_for_bit(optimizer: str, dtype: torch.dtype, device: torch.device | str = "cpu") -> bool:
    """Whether a sweep member trained with ``optimizer`` in ``dtype`` equals its single run bit for bit here.

    It does where its products equal the single run's (`batched_products`) and the stacked
    update copies the kernel the run takes: fused SGD's and Adam's scalar loops, fused
    Adagrad's square root. RMSprop's run takes the public foreach path, which the update
    follows with public operations. Elsewhere the members equal their runs to rounding.
    """
    device = torch.device(device)
    if device.type != "cpu" or not works("batched_products", dtype, torch.get_num_threads()):
        return False
    if optimizer in FUSED_OPTIMIZERS and not works("fused_optimizer", optimizer, device, dtype):
        return False  # the run takes foreach, whose roundings the stacked update does not copy
    if optimizer == "sgd":
        return works("sgd_tail_width", dtype)
    if optimizer in ("adam", "adamw"):
        return works("adam_tail_width", dtype, optimizer == "adamw")
    return optimizer == "rmsprop" or works("exact_sqrt", dtype)
