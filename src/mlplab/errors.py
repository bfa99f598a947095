"""The one exception type that means "the user asked for something we cannot do"."""

from __future__ import annotations

from collections.abc import Sequence


class MlplabError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with status 2.

    Messages say what is wrong and what to do about it, e.g.
    ``unknown preset 'lab2'; choose one of: lab, logistic, seq, tutorial, twolayer``.
    """


def check_choice(what: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a one-line error listing them."""
    if value not in choices:
        raise MlplabError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def one_line(error: BaseException, limit: int | None = 200) -> str:
    """An exception's message on one line (a value's repr may span several), cut to ``limit``
    characters (None: whole); its type name when it has no message. For the reason inside a
    user-facing error."""
    return " ".join(str(error).split())[:limit] or type(error).__name__
