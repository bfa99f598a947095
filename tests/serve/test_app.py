"""The JSON API of `mlplab serve` over real HTTP (uvicorn on 127.0.0.1): good requests answered
with the model's reading, bad ones refused with a JSON one-liner and the right status, never a
500, and the server still answering afterwards."""

from __future__ import annotations

import io
import json
import re
import threading
import time

import numpy as np
import pytest
from serve_helpers import blank_png, first_of_each_class, live_server, user_png

pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
pytest.importorskip("httpx", reason='httpx is not installed: pip install -e ".[dev]"')

PNG = {"Content-Type": "image/png"}
JSON = {"Content-Type": "application/json"}


def _error(response, status: int, *fragments: str) -> str:
    """The response's one-line JSON error, checked against ``status`` and ``fragments``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_health_and_model_description(client):
    assert client.get("/health").json() == {"status": "ok"}
    model = client.get("/api/model").json()
    assert model["dataset"] == "mnist" and model["architecture"] == "784-256-10"
    assert model["classes"] == [f"{digit} - {word}" for digit, word in enumerate(
        "zero one two three four five six seven eight nine".split())]
    assert 0.95 < model["test_accuracy"] <= 1 and model["epoch"] == model["epochs"] == 3
    assert model["normalize"] == "standard" and model["activation"] == "relu"


def test_real_test_digits_drawn_as_a_user_would_are_read(client, mnist_test):
    """The first test digit of each class, dark on white, enlarged and off-centre (as a canvas or
    a scan gives it), sent as the page sends it: a raw PNG body."""
    images, labels = mnist_test
    readings = {}
    for index in first_of_each_class(labels):
        answer = client.post("/api/predict", content=user_png(images[index]), headers=PNG)
        assert answer.status_code == 200, answer.text
        readings[int(labels[index])] = answer.json()
    right = [digit for digit, reading in readings.items() if reading["label"] == digit]
    print(f"read correctly: {len(right)}/10 {right}")
    assert len(right) >= 9, {digit: reading["top"] for digit, reading in readings.items()}
    seven = readings[7]
    assert seven["name"] == "7 - seven" and len(seven["top"]) == 3 and seven["top"][0]["name"] == "7 - seven"
    assert len(seven["probabilities"]) == 10 and abs(sum(seven["probabilities"]) - 1) < 1e-9
    image = np.array(seven["image"])
    assert image.shape == (784,) and image.dtype.kind == "i" and 0 <= image.min() and image.max() == 255
    # What the model saw is MNIST-like: light ink on black, the ink's centre of mass near the middle.
    grid = image.reshape(28, 28).astype(float)
    rows, cols = np.indices(grid.shape)
    assert grid[0].sum() == grid[:, 0].sum() == 0
    assert abs((rows * grid).sum() / grid.sum() - 14) < 1.5 and abs((cols * grid).sum() / grid.sum() - 14) < 1.5


def test_upload_raw_image_types_and_pixels_agree(client, mnist_test):
    """One digit sent every accepted way gets the same reading: a form upload, raw PNG, JPEG,
    WebP and GIF bodies, and JSON pixels as 0-255 integers or 0-1 floats."""
    images, labels = mnist_test
    digit = images[0]  # a 7
    answers = {"form": client.post("/api/predict", files={"image": ("seven.png", user_png(digit), "image/png")})}
    for image_format, media in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"),
                                ("GIF", "image/gif")):
        answers[media] = client.post("/api/predict", content=user_png(digit, image_format=image_format),
                                     headers={"Content-Type": media})
    answers["pixels 0-255"] = client.post("/api/predict", json={"pixels": digit.ravel().tolist()})
    answers["pixels 0-1"] = client.post("/api/predict", json={"pixels": (digit.ravel() / 255).tolist()})
    for way, answer in answers.items():
        assert answer.status_code == 200, (way, answer.text)
        assert answer.json()["label"] == 7, (way, answer.json()["top"])
    assert answers["pixels 0-255"].json() == answers["pixels 0-1"].json()
    assert answers["form"].json() == answers["image/png"].json()


@pytest.mark.parametrize("body, headers, status, fragments", [
    (blank_png(), PNG, 422, ("no digit found", "the image is blank", "draw a digit")),
    (b"\x89PNG\r\n\x1a\n" + b"not really", PNG, 400, ("the uploaded image: a damaged or unreadable image",)),
    (b"this is no image", PNG, 400, ("the uploaded image: not an image Pillow can read",)),
    (b"", PNG, 400, ("the uploaded image is empty",)),
    (b"hello", {"Content-Type": "text/plain"}, 415, ("unsupported content type text/plain", "image/png")),
    (b"hello", {}, 415, ("unsupported content type (none)",)),
    (b"{not json", JSON, 400, ("not valid JSON", '{"pixels": [784 numbers]}')),
    (b"[" * 100_000, JSON, 400, ("not valid JSON",)),
    (b"[1, 2]", JSON, 422, ('needs a "pixels" field',)),
    (b'{"pixels": [1, 2, 3]}', JSON, 422, ('"pixels" holds 3 values', "needs 784")),
    (json.dumps({"pixels": [0.5] * 785}).encode(), JSON, 422, ("holds 785 values",)),
    (json.dumps({"pixels": ["a"] * 784}).encode(), JSON, 422, ("a flat list of numbers",)),
    (json.dumps({"pixels": [[0] * 28] * 28}).encode(), JSON, 422, ("a flat list",)),
    (json.dumps({"pixels": [True] * 784}).encode(), JSON, 422, ("a flat list",)),
    (json.dumps({"pixels": [300] * 784}).encode(), JSON, 422, ("between 0 and 255",)),
    (b'{"pixels": [' + b",".join([b"NaN"] * 784) + b"]}", JSON, 422, ("between 0",)),
    (b'{"pixels": [' + b",".join([b"1" + b"0" * 400] * 784) + b"]}", JSON, 422,
     ("a flat list of numbers",)),
    (json.dumps({"pixels": [0] * 784}).encode(), JSON, 422, ("no digit found",)),
    (b"abc", {"Content-Type": "multipart/form-data"}, 400, ("boundary",)),
], ids=["blank canvas", "corrupt png", "not an image", "empty body", "text/plain", "no content type", "broken json",
        "deeply nested json", "json list", "3 values", "785 values", "strings", "nested rows", "booleans",
        "over 255", "NaN", "huge integers", "all black pixels", "multipart without boundary"])
def test_bad_requests_get_a_json_error(client, body, headers, status, fragments):
    _error(client.post("/api/predict", content=body, headers=headers), status, *fragments)


def test_bad_uploads_get_a_json_error(client, mnist_test):
    digit = user_png(mnist_test[0][0])
    _error(client.post("/api/predict", files={"picture": ("seven.png", digit, "image/png")}), 422,
           'the form has no file in the field "image"', "image=@digit.png")
    _error(client.post("/api/predict", data={"image": "seven.png"}, files={"other": ("x.png", digit, "image/png")}),
           422, 'no file in the field "image"')
    _error(client.post("/api/predict", files={"image": ("notes.txt", b"seven", "text/plain")}), 415,
           "notes.txt is text/plain, not an image")
    _error(client.post("/api/predict", files={"image": ("cut.png", digit[:200], "image/png")}), 400,
           "cut.png: a damaged or unreadable image")
    _error(client.post("/api/predict", files={"image": ("blank.png", blank_png(), "image/png")}), 422,
           "no digit found")
    # curl sends application/octet-stream for a file it cannot name: the bytes decide.
    answer = client.post("/api/predict", files={"image": ("seven", digit, "application/octet-stream")})
    assert answer.status_code == 200 and answer.json()["label"] == 7


def test_limits_on_size(app, server, client, trained_run):
    """Over the byte limit: 413, refused unread when Content-Length says so, and after the limit
    when the body comes in chunks of unknown length. Over the pixel limit (`mlplab.digits.MAX_PIXELS`,
    after a JPEG's reduced decoding): 413 before decoding."""
    too_big = b"\x89PNG" + bytes(10_000_001)
    _error(client.post("/api/predict", content=too_big, headers=PNG), 413, "the upload is 10.0 MB",
           "at most 10.0 MB")

    def chunks():
        for _ in range(11):
            yield bytes(1_000_000)
    _error(client.post("/api/predict", content=chunks(), headers=PNG), 413, "the upload is over the 10.0 MB accepted")
    _error(client.post("/api/predict", files={"image": ("big.png", too_big, "image/png")}), 413, "at most 10.0 MB")
    # A 4000x4000 white PNG is 24 kB: small to send, 16 million pixels to decode (the finding's
    # request). Refused from its header, with the limit and what to do, before any worker decodes it.
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (4000, 4000), 255).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 100_000
    _error(client.post("/api/predict", content=buffer.getvalue(), headers=PNG), 413, "4000x4000 pixels",
           "too large to decode", "at most 12,000,000 pixels", "scale it down first, or save it as JPEG")
    _error(client.post("/api/predict", files={"image": ("page.png", buffer.getvalue(), "image/png")}), 413,
           "page.png: 4000x4000 pixels")
    # A JPEG is decoded reduced: 20 million pixels are read as 1250x1000 (and found blank).
    buffer = io.BytesIO()
    Image.new("L", (5000, 4000), 255).save(buffer, "JPEG")
    _error(client.post("/api/predict", content=buffer.getvalue(), headers={"Content-Type": "image/jpeg"}), 422,
           "no digit found")
    assert client.get("/health").json() == {"status": "ok"}


