"""The Python examples of the README and the Get started page run as shown, and print what they say.

Each ```python block runs in a fresh interpreter from an empty folder (the bundled MNIST, no network).
A ``print(...)`` whose line ends in a comment states its output: text is compared exactly, and a
number with a ``%`` (an accuracy, which varies in its last digits with the CPU and the thread count)
within half a point.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO

PAGES = ["README.md", "docs/index.md"]
TOLERANCE = 0.5  # percentage points an accuracy may differ from the one shown
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def shown_outputs(block: str) -> list[str]:
    """What the block says its prints print: the comment ending each ``print(...)`` line, in order."""
    return [match.group(1).strip() for match in re.finditer(r"^\s*print\(.*\)\s+#\s*(.+)$", block, flags=re.MULTILINE)]


def agrees(printed: str, shown: str) -> bool:
    """Whether a printed line matches the shown one: the same text, its percentages within TOLERANCE."""
    if _PERCENT.sub("%", printed) != _PERCENT.sub("%", shown):
        return False
    pairs = zip(_PERCENT.findall(printed), _PERCENT.findall(shown))
    return all(abs(float(got) - float(want)) <= TOLERANCE for got, want in pairs)


EXAMPLES = [(page, index, block) for page in PAGES
            for index, block in enumerate(python_blocks((REPO / page).read_text()))]


def test_the_pages_have_examples_that_state_their_output():
    assert len(EXAMPLES) >= 3 and sum(bool(shown_outputs(block)) for _, _, block in EXAMPLES) >= 3


def test_the_comparison_accepts_the_same_and_refuses_a_change():
    assert agrees("98.31%", "98.3%") and agrees("test accuracy 96.86%", "test accuracy 96.9%")
    assert not agrees("97.1%", "98.3%") and not agrees("test acc 96.9%", "test accuracy 96.9%")


@pytest.mark.parametrize(("page", "index", "block"), EXAMPLES, ids=[f"{p}#{i}" for p, i, _ in EXAMPLES])
def test_the_example_runs_and_prints_what_it_shows(page, index, block, tmp_path):
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{page}, Python example {index + 1}:\n{result.stderr[-3000:]}"
    printed = result.stdout.strip().splitlines()
    shown = shown_outputs(block)
    assert len(printed) == len(shown), (printed, shown)
    for got, want in zip(printed, shown):
        assert agrees(got, want), f"{page}, Python example {index + 1}: printed {got!r}, the page shows {want!r}"
