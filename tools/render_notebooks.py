"""Execute the labs' notebooks, render each to HTML (nbconvert) and screenshot the page (headless Chromium).

    python tools/render_notebooks.py OUT [LAB ...]

Writes OUT/NN_slug.ipynb (executed), OUT/NN_slug.html and OUT/NN_slug.png (the whole page), for
a person to look at every figure as a student will see it. Needs the dev extras and a Chromium
(the system's, as the browser test of `mlplab serve` uses, or MLPLAB_CHROMIUM).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

from mlplab import notebooks



def chromium_executable() -> str | None:
    """$MLPLAB_CHROMIUM, else the system's Chromium on PATH (None: Playwright's own, if installed)."""
    return os.environ.get("MLPLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def main(out: Path, names: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    pages = []
    for lab in notebooks.labs():
        if names and not any(name in (lab.name, lab.name[:2]) for name in names):
            continue
        notebook = notebooks.teacher_copy(notebooks.read(lab))
        started = time.perf_counter()
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(work)}}).execute()
        print(f"{lab.name}: executed in {time.perf_counter() - started:.1f} s", flush=True)
        nbformat.write(notebook, out / f"{lab.name}.ipynb")
        exporter = HTMLExporter()
        exporter.register_preprocessor(CoalesceStreamsPreprocessor, enabled=True)  # progress bars' \r, as Jupyter shows them
        html, _ = exporter.from_notebook_node(notebook)
        (out / f"{lab.name}.html").write_text(html, encoding="utf-8")
        pages.append(out / f"{lab.name}.html")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        for html in pages:
            page.goto(html.resolve().as_uri())
            page.screenshot(path=str(html.with_suffix(".png")), full_page=True)
            print(f"screenshot: {html.with_suffix('.png')}")
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
