"""Run the examples of the README and the docs pages, and compare what they print with what the page shows.

Sybil parses the pages; this module says how each kind of block runs and how its output is compared.
CI runs every page through ``tests/docs/test_examples.py``; ``python tools/docs_examples.py --update PAGE``
runs a page in full and writes what it printed back into the page, with the date and machine.

What runs:

- a ```` ```python ```` block runs in the page's namespace (blocks share names, top to bottom, like a
  notebook), in a folder of its own for the page. If the next block is a plain ```` ``` ```` (or
  ```` ```text ````) block, that block is its printed output and is compared. A short block may say
  what it prints in comments instead, ``print(x)  # what it prints``, compared as measured.
- a ```` ```console ```` block: each ``$ command`` line runs in bash in the page's folder, and the lines
  after it, up to the next ``$``, are its output (stdout and stderr, as a terminal shows them). A
  command shown with no output must succeed, and its output is not compared; a command may fail
  only where the output shown is an error.

Directives, HTML comments the site does not show, apply to the next block:

- ``<!-- skip: next "why" -->`` (Sybil's): the block does not run. For what CI cannot do: install
  packages, run the test suite inside itself, open a browser.
- ``<!-- invisible-code-block: python -->`` (Sybil's): code that runs but is not shown (making the
  image files an example reads, say).
- ``<!-- docs: measured -->``: the numbers printed vary with the machine (accuracies, losses, times):
  integers and text must match; a number with a decimal point within ``rel`` (1%) or ``abs`` (0.005);
  a percentage within ``pct`` (0.5) points; a time or a rate within a factor ``time`` (25) either way.
  Each can be set: ``<!-- docs: measured pct=1 abs=0.02 -->``.
- ``<!-- docs: budget ARGS -->``: in CI each command also gets ``ARGS`` (``--epochs 1``, say), so a long
  example runs in seconds; only the form of its output is compared (each line it prints must have the
  shape of a line shown, unless the block shows a ``...`` line, and its last line the shape of the
  last one shown). The page shows the full
  run's output, measured on the date and machine its stamp says.
- ``<!-- docs: server -->``: the commands serve until stopped: each starts, must print the lines shown,
  and is then stopped with Ctrl-C.

In measured and budgeted blocks a ``threads: N from step S (...)`` line, mlplab's note that the load
of the machine changed while a run trained, may be printed or shown or neither: it is the moment's.

A run folder named by its start time (``runs/mnist-mlp-20261206-172810``) matches any such name. A
shown line ``...`` stands for any number of lines, and ``…`` in a line for any text (a path that
depends on where mlplab is installed, say). Runs of spaces compare as one space, so a column that
grows by a digit still matches.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import io
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sybil import Document, Example
from sybil.parsers.markdown import CodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, RawFencedCodeBlockLexer

REPO = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\*Outputs on this page: measured on (\d{4}-\d{2}-\d{2}), .*\*$", re.MULTILINE)
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")
TIME_UNIT = re.compile(r"^\s*(?:s|ms|µs|us|ns|min|h|seconds?|minutes?|hours?|img/s|images/s|steps/s|/s|×)\b")
PERCENT = re.compile(r"^\s*%")
ELLIPSIS = {"...", "…"}
# mlplab's note that the load changed while a run trained (`mlplab.threads`): the moment's, like a time.
THREADS_CHANGE = re.compile(r"^threads: \d+ from step \d+\b")
DEFAULTS = {"rel": 0.01, "abs": 0.005, "pct": 0.5, "time": 25.0}
COMMAND_TIMEOUT = 900  # seconds: a command running longer is a hung example
SERVER_TIMEOUT = 180  # seconds a server has to print the lines shown


def pages() -> list[Path]:
    """The README and every Markdown page of the docs, in a stable order."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


# ---------------------------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Mode:
    """How a block's output is compared: exactly, as measured (numbers within tolerances), or by form."""

    kind: str = "exact"  # "exact", "measured" or "budget"
    tolerances: dict[str, float] = field(default_factory=lambda: dict(DEFAULTS))
    budget: str = ""


STAMPED_NAME = re.compile(r"(?<=-)\d{8}-\d{6}\b")  # a run folder named by when it started: mnist-mlp-20261206-172810


