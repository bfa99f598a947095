"""What ``POST /api/predict`` accepts, and its limits: each request made into one image source.

Three ways to send an image, told apart by the request's Content-Type:

    multipart/form-data             a file in the form field ``image`` (an HTML upload, ``curl -F image=@digit.png``)
    image/png|jpeg|webp|gif         the image's bytes as the whole body (a canvas's ``toBlob``)
    application/json                ``{"pixels": [784 numbers]}``, a 28x28 row by row, 0-1 or 0-255

Anything else is refused with 415. The body is read up to ``max_bytes`` and refused with
413 beyond it (before reading it, when its Content-Length already says so); an image that
would decode to more than `mlplab.digits.MAX_PIXELS` is refused with 413 from its header,
before any worker decodes it. Each refusal is a `RequestError`: an HTTP status and one line
saying what to send instead.

Each request is weighed from its header (`ImageSource.heavy`): light work (a drawing, a
photo of a few hundred pixels: about 0.05 s) and heavy work (a large image, up to 0.5 s)
wait for the workers in separate lanes (`mlplab.serve.pool`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlplab.digits import DECODE_SIDE
from mlplab.errors import MlplabError

if TYPE_CHECKING:
    from starlette.requests import Request

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
FORM_TYPE = "multipart/form-data"
JSON_TYPE = "application/json"
FIELD = "image"  # the form field an upload comes in
PIXELS = 28 * 28
# A part of a form that declares no useful type (curl's default for unknown file extensions).
UNTYPED = ("", "application/octet-stream")
# Light: an image decoded as it is, with nothing to reduce (at most DECODE_SIDE squared pixels),
# in a body of at most 1 MB (so the light requests waiting hold little memory). A drawing of
# the page is 280x280 in 5-20 kB; a 12-megapixel PNG, the heaviest accepted, takes about 0.3 s
# to decode and 100 MB while it does.
LIGHT_PIXELS = DECODE_SIDE * DECODE_SIDE
LIGHT_BYTES = 1_000_000
WHAT_TO_SEND = (
    f"send an image ({', '.join(IMAGE_TYPES)}), a multipart form with the file in the field "
    f'"{FIELD}", or JSON {{"pixels": [784 numbers]}}'
)


class RequestError(MlplabError):
    """A request the server refuses: ``status`` (an HTTP 4xx/5xx), a one-line message, and
    ``headers`` for the answer (``Retry-After`` on a 503)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers


@dataclass(frozen=True)
class ImageSource:
    """What one request asks to classify.

    Attributes:
        data: image bytes, or a (28, 28) uint8 array from JSON pixels.
        name: how errors name it (the upload's file name, ``the uploaded image``, ``pixels``).
        pixels: how many pixels decoding it will make (its header's size; a JPEG's reduced).
        size: its length in bytes.
    """

    data: Any
    name: str
    pixels: int
    size: int

    @property
    def heavy(self) -> bool:
        """Whether it is costly enough to wait in the heavy lane (see `LIGHT_PIXELS`)."""
        return self.pixels > LIGHT_PIXELS or self.size > LIGHT_BYTES


async def read_image_source(request: Request, *, max_bytes: int) -> ImageSource:
    """The image a prediction request carries, weighed. Raises `RequestError` for what cannot be
    accepted, and `mlplab.digits.ImageTooLarge` (413) for an image over the pixel limit."""
    media = media_type(request.headers.get("content-type"))
    if media not in (*IMAGE_TYPES, FORM_TYPE, JSON_TYPE):
        raise RequestError(415, f"unsupported content type {media or '(none)'}; {WHAT_TO_SEND}")
    body = await read_body(request, max_bytes)
    if media == JSON_TYPE:
        return ImageSource(pixels_from_json(body), "pixels", PIXELS, len(body))
    if media == FORM_TYPE:
        data, name = await upload_from_form(request, body)
    else:
        data, name = body, "the uploaded image"
    if not data:
        raise RequestError(400, f"{name} is empty; {WHAT_TO_SEND}")
    return ImageSource(data, name, decoded_pixels(data, name), len(data))


