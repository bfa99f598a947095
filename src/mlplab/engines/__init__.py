"""Training engines: how one batch's gradients are computed, behind one small interface.

Every engine answers two questions (`Engine`):

- ``unsupported(model, loss, optimizer)``: None if it can train them, else the reason;
- ``step(model, loss, optimizer)``: the training step, a callable
  ``step(images, labels) -> (outputs, loss)`` that takes one optimizer step.

The capability table, one row per engine:

==========  ==========================================  ====================================================
engine      computes the gradients with                 trains
==========  ==========================================  ====================================================
autograd    PyTorch's autograd: the textbook step       any ``nn.Module``, any loss callable, any optimizer
manual      the MLP's backprop written out in PyTorch   mlplab's `MLP` without dropout, a built-in loss
scratch     `mlplab.scratch` in NumPy, on the CPU       `MLP` without dropout or GELU, a built-in loss,
                                                        SGD, Adam or AdamW
==========  ==========================================  ====================================================

``auto`` takes the first of `AUTO_ORDER` that can train the run: ``manual`` for mlplab's
MLPs (the same gradients to rounding, about 1.6x faster an epoch on the lab's net), else
``autograd``; never ``scratch``, which is asked for by name. `resolve_engine` makes that
choice once per run; the training loop then only calls the step it built. `config_engine`
makes it for a `Config`, whose engine name the config has checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlplab.choices import ENGINES
from mlplab.engines.autograd import AutogradEngine, AutogradStep
from mlplab.engines.base import Engine, Step
from mlplab.engines.manual import ManualEngine, ManualStep
from mlplab.engines.scratch import ScratchEngine, ScratchStep
from mlplab.errors import MlplabError, check_choice

if TYPE_CHECKING:
    from mlplab.config import Config

# The engines by name; `ENGINES` (mlplab.choices) adds "auto".
ENGINE_TABLE: dict[str, Engine] = {"autograd": AutogradEngine(), "manual": ManualEngine(), "scratch": ScratchEngine()}
AUTO_ORDER = ("manual", "autograd")  # what "auto" tries, in order; autograd trains anything


def capabilities(model: Any, loss: Any, optimizer: Any = "sgd") -> dict[str, str | None]:
    """Each engine's answer for this run: None where it can train it, else the reason it cannot."""
    return {name: engine.unsupported(model, loss, optimizer) for name, engine in ENGINE_TABLE.items()}


def resolve_engine(name: str | Engine, model: Any, loss: Any, optimizer: Any = "sgd") -> Engine:
    """The engine that will train: ``auto`` becomes the first of `AUTO_ORDER` that can.

    Args:
        name: one of `mlplab.choices.ENGINES` (from Python, so checked here), or an `Engine`.
        model: the ``nn.Module``, or the `ModelConfig` of an MLP (to refuse a bad ``--engine``
            before any data loads).
        loss: the loss callable.
        optimizer: the torch optimizer, or its name.

    Raises `MlplabError` (one line, with the reason) when the named engine cannot train the run.
    """
    if not isinstance(name, Engine):
        check_choice("engine", name, ENGINES)
    return _resolve(name, model, loss, optimizer)


def config_engine(config: Config, loss: Any) -> Engine:
    """The engine a config trains with (`resolve_engine` for its engine name, which the config has checked),
    refused before any data loads when it cannot train the config's model with ``loss`` and its optimizer."""
    return _resolve(config.train.engine, config.model, loss, config.optim.optimizer)


def _resolve(name: str | Engine, model: Any, loss: Any, optimizer: Any) -> Engine:
    """`resolve_engine` for a known engine name, or an `Engine`."""
    if name == "auto":
        return next(ENGINE_TABLE[n] for n in AUTO_ORDER if ENGINE_TABLE[n].unsupported(model, loss, optimizer) is None)
    engine = name if isinstance(name, Engine) else ENGINE_TABLE[name]
    reason = engine.unsupported(model, loss, optimizer)
    if reason is not None:
        raise MlplabError(f"--engine {engine.name} cannot train this run: {reason}; use --engine auto")
    return engine


def make_step(name: str | Engine, model: Any, loss: Any, optimizer: Any) -> Step:
    """The training step of engine ``name`` (resolved as `resolve_engine` does) for this run."""
    return resolve_engine(name, model, loss, optimizer).step(model, loss, optimizer)


__all__ = [
    "AUTO_ORDER",
    "AutogradEngine",
    "AutogradStep",
    "ENGINE_TABLE",
    "Engine",
    "ManualEngine",
    "ManualStep",
    "ScratchEngine",
    "ScratchStep",
    "Step",
    "capabilities",
    "config_engine",
    "make_step",
    "resolve_engine",
]
