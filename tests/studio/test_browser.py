"""The studio page in a real browser: headless Chromium (Playwright) opens the page of a real
``mlplab studio``, starts a small run from the form, sees curve points and first-layer weights
arrive, pauses and resumes, changes the learning rate, draws a digit and reads the prediction
and each layer's activations, stops the run and sees its test accuracy. A second test opens a
classroom studio (with a token) as the teacher and as a student.

Needs Playwright (the dev extra) and a Chromium (see tests/browser_helpers.py). Set
``MLPLAB_STUDIO_SCREENSHOTS=/some/folder`` to keep screenshots of the start, middle and end of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser_helpers import draw, headless_chromium, unavailable
from serve_helpers import SRC

try:
    import fastapi  # noqa: F401 - the serve extra
    from playwright import sync_api  # noqa: F401 - the dev extra
except ImportError as error:
    unavailable(f'{error.name} is not installed: pip install -e ".[dev]"')

import mlplab

WAIT_MS = 60_000  # for the data to load and a run to start, on a busy machine


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as launched:
        yield launched


@contextmanager
def mlplab_studio(runs, *options):
    """A real ``mlplab studio --port 0`` in a child process; yields the lines it printed first."""
    process = subprocess.Popen([sys.executable, "-m", "mlplab", "studio", "--port", "0", "--runs", str(runs), *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": SRC})
    try:
        first = process.stdout.readline()
        assert first.startswith("mlplab studio: http://"), first + process.stderr.read()
        yield first
    finally:
        if process.poll() is None:
            process.terminate()  # Ctrl+C's signal: open pages must not hold the server up
            try:
                process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=20)
                raise AssertionError("mlplab studio did not stop within 20 s of SIGTERM") from None


def open_page(browser, url, problems, **options):
    """The page in a new 1280x800 context (a projector); script errors and requests that leave the
    server are collected in ``problems``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, **options)
    page = context.new_page()
    origin = url.split("?")[0]
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: message.type == "error" and "status of 4" not in message.text
            and problems.append(f"console: {message.text}"))
    page.on("request", lambda request: request.url.startswith(origin) or problems.append(
        f"request off the server: {request.url}"))
    page.goto(url)
    page.wait_for_function("() => document.getElementById('dataset').options.length === 3", timeout=WAIT_MS)
    return page


def number(page, selector: str) -> int:
    return int(page.get_attribute(selector, "data-points") or 0)


def status_is(page, status: str) -> None:
    page.wait_for_selector(f"#status[data-status='{status}']", timeout=WAIT_MS)


def screenshot(page, name: str) -> None:
    folder = os.environ.get("MLPLAB_STUDIO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")  # the charts' column sticks to the top as the page scrolls
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_a_class_watches_a_run_start_learn_and_be_steered(browser, tmp_path, mnist_dir):
    test = mlplab.MNIST(mnist_dir, train=False)
    problems = []
    with mlplab_studio(tmp_path / "runs") as line:
        url = line.split()[2]
        page = open_page(browser, url, problems)
        assert page.is_hidden("#watching")  # on this machine only: no token, every control works
        page.fill("#hidden", "64")
        page.fill("#batch-size", "32")
        page.fill("#epochs", "30")
        page.fill("#lr", "0.05")
        page.click("#start")
        status_is(page, "training")
        page.wait_for_function("() => Number(document.getElementById('loss-chart').dataset.points) >= 5",
                               timeout=WAIT_MS)
        page.wait_for_function("() => document.getElementById('weights').dataset.units === '64'", timeout=WAIT_MS)
        assert "784-64-10" in page.text_content("#run-info")
        screenshot(page, "studio-start.png")

        page.click("#pause")
        status_is(page, "paused")
        held = number(page, "#loss-chart")
        page.wait_for_timeout(600)
        assert number(page, "#loss-chart") == held  # nothing trains while paused
        page.fill("#new-lr", "0.02")
        page.click("#apply")
        page.click("#resume")
        status_is(page, "training")
        page.wait_for_function("() => document.getElementById('changes').textContent.includes('0.02')",
                               timeout=WAIT_MS)
        page.wait_for_function("() => document.getElementById('lr-now').textContent.trim() === '0.02'",
                               timeout=WAIT_MS)
        page.wait_for_function(f"() => Number(document.getElementById('loss-chart').dataset.points) > {held}",
                               timeout=WAIT_MS)

        draw(page, test.data[0].numpy())  # a 7, traced with the mouse
        page.wait_for_function("() => document.getElementById('prediction').dataset.label !== ''", timeout=WAIT_MS)
        assert page.get_attribute("#prediction", "data-label") == "7"
        page.wait_for_function("() => document.getElementById('activations').dataset.layers === '2'",
                               timeout=WAIT_MS)
        assert page.locator("#bars li").count() == 10
        screenshot(page, "studio-middle.png")

        page.click("#stop")
        status_is(page, "finished")
        page.wait_for_selector("#test-accuracy", state="visible", timeout=WAIT_MS)
        accuracy = float(page.text_content("#test-accuracy").strip().rstrip("%"))
        run_dir = next((tmp_path / "runs").iterdir())
        opened = mlplab.open_run(run_dir)
        assert accuracy == pytest.approx(100 * opened.metrics["test_accuracy"], abs=0.01) and accuracy > 90
        assert opened.history.stopped["reason"] == "stopped from the studio"
        assert [change["lr"] for change in opened.history.changes] == [0.02]
        # The confusion matrix and the most confused pairs are on the page.
        assert page.locator("#confusion td").count() >= 100 and page.locator("#pairs li").count() >= 1
        screenshot(page, "studio-end.png")
        page.context.close()
    assert not problems, problems


def test_in_a_classroom_the_teacher_steers_and_students_watch(browser, tmp_path):
    problems = []
    with mlplab_studio(tmp_path / "runs", "--token", "classroom-secret-1") as line:
        url = line.split()[2]
        assert url.endswith("?token=classroom-secret-1")
        teacher = open_page(browser, url, problems)
        assert "token" not in teacher.url  # taken out of the address bar: a projector never shows it
        assert teacher.is_hidden("#watching") and teacher.is_enabled("#start")
        student = open_page(browser, url.split("?")[0], problems)
        assert student.is_visible("#watching") and student.is_disabled("#start")
        teacher.fill("#hidden", "16")
        teacher.fill("#epochs", "1")
        teacher.click("#start")
        status_is(student, "finished")  # the student's page followed the teacher's run
        assert student.is_disabled("#pause") and float(student.text_content("#test-accuracy").rstrip("%")) > 80
        for page in (teacher, student):
            page.context.close()
    assert not problems, problems
