"""The page in a real browser: headless Chromium (driven by Playwright) opens the page of a real
``mlplab serve``, draws real MNIST test digits with the mouse (one with a finger on a phone-sized
touch screen, one with a pen), clears, uploads, and reads what the page shows.

Each digit is drawn the way a person would trace it: the test image's ink (pixels over half
intensity) is scaled to the canvas and the mouse is dragged, button down, along every run of
ink in every pixel row. The brush is wider than a row, so the runs merge into strokes.

Needs Playwright (the dev extra) and a Chromium: the system's (``apt-get install chromium``;
CI installs it) or Playwright's own (``playwright install chromium``); ``MLPLAB_CHROMIUM`` may
name the executable. Without them this test skips and says which is missing (it fails
instead when ``MLPLAB_REQUIRE_BROWSER`` is set, as in CI). Set
``MLPLAB_SERVE_SCREENSHOT=/some/file.png`` to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from browser_helpers import draw, headless_chromium, unavailable
from serve_helpers import mlplab_serve, user_png


try:
    import fastapi  # noqa: F401 - the serve extra
    from playwright import sync_api  # noqa: F401 - the dev extra
except ImportError as error:
    unavailable(f'{error.name} is not installed: pip install -e ".[dev]"')

DIGITS = (0, 1, 2, 3, 4)  # the first five MNIST test images: 7, 2, 1, 0, 4
WAIT_MS = 20_000  # for one prediction to show, on a busy machine
SHOWN = ("before => Number(document.getElementById('pad').dataset.drawing) > before && "
         "document.getElementById('result').dataset.shown === document.getElementById('pad').dataset.drawing")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium: the system's if there is one, else Playwright's own download."""
    with headless_chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def page_url(trained_run):
    """The URL printed by a real `mlplab serve RUN_DIR --port 0` (stopped after the module)."""
    with mlplab_serve(trained_run) as (_, line):
        yield line.split()[2]


@pytest.fixture
def open_page(browser, page_url):
    """Open the page in a new browser context (``viewport``, ``has_touch``...), its model description
    loaded; the test fails on any script error or on a request that leaves the server (the page
    must work offline)."""
    contexts, problems = [], []

    def open_page(**options):
        context = browser.new_context(**{"viewport": {"width": 1100, "height": 860}, **options})
        contexts.append(context)
        opened = context.new_page()
        opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        opened.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
        opened.on("request", lambda request: request.url.startswith(page_url) or problems.append(
            f"request off the server: {request.url}"))
        opened.goto(page_url)
        opened.wait_for_function("() => document.querySelectorAll('#bars li').length === 10", timeout=WAIT_MS)
        return opened

    yield open_page
    for context in contexts:
        context.close()
    # Chromium logs the answers the tests provoke as failed resources: 422 for the blank canvas
    # ("no digit found"), 415 for the text file uploaded.
    problems = [p for p in problems if "status of 422" not in p and "status of 415" not in p]
    assert not problems, problems


@pytest.fixture
def page(open_page):
    """The page on a desktop-sized window, drawn on with the mouse."""
    return open_page()


def shown(page, before: int = 0) -> dict[str, str]:
    """What the result card shows, once it answers the pad's latest drawing (newer than ``before``,
    the pad's drawing count before an upload, which changes the pad a moment after the event)."""
    page.wait_for_function(SHOWN, arg=before, timeout=WAIT_MS)
    return {name: page.text_content(f"#{name}").strip() for name in ("label", "label-word", "confidence", "message")}


def test_digits_drawn_with_the_mouse_are_read_on_the_page(page, mnist_test, tmp_path):
    images, labels = mnist_test
    info = page.text_content("#model-info")
    assert "MNIST" in info and "784-256-10" in info and "Test accuracy" in info
    results = []
    for index in DIGITS:
        page.click("#clear")
        draw(page, images[index])
        seen = shown(page)
        results.append((int(labels[index]), seen["label"], seen["confidence"]))
        if index == DIGITS[0]:
            screenshot(page, tmp_path)
    print("digit, shown, confidence:", results)
    right = sum(str(digit) == label for digit, label, _ in results)
    assert right >= len(DIGITS) - 1, results
    # The last reading's bars: one per class, the predicted one highlighted, widths summing to ~100%.
    top = page.locator("#bars li.top .name").text_content()
    assert top.startswith(results[-1][1])
    # As drawn on screen: each bar's fill is its share of the track (CSS transitions finished).
    page.wait_for_timeout(400)
    widths = page.eval_on_selector_all("#bars .fill", "bars => bars.map(b => 100 * b.getBoundingClientRect().width"
                                                      " / b.parentElement.getBoundingClientRect().width)")
    assert len(widths) == 10 and abs(sum(widths) - 100) < 2 and max(widths) > 50, widths
    # What the model saw: a 28x28 with light ink on black (its corner pixel is black, some pixel is white).
    seen_pixels = page.evaluate("() => Array.from(document.getElementById('seen').getContext('2d')"
                                ".getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))")
    assert len(seen_pixels) == 784 and seen_pixels[0] == 0 and max(seen_pixels) == 255


