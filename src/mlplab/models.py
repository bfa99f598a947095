"""The multilayer perceptron: flattened 28x28 images in, class scores out.

The forward pass is a plain loop of ``F.linear`` + a functional activation over the
Linear layers. For this lab's tiny nets the cost is Python call overhead, not arithmetic:
calling each ``nn.Linear``/``nn.ReLU`` module (as ``nn.Sequential`` does) costs roughly
10 µs more per forward than calling the functions directly (measured on a 2-core CPU).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlplab.choices import ACTIVATIONS, INITS, OUTPUTS
from mlplab.config import ModelConfig, check_setting
from mlplab.errors import MlplabError, check_choice

# Each of `mlplab.choices.ACTIVATIONS` as a function: called in forward, cheaper than one
# module call per layer.
ACTIVATION_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "leaky_relu": F.leaky_relu,  # negative slope 0.01
    "elu": F.elu,  # alpha 1.0
}


def _widths(in_features: int, hidden: Sequence[int], num_classes: int) -> tuple[int, ...]:
    """All layer widths, input to output, checked to be positive integers."""
    try:
        widths = tuple(operator.index(w) for w in (in_features, *hidden, num_classes))
    except TypeError:
        widths = ()
    if len(widths) < 2 or min(widths) <= 0:
        shown = "-".join(map(str, (in_features, *hidden, num_classes)))
        raise MlplabError(f"layer widths must be positive integers; got {shown}")
    return widths


def parameter_count(widths: Sequence[int]) -> int:
    """Weights and biases of an MLP of these widths, input to output: the sum of n_{i-1} n_i + n_i."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def check_parameter_memory(widths: Sequence[int]) -> None:
    """Refuse, in one line, an MLP whose float32 parameters cannot fit in the memory free now."""
    from mlplab.memory import check_memory

    check_memory(
        4 * parameter_count(widths),
        f"an MLP of widths {'-'.join(map(str, widths))} for its weights",
        "use narrower layers",
    )


# The defaults of `MLP(...)` are those of `ModelConfig()`: mlplab's default recipe, 784-512-10.
DEFAULT = ModelConfig()


