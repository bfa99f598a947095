"""argparse with one-line errors: a user mistake never prints a usage block or a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from mlplab.choices import FIGURE_FORMATS
from mlplab.errors import MlplabError

EXIT_USER_ERROR = 2

# How a --format flag's help states what it takes: "png, svg or png,svg".
FORMAT_HELP = f"{', '.join(FIGURE_FORMATS)} or {','.join(FIGURE_FORMATS)}"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def figure_formats(text: str) -> tuple[str, ...]:
    """The formats a --format flag names (``"png,svg"`` -> ``("png", "svg")``), each one of `FIGURE_FORMATS`."""
    formats = tuple(kind.strip().lower() for kind in text.split(",") if kind.strip())
    if not formats or any(kind not in FIGURE_FORMATS for kind in formats):
        raise MlplabError(f"--format takes {FORMAT_HELP}; got {text!r}")
    return formats