def media_type(content_type: str | None) -> str:
    """``"image/png"`` from ``"Image/PNG; charset=binary"``: the type without parameters, lower case."""
    return (content_type or "").split(";")[0].strip().lower()


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or 413 as soon as it is longer than ``max_bytes`` (a declared
    Content-Length is believed first, so an oversized upload is refused unread)."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(413, too_large(int(declared), max_bytes))
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise RequestError(413, too_large(None, max_bytes))
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client went away before sending the whole body") from None
    return b"".join(chunks)


def too_large(size: int | None, max_bytes: int) -> str:
    """``the upload is 12.0 MB; at most 10.0 MB is accepted (...)``; ``size`` None: not known, only over."""
    advice = "scale the image down, or save it as PNG or JPEG"
    if size is None:
        return f"the upload is over the {max_bytes / 1e6:.1f} MB accepted ({advice})"
    return f"the upload is {size / 1e6:.1f} MB; at most {max_bytes / 1e6:.1f} MB is accepted ({advice})"


async def upload_from_form(request: Request, body: bytes) -> tuple[bytes, str]:
    """The bytes and file name of the form field ``image``; 422 when the form has no such file,
    415 when the file says it is something other than an image."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request as FormRequest

    async def replay() -> dict[str, Any]:  # the body, already read within the limit, parsed again as a form
        return {"type": "http.request", "body": body, "more_body": False}

    async with FormRequest(request.scope, replay).form(max_files=1, max_fields=16) as form:
        upload = form.get(FIELD)
        if not isinstance(upload, UploadFile):
            raise RequestError(
                422,
                f'the form has no file in the field "{FIELD}"; send it as {FIELD}=@digit.png '
                f'(curl -F) or <input type="file" name="{FIELD}">',
            )
        name = upload.filename or "the upload"
        declared = media_type(upload.content_type)
        if declared not in (*IMAGE_TYPES, *UNTYPED):
            raise RequestError(415, f"{name} is {declared}, not an image; upload a PNG, JPEG, WebP or GIF")
        return await upload.read(), name


def decoded_pixels(data: bytes, name: str) -> int:
    """How many pixels decoding ``data`` will make, read from its header only (`mlplab.digits.open_image`):
    `mlplab.digits.ImageTooLarge` (413) beyond `mlplab.digits.MAX_PIXELS`, before anything is decoded (a
    small PNG can unpack to gigabytes). Data Pillow cannot identify counts 0: decoding it later fails
    at once, with the precise error."""
    from mlplab.digits import ImageTooLarge, NotAnImage, open_image

    try:
        with open_image(data, name) as image:
            return image.width * image.height
    except ImageTooLarge:
        raise
    except NotAnImage:
        return 0


def pixels_from_json(body: bytes) -> np.ndarray:
    """The (28, 28) uint8 image of ``{"pixels": [784 numbers]}``: values read as 0-1 when none is
    above 1, else as 0-255. Either polarity (light ink on dark, or dark on light) is fine. 400
    for a body that is not JSON, 422 for JSON that is not 784 numbers in range."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: absurd nesting
        raise RequestError(400, 'the body is not valid JSON; send {"pixels": [784 numbers]}') from None
    if not isinstance(document, dict) or "pixels" not in document:
        raise RequestError(422, 'the JSON needs a "pixels" field: {"pixels": [784 numbers]}, a 28x28 image row by row')
    values = document["pixels"]
    if not isinstance(values, list) or not all(_is_number(value) for value in values):
        raise RequestError(422, '"pixels" must be a flat list of numbers (a 28x28 image row by row, 0-1 or 0-255)')
    if len(values) != PIXELS:
        raise RequestError(422, f'"pixels" holds {len(values)} values; a 28x28 image needs {PIXELS}, row by row')
    pixels = np.array([float(value) for value in values], dtype=np.float64)
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
        raise RequestError(422, '"pixels" must lie between 0 and 1, or between 0 and 255')
    if pixels.max() <= 1.0:
        pixels = pixels * 255.0
    return np.rint(pixels).astype(np.uint8).reshape(28, 28)


def _is_number(value: Any) -> bool:
    """A JSON number that converts to a float (True and False are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:  # an integer with hundreds of digits
        return False
    return True