def _lines(text: str) -> list[str]:
    lines = [STAMPED_NAME.sub("YYYYMMDD-HHMMSS", line.rstrip()) for line in text.rstrip().splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def skeleton(line: str) -> str:
    """A line's form: its numbers replaced by ``#`` and its runs of spaces by one."""
    return re.sub(r"\s+", " ", NUMBER.sub("#", line)).strip()


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def numbers_agree(got: str, want: str, after: str, tolerances: dict[str, float]) -> bool:
    """Whether a measured number agrees with the one shown (``after``: the text that follows it)."""
    a, b = _number(got), _number(want)
    if PERCENT.match(after):
        return abs(a - b) <= tolerances["pct"]
    if TIME_UNIT.match(after):
        factor = tolerances["time"]
        return (b == 0 and a <= 1) or (b / factor <= a <= b * factor) if b >= 0 else a < 0
    if not any(mark in want for mark in ".eE"):
        return got.replace(",", "") == want.replace(",", "")
    return abs(a - b) <= max(tolerances["rel"] * abs(b), tolerances["abs"])


def _wildcard(want: str, exact: bool = False) -> re.Pattern[str]:
    """A shown line with ``…`` in it as a pattern: ``…`` any text, spaces any spaces, a number itself
    (``exact``) or any number (measured numbers are compared only where a line has no ``…``)."""
    parts = []
    for piece in re.split(r"(…|\s+)", want.strip()):
        if piece == "…":
            parts.append("(.*)")
        elif piece and piece.isspace():
            parts.append(r"\s+")
        else:
            parts.append(piece if exact else NUMBER.sub("\0", piece).replace("\0", "@N@"))
    pattern = "".join(re.escape(part) if part not in ("(.*)", r"\s+") else part for part in parts)
    return re.compile(pattern.replace("@N@", NUMBER.pattern))


def line_agrees(got: str, want: str, mode: Mode) -> bool:
    """Whether one printed line agrees with one shown line, as ``mode`` compares."""
    if "…" in want:
        return bool(_wildcard(want, exact=mode.kind == "exact").fullmatch(got.strip()))
    if skeleton(got) != skeleton(want):
        return False
    if mode.kind == "budget":
        return True
    got_numbers, want_numbers = NUMBER.findall(got), list(NUMBER.finditer(want))
    if mode.kind == "exact":
        return got_numbers == [match.group() for match in want_numbers]
    return all(
        numbers_agree(number, match.group(), want[match.end() :], mode.tolerances)
        for number, match in zip(got_numbers, want_numbers, strict=True)
    )


def _match(got: list[str], want: list[str], mode: Mode) -> bool:
    """Whether the printed lines match the shown ones, a shown ``...`` standing for any lines."""
    if not want:
        return not got
    if want[0].strip() in ELLIPSIS:
        return any(_match(got[start:], want[1:], mode) for start in range(len(got) + 1))
    return bool(got) and line_agrees(got[0], want[0], mode) and _match(got[1:], want[1:], mode)


def compare(printed: str, shown: str, mode: Mode) -> str | None:
    """None when ``printed`` agrees with ``shown``; else a message that shows both."""
    got, want = _lines(printed), _lines(shown)
    if mode.kind != "exact":  # the load changed mid-run, or did not: a note of that may come or not
        got, want = ([line for line in lines if not THREADS_CHANGE.match(line.strip())] for lines in (got, want))
    if mode.kind == "budget":
        forms = {skeleton(line) for line in want if line.strip() not in ELLIPSIS}
        wild = [_wildcard(line) for line in want if "…" in line]
        elided = any(line.strip() in ELLIPSIS for line in want)  # `...`: lines of other forms may come too
        strange = [
            line
            for line in got
            if not elided
            and skeleton(line) not in forms
            and not any(pattern.fullmatch(line.strip()) for pattern in wild)
        ]
        last_ok = bool(got) and bool(want) and skeleton(got[-1]) == skeleton(want[-1])
        if not strange and last_ok:
            return None
        why = f"a line of a form the page does not show: {strange[0]!r}" if strange else "a different last line"
        return f"run on a budget, it printed {why}\n--- printed:\n{printed}\n--- the page shows:\n{shown}"
    if _match(got, want, mode):
        return None
    return f"printed ({mode.kind}):\n{printed.rstrip()}\n--- the page shows:\n{shown.rstrip()}"


# ---------------------------------------------------------------------------------------------- running


@dataclass
class Page:
    """What running one page needs and leaves: its folder, the next block's mode, what to rewrite."""

    folder: Path
    update: bool = False
    pending: Mode = field(default_factory=Mode)
    server: bool = False
    last_python: tuple[int, str, Mode] | None = None  # where the last python block ended, its print, its mode
    rewrites: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, new text)
    varies: bool = False  # a block was measured or run on a budget: the page needs a stamp
    environment: dict[str, str] = field(default_factory=dict)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)  # what ran, what compared

    def take_mode(self) -> tuple[Mode, bool]:
        mode, server = self.pending, self.server
        self.pending, self.server = Mode(), False
        return mode, server