class MLP(nn.Module):
    """Fully connected net ``in_features -> *hidden -> num_classes``.

    ``MLP()`` is mlplab's default recipe's net, 784-512-10 with ReLU (the defaults of
    `ModelConfig`); ``MLP(hidden=(16, 32, 24))`` is the labs' net.

    Args:
        in_features: inputs per sample after flattening (784 for 28x28 images).
        hidden: hidden layer widths; ``()`` gives logistic regression (one Linear).
        num_classes: outputs per sample.
        activation: one of `mlplab.choices.ACTIVATIONS`, applied after every hidden Linear.
        output: ``"logits"`` (raw scores) or ``"log_softmax"`` (log-probabilities);
            losses read this attribute to know what they are given.
        dropout: probability of zeroing a hidden activation in train mode (0 = none).
        init: ``default`` (PyTorch's), ``uniform`` (weights and biases U(-a, a) with
            a = init_range), ``xavier`` (Glorot uniform, gain 1) or ``kaiming`` (He
            normal, fan-in, ReLU gain); xavier and kaiming set the biases to 0.
        init_range: a in U(-a, a) for ``init="uniform"``; 0 < a <= `mlplab.config.MAX_INIT_RANGE` (10).

    Initialisation draws from the global torch RNG: seed it before building.
    State-dict keys are ``layers.<i>.weight`` / ``layers.<i>.bias``, i = 0 at the input.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = DEFAULT.hidden,
        num_classes: int = 10,
        activation: str = DEFAULT.activation,
        output: str = DEFAULT.output,
        dropout: float = DEFAULT.dropout,
        init: str = DEFAULT.init,
        init_range: float = DEFAULT.init_range,
    ) -> None:
        super().__init__()
        widths = _widths(in_features, hidden, num_classes)
        # Settings from Python, checked by the rules a ModelConfig checks its own with.
        check_setting("dropout", dropout)
        check_setting("init_range", init_range)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.output = check_choice("output", output, OUTPUTS)
        self.init = check_choice("init", init, INITS)
        self.init_range = init_range
        self.widths = widths  # e.g. (784, 16, 32, 24, 10)
        check_parameter_memory(widths)  # before nn.Linear allocates: one line, not the allocator's traceback
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self._activate = ACTIVATION_FUNCTIONS[activation]
        # nn.Linear already drew PyTorch's default init, in the same RNG order as an
        # nn.Sequential of the same Linears; the other schemes overwrite it.
        self._apply_init()

    def reset_parameters(self) -> None:
        """Draw fresh weights with the configured scheme, from the global RNG."""
        for layer in self.linears():
            layer.reset_parameters()  # PyTorch's default: U(+-1/sqrt(fan_in)) for both
        self._apply_init()

    def _apply_init(self) -> None:
        """Overwrite the Linears' PyTorch-default weights with the chosen scheme, if any."""
        for layer in self.linears():
            if self.init == "uniform":
                nn.init.uniform_(layer.weight, -self.init_range, self.init_range)
                nn.init.uniform_(layer.bias, -self.init_range, self.init_range)
            elif self.init == "xavier":
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
            elif self.init == "kaiming":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, 1, 28, 28) or (B, 784) inputs to (B, num_classes) logits or log-probabilities."""
        x = x.flatten(1)  # (B, in_features); a no-op view for (B, 784)
        *hidden, last = cast("Iterable[nn.Linear]", self.layers)  # as `linears`, without its list (~0.3 µs a call)
        for layer in hidden:
            x = self._activate(F.linear(x, layer.weight, layer.bias))
            if self.dropout is not None:
                x = self.dropout(x)
        x = F.linear(x, last.weight, last.bias)  # (B, num_classes) logits
        return F.log_softmax(x, dim=1) if self.output == "log_softmax" else x

    def layer_outputs(self, x: Tensor) -> list[Tensor]:
        """Every layer's output for inputs ``x``, as `forward` computes them: each hidden layer's
        activations (B, width) after dropout (none in eval mode), then the (B, num_classes) output."""
        x = x.flatten(1)
        outputs = []
        *hidden, last = self.linears()
        for layer in hidden:
            x = self._activate(F.linear(x, layer.weight, layer.bias))
            if self.dropout is not None:
                x = self.dropout(x)
            outputs.append(x)
        x = F.linear(x, last.weight, last.bias)
        outputs.append(F.log_softmax(x, dim=1) if self.output == "log_softmax" else x)
        return outputs

    def linears(self) -> list[nn.Linear]:
        """The Linear layers from input to output (weight is (out, in), bias is (out,))."""
        # __init__ fills self.layers with Linears only; a ModuleList's items are typed as any Module
        return cast("list[nn.Linear]", list(self.layers))

    @property
    def num_parameters(self) -> int:
        """Number of scalar parameters: the sum of in*out + out over the layers."""
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> str:
        """One line such as ``784-16-32-24-10 relu MLP -> logits, 14,146 parameters``."""
        kind = [self.activation, "MLP"] if len(self.widths) > 2 else ["logistic regression"]
        parts = ["-".join(map(str, self.widths)), *kind]
        if self.dropout is not None and len(self.widths) > 2:
            parts.append(f"(dropout {self.dropout.p:g})")
        return f"{' '.join(parts)} -> {self.output}, {self.num_parameters:,} parameters"

    def extra_repr(self) -> str:
        return f"widths={'-'.join(map(str, self.widths))}, activation={self.activation}, output={self.output}"


def build_model(config: ModelConfig, in_features: int = 784, num_classes: int = 10) -> MLP:
    """Build the MLP a `ModelConfig` describes (initialised from the global torch RNG)."""
    return MLP(
        in_features=in_features,
        hidden=tuple(config.hidden),
        num_classes=num_classes,
        activation=config.activation,
        output=config.output,
        dropout=config.dropout,
        init=config.init,
        init_range=config.init_range,
    )


def activation_and_dropout(model: object) -> tuple[str, bool] | None:
    """The activation and whether dropout is on, for an `MLP` or a `ModelConfig`; None for anything else."""
    if isinstance(model, ModelConfig):
        return model.activation, model.dropout > 0
    if isinstance(model, MLP):
        return model.activation, model.dropout is not None
    return None
