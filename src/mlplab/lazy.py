"""Packages whose names are imported on first use: ``import mlplab`` (and the CLI) start without torch.

A package declares ``name -> module`` once and takes its ``__getattr__`` and ``__dir__`` from
`lazy_names`; type checkers read the same names from an ``if TYPE_CHECKING:`` import block.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(
    package: str, exports: dict[str, str], namespace: dict[str, Any], public: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each name to the module defining it
    (relative to the package, or absolute with a leading ``mlplab.``); a value once imported is kept
    in ``namespace`` (the package's globals), so later lookups skip `__getattr__`. ``__dir__`` lists
    ``public``, what tab completion offers."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = exports[name]
        module = module if module.startswith("mlplab") else f"{package}.{module}"
        imported = importlib.import_module(module)
        value = imported if imported.__name__ == f"{package}.{name}" else getattr(imported, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