def _page(example: Example) -> Page:
    return example.namespace["__docs_page__"]


def _directive(example: Example) -> None:
    page = _page(example)
    name, _, rest = example.parsed.strip().partition(" ")
    if name == "measured":
        tolerances = dict(DEFAULTS)
        for item in rest.split():
            key, _, value = item.partition("=")
            if key not in DEFAULTS:
                raise ValueError(f"docs: measured takes {', '.join(DEFAULTS)}, not {key!r}")
            tolerances[key] = float(value.rstrip("%"))
        page.pending = Mode("measured", tolerances)
    elif name == "budget":
        page.pending = Mode("budget", budget=rest.strip())
    elif name == "server":
        page.server = True
    else:
        raise ValueError(f"unknown docs directive {name!r}: measured, budget or server")
    page.varies |= name in ("measured", "budget")


class DirectiveParser:
    """``<!-- docs: ... -->`` comments: how the next block runs and is compared."""

    def __init__(self) -> None:
        self.lexer = DirectiveInHTMLCommentLexer(directive="docs", arguments=".+?")  # lazy: `-->` may end the line

    def __call__(self, document: Document):
        for region in self.lexer(document):
            region.parsed = region.lexemes["arguments"]
            region.evaluator = _directive
            yield region


@contextlib.contextmanager
def _inside(page: Page):
    """The page's folder as the working directory and its variables in the environment, for a while."""
    before_dir, before_env = Path.cwd(), dict(os.environ)
    os.chdir(page.folder)
    os.environ.update(page.environment)
    try:
        yield
    finally:
        os.chdir(before_dir)
        os.environ.clear()
        os.environ.update(before_env)


def print_comments(source: str) -> list[str]:
    """What a block says its prints print: the comment ending each ``print(...)`` line, in order."""
    return [
        match.group(1).strip() for match in re.finditer(r"^[ \t]*print\(.*\)[ \t]+#[ \t]*(.+)$", source, re.MULTILINE)
    ]


def _python(example: Example) -> str | None:
    page = _page(example)
    mode, _ = page.take_mode()  # a python block's mode is its output block's
    printed = io.StringIO()
    with _inside(page), contextlib.redirect_stdout(printed):
        code = compile(example.parsed, f"{example.path}, line {example.line}", "exec")
        exec(code, example.namespace)
    page.last_python = (example.region.end, printed.getvalue(), mode)
    page.counts["python blocks"] += 1
    shown = print_comments(example.parsed)
    if shown and not page.update:  # ``print(x)  # what it prints``, within a measured tolerance
        page.varies = True
        page.counts["compared measured"] += 1
        return compare(printed.getvalue(), "\n".join(shown), Mode("measured"))
    return None


def _output(example: Example) -> str | None:
    """A plain block right after a python block is what it printed; other plain blocks are not examples."""
    page = _page(example)
    last, page.last_python = page.last_python, None
    if last is None or example.document.text[last[0] : example.region.start].strip():
        return None
    _, printed, mode = last
    page.counts[f"compared {mode.kind}"] += 1
    if page.update:
        _rewrite(page, example, printed)
        return None
    return compare(printed, example.parsed, mode)


