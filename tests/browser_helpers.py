"""Helpers shared by the browser tests (tests/serve/test_browser.py, tests/studio/test_browser.py): the
Chromium to drive, and a digit drawn with the mouse, a finger or a pen, as a person traces it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest


def unavailable(reason: str):
    """Skip, saying what is missing; fail instead where the browser test must run
    ($MLPLAB_REQUIRE_BROWSER set, as .ci/run sets it)."""
    if os.environ.get("MLPLAB_REQUIRE_BROWSER"):
        pytest.fail(f"{reason} (MLPLAB_REQUIRE_BROWSER is set: the browser test must run)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def chromium_executable() -> str | None:
    """The system's Chromium (or Chrome): $MLPLAB_CHROMIUM, else the first on PATH; None if none."""
    named = os.environ.get("MLPLAB_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """Headless Chromium through Playwright: the system's if there is one, else Playwright's own download;
    skips (or fails, see `unavailable`) when there is none."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=chromium_executable(), headless=True)
        except sync_api.Error as error:
            unavailable(f"no Chromium to drive ({' '.join(str(error).split())[:160]}); install one: "
                        "apt-get install chromium, or playwright install chromium")
        yield launched
        launched.close()


def ink_runs(digit: np.ndarray) -> list[tuple[int, int, int]]:
    """``(row, first column, last column)`` of each horizontal run of ink (over half intensity)."""
    runs = []
    for row, values in enumerate(np.asarray(digit) > 127):
        columns = np.flatnonzero(values)
        if columns.size:
            breaks = np.flatnonzero(np.diff(columns) > 1)
            starts = np.concatenate([[columns[0]], columns[breaks + 1]])
            ends = np.concatenate([columns[breaks], [columns[-1]]])
            runs.extend((row, int(start), int(end)) for start, end in zip(starts, ends))
    return runs


def draw(page, digit: np.ndarray, pointer: str = "mouse") -> None:
    """Drag the pointer, pressed, along each ink run of ``digit`` scaled onto the pad: the mouse,
    a finger (touch events, as a phone sends them) or a pen (Chromium's DevTools input events)."""
    page.locator("#pad").scroll_into_view_if_needed()  # the mouse reaches only what is on screen
    box = page.locator("#pad").bounding_box()
    cell = box["width"] / 28  # one MNIST pixel on the pad, in CSS pixels

    def at(row: float, column: float) -> tuple[float, float]:
        return box["x"] + (column + 0.5) * cell, box["y"] + (row + 0.5) * cell

    devtools = None if pointer == "mouse" else page.context.new_cdp_session(page)
    for row, first, last in ink_runs(digit):
        steps = max(2, last - first)
        path = [at(row, first + (last - first) * step / steps) for step in range(steps + 1)]
        if pointer == "mouse":
            page.mouse.move(*path[0])
            page.mouse.down()
            for point in path[1:]:
                page.mouse.move(*point)
            page.mouse.up()
        elif pointer == "touch":
            for kind, (x, y) in [("touchStart", path[0]), *(("touchMove", point) for point in path[1:])]:
                devtools.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
            devtools.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        else:
            pen = {"pointerType": "pen", "button": "left", "force": 0.5}
            for kind, (x, y) in [("mousePressed", path[0]), *(("mouseMoved", point) for point in path[1:]),
                                 ("mouseReleased", path[-1])]:
                devtools.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "buttons": 1,
                                                           "clickCount": 1, **pen})
    if devtools is not None:
        devtools.detach()