def test_clear_shows_that_no_digit_is_found(page, mnist_test, tmp_path):
    draw(page, mnist_test[0][0])
    assert shown(page)["label"] == "7"
    page.click("#clear")
    seen = shown(page)
    assert seen["label-word"] == "No digit found" and seen["confidence"].startswith("The image is blank")
    assert page.locator("#bars li.top").count() == 0
    screenshot(page, tmp_path, "serve_page_no_digit.png")


def test_an_uploaded_image_is_read(page, mnist_test):
    images, labels = mnist_test
    index = 2  # a 1
    drawings = page.evaluate("() => Number(document.getElementById('pad').dataset.drawing)")
    page.set_input_files("#upload", files=[{"name": "one.png", "mimeType": "image/png",
                                            "buffer": user_png(images[index])}])
    assert shown(page, drawings)["label"] == str(int(labels[index]))
    page.set_input_files("#upload", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"a note"}])
    seen = shown(page, drawings + 1)
    assert seen["label-word"] == "Cannot read that" and "notes.txt is text/plain, not an image" in seen["message"]


@pytest.mark.parametrize("pointer", ["touch", "pen"])
def test_a_finger_or_a_pen_draws_too(open_page, mnist_test, pointer, tmp_path):
    """On a phone-sized touch screen (one column), a finger draws; on the desktop page, a pen does."""
    images, labels = mnist_test
    touch = pointer == "touch"
    page = open_page(**({"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
                        if touch else {}))
    index = 3  # a 0
    page.evaluate("() => { window.pointerTypes = new Set(); document.getElementById('pad')"
                  ".addEventListener('pointerdown', event => window.pointerTypes.add(event.pointerType)); }")
    draw(page, images[index], pointer)
    assert shown(page)["label"] == str(int(labels[index]))
    assert page.evaluate("() => [...window.pointerTypes]") == [pointer]
    if touch:
        screenshot(page, tmp_path, "serve_page_phone.png")


def screenshot(page, tmp_path: Path, name: str = "serve_page.png") -> None:
    """Save the page as PNG under tmp_path (and beside $MLPLAB_SERVE_SCREENSHOT, a path, when it
    is set: that path for the desktop page, the phone's with its name); print where."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True, animations="disabled")  # the bars at their final width
    print(f"screenshot of the page: {path}")
    keep = os.environ.get("MLPLAB_SERVE_SCREENSHOT")
    if keep:
        keep = keep if name == "serve_page.png" else str(Path(keep).with_name(name))
        shutil.copy(path, keep)
        print(f"screenshot kept at {keep}")


def test_the_page_of_the_cached_digits_model_names_its_recipe_and_accuracy(browser, monkeypatch, tmp_path):
    """`mlplab serve` with no run serves `mlplab.pretrained`'s run (made tiny here): the page says so."""
    import mlplab.config
    from mlplab.training.pretrained import pretrained
    from mlplab.serve import create_app
    from serve_helpers import live_server

    monkeypatch.setitem(mlplab.config.PRESETS, "digits", dict(hidden=(16,), epochs=1, batch_size=512, device="cpu"))
    run = pretrained(cache_dir=tmp_path, progress=False)
    with live_server(create_app(run)) as url:
        page = browser.new_page()
        try:
            page.goto(url)
            page.wait_for_function("() => document.querySelectorAll('#bars li').length === 10", timeout=WAIT_MS)
            info = " ".join(page.text_content("#model-info").split())
        finally:
            page.close()
    accuracy = f"{100 * run.metrics['test_accuracy']:.2f}%"
    assert info.startswith("Recipe digits preset · Dataset MNIST · MLP 784-16-10 (relu)"), info
    assert f"Test accuracy {accuracy}" in info and "Epoch 1 of 1" in info