def _aligned(got: list[str], want: list[str]) -> list[str] | None:
    """The shown lines refreshed from the printed ones: a shown ``...`` keeps standing for the lines it
    covers, a shown line with ``…`` stays as it is, every other line becomes the printed one. None when
    the two do not line up (then the page shows what was printed, whole)."""
    if not want:
        return [] if not got else None
    head, rest = want[0], want[1:]
    if head.strip() in ELLIPSIS:
        for start in range(len(got) + 1):
            tail = _aligned(got[start:], rest)
            if tail is not None:
                return [head, *tail]
        return None
    if not got or not line_agrees(got[0], head, Mode("budget")):
        return None
    tail = _aligned(got[1:], rest)
    return None if tail is None else [_keep_wildcards(got[0], head), *tail]


def _keep_wildcards(got: str, want: str) -> str:
    """The printed line, with what the shown line's ``…`` stood for written as ``…`` again."""
    match = _wildcard(want).fullmatch(got.strip()) if "…" in want else None
    if match is None:
        return got
    line = got.strip()
    for start, end in sorted((match.span(group) for group in range(1, (match.re.groups or 0) + 1)), reverse=True):
        line = line[:start] + "…" + line[end:]
    return got[: len(got) - len(got.lstrip())] + line


def _shown(page: Page, printed: str, shown: str = "") -> str:
    """What a page shows of a printed output: the page's own folder, which differs every run, as ``…``;
    the page's ``...`` and ``…`` kept where the output still lines up with them."""
    text = printed.replace(str(page.folder.resolve()), "…").replace(str(page.folder), "…")
    got = [line.rstrip() for line in text.rstrip().splitlines()]
    want = [line.rstrip() for line in shown.rstrip().splitlines()]
    lines = (_aligned(got, want) if want else None) or got
    return "\n".join(lines) + "\n" if "".join(lines).strip() else ""


def _rewrite(page: Page, example: Example, printed: str) -> None:
    source = example.region.lexemes["source"]
    start = example.region.start + source.offset
    end = start + len(example.parsed)
    page.rewrites.append((start, end, _shown(page, printed, example.parsed)))


@dataclass(frozen=True)
class Command:
    """One ``$`` line of a console block, the output shown after it, and where that output lies in the block."""

    line: str
    shown: str
    start: int
    end: int


def console_commands(source: str) -> list[Command]:
    """The ``$`` commands of a console block with the output shown after each (``\\`` continues a line)."""
    commands: list[Command] = []
    lines = source.splitlines(keepends=True)
    offsets = [sum(len(line) for line in lines[:index]) for index in range(len(lines) + 1)]
    index = 0
    while index < len(lines):
        if not lines[index].startswith("$ "):
            index += 1
            continue
        command = lines[index][2:].rstrip("\n")
        while command.endswith("\\") and index + 1 < len(lines):
            index += 1
            command = command[:-1] + " " + lines[index].strip()
        end = index + 1
        while end < len(lines) and not lines[end].startswith("$ "):
            end += 1
        start = index + 1
        commands.append(Command(command, "".join(lines[start:end]), offsets[start], offsets[end]))
        index = end
    return commands


def _with_budget(command: str, budget: str) -> str:
    """``command`` with the budget's arguments after the program's own (before a pipe, redirect or comment)."""
    if not budget:
        return command
    match = re.search(r"\s+(?:\||#|>|&&|&$)", command)
    cut = match.start() if match else len(command)
    return f"{command[:cut]} {budget}{command[cut:]}"


