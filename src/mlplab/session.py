"""Where Python runs: a Jupyter kernel, an interactive prompt or a script; progress and plots adapt to it."""

from __future__ import annotations

import sys
from typing import Any


def _ipython_shell() -> Any:
    """The running IPython shell (a terminal's or a kernel's), or None; IPython is never imported here."""
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    return get_ipython() if get_ipython is not None else None


def interactive() -> bool:
    """Whether a person watches: a notebook (an IPython kernel), IPython, or an interactive prompt."""
    return hasattr(sys, "ps1") or bool(sys.flags.interactive) or _ipython_shell() is not None


def in_notebook() -> bool:
    """Whether Python runs in a Jupyter kernel, where a display can be updated in place."""
    return getattr(_ipython_shell(), "kernel", None) is not None
