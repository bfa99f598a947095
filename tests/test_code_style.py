"""The habits of a well-kept package, checked in CI: Ruff's lint and format, and mypy, on src/.

The settings live in pyproject.toml ([tool.ruff], [tool.mypy]), where their exclusions say why. The
tools' versions are pinned in the dev extra, so a new release cannot turn CI red on its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def _tool(name: str) -> list[str]:
    """The command of a tool installed in this environment, or a skip saying how to install it."""
    if shutil.which(name) is None and subprocess.run([sys.executable, "-m", name, "--version"],
                                                     capture_output=True).returncode != 0:
        pytest.skip(f"{name} is not installed: pip install -e '.[dev]'")
    return [sys.executable, "-m", name]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_in_src():
    result = _run([*_tool("ruff"), "check", "--no-cache", "src"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_src_is_formatted_as_ruff_formats_it():
    result = _run([*_tool("ruff"), "format", "--check", "--no-cache", "src"])
    assert result.returncode == 0, "run `ruff format src`:\n" + result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy_finds_nothing_in_src():
    result = _run([*_tool("mypy"), "--no-incremental"])  # files and settings from pyproject.toml
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout
