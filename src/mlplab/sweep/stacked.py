"""K MLPs of the same widths held as one tensor: every parameter of every member in a (K, P) buffer.

Row k of the buffer is member k's parameters in the order of ``MLP.parameters()``
(W_1 row-major, b_1, W_2, b_2, ...), so ``parameters_to_vector(model.parameters())`` is a
row and a row loads back into an `MLP` with ``vector_to_parameters``. Each layer is seen
through views of that buffer:

    W_i   (K, n_i, n_{i-1})   the rows' slice for layer i, batch stride P
    b_i   (K, n_i)

``torch.bmm(..., out=W_i view)`` writes straight into such a view, so the gradients fill
a (K, P) buffer of the same layout, and the optimizer updates all layers of all members
with a few operations on whole buffers (`mlplab.sweep.update`).

Two buffers are kept: the update writes the new parameters into the spare one, which is
checked for non-finite members before it becomes current (`swap`); a member that diverged
keeps its last finite parameters (`mlplab.sweep.vectorised`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector

from mlplab.models import MLP


def parameter_sizes(widths: Sequence[int]) -> list[int]:
    """Numbers in each parameter tensor, in the order of ``MLP.parameters()``: n_1 n_0, n_1, n_2 n_1, n_2, ..."""
    return [size for a, b in zip(widths[:-1], widths[1:]) for size in (a * b, b)]


def parameter_count(widths: Sequence[int]) -> int:
    """Scalars per member, P: the sum of n_{i-1} n_i + n_i over the layers."""
    return sum(parameter_sizes(widths))


def layer_views(flat: Tensor, widths: Sequence[int]) -> tuple[list[Tensor], list[Tensor]]:
    """The weight views (K, n_i, n_{i-1}) and bias views (K, n_i) of a (K, P) buffer."""
    count = flat.shape[0]
    weights, biases, start = [], [], 0
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        weights.append(flat[:, start:start + n_out * n_in].view(count, n_out, n_in))
        start += n_out * n_in
        biases.append(flat[:, start:start + n_out])
        start += n_out
    return weights, biases


class StackedMLP:
    """The parameters of K MLPs of widths ``widths`` as (K, P) buffers, with per-layer views.

    Args:
        widths: layer widths, input to output, e.g. (784, 16, 32, 24, 10).
        count: K, the number of members.
        dtype, device: of every buffer.
    """

    def __init__(self, widths: Sequence[int], count: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        self.widths = tuple(widths)
        self.count = count
        size = parameter_count(self.widths)
        self._buffers = [torch.zeros(count, size, dtype=dtype, device=device) for _ in range(2)]
        self._views = [layer_views(buffer, self.widths) for buffer in self._buffers]
        self._current = 0

    @classmethod
    def from_models(cls, models: Sequence[MLP], dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> "StackedMLP":
        """Stack the parameters of ``models`` (all of the same widths), converted to ``dtype`` exactly."""
        stacked = cls(models[0].widths, len(models), dtype, device)
        for row, model in zip(stacked.flat, models):
            if model.widths != stacked.widths:
                raise ValueError(f"stacked models must share their widths; got {model.widths} and {stacked.widths}")
            row.copy_(parameters_to_vector(model.parameters()).detach())
        return stacked

    @property
    def flat(self) -> Tensor:
        """The current parameters, (K, P)."""
        return self._buffers[self._current]

    @property
    def spare(self) -> Tensor:
        """The other buffer, (K, P): where an update writes the next parameters."""
        return self._buffers[1 - self._current]

    @property
    def weights(self) -> list[Tensor]:
        """W_1 .. W_L of the current buffer, each (K, n_i, n_{i-1})."""
        return self._views[self._current][0]

    @property
    def biases(self) -> list[Tensor]:
        """b_1 .. b_L of the current buffer, each (K, n_i)."""
        return self._views[self._current][1]

    def swap(self) -> None:
        """Make the spare buffer current (after an update wrote it)."""
        self._current = 1 - self._current
