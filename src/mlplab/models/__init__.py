"""Networks: the MLP and the function that builds it from a `ModelConfig`."""

from mlplab.models.mlp import ACTIVATIONS, INITS, MLP, OUTPUTS, build_model

__all__ = ["ACTIVATIONS", "INITS", "MLP", "OUTPUTS", "build_model"]
