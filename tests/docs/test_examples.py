"""Every Python and console example of the README and the docs pages runs, and prints what the page shows.

The rules (what runs, how outputs compare, the directives a page uses) are in tools/docs_examples.py,
which also rewrites a page's outputs from a full run (``python tools/docs_examples.py --update PAGE``).
Each page runs top to bottom in a folder of its own, with the bundled MNIST and no network.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from conftest import REPO

_spec = importlib.util.spec_from_file_location("docs_examples", REPO / "tools" / "docs_examples.py")
docs = importlib.util.module_from_spec(_spec)
sys.modules["docs_examples"] = docs  # its dataclasses look their module up
_spec.loader.exec_module(docs)

PAGES = docs.pages()


def _ids(path):
    return str(path.relative_to(REPO))


def test_the_pages_hold_examples_that_run_and_compare():
    examples = compared = 0
    for path in PAGES:
        text = path.read_text()
        examples += len(re.findall(r"^```(?:python|console)$", text, re.MULTILINE))
        compared += len(re.findall(r"^```(?:text)?$\n(?!```)", text, re.MULTILINE))
    assert examples >= 80 and compared >= 40, (examples, compared)


def test_exact_comparison_refuses_any_change():
    mode = docs.Mode()
    assert docs.compare("epoch 3  loss 0.2345\n", "epoch 3  loss 0.2345", mode) is None
    assert docs.compare("epoch 3  loss 0.2346", "epoch 3  loss 0.2345", mode)
    assert docs.compare("epoch 3 loss 0.2345", "epoch 3  loss 0.2345", mode) is None  # runs of spaces
    assert docs.compare("epoch 3  loss 0.2345\nmore", "epoch 3  loss 0.2345", mode)


def test_measured_comparison_takes_each_kind_of_number_within_its_tolerance():
    mode = docs.Mode("measured")
    assert docs.compare("test accuracy 98.31% in 1.9 s", "test accuracy 98.1% in 0.8 s", mode) is None
    assert docs.compare("test accuracy 97.31% in 1.9 s", "test accuracy 98.1% in 0.8 s", mode)  # a point off
    assert docs.compare("test accuracy 98.31% in 99 s", "test accuracy 98.1% in 0.8 s", mode)  # 120x slower
    assert docs.compare("accuracy 0.9723 after 27 epochs", "accuracy 0.9726 after 27 epochs", mode) is None
    assert docs.compare("accuracy 0.9523 after 27 epochs", "accuracy 0.9726 after 27 epochs", mode)
    assert docs.compare("accuracy 0.9726 after 28 epochs", "accuracy 0.9726 after 27 epochs", mode)  # counts exact
    assert docs.compare("accuracy 0.9726 (of 10000)", "accuracy 0.9726 (of 10,000)", mode) is None


def test_an_ellipsis_stands_for_any_lines_and_a_budget_compares_the_form():
    assert docs.compare("a 1\nb 2\nb 3\nc 4", "a 1\n...\nc 4", docs.Mode()) is None
    assert docs.compare("a 1\nc 4", "a 1\n...\nc 4", docs.Mode()) is None
    assert docs.compare("a 1\nb 2", "a 1\n...\nc 4", docs.Mode())
    budget = docs.Mode("budget", budget="--epochs 1")
    shown = "epoch 1 loss 0.5\nepoch 2 loss 0.4\ntest accuracy 98.0%"
    assert docs.compare("epoch 1 loss 0.9\ntest accuracy 91.0%", shown, budget) is None
    assert docs.compare("epoch 1 loss 0.9\nsomething new\ntest accuracy 91.0%", shown, budget)
    assert docs.compare("epoch 1 loss 0.9", shown, budget)


def test_a_note_that_the_load_changed_mid_run_may_come_or_not_where_outputs_vary():
    """`threads: 2 from step 411 (...)` says what else the machine did at that moment (CI printed one)."""
    change = "threads: 2 from step 411 (0.0 of 2 CPUs busy with other work, 2.0 free; 104 M multiply-adds a step)"
    shown = "threads: 1 (auto: …)\nepoch 1/2 loss 0.41 0.8s\nepoch 2/2 loss 0.11 0.8s"
    printed = "threads: 1 (auto: 1.1 of 2 CPUs busy)\nepoch 1/2 loss 0.41 1.0s\n" + change + "\nepoch 2/2 loss 0.11 0.6s"
    for mode in (docs.Mode("measured"), docs.Mode("budget", budget="--epochs 1")):
        assert docs.compare(printed, shown, mode) is None
        assert docs.compare(printed.replace(change + "\n", ""), shown.replace("0.8s\n", "0.8s\n" + change + "\n", 1),
                            mode) is None  # shown, not printed
    assert docs.compare(printed, shown.replace("…", "1.1 of 2 CPUs busy"), docs.Mode())  # exact: every line
    assert docs.compare(printed.replace(change, "threads: 2"), shown, docs.Mode("measured"))  # only that note


def test_a_console_block_splits_into_commands_and_their_outputs():
    source = "$ mlplab train \\\n    --epochs 2\nepoch 1\nepoch 2\n$ mlplab eval runs/x  # a comment\nloss 1\n"
    commands = docs.console_commands(source)
    assert [c.line for c in commands] == ["mlplab train  --epochs 2", "mlplab eval runs/x  # a comment"]
    assert [c.shown for c in commands] == ["epoch 1\nepoch 2\n", "loss 1\n"]
    assert [source[c.start : c.end] for c in commands] == ["epoch 1\nepoch 2\n", "loss 1\n"]
    assert docs._with_budget("mlplab train --preset best | grep test", "--epochs 1") == (
        "mlplab train --preset best --epochs 1 | grep test")


def test_a_page_whose_outputs_vary_says_when_and_where_they_were_measured():
    for path in PAGES:
        text = path.read_text()
        if "<!-- docs: measured" in text or "<!-- docs: budget" in text:
            assert docs.STAMP.search(text), f"{_ids(path)}: no stamp; run python tools/docs_examples.py --update"


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_the_page_runs_and_prints_what_it_shows(path):
    text = path.read_text()
    if not re.search(r"^```(?:python|console)$|invisible-code-block", text, re.MULTILINE):
        pytest.skip("no examples on this page")
    # A process of its own per page: the examples set warnings filters, threads and working folders.
    command = [sys.executable, str(REPO / "tools" / "docs_examples.py"), str(path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-8000:]
    assert "passed" in result.stdout


def test_a_page_runs_its_blocks_with_their_directives(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n"
        "<!-- docs: measured -->\n```console\n$ echo 'accuracy 98.31%'\naccuracy 98.1%\n```\n\n"
        '<!-- skip: next "it cannot run here" -->\n```console\n$ false\n```\n\n'
        "```python\nprint(sum(range(4)))\n```\n\n```\n6\n```\n\n"
        "<!-- docs: server -->\n```console\n"
        "$ python -c \"import time; print('listening', flush=True); time.sleep(600)\"\nlistening\n```\n"
    )
    counts = docs.run_page(page, tmp_path / "run").counts
    assert counts["skipped"] == 1 and counts["console commands"] == 2 and counts["python blocks"] == 1
    assert counts["compared measured"] == 1 and counts["compared exact"] == 2
    page.write_text(page.read_text().replace("print(sum(range(4)))", "print(sum(range(5)))"))
    with pytest.raises(AssertionError, match="10"):
        docs.run_page(page, tmp_path / "again")


def test_an_update_keeps_the_pages_elisions_and_wildcards(tmp_path):
    page = docs.Page(folder=tmp_path)
    printed = "data from /venv/mlplab/data\nthreads: 2 (auto: idle)\nepoch 1 acc 91%\n  0 - zero 99%\n"
    printed += f"saved: {tmp_path}/runs"
    shown = "data from …/mlplab/data\nthreads: 1 (auto: …)\nepoch 1 acc 90%\n...\nsaved: …/runs"
    assert docs._shown(page, printed, shown) == (
        "data from …/mlplab/data\nthreads: 2 (auto: …)\nepoch 1 acc 91%\n...\nsaved: …/runs\n")
    assert docs._shown(page, "something else entirely", shown) == "something else entirely\n"


def test_an_ellipsis_inside_a_line_stands_for_any_text_there():
    shown = "mnist: 50000 train images from …/mlplab/data/bundled/mnist (bundled)"
    printed = "mnist: 50000 train images from /venv/lib/site-packages/mlplab/data/bundled/mnist (bundled)"
    assert docs.compare(printed, shown, docs.Mode()) is None
    assert docs.compare(printed.replace("50000", "5000"), shown, docs.Mode())
    assert docs.compare(printed.replace("(bundled)", "(downloaded)"), shown, docs.Mode())


def test_a_run_folder_named_by_its_start_time_matches_any_such_name():
    shown = "run directory: runs/mnist-mlp-20261130-001239"
    assert docs.compare("run directory: runs/mnist-mlp-20261207-011134", shown, docs.Mode()) is None
    assert docs.compare("run directory: runs/fashion-mlp-20261207-011134", shown, docs.Mode())
