"""Every `mlplab` command line shown in the README and the docs parses with mlplab's own parser: a flag
renamed or removed, a choice dropped or a command gone fails here, on the page that still shows it.
A line shown with the error it gets (the next line of the block, ``mlplab ...: error: ...``) must be
refused, with that very message when the parser is what refuses it."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import REPO
from mlplab.cli.main import build_parser

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def command_lines(markdown: str) -> list[tuple[str, str | None]]:
    """The ``$ mlplab ...`` lines of a page's console blocks, without their comments and redirections, each
    with the error line shown after it (None when none is)."""
    found = []
    for block in re.findall(r"^```console\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL):
        lines = block.splitlines()
        for index, line in enumerate(lines):
            if line.startswith("$ mlplab ") or line == "$ mlplab":
                shell = re.sub(r"(?<=\s)\d+(?=[<>])", "", line[2:])  # 2>&1: the 2 is the redirection's, not an argument
                lexer = shlex.shlex(shell, posix=True, punctuation_chars=True)  # `;`, `|`, `&`, `>` apart
                lexer.whitespace_split, lexer.commenters = True, "#"
                words = list(lexer)
                after = lines[index + 1] if index + 1 < len(lines) else ""
                error = after if re.match(r"^mlplab[\w ]*: error: ", after) else None
                found.append((" ".join(shlex.quote(word) for word in _before_redirection(words)), error))
    return found


def _before_redirection(words: list[str]) -> list[str]:
    """The command's own words: up to a pipe, a redirection, ``;``, ``&&``, ``||`` or ``&``."""
    for index, word in enumerate(words):
        if word and set(word) <= set("|&;<>()"):
            return words[:index]
    return words


COMMANDS = [(page.relative_to(REPO), line, error) for page in PAGES for line, error in command_lines(page.read_text())]


def test_shell_punctuation_ends_the_command():
    shown = (
        "```console\n$ mlplab train --out runs/x 2>&1 | grep epoch; echo $?  # note\n"
        "$ mlplab train --seed 1 > log &\n```\n"
    )
    assert [line for line, _ in command_lines(shown)] == ["mlplab train --out runs/x", "mlplab train --seed 1"]


def test_the_pages_show_many_commands():
    assert len(COMMANDS) >= 100 and any(error for _, _, error in COMMANDS)
    shown = {line.split()[1] for _, line, _ in COMMANDS}
    assert {"train", "eval", "predict", "sweep", "tune", "serve", "studio"} <= shown


@pytest.mark.parametrize(("page", "line", "error"), COMMANDS, ids=[f"{page}: {line}" for page, line, _ in COMMANDS])
def test_the_command_parses(page, line, error, capsys):
    parser = build_parser()
    try:
        parser.parse_args(shlex.split(line)[1:])
    except SystemExit as stop:
        said = capsys.readouterr().err.strip()
        if stop.code and error is None:  # --help and --version exit 0
            pytest.fail(f"{page} shows `{line}`, which mlplab refuses: {said}")
        if error is not None:
            assert said.splitlines()[-1] == error, f"{page} shows `{line}` failing otherwise than it does"
