"""The one exception type that means "the user asked for something we cannot do"."""

from __future__ import annotations

import errno
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


# Errors that only writing raises; any other OS error is reported against the path it names.
_EDQUOT = getattr(errno, "EDQUOT", errno.ENOSPC)  # disk quota exceeded; Windows has no such code
_WRITE_ERRORS = {errno.ENOSPC, _EDQUOT, errno.EFBIG, errno.EROFS}
_ADVICE = {
    _EDQUOT: "your disk quota is used up; free some space, or write somewhere else",
    errno.ENOSPC: "free some disk space, or write somewhere else",
    errno.EROFS: "that file system is read-only; write somewhere else",
    errno.EACCES: "check its permissions, or use another path",
    errno.EPERM: "check its permissions, or use another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "something already has that name; remove it or use another path",
    errno.EISDIR: "that is a folder, not a file",
}


def describe_os_error(error: OSError) -> str:
    """One line for an OS error: ``<what failed>: <reason> (<path>); <advice>``."""
    if error.strerror is None:  # raised with a message of its own, e.g. FileExistsError("could not ...")
        return one_line(error, limit=None)
    paths = [str(name) for name in (error.filename, error.filename2) if name is not None]
    what = "cannot write" if error.errno in _WRITE_ERRORS else "cannot use that path" if paths else "system error"
    line = f"{what}: {error.strerror}" + (f" ({' -> '.join(paths)})" if paths else "")
    advice = _ADVICE.get(error.errno)
    return f"{line}; {advice}" if advice else line
