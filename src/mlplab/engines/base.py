"""The interface every engine implements (see `mlplab.engines` for the table of what each trains)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor

# ``step(images, labels) -> (outputs, loss)``: one optimizer step on a batch; the outputs
# (B, C) detached, the loss the batch mean as a 0-d tensor or a float.
Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor | float]]


class Engine(ABC):
    """A way of computing a batch's gradients: what it can train, and its training step."""

    name: ClassVar[str]

    @abstractmethod
    def unsupported(self, model: Any, loss: Any, optimizer: Any) -> str | None:
        """Why this engine cannot train ``model`` with ``loss`` and ``optimizer``; None if it can.

        ``model`` may be an ``nn.Module`` or an MLP's `ModelConfig`, ``optimizer`` a torch
        optimizer or its name, so a run can be refused before its data loads.
        """

    @abstractmethod
    def step(self, model: Any, loss: Any, optimizer: Any, compute_dtype: Any = None) -> Step:
        """The training step for this model, loss and optimizer (refused if `unsupported`).

        ``compute_dtype``: ``torch.bfloat16`` for mixed precision (`mlplab.precision`), None for the
        parameters' own dtype throughout.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