def test_unknown_routes_and_methods_answer_json(client):
    _error(client.get("/nothing"), 404, "no such page: /nothing", "POST /api/predict")
    _error(client.get("/api/predict"), 405, "GET is not allowed on /api/predict")
    _error(client.delete("/health"), 405, "DELETE is not allowed")


def test_the_page_is_one_offline_file_and_the_pads_script(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]  # the browser loads nothing else
    html = page.text
    assert '<canvas id="pad"' in html and 'id="clear"' in html and 'type="file"' in html
    assert "drawingPad(pad" in html and "/api/predict" in html and "/api/model" in html
    # No external assets: no URL with a scheme or protocol-relative, no stylesheet link, one script: the pad's.
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE)
    assert re.findall(r' src="[^"]*"', html) == [' src="/static/pad.js"']
    assert re.findall(r"<link [^>]*>", html) == ['<link rel="icon" href="data:,">']
    script = client.get("/static/pad.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "function drawingPad(" in script.text and "pointerdown" in script.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", script.text, re.IGNORECASE)


def test_a_slow_prediction_times_out_with_503_and_others_are_answered_meanwhile(trained_run, mnist_test):
    """The model runs off the event loop: while one prediction hangs, /health and the page answer
    at once; the hung request gets a 503 at the time limit."""
    import httpx

    from mlplab.serve import create_app

    app = create_app(trained_run, timeout_s=1.0)
    release = threading.Event()

    def stuck(source, name):
        release.wait(10)
        return {}

    app.state.served.predict = stuck
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answers = {}
        slow = threading.Thread(target=lambda: answers.update(
            slow=client.post("/api/predict", content=user_png(mnist_test[0][0]), headers=PNG)))
        start = time.monotonic()
        slow.start()
        time.sleep(0.2)
        assert client.get("/health").json() == {"status": "ok"}
        assert time.monotonic() - start < 0.9  # answered while the prediction is still stuck
        slow.join(timeout=20)
        elapsed = time.monotonic() - start
        release.set()
        _error(answers["slow"], 503, "took longer than 1 s", "try again")
        assert 0.9 < elapsed < 5


def test_create_app_checks_its_limits(trained_run):
    from mlplab.errors import MlplabError
    from mlplab.serve import create_app

    with pytest.raises(MlplabError, match="timeout_s must be a positive number; got 0"):
        create_app(trained_run, timeout_s=0)
    with pytest.raises(MlplabError, match="workers must be a positive number; got -1"):
        create_app(trained_run, workers=-1)
    with pytest.raises(MlplabError, match=r"heavy_workers must be at most workers \(2\); got 3"):
        create_app(trained_run, workers=2, heavy_workers=3)
    with pytest.raises(MlplabError, match="queue must be a positive number; got 0"):
        create_app(trained_run, queue=0)
    with pytest.raises(MlplabError, match="unknown limit max_pixels; the limits are max_upload_bytes, timeout_s"):
        create_app(trained_run, max_pixels=1000)
