"""Networks: the MLP and the function that builds it from a `ModelConfig`."""

from mlplab.models.mlp import ACTIVATION_FUNCTIONS, MLP, build_model

__all__ = ["ACTIVATION_FUNCTIONS", "MLP", "build_model"]
