"""Helpers shared by tests of the optimizers and engines."""

from __future__ import annotations

from typing import Any

from mlplab.config import OptimConfig

# PyTorch's own optimizer defaults (no momentum, no schedule), not mlplab's training recipe:
# tests of an optimizer state every setting they exercise on top of these.
PLAIN = dict(optimizer="sgd", lr=0.01, momentum=0.0, nesterov=False, scheduler="none")


def plain_optim(**settings: Any) -> OptimConfig:
    """An `OptimConfig` from PyTorch's plain defaults with ``settings`` on top."""
    return OptimConfig(**{**PLAIN, **settings})
