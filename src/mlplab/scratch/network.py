"""A network as a list of layers, and the ways to make one: from widths, from a config, from a torch MLP.

``Sequential.forward`` runs the layers in order; ``backward`` runs their backward rules
in reverse, each layer's input gradient becoming the previous layer's output gradient.
Parameter names follow the torch MLP's state dict (``layers.<i>.weight`` / ``.bias``,
i counting Linear layers from the input), so weights copy across both ways unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlplab.choices import INITS, OUTPUTS
from mlplab.config import ModelConfig
from mlplab.scratch.layers import ACTIVATION_LAYERS, Layer, Linear, LogSoftmax, Parameter

DTYPES = (np.float32, np.float64)


class Sequential:
    """Layers applied in order: ``forward(x)``, ``backward(grad)``, `parameters`, `state_dict`."""

    def __init__(self, *layers: Layer) -> None:
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (B, n_0) -> the last layer's output (B, C); 28x28 images are flattened first."""
        x = x.reshape(len(x), -1)  # a view for contiguous (B, 1, 28, 28)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dLoss/d(outputs) -> dLoss/d(x); every Linear stores its dW and db on the way down.

        ``input_grad=False`` (training: the input is data) skips the first Linear's dx.
        """
        grad = grad_out
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            if index == 0 and isinstance(layer, Linear):
                return layer.backward(grad, input_grad=input_grad)  # the first layer: the last step
            grad = layer.backward(grad)
        return grad

    def linears(self) -> list[Linear]:
        """The Linear layers, input to output."""
        return [layer for layer in self.layers if isinstance(layer, Linear)]

    def parameters(self) -> list[Parameter]:
        """Every parameter with its gradient array: W_1, b_1, ..., W_L, b_L."""
        return [parameter for layer in self.layers for parameter in layer.parameters()]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """`parameters` under the torch MLP's names: ``layers.0.weight``, ``layers.0.bias``, ..."""
        names = {"W": "weight", "b": "bias"}
        return [
            (f"layers.{index}.{names[parameter.name]}", parameter)
            for index, layer in enumerate(self.linears())
            for parameter in layer.parameters()
        ]

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{"layers.0.weight": W_1, "layers.0.bias": b_1, ...}``: the torch MLP's keys, the arrays themselves."""
        return {name: parameter.value for name, parameter in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy weights in from a `state_dict` (NumPy arrays or CPU tensors), checking every shape."""
        own = self.state_dict()
        if set(state) != set(own):
            raise ValueError(f"state dict keys differ: expected {sorted(own)}, got {sorted(state)}")
        for key, array in own.items():
            value = np.asarray(state[key])
            if value.shape != array.shape:
                raise ValueError(f"{key}: expected shape {array.shape}, got {value.shape}")
            array[...] = value

    @property
    def widths(self) -> tuple[int, ...]:
        """Layer widths, input to output, e.g. (784, 16, 32, 24, 10)."""
        linears = self.linears()
        return (linears[0].W.shape[1], *(layer.W.shape[0] for layer in linears))

    @property
    def dtype(self) -> np.dtype:
        return self.linears()[0].W.dtype

    def __repr__(self) -> str:
        inner = ",\n  ".join(map(repr, self.layers))
        return f"Sequential(\n  {inner}\n)"


def mlp(
    widths: Sequence[int],
    activation: str = "relu",
    output: str = "logits",
    *,
    dtype: type = np.float32,
    init: str = "default",
    init_range: float = 0.1,
    seed: int | np.random.Generator = 0,
) -> Sequential:
    """Linear, activation, ..., Linear (and LogSoftmax for ``output="log_softmax"``), initialised from NumPy's RNG.

    Args:
        widths: layer widths, input to output, e.g. ``(784, 16, 32, 24, 10)``; two widths give logistic regression.
        activation: a key of `ACTIVATION_LAYERS` (``relu``, ``sigmoid``, ``tanh``, ``leaky_relu``, ``elu``).
        output: ``"logits"`` or ``"log_softmax"``.
        dtype: ``np.float32`` or ``np.float64``.
        init: as `mlplab.models.MLP`: ``default`` (PyTorch's), ``uniform`` (+-init_range), ``xavier``, ``kaiming``.
        seed: a seed or a NumPy Generator (the same seed does not give the torch MLP's weights:
            use `from_torch` for that).
    """
    rng = np.random.default_rng(seed)
    linears = [
        _init_linear(n_in, n_out, init, init_range, rng, dtype)
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True)
    ]
    return _assemble(linears, activation, output)


def _init_linear(n_in: int, n_out: int, init: str, init_range: float, rng: np.random.Generator, dtype: type) -> Linear:
    if init == "default":
        return Linear.init(n_in, n_out, rng, dtype)
    if init == "uniform":
        W, b = rng.uniform(-init_range, init_range, (n_out, n_in)), rng.uniform(-init_range, init_range, n_out)
    elif init == "xavier":  # Glorot uniform, gain 1
        bound = np.sqrt(6.0 / (n_in + n_out))
        W, b = rng.uniform(-bound, bound, (n_out, n_in)), np.zeros(n_out)
    elif init == "kaiming":  # He normal, fan-in, ReLU gain sqrt(2)
        W, b = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_out, n_in)), np.zeros(n_out)
    else:
        raise ValueError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")
    return Linear(W.astype(dtype), b.astype(dtype))


def _assemble(linears: list[Linear], activation: str, output: str) -> Sequential:
    """Interleave the Linears with the activation, and end with LogSoftmax if asked."""
    if activation not in ACTIVATION_LAYERS:
        raise ValueError(
            f"the scratch engine has no activation {activation!r}; choose one of: {', '.join(ACTIVATION_LAYERS)}"
        )
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of: {', '.join(OUTPUTS)}")
    if any(layer.W.dtype not in DTYPES for layer in linears):
        raise ValueError(f"scratch networks compute in float32 or float64; got {linears[0].W.dtype}")
    layers: list[Layer] = []
    for linear in linears[:-1]:
        layers += [linear, ACTIVATION_LAYERS[activation]()]
    layers.append(linears[-1])
    if output == "log_softmax":
        layers.append(LogSoftmax())
    return Sequential(*layers)


def from_config(
    config: ModelConfig,
    in_features: int = 784,
    num_classes: int = 10,
    *,
    dtype: type = np.float32,
    seed: int | np.random.Generator = 0,
) -> Sequential:
    """The network a `ModelConfig` describes (as `mlplab.models.build_model`), with NumPy-drawn weights."""
    if config.dropout > 0:
        raise ValueError("the scratch engine has no dropout; set dropout to 0")
    return mlp(
        (in_features, *config.hidden, num_classes),
        config.activation,
        config.output,
        dtype=dtype,
        init=config.init,
        init_range=config.init_range,
        seed=seed,
    )


def from_torch(model: Any, dtype: type | None = None, share: bool = False) -> Sequential:
    """The same network as a torch `mlplab.models.MLP`, with its weights.

    Args:
        model: an `MLP` (anything with ``linears()``, ``activation`` and ``output``).
        dtype: the scratch network's dtype; default: the model's.
        share: use the model's own CPU memory instead of copies, so that training the
            scratch network trains the torch model (the model's dtype must be ``dtype``).
    """
    if getattr(model, "dropout", None) is not None:
        raise ValueError("the scratch engine has no dropout; build the model with dropout=0")
    linears = []
    for layer in model.linears():
        W, b = (tensor.detach() for tensor in (layer.weight, layer.bias))
        if share:
            if W.device.type != "cpu" or (dtype is not None and np.dtype(dtype) != _numpy_dtype(W)):
                raise ValueError(f"share=True needs a CPU model of dtype {np.dtype(dtype)}; got {W.device} {W.dtype}")
            linears.append(Linear(W.numpy(), b.numpy()))
        else:
            target = dtype or _numpy_dtype(W)
            linears.append(Linear(W.cpu().numpy().astype(target), b.cpu().numpy().astype(target)))
    return _assemble(linears, model.activation, model.output)


def to_torch(network: Sequential, model: Any) -> Any:
    """Copy the scratch network's weights into a torch MLP of the same widths (converting dtype); returns the model."""
    import torch  # only here: the engine itself is NumPy

    state = model.state_dict()
    for key, array in network.state_dict().items():
        if key not in state or tuple(state[key].shape) != array.shape:
            raise ValueError(f"the torch model has no parameter {key} of shape {array.shape}")
    model.load_state_dict(
        {key: torch.from_numpy(np.ascontiguousarray(array)) for key, array in network.state_dict().items()}
    )
    return model


def _numpy_dtype(tensor: Any) -> np.dtype:
    return np.dtype(str(tensor.dtype).removeprefix("torch."))
