"""`mlplab.serve.inputs`: JSON pixels read in either scale, and each image weighed from its header
before anything is decoded."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mlplab.digits import ImageTooLarge
from mlplab.serve.inputs import LIGHT_PIXELS, ImageSource, decoded_pixels, media_type, pixels_from_json


def test_pixels_in_0_1_and_0_255_give_the_same_image():
    values = np.arange(784) % 256
    as_bytes = pixels_from_json(json.dumps({"pixels": values.tolist()}).encode())
    as_floats = pixels_from_json(json.dumps({"pixels": (values / 255).tolist()}).encode())
    assert as_bytes.dtype == np.uint8 and as_bytes.shape == (28, 28)
    assert np.array_equal(as_bytes, values.reshape(28, 28)) and np.array_equal(as_floats, as_bytes)


def test_media_type_ignores_case_and_parameters():
    assert media_type("Image/PNG; charset=binary") == "image/png" and media_type(None) == ""


def _encoded(size: tuple[int, int], kind: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, kind)
    return buffer.getvalue()


def test_an_image_is_weighed_from_its_header():
    assert decoded_pixels(_encoded((300, 200)), "page.png") == 60_000
    # A JPEG decodes reduced (1/4 of each side here): its cost is the reduced size.
    assert decoded_pixels(_encoded((4096, 3072), "JPEG"), "photo.jpg") == 1024 * 768
    with pytest.raises(ImageTooLarge, match="page.png: 4001x3000 pixels is too large to decode") as caught:
        decoded_pixels(_encoded((4001, 3000)), "page.png")
    assert "at most 12,000,000 pixels" in str(caught.value)
    assert decoded_pixels(b"not an image", "junk") == 0  # left to the decoder to name precisely


def test_heavy_is_a_large_image_or_a_large_body():
    assert not ImageSource(b"", "drawing", 280 * 280, 15_000).heavy
    assert not ImageSource(b"", "photo", LIGHT_PIXELS, 900_000).heavy
    assert ImageSource(b"", "page", LIGHT_PIXELS + 1, 40_000).heavy
    assert ImageSource(b"", "noise", 500 * 500, 1_500_000).heavy
