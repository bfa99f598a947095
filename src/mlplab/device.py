"""Devices: the one to train on (one code path for cpu, cuda and mps), and where a model is."""

from __future__ import annotations

import torch
from torch import nn

from mlplab.choices import DEVICES
from mlplab.errors import MlplabError, check_choice


def resolve_device(name: str = "auto") -> torch.device:
    """The device named ``name``, one of `mlplab.choices.DEVICES`: ``auto`` picks cuda, then mps, then cpu;
    asking for a missing accelerator is an error."""
    check_choice("device", name, DEVICES)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MlplabError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise MlplabError("--device mps was asked for but this PyTorch has no MPS backend; use --device cpu or auto")
    return torch.device(name)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
