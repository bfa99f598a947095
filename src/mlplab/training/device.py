"""Pick the training device: one code path for cpu, cuda and mps."""

from __future__ import annotations

import torch

from mlplab.errors import MlplabError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; asking for a missing accelerator is an error."""
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
    if name not in ("cpu", "cuda", "mps"):
        raise MlplabError(f"unknown device {name!r}; choose one of: auto, cpu, cuda, mps")
    return torch.device(name)
