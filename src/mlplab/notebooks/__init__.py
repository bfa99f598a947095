"""The labs as Jupyter notebooks: the teacher's copy (with solutions) and the students' copy (without).

The notebooks ship inside the package as Jupytext "percent" scripts (``NN_slug.py`` in this
folder: plain Python with ``# %%`` cell markers, so that changes read as diffs) and are written
out as ``.ipynb`` files, which JupyterLab, the classic Notebook and VS Code open as they are::

    mlplab notebooks                       # the list
    mlplab notebooks labs                  # the teacher's copies, solutions included
    mlplab notebooks labs --student        # the students' copies

Cells are tagged (cell metadata ``tags``): ``exercise`` (markdown, the exercise),
``solution`` (code: in the teacher's copy only), ``student`` (code: the starter the students
get in its place; in the students' copy only), ``checks`` (the asserts the notebook ends with).
A solution without a starter cell becomes "# Exercise N: your code here" in the students' copy.
Writing needs Jupytext (``pip install "mlplab[notebooks]"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.errors import MlplabError
from mlplab.files import atomic_write_text

FOLDER = Path(__file__).parent
FORMATS = ("ipynb", "py")  # the written files: notebooks, or percent scripts as stored
SOLUTION, STUDENT, EXERCISE, CHECKS = "solution", "student", "exercise", "checks"
_EXERCISE_NUMBER = re.compile(r"\*\*Exercise\s+([\w.]+)")


@dataclass(frozen=True)
class Lab:
    """One notebook of the course: its file name (without suffix), title and source file."""

    name: str
    title: str
    path: Path


def labs() -> list[Lab]:
    """The course's notebooks, in order."""
    found = []
    for path in sorted(FOLDER.glob("[0-9][0-9]_*.py")):
        found.append(Lab(path.stem, _title(path.read_text(encoding="utf-8")), path))
    return found


def _title(text: str) -> str:
    """The first markdown heading of a percent script: ``# # Lab 1: MNIST and a first MLP`` -> its words."""
    match = re.search(r"^# # (.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else "(untitled)"


def read(lab: Lab) -> Any:
    """The lab's notebook (an ``nbformat`` node), with its solutions and starters both."""
    return _jupytext().reads(lab.path.read_text(encoding="utf-8"), fmt="py:percent")


def tags(cell: Any) -> set[str]:
    """A cell's tags."""
    return set(cell.get("metadata", {}).get("tags", []))


def teacher_copy(notebook: Any) -> Any:
    """The notebook without the students' starter cells."""
    copy = _copy(notebook)
    copy.cells = [cell for cell in copy.cells if STUDENT not in tags(cell)]
    return copy


def student_copy(notebook: Any) -> Any:
    """The notebook with every solution replaced by its starter cell, or by "your code here"."""
    import nbformat

    copy = _copy(notebook)
    cells: list[Any] = []
    exercise = None  # the number of the exercise being answered
    for cell in copy.cells:
        if EXERCISE in tags(cell):
            match = _EXERCISE_NUMBER.search(cell.source)
            exercise = match.group(1).rstrip(".") if match else None
        if SOLUTION not in tags(cell):
            cells.append(cell)
        elif not (cells and STUDENT in tags(cells[-1])):
            label = f"Exercise {exercise}" if exercise else "Exercise"
            cells.append(nbformat.v4.new_code_cell(f"# {label}: your code here\n", metadata={"tags": [STUDENT]}))
    copy.cells = cells
    return copy


def write(
    folder: str | Path, student: bool = False, fmt: str = "ipynb", force: bool = False, names: list[str] | None = None
) -> list[Path]:
    """Write the labs' notebooks into ``folder``; returns the files written.

    Args:
        folder: where to write (created if missing).
        student: the students' copies (no solutions) instead of the teacher's.
        fmt: ``ipynb`` (notebooks) or ``py`` (Jupytext percent scripts).
        force: replace files that exist (by default they are kept and this refuses, so that a
            notebook somebody worked in is never overwritten).
        names: only these labs (file names without suffix, or their two-digit numbers).
    """
    if fmt not in FORMATS:
        raise MlplabError(f"unknown notebook format {fmt!r}: use one of {', '.join(FORMATS)}")
    chosen = _choose(labs(), names)
    folder = Path(folder)
    targets = {lab: folder / f"{lab.name}.{fmt}" for lab in chosen}
    existing = [path.name for path in targets.values() if path.exists()]
    if existing and not force:
        raise MlplabError(
            f"{folder} already holds {', '.join(existing)}: they may hold someone's work; "
            "choose another folder or pass --force to replace them"
        )
    jupytext = _jupytext()
    for lab, path in targets.items():
        notebook = read(lab)
        notebook = student_copy(notebook) if student else teacher_copy(notebook)
        text = jupytext.writes(notebook, fmt="py:percent" if fmt == "py" else "ipynb")
        atomic_write_text(path, text if text.endswith("\n") else text + "\n")
    return list(targets.values())


def _choose(available: list[Lab], names: list[str] | None) -> list[Lab]:
    if not names:
        return available
    chosen = []
    for name in names:
        matches = [lab for lab in available if name in (lab.name, lab.name[:2], lab.name[:2].lstrip("0"))]
        if not matches:
            raise MlplabError(
                f"no notebook {name!r}: choose from {', '.join(lab.name for lab in available)} (or their numbers)"
            )
        chosen += [lab for lab in matches if lab not in chosen]
    return chosen


def _copy(notebook: Any) -> Any:
    import copy

    return copy.deepcopy(notebook)


def _jupytext() -> Any:
    try:
        import jupytext
    except ImportError:
        raise MlplabError('writing the notebooks needs Jupytext: pip install "mlplab[notebooks]"') from None
    return jupytext
