"""The labs' notebooks: their shape, the teacher's and students' copies, and every notebook executed.

Each notebook runs top to bottom in a fresh Jupyter kernel (nbclient, ipykernel) from a
temporary folder, with the bundled MNIST and no network; its last cell asserts its results,
so an error or a failed check anywhere fails its test.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from mlplab import notebooks
from mlplab.cli.main import main
from conftest import NOTEBOOK_CELL_TIMEOUT

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupytext")

LABS = notebooks.labs()


def _lines(source: str) -> set[str]:
    """The non-trivial lines of a cell: comments, blanks and lone brackets say nothing about a solution."""
    return {line.strip() for line in source.splitlines()
            if len(line.strip()) > 3 and not line.strip().startswith("#")}


def test_the_course_has_its_seven_labs_in_order():
    assert [lab.name[:2] for lab in LABS] == [f"{n:02d}" for n in range(1, 8)]
    for number, lab in enumerate(LABS, start=1):
        assert lab.title.startswith(f"Lab {number}: "), lab.title


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_each_lab_follows_the_conventions(lab):
    """Exercises come before their solutions, a starter sits just before its solution, checks end it."""
    notebook = notebooks.read(lab)
    cells = notebook.cells
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    solutions = [i for i, cell in enumerate(cells) if notebooks.SOLUTION in notebooks.tags(cell)]
    assert len(solutions) >= 2, "a lab has exercises, each with a solution"
    for index in solutions:
        assert cells[index].cell_type == "code"
        before = index - 1 if notebooks.STUDENT not in notebooks.tags(cells[index - 1]) else index - 2
        assert cells[before].cell_type == "markdown" and notebooks.EXERCISE in notebooks.tags(cells[before]), (
            f"cell {index}: a solution follows its exercise (and, optionally, its starter)")
        assert "**Exercise" in cells[before].source
    for index, cell in enumerate(cells):
        if notebooks.STUDENT in notebooks.tags(cell):
            assert notebooks.SOLUTION in notebooks.tags(cells[index + 1]), f"cell {index}: a starter precedes a solution"
    code = [cell for cell in cells if cell.cell_type == "code"]
    assert notebooks.CHECKS in notebooks.tags(code[-1]) and "assert" in code[-1].source, "a lab ends with its checks"
    assert all(not cell.get("outputs") for cell in code)


def test_the_students_copy_has_no_solution_and_the_teachers_every_one(tmp_path, capsys):
    assert main(["notebooks", str(tmp_path / "student"), "--student"]) == 0
    assert main(["notebooks", str(tmp_path / "teacher")]) == 0
    assert capsys.readouterr().out.count("wrote ") == 2 * len(LABS)
    for lab in LABS:
        source = notebooks.read(lab).cells
        solutions = [cell for cell in source if notebooks.SOLUTION in notebooks.tags(cell)]
        given = set().union(*(_lines(cell.source) for cell in source if notebooks.SOLUTION not in notebooks.tags(cell)))
        revealing = set().union(*(_lines(cell.source) for cell in solutions)) - given
        assert revealing, f"{lab.name}: its solutions hold lines of their own"

        student = nbformat.read(tmp_path / "student" / f"{lab.name}.ipynb", as_version=4)
        nbformat.validate(student)
        student_lines = set().union(*(_lines(cell.source) for cell in student.cells))
        assert not revealing & student_lines, f"{lab.name}: a solution is left"
        assert not any(notebooks.SOLUTION in notebooks.tags(cell) for cell in student.cells)
        starters = [cell for cell in student.cells if notebooks.STUDENT in notebooks.tags(cell)]
        assert len(starters) == len(solutions)

        teacher = nbformat.read(tmp_path / "teacher" / f"{lab.name}.ipynb", as_version=4)
        nbformat.validate(teacher)
        assert [cell.source for cell in teacher.cells if notebooks.SOLUTION in notebooks.tags(cell)] == \
            [cell.source for cell in solutions]
        assert not any(notebooks.STUDENT in notebooks.tags(cell) for cell in teacher.cells)


def test_a_solution_without_a_starter_becomes_a_numbered_placeholder():
    new = nbformat.v4
    notebook = new.new_notebook(cells=[
        new.new_markdown_cell("**Exercise 3.** Write it.", metadata={"tags": ["exercise"]}),
        new.new_code_cell("answer = 42", metadata={"tags": ["solution"]}),
        new.new_code_cell("print(answer)"),
    ])
    student = notebooks.student_copy(notebook)
    assert [cell.source for cell in student.cells] == ["**Exercise 3.** Write it.", "# Exercise 3: your code here\n",
                                                       "print(answer)"]
    assert [cell.source for cell in notebooks.teacher_copy(notebook).cells] == [c.source for c in notebook.cells]


def test_existing_notebooks_are_never_overwritten_without_force(tmp_path, capsys):
    assert main(["notebooks", str(tmp_path), "--only", "1"]) == 0
    written = tmp_path / f"{LABS[0].name}.ipynb"
    written.write_text("a student's work")
    assert main(["notebooks", str(tmp_path), "--only", "1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--force" in error[0] and written.name in error[0]
    assert written.read_text() == "a student's work"
    assert sorted(path.name for path in tmp_path.iterdir()) == [written.name], "no temporary file is left"
    assert main(["notebooks", str(tmp_path), "--only", "1", "--force"]) == 0
    assert nbformat.read(written, as_version=4).cells


def test_listing_choosing_and_the_percent_format(tmp_path, capsys):
    assert main(["notebooks"]) == 0
    listing = capsys.readouterr().out
    assert all(lab.name in listing and lab.title in listing for lab in LABS)
    assert main(["notebooks", str(tmp_path), "--only", "02", LABS[3].name, "--format", "py"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{LABS[1].name}.py", f"{LABS[3].name}.py"]
    import jupytext

    again = jupytext.read(tmp_path / f"{LABS[1].name}.py")
    teacher = notebooks.teacher_copy(notebooks.read(LABS[1]))
    assert [cell.source for cell in again.cells] == [cell.source for cell in teacher.cells]
    assert main(["notebooks", str(tmp_path / "x"), "--only", "99"]) == 2
    assert "no notebook '99'" in capsys.readouterr().err


def test_without_jupytext_writing_says_which_extra(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_jupytext(name, *args, **kwargs):
        if name == "jupytext":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jupytext)
    assert main(["notebooks", str(tmp_path)]) == 2
    assert 'pip install "mlplab[notebooks]"' in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _execute(notebook, folder: Path):
    """Run ``notebook`` top to bottom in a fresh python3 kernel whose working folder is ``folder``."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=NOTEBOOK_CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    return notebook


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_the_students_copy_runs_up_to_its_first_exercise(lab, tmp_path):
    """What comes before the first exercise needs nothing a student has to write."""
    student = notebooks.student_copy(notebooks.read(lab))
    first = next(i for i, cell in enumerate(student.cells) if notebooks.STUDENT in notebooks.tags(cell))
    student.cells = student.cells[:first]
    assert any(cell.cell_type == "code" for cell in student.cells)
    executed = _execute(student, tmp_path)
    assert all(output.output_type != "error" for cell in executed.cells for output in cell.get("outputs", []))


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.name)
def test_the_notebook_runs_top_to_bottom_and_its_checks_pass(lab, executed_lab):
    executed = executed_lab(lab)  # raises CellExecutionError, with the cell and its traceback
    checks = executed.cells[-1]
    assert notebooks.CHECKS in notebooks.tags(checks) and checks.execution_count is not None
    images = [output.data["image/png"] for cell in executed.cells for output in cell.get("outputs", [])
              if "data" in output and "image/png" in output.data]
    assert images, "a lab shows figures"
    for image in images:
        assert base64.b64decode(image).startswith(b"\x89PNG")
    _render(executed, lab, images)


def _render(executed, lab, images):
    """The executed notebook as HTML (nbconvert), with every figure in it; kept where MLPLAB_NOTEBOOKS_OUT says."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    exporter = HTMLExporter()
    exporter.register_preprocessor(CoalesceStreamsPreprocessor, enabled=True)  # progress bars' \r, as Jupyter shows them
    html, _ = exporter.from_notebook_node(executed)
    shown = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(shown) == len(images)
    keep = os.environ.get("MLPLAB_NOTEBOOKS_OUT")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        nbformat.write(executed, Path(keep) / f"{lab.name}.ipynb")
        (Path(keep) / f"{lab.name}.html").write_text(html, encoding="utf-8")
