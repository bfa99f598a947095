"""Devices: the one to train on (one code path for cpu, cuda and mps), and where a model is."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mlplab.choices import DEVICES
from mlplab.errors import MlplabError, check_choice

if TYPE_CHECKING:
    from mlplab.config import Config


def resolve_device(name: str = "auto") -> torch.device:
    """The device named ``name``, one of `mlplab.choices.DEVICES`: ``auto`` picks cuda, then mps, then cpu;
    asking for a missing accelerator is an error. The name comes from Python, so it is checked here."""
    check_choice("device", name, DEVICES)
    return _device(name)


def config_device(config: Config) -> torch.device:
    """The device a config trains on: its ``device`` (checked by the config), the CPU for ``auto`` with the
    scratch engine, which computes in NumPy."""
    return _device("cpu" if config.train.engine == "scratch" else config.train.device)


def _device(name: str) -> torch.device:
    """The device of a known name; a missing accelerator is an error."""
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