def run_command(command: str, page: Page, server: bool, shown: str) -> tuple[str, int]:
    """Run one command in the page's folder: what it printed (stdout and stderr together) and its status."""
    environment = {**os.environ, **page.environment}
    options: dict[str, Any] = dict(cwd=page.folder, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not server:
        result = subprocess.run(["bash", "-c", command], text=True, timeout=COMMAND_TIMEOUT, **options)
        return result.stdout, result.returncode
    wanted = len([line for line in _lines(shown) if line.strip() not in ELLIPSIS])
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], text=True, start_new_session=True, **options)
    lines: list[str] = []
    enough = threading.Event()

    def read() -> None:  # in a thread, so that a server that prints less than shown cannot hang the page
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if len(lines) >= wanted:
                enough.set()
        enough.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        enough.wait(timeout=SERVER_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return "".join(lines[:wanted] if wanted else lines), 0


def _console(example: Example) -> str | None:
    page = _page(example)
    mode, server = page.take_mode()
    page.last_python = None
    failures = []
    block_start = example.region.start + example.region.lexemes["source"].offset
    for command in console_commands(example.parsed):
        budget = "" if page.update else mode.budget
        printed, status = run_command(_with_budget(command.line, budget), page, server, command.shown)
        page.counts["console commands"] += 1
        compared = any(line.strip() not in ELLIPSIS for line in _lines(command.shown))
        page.counts[f"compared {mode.kind}" if compared else "only run"] += 1
        if status != 0 and "error" not in command.shown.lower():
            failures.append(f"$ {command.line}\nexited with {status}:\n{printed[-3000:]}")
        elif page.update and command.shown.strip():  # a command shown without output stays so
            page.rewrites.append(
                (block_start + command.start, block_start + command.end, _shown(page, printed, command.shown))
            )
        elif command.shown.strip() and (failure := compare(printed, command.shown, mode)):
            failures.append(f"$ {command.line}\n{failure}")
    return "\n\n".join(failures) or None


class OutputParser:
    """Plain fenced blocks (no language, or ``text``): outputs of the python block before them."""

    def __init__(self) -> None:
        self.lexer = RawFencedCodeBlockLexer(
            info_pattern=re.compile(r"(?P<language>(?:text)?)$\n", re.MULTILINE),
            mapping={"language": "arguments", "source": "source"},
        )

    def __call__(self, document: Document):
        for region in self.lexer(document):
            region.parsed = region.lexemes["source"]
            region.evaluator = _output
            yield region


PARSERS = [
    CodeBlockParser(language="python", evaluator=_python),
    CodeBlockParser(language="console", evaluator=_console),
    OutputParser(),
    DirectiveParser(),
    SkipParser(),
]


def parse(path: Path) -> Document:
    """The page, parsed by Sybil into its examples."""
    return Document.parse(str(path), *PARSERS)


def run_page(path: Path, folder: Path, update: bool = False) -> Page:
    """Run every example of the page at ``path`` in ``folder``; raise at the first that fails."""
    document = parse(path)
    folder.mkdir(parents=True, exist_ok=True)
    page = Page(folder=folder, update=update)
    bin_dir = str(Path(sys.executable).parent)
    page.environment = {
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "MLPLAB_CACHE_DIR": str(folder / ".cache"),
        "MPLBACKEND": "Agg",
        "COLUMNS": "100",
        "NO_COLOR": "1",
        "REPO": str(REPO),
    }
    document.namespace["__docs_page__"] = page
    document.namespace["__name__"] = "__main__"
    for example in document.examples():
        try:
            example.evaluate()
        except unittest.SkipTest:  # `<!-- skip: next "why" -->`: that block, and only it, does not run
            page.counts["skipped"] += 1
    return page


def machine() -> str:
    """The machine the outputs are measured on, in words."""
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs of {cpu}, {platform.system()}, PyTorch {torch.__version__}, "
        f"Python {platform.python_version()}"
    )


def stamp_text() -> str:
    return f"*Outputs on this page: measured on {datetime.date.today().isoformat()}, {machine()}.*"


def update_page(path: Path, folder: Path) -> None:
    """Run the page in full and write what each example printed into it, with today's stamp."""
    text = path.read_text()
    page = run_page(path, folder, update=True)
    for start, end, new in sorted(page.rewrites, reverse=True):
        text = text[:start] + new + text[end:]
    if STAMP.search(text):
        text = STAMP.sub(stamp_text(), text)
    elif page.varies:
        title_end = text.index("\n", text.index("# ")) + 1
        text = text[:title_end] + "\n" + stamp_text() + "\n" + text[title_end:]
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--update", action="store_true", help="write what the examples print into the pages")
    arguments = parser.parse_args(argv)
    for path in arguments.pages:
        with tempfile.TemporaryDirectory(prefix="mlplab-docs-") as folder:
            started = time.perf_counter()
            if arguments.update:
                update_page(path.resolve(), Path(folder))
                print(f"{path}: updated in {time.perf_counter() - started:.0f} s")
            else:
                counts = run_page(path.resolve(), Path(folder)).counts
                ran = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
                print(f"{path}: passed in {time.perf_counter() - started:.0f} s ({ran or 'no examples'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
