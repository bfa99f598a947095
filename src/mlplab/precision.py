"""Mixed precision: what ``--precision`` means for a training step, and where it applies.

Two settings (`mlplab.choices.PRECISIONS`, named as Lightning names them):

    32-true     every operation in float32 (the default).
    bf16-mixed  the matrix products of the forward and backward passes in bfloat16, with float32
                accumulation; the weights, the optimizer and its state, the loss, its gradient,
                the bias gradients and every evaluation stay float32. The manual engine casts the
                weights once per step (`mlplab.engines.manual.ManualStep`); the autograd engine runs
                forward and loss under ``torch.autocast``.

bfloat16 keeps float32's range with an 8-bit mantissa, so no loss scaling is needed. It pays
where the hardware multiplies bfloat16 natively: CPUs with AVX512-BF16 or AMX (recent Xeon and
EPYC), and GPUs from NVIDIA's Ampere on. On the 2-core AMD EPYC this project is developed on,
a (256, 1024) by (1024, 1024) product takes 1.3 ms in bfloat16 against 3.2-6.2 ms in float32
(the five products of a 784-1024-1024-10 step at batch 256: 6.5 ms against 19.7 ms), and the
fast and fast99 recipes train 1.7x sooner at the same accuracy (docs/how-to/recipes.md; best uses it too). Elsewhere
PyTorch emulates it, slower than float32. A run in bf16-mixed is still bit for bit the same on
resume, and as seeded as any other, but its numbers differ from a float32 run's in the last
digits of every product.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.choices import PRECISIONS
from mlplab.errors import MlplabError, check_choice

if TYPE_CHECKING:  # the config checks a precision without importing torch
    import torch

# The name of each precision's matrix-product dtype in torch; None: the parameters' own.
COMPUTE_DTYPES: dict[str, str | None] = {"32-true": None, "bf16-mixed": "bfloat16"}


def compute_dtype(precision: str) -> torch.dtype | None:
    """The dtype ``precision``'s matrix products run in (None: the parameters' own, float32)."""
    import torch

    check_choice("precision", precision, PRECISIONS)
    name = COMPUTE_DTYPES[precision]
    return None if name is None else getattr(torch, name)


def check_precision(precision: str, engine: str, device: str = "cpu") -> None:
    """Refuse, in one line, a precision the engine (a name) or device (a type: cpu, cuda, mps) cannot compute in."""
    check_choice("precision", precision, PRECISIONS)
    if COMPUTE_DTYPES[precision] is None:
        return
    if engine == "scratch":
        raise MlplabError(
            f"--precision {precision} needs PyTorch's matrix products; the scratch engine computes in "
            "NumPy, which has no bfloat16: use --engine manual, autograd or auto, or --precision 32-true"
        )
    if device == "mps":
        raise MlplabError(
            f"--precision {precision} is not offered on mps (untested there); add --precision 32-true, or --device cpu"
        )
