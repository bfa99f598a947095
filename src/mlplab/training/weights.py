"""What happens to the weights after every optimizer step: a max-norm constraint and a moving average.

`MaxNorm` is Srivastava et al.'s (2014) constraint: after each update, every unit whose
incoming weight vector (a row of a ``nn.Linear`` weight) is longer than c is scaled back to
length c. `WeightAverage` keeps an exponential moving average of the parameters
(``torch.optim.swa_utils.AveragedModel`` with PyTorch's EMA update,
avg = decay avg + (1 - decay) w, the first update copying w). With an average, `fit`
validates, tests and saves the averaged weights; the raw ones go on training.

Both are deterministic, so a resumed run stays bit for bit: the constraint needs no state,
and the average is saved in every checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mlplab.runs.state import Callback


class MaxNorm(Callback):
    """A callback: after every step, each row of every ``nn.Linear`` weight of ``model`` rescaled to
    L2 norm at most ``max_norm`` (``fit(max_norm=c)`` makes one; calling it applies the constraint once).

    Rows already shorter are left exactly as they are (``Tensor.renorm_``).
    """

    def __init__(self, model: nn.Module, max_norm: float) -> None:
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0; got {max_norm}")
        self.max_norm = float(max_norm)
        self.weights = [module.weight for module in model.modules() if isinstance(module, nn.Linear)]

    @torch.no_grad()
    def on_step_end(self) -> None:
        for weight in self.weights:
            weight.renorm_(2, 0, self.max_norm)  # dim 0: one row per unit, its incoming weights

    __call__ = on_step_end


class WeightAverage(Callback):
    """A callback: an exponential moving average of ``model``'s parameters, updated after every step
    (``fit(average=decay)`` makes one; calling it folds the current parameters in once).

    Args:
        model: the model being trained (its buffers are copied, not averaged).
        decay: the weight of the old average at each step, in (0, 1): 0.999 averages over about
            the last thousand steps.

    ``average.module`` is a copy of the model holding the averaged weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"the average's decay must be in (0, 1); got {decay}")
        self.model, self.decay = model, float(decay)
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=False)

    @property
    def module(self) -> nn.Module:
        """The model with the averaged weights."""
        return self.averaged.module

    @property
    def count(self) -> int:
        """How many steps have been averaged."""
        return int(self.averaged.n_averaged)

    def on_step_end(self) -> None:
        """Fold the model's current parameters into the average."""
        self.averaged.update_parameters(self.model)

    __call__ = on_step_end

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps besides the averaged weights themselves: the decay and the count."""
        return {"decay": self.decay, "count": self.count}

    def load(self, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Restore the average from a checkpoint's averaged weights and `state_dict`."""
        self.module.load_state_dict(weights)
        self.averaged.n_averaged.fill_(int(state["count"]))
