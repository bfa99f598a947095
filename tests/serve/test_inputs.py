"""`mlplab.serve.inputs`: JSON pixels read in either scale, and the header check before decoding."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mlplab.serve.inputs import RequestError, check_image_size, media_type, pixels_from_json


def test_pixels_in_0_1_and_0_255_give_the_same_image():
    values = np.arange(784) % 256
    as_bytes = pixels_from_json(json.dumps({"pixels": values.tolist()}).encode())
    as_floats = pixels_from_json(json.dumps({"pixels": (values / 255).tolist()}).encode())
    assert as_bytes.dtype == np.uint8 and as_bytes.shape == (28, 28)
    assert np.array_equal(as_bytes, values.reshape(28, 28)) and np.array_equal(as_floats, as_bytes)


def test_media_type_ignores_case_and_parameters():
    assert media_type("Image/PNG; charset=binary") == "image/png" and media_type(None) == ""


def test_an_image_is_measured_from_its_header():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (300, 200), 255).save(buffer, "PNG")
    check_image_size(buffer.getvalue(), "page.png", max_pixels=60_000)
    with pytest.raises(RequestError, match="page.png is 300x200 pixels; at most 0.05 million") as caught:
        check_image_size(buffer.getvalue(), "page.png", max_pixels=50_000)
    assert caught.value.status == 413
    check_image_size(b"not an image", "junk", max_pixels=1)  # left to the decoder to name precisely
