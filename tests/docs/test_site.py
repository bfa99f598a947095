"""The documentation site: `mkdocs build --strict` passes with every lab executed, and the generated
reference pages hold every command, config key and export that the code has."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

from conftest import REPO
from mlplab import notebooks
from mlplab.config import field_types

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("mkdocs_jupyter")
nbformat = pytest.importorskip("nbformat")


@pytest.fixture(scope="module")
def site(tmp_path_factory, executed_lab) -> Path:
    """The site built strictly from a copy of docs/ (the build writes the lab notebooks into its docs folder),
    with every lab notebook executed."""
    work = tmp_path_factory.mktemp("docs")
    executed = work / "executed"
    executed.mkdir()
    for lab in notebooks.labs():
        nbformat.write(executed_lab(lab), executed / f"{lab.name}.ipynb")
    shutil.copytree(REPO / "docs", work / "docs", ignore=shutil.ignore_patterns("labs"))
    config = (REPO / "mkdocs.yml").read_text()
    config = config.replace("docs_dir: docs", f"docs_dir: {work / 'docs'}")
    config = config.replace("  - tools/docs_hooks.py", f"  - {REPO / 'tools' / 'docs_hooks.py'}")
    config = config.replace("paths: [src]", f"paths: [{REPO / 'src'}]")
    (work / "mkdocs.yml").write_text(config)
    out = work / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(work / "mkdocs.yml"),
                             "-d", str(out)], capture_output=True, text=True, timeout=600, cwd=work,
                            env={**os.environ, "MLPLAB_DOCS_NOTEBOOKS": str(executed), "NO_MKDOCS_2_WARNING": "1"})
    problems = [line for line in result.stderr.splitlines() if not line.startswith("INFO")]
    assert result.returncode == 0, "\n".join(problems)[-4000:]
    return out


def _text(page: Path) -> str:
    """A built page's visible text, roughly: tags dropped, entities decoded, white space made single spaces."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))).split())


def test_every_lab_is_a_page_with_its_outputs_and_figures(site):
    nav = (REPO / "mkdocs.yml").read_text()
    home = _text(site / "index.html")  # every page carries the navigation
    for lab in notebooks.labs():
        assert f"tutorials/labs/{lab.name}.ipynb" in nav, f"add {lab.name} to mkdocs.yml's nav"
        page = (site / "tutorials" / "labs" / lab.name / "index.html").read_text(encoding="utf-8")
        assert lab.title.replace("`", "") in _text(site / "tutorials" / "labs" / lab.name / "index.html")
        assert lab.title.replace("`", "") in home, f"the navigation names {lab.name} otherwise"
        assert re.search(r'<img[^>]+src="data:image/png;base64,', page), f"{lab.name}: no figure on the page"
        assert page.count('class="jp-OutputArea-child"') >= 3, f"{lab.name}: no outputs (not executed?)"
        # Every link within the page (its table of contents too) lands on a heading that is there.
        targets = set(re.findall(r'href="#([^"]+)"', page))
        missing = sorted(target for target in targets if f'id="{target}"' not in page)
        assert targets and not missing, f"{lab.name}: links to {missing}, which the page does not have"


def test_the_cli_reference_holds_every_command_and_flag(site):
    from mlplab.cli.main import build_parser

    text = _text(site / "reference" / "cli" / "index.html")
    parser = build_parser()
    commands = next(action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction")
    for name, sub in commands.choices.items():
        assert f"mlplab {name}" in text, name
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text, f"mlplab {name} {flag}"


def test_the_config_reference_holds_every_key_with_its_default(site):
    text = _text(site / "reference" / "config" / "index.html")
    for name in field_types():
        assert re.search(rf"\b{name}\b", text), name
    assert "one-cycle" in text or "onecycle" in text  # the help text is there, not just the names


def test_the_api_reference_documents_every_export(site):
    import mlplab

    page = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name, module in mlplab._EXPORTS.items():
        assert re.search(rf'id="{re.escape(module)}\.{name}"', page), f"{module}.{name}"
    text = _text(site / "reference" / "api" / "index.html")
    for documented in (mlplab.fit, mlplab.MLP, mlplab.Run, mlplab.Batches):  # the docstrings, rendered
        first_line = documented.__doc__.strip().splitlines()[0]
        words = re.sub(r"[`*]", "", first_line).split()
        assert " ".join(words[:4]) in text, first_line


def test_every_page_of_the_docs_folder_is_in_the_nav():
    nav = (REPO / "mkdocs.yml").read_text()
    for page in (REPO / "docs").rglob("*.md"):
        assert str(page.relative_to(REPO / "docs")) in nav, f"add {page.relative_to(REPO)} to mkdocs.yml's nav"
