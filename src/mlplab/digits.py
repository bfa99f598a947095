"""Your own digits, made into what MNIST digits are.

A model trained on MNIST has only ever seen digits made one way (LeCun's MNIST page): light
strokes on a black background, the digit size-normalised to fit a 20x20 box keeping its
aspect ratio, anti-aliased into grey levels, then placed in a 28x28 field with its centre
of mass at the centre. A digit drawn on a white canvas or photographed on paper is none of
that, and a model shown it raw guesses. `to_mnist` makes any image into that 28x28, one small
step at a time, each with its reason:

    load_image        any file, bytes or array -> a Pillow image, reduced to what a digit needs (EXIF rotation applied)
    check_size        an image too small or thin to hold a digit: none (`NoDigitFound`)
    to_gray           colour, grey or alpha -> grey levels in [0, 1]
    paper_level       the background's level at each pixel, even under uneven light
    ink_is_dark       which polarity: dark ink on light paper, or light on dark
    remove_background the image minus the paper, inverted if need be -> ink in [0, 1], background 0
    find_ink          Otsu's threshold, soft edges kept; blurred strokes bolder than MNIST's read at the level
                      where they are as wide as its boldest; too little contrast or ink: no digit (`NoDigitFound`),
                      unless the ink smoothed stands out (a faint digit in a noisy photo)
    ink_box           the ink's bounding box, ignoring a few stray specks
    fit_box           crop, thicken too-thin strokes, scale the longer side to 20 px (aspect kept), anti-aliased
    center_by_mass    place it in 28x28 with its centre of mass at MNIST's centre

Pillow does the decoding and resampling; the rest is a few NumPy lines. `to_mnist` returns
the 28x28 as uint8, as MNIST stores its digits, so the run's own normalisation
(`mlplab.data.normalize`) applies to it exactly as to the training images.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.errors import MlplabError, one_line

FIELD = 28  # MNIST's image size
BOX = 20  # the box MNIST's digits were scaled to fit, keeping their aspect ratio
# MNIST's centre of mass, (row, column) in pixel indices: the mean over the training digits is
# (14.00, 14.01), spread 0.29 px (tests/test_digits.py checks it), half a pixel below and right
# of the geometric centre 13.5.
CENTER = (14.0, 14.0)
# Stroke width of MNIST digits in the 28x28 field, from 2 x area / boundary of their ink
# (> half intensity, `stroke_width`): the 1st, 10th, 50th and 90th percentiles over the
# training set are 1.9, 2.2, 2.8 and 3.9 px. A pen line thinner than the first (a thin brush
# on a big canvas) would fade to faint grey at 20 px, so it is thickened to it. Thick strokes
# are left alone: MNIST has bold digits too, and thinning them measurably lost accuracy.
MIN_STROKE = 1.9
# Blurred strokes bolder than MNIST's 90th percentile (a felt marker, a photo out of focus, a small
# scan made big) are read at the ink level where they are this wide (`bold_level`), not at Otsu's
# threshold. On digits that are not MNIST's (benchmarks/digit_sources.py) that read bold marker
# strokes 4 to 8 points better and cost no other source; eroding them to this width instead lost 2 to 4
# points on the marker digits, and thinning every stroke to MNIST's median (2.8) cost every source.
BOLD_STROKE = 3.9
SOLID_PERCENTILE = 70  # this percentile of a digit's ink is scaled to full intensity (`fit_box`)
MIN_CONTRAST = 0.06  # the least difference between ink and background (on a 0-1 scale) that counts as a digit
NOISE_MARGIN = 5.0  # ... and the least, in widths of the background's noise
MIN_INK_FRACTION = 2e-4  # less ink than this share of the image is a speck, not a digit
MAX_INK_FRACTION = 0.5  # more "ink" than background: a texture or a photo of something else
# A side shorter than this holds no digit: MNIST's fill a 20 px box, and a one-pixel strip (1x1000000)
# has no strokes to find, nor neighbours to measure its noise by. Tight crops of a "1" narrower
# than 8 px were never read as a digit anyway.
MIN_SIDE = 8
WORK_SIZE = 4 * BOX  # the digit is cleaned (stroke width) at 4x its final size, then reduced
# Every image is reduced to at most this many pixels on its longer side before the steps run:
# they look at the digit at WORK_SIZE (80 px) and at the background at 64 px (`paper_level`), so
# a digit an eighth of the image's side is still seen whole, and the steps cost the same (about
# 0.1 s, 30 MB) for a 40-megapixel photo as for a 1-megapixel one.
DECODE_SIDE = 1024
# The most pixels (width x height) decoded at full size. A JPEG is decoded already reduced (by
# 1/2, 1/4 or 1/8, `open_image`), so only that reduced size counts and a photo of any size
# passes; a PNG, WebP or GIF must be decoded whole before it can be reduced: up to a
# 12-megapixel one (4000x3000, about 0.3 s and 100 MB to decode and reduce). Larger ones are
# refused from their header, before decoding (a 40 kB PNG can declare gigapixels). Pillow's
# own limit, 89 million, is far above what a digit needs.
MAX_PIXELS = 12_000_000


class NoDigitFound(MlplabError):
    """The image holds no digit: blank, uniform, or only noise. It is never classified."""


class NotAnImage(MlplabError):
    """The input cannot be read as an image."""


class ImageTooLarge(NotAnImage):
    """An image that would decode to more than `MAX_PIXELS` pixels; refused before decoding.

    Attributes:
        width, height: the size it would decode to (a JPEG's already reduced by its decoder).
    """

    def __init__(self, message: str, width: int | None = None, height: int | None = None) -> None:
        super().__init__(message)
        self.width, self.height = width, height

    @classmethod
    def of_size(cls, label: str, width: int, height: int, jpeg: bool) -> ImageTooLarge:
        """The error for an image that would decode to ``width`` x ``height``: the limit, and what to do."""
        advice = "scale it down first" + ("" if jpeg else ", or save it as JPEG (read reduced, at any size)")
        return cls(
            f"{label}: {width}x{height} pixels is too large to decode: at most {MAX_PIXELS:,} pixels are "
            f"decoded, and a digit needs no more than {DECODE_SIDE} px on its longer side; {advice}",
            width,
            height,
        )


def load_image(source: Any, name: str | None = None) -> Any:
    """A Pillow image from a path, bytes, a binary file object, a Pillow image or a NumPy array,
    reduced to at most `DECODE_SIDE` pixels on its longer side (averaging, aspect kept).

    Photos are turned upright by their EXIF orientation (phones store them sideways with a
    tag). An animated GIF gives its first frame. Raises `NotAnImage` (one line) for anything
    Pillow cannot decode, for float images with NaN or infinite pixels and for a path that is not
    a regular file (a folder, a named pipe, a device: refused without opening it), and
    `ImageTooLarge` for an image over `MAX_PIXELS` (see `open_image`).
    """
    from PIL import Image

    label = _label(source, name)
    if isinstance(source, np.ndarray):
        return _reduced(_image_from_array(source, label))
    if isinstance(source, Image.Image):
        _check_finite(source, label)
        return _upright(_reduced(source))
    image = open_image(source, name)
    with _decoding(label):
        image.load()
    _check_finite(image, label)
    return _upright(_reduced(image))


def open_image(source: Any, name: str | None = None) -> Any:
    """A path, bytes or binary file object opened as a Pillow image with only its header read,
    set to decode no larger than a digit needs where its format allows (a JPEG at 1/2, 1/4 or
    1/8 of its size, never below `DECODE_SIDE`), so ``image.size`` is what decoding will cost.

    Raises `ImageTooLarge` when that is over `MAX_PIXELS` (nothing decoded yet), `NotAnImage`
    when the data is no image Pillow knows. `mlplab serve` calls it to refuse and to weigh an
    upload before any worker decodes it.
    """
    from PIL import Image

    label = _label(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    elif isinstance(source, (str, Path)):
        _check_regular_file(source, label)
    with _decoding(label):
        image = Image.open(source)
    if image.format == "JPEG" and max(image.size) > DECODE_SIDE:
        image.draft(None, _fitted(image.size))  # the decoder's own scaling: it skips most of the work
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise ImageTooLarge.of_size(label, image.width, image.height, jpeg=image.format == "JPEG")
    return image


def _label(source: Any, name: str | None) -> str:
    """How errors name an input: ``name``, else its path, else its type."""
    return name or (str(source) if isinstance(source, (str, Path)) else type(source).__name__)


@contextmanager
def _decoding(label: str) -> Iterator[None]:
    """Pillow's and the file system's errors while opening or decoding, as one-line `NotAnImage`."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except FileNotFoundError:
        raise NotAnImage(f"{label}: no such file") from None
    except IsADirectoryError:
        raise NotAnImage(f"{label}: is a folder, not an image") from None
    except Image.DecompressionBombError as error:  # a header Pillow itself refuses: hundreds of megapixels
        raise ImageTooLarge(
            f"{label}: far too large to decode ({one_line(error, None)}); at most {MAX_PIXELS:,} "
            "pixels are decoded: scale it down first"
        ) from None
    except UnidentifiedImageError as error:
        raise NotAnImage(
            f"{label}: not an image Pillow can read ({type(error).__name__}); give a PNG, JPEG, WebP or GIF file"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        raise NotAnImage(f"{label}: a damaged or unreadable image ({error})") from None


def _fitted(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` scaled so its longer side is `DECODE_SIDE` (aspect kept; never enlarged)."""
    scale = min(1.0, DECODE_SIDE / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _reduced(image: Any) -> Any:
    """``image`` reduced to `DECODE_SIDE` on its longer side by area averaging (a copy), or itself
    when already that small. Palette, 1-bit and colour-keyed images are first made grey or RGBA,
    as `to_gray` would: Pillow resamples those by dropping pixels, which loses thin strokes."""
    from PIL import Image

    if max(image.size) <= DECODE_SIDE:
        return image
    if image.mode in ("P", "PA") or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    elif image.mode == "1":
        image = image.convert("L")
    reduced = image.resize(_fitted(image.size), Image.Resampling.BOX, reducing_gap=2.0)
    reduced.info["decoded_size"] = image.size  # what `check_size` judges and names
    return reduced


def _upright(image: Any) -> Any:
    """``image`` turned as its EXIF orientation says (a reduced copy keeps the original's tags)."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block: keep the pixels as stored
        return image


# What a path that is not a regular file names, for its error.
_NOT_FILES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular_file(path: str | Path, label: str) -> None:
    """Refuse a path that is not a regular file, without opening it: opening a named pipe waits
    (forever) for a writer, and a device can be read without end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NotAnImage(f"{label}: no such file") from None
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
        raise NotAnImage(f"{label}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    if not stat.S_ISREG(mode):
        kind = next((what for is_kind, what in _NOT_FILES if is_kind(mode)), "not a regular file")
        raise NotAnImage(f"{label}: is {kind}, not an image")


def _check_finite(image: Any, label: str) -> None:
    """Refuse a float image ("F": a TIFF of a scientific camera) with NaN or infinite pixels: they
    have no grey level, and every later step would read the image as blank."""
    if image.mode != "F":  # the only mode whose pixels can be other than numbers
        return
    values = np.asarray(image)
    finite = np.isfinite(values)
    if finite.all():
        return
    nan = int(np.isnan(values).sum())
    infinite = values.size - int(finite.sum()) - nan
    what = " and ".join(kind for kind, count in (("NaN", nan), ("infinite", infinite)) if count)
    raise NotAnImage(
        f"{label}: the image has {what} pixels ({nan + infinite:,} of {values.size:,}); "
        "every pixel needs a finite grey level"
    )


def _image_from_array(array: np.ndarray, label: str) -> Any:
    """A grey (H, W) or colour (H, W, 3|4) array as a Pillow image; floats are read as 0-1, else 0-255."""
    from PIL import Image

    if array.ndim == 1 and array.size == FIELD * FIELD:
        array = array.reshape(FIELD, FIELD)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or 0 in array.shape:
        raise NotAnImage(
            f"{label}: an array of shape {array.shape} is not an image (need (H, W), (H, W, 3|4) or 784 values)"
        )
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise NotAnImage(f"{label}: the array holds NaN or infinite values")
    if np.issubdtype(array.dtype, np.floating) and values.max() <= 1.0:
        values = values * 255.0
    pixels = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return Image.fromarray(
        pixels, mode={2: "L", 3: "RGB", 4: "RGBA"}[pixels.ndim if pixels.ndim == 2 else pixels.shape[2]]
    )


def to_gray(image: Any) -> np.ndarray:
    """Grey levels (H, W) float32 in [0, 1] (0 black), by ITU-R 601 luma as Pillow computes it.

    Transparency is composited away: onto white when the visible pixels are mostly dark
    (black strokes on a transparent canvas), onto black when they are light. Pixels that are
    transparent often store black, so simply dropping the alpha would hide dark strokes.
    """
    if image.mode in ("P", "PA") or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "La":  # premultiplied grey and alpha: Pillow converts it to LA only
        image = image.convert("LA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        gray = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float32) / 255.0
        if alpha.min() < 1.0:
            visible = alpha > 0.5
            if not visible.any():  # only translucent strokes (a soft pen at low opacity): what shows at all
                visible = alpha > 0
            dark_content = visible.any() and float(np.median(gray[visible])) < 0.5
            background = 1.0 if dark_content else 0.0
            gray = alpha * gray + (1.0 - alpha) * background
        return gray.astype(np.float32)
    if image.mode.startswith(("I", "F")):  # 16- and 32-bit grey (scanners, scientific cameras): scaled by their range
        values = np.asarray(image, dtype=np.float64)
        top = _sample_range(values) if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        return np.clip(values / top, 0.0, 1.0).astype(np.float32)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, 1-bit ...
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _sample_range(values: np.ndarray) -> float:
    """The white level of 16-bit samples: 2^k - 1 for the fewest bits k >= 8 that hold the largest.

    Cameras and scanners store 10-, 12- or 14-bit samples in 16-bit files; scaled by 65535, a
    12-bit white page would be 1/16 grey and its digit too faint to count as ink.
    """
    return float(2 ** max(8, int(values.max()).bit_length()) - 1)


def check_size(image: Any) -> None:
    """Refuse (`NoDigitFound`) a Pillow image with a side under `MIN_SIDE` pixels: a 1x1, a one-pixel strip
    (judged at the size it was decoded, before `load_image` reduced it)."""
    width, height = image.info.get("decoded_size", image.size)
    if min(height, width) < MIN_SIDE:
        raise NoDigitFound(
            f"no digit found: the image is {width}x{height} pixels, too small or thin to hold a "
            f"digit (at least {MIN_SIDE} pixels each way)"
        )


def paper_level(gray: np.ndarray) -> np.ndarray:
    """The background's grey level at every pixel (H, W): the paper, or the black canvas.

    A photo lit from one side, or darker in its corners, has no single background level, so
    a smooth surface is fitted (a quadratic in x and y holds a gradient and a vignette) at a
    coarse scale (64 px), robustly: pixels far from the fit on either side (the ink, however
    bold, dark or light) are left out and the fit repeated. On a clean canvas it is flat.
    """
    from PIL import Image

    height, width = gray.shape
    scale = min(1.0, 64.0 / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(
        Image.fromarray(np.asarray(gray, dtype=np.float32), mode="F").resize(small_size, Image.Resampling.BOX),
        dtype=np.float64,
    )
    coefficients = _surface_fit(small)
    level = sum(c * term for c, term in zip(coefficients, _quadratic_terms(height, width), strict=True))
    return np.broadcast_to(level, (height, width)).astype(np.float32)


def _quadratic_terms(height: int, width: int) -> list[np.ndarray]:
    """1, x, y, x^2, x y, y^2 over a height x width grid (x, y in [-1, 1]), as broadcastable arrays."""
    y = np.linspace(-1.0, 1.0, height)[:, None]
    x = np.linspace(-1.0, 1.0, width)[None, :]
    return [np.ones((1, 1)), x, y, x * x, x * y, y * y]


def _surface_fit(values: np.ndarray, rounds: int = 5) -> np.ndarray:
    """Coefficients of c0 + cx x + cy y + cxx x^2 + cxy x y + cyy y^2 (x, y in [-1, 1]) fitted to
    the background of ``values``: least squares over the pixels of middling level, then
    again over those within 2.5 robust standard deviations of the fit, a few rounds."""
    height, width = values.shape
    terms = np.stack(
        [np.broadcast_to(term, values.shape) for term in _quadratic_terms(height, width)], axis=-1
    ).reshape(-1, 6)
    flat = values.reshape(-1)
    # Start from the pixels between the 40th and 60th percentile of the level: the ink covers
    # at most about a third of an image, so these are paper even under a bold digit.
    low, center, high = np.percentile(flat, [40, 50, 60])
    keep = (flat >= low - 1e-3) & (flat <= high + 1e-3)
    coefficients = np.array([center, 0, 0, 0, 0, 0], dtype=np.float64)
    for _ in range(rounds):
        if keep.sum() < 6:
            break
        coefficients = np.linalg.lstsq(terms[keep], flat[keep], rcond=None)[0]
        residual = flat - terms @ coefficients
        spread = 1.4826 * np.median(np.abs(residual[keep])) + 1e-3
        keep = np.abs(residual) < 2.5 * spread
    return coefficients


def ink_is_dark(residual: np.ndarray) -> bool:
    """True for dark ink on light paper, False for MNIST's light ink on dark, given the image
    minus its `paper_level`.

    The ink is what departs from the paper: strongly darker pixels outnumber strongly lighter
    ones on paper, and the reverse on a blackboard or MNIST. Deciding against the paper,
    not against mid-grey, also reads a dim photo of white paper right.
    """
    spread = 1.4826 * float(np.median(np.abs(residual))) + 1e-3
    darker = float(np.clip(-residual - 3 * spread, 0, None).sum())
    lighter = float(np.clip(residual - 3 * spread, 0, None).sum())
    return darker > lighter


def remove_background(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """Ink strength (H, W) in [0, 1], light on dark as MNIST's, the background brought to 0:
    the image minus its `paper_level`, inverted when the ink is dark (`ink_is_dark`); and the
    width of the background's noise (a robust standard deviation of what is left)."""
    residual = gray - paper_level(gray)
    ink = -residual if ink_is_dark(residual) else residual
    # The noise's standard deviation from neighbouring pixels' differences: paper and the
    # insides of strokes are smooth, so only noise makes most neighbours differ, however much
    # ink there is (for Gaussian noise, the median |difference| is 0.6745 sqrt(2) sigma).
    noise = float(np.median(np.abs(np.diff(residual, axis=1)))) / (0.6745 * 2**0.5)
    return np.clip(ink, 0.0, 1.0), noise


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: the level that best splits them into two classes
    (largest between-class variance). It needs no tuning, which is why scanners use it."""
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    counts = counts.astype(np.float64)
    centers = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    mass_low = np.cumsum(counts * centers)
    mean_low = mass_low / np.maximum(weight_low, 1e-12)
    mean_high = (mass_low[-1] - mass_low) / np.maximum(weight_high, 1e-12)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def find_ink(ink: np.ndarray, noise: float = 0.0) -> np.ndarray:
    """The ink, cleaned: background exactly 0, strokes up to 1, anti-aliased edges kept.

    Otsu's threshold splits ink from background. There is no digit (`NoDigitFound`) when
    the two classes differ by less than `MIN_CONTRAST`, or by less than `NOISE_MARGIN` times
    ``noise``, the background's noise width (a blank canvas, a uniform photo, JPEG noise:
    Otsu splits noise too, but only about 1.5 noise widths apart), or when the ink is a
    speck or covers most of the image.

    A faint digit in a noisy photo (a pencil in dim light) can fail the contrast check because
    Otsu split the noise instead of the digit: then the checks run once more on the ink smoothed
    (`_smoothed`, the noise width narrowed to match), which they pass only if strokes stand out.

    The ink is scaled so that strokes run from 0 at half the threshold (their soft edges kept)
    to 1 at their strength (the 90th percentile of the ink over the threshold). Blurred strokes
    bolder than MNIST's boldest are read at `bold_level` instead: their outer blur is dropped.
    """
    try:
        return _cleaned(ink, noise)
    except _TooFaint:
        if noise <= 0:
            raise
    # A faint digit in a noisy photo (a pencil in dim light, a small scan made big): Otsu split the
    # noise, not the digit. Smoothed, the noise narrows five-fold while strokes wider than a pixel
    # stay; noise alone, or paper alone, still stands out by less than NOISE_MARGIN of its width.
    return _cleaned(_smoothed(ink), noise * SMOOTHED_NOISE)


class _TooFaint(NoDigitFound):
    """The contrast check of `find_ink` failed: nothing stands out from the noise enough to be ink."""


# `_smoothed` is three passes of a 3-pixel box per axis: the kernel [1, 3, 6, 7, 6, 3, 1] / 27 (about a
# Gaussian of sigma 1.4 px). White noise comes out narrower by the root of its squared sum, per axis.
SMOOTHED_NOISE = 141 / 729  # sqrt(1 + 9 + 36 + 49 + 36 + 9 + 1) / 27 per axis, times itself for the two axes


def _smoothed(ink: np.ndarray) -> np.ndarray:
    """``ink`` (H, W) blurred by three passes of a 3x3 box (edges repeated): noise down, strokes kept."""
    for axis in (0, 1):
        for _ in range(3):
            padded = np.concatenate([np.take(ink, [0], axis), ink, np.take(ink, [-1], axis)], axis=axis)
            count = padded.shape[axis]
            ink = (
                np.take(padded, range(0, count - 2), axis)
                + np.take(padded, range(1, count - 1), axis)
                + np.take(padded, range(2, count), axis)
            ) / 3
    return ink.astype(np.float32)


def _cleaned(ink: np.ndarray, noise: float) -> np.ndarray:
    """`find_ink` on ``ink`` as it is: the checks, then the strokes scaled to [0, 1]."""
    if float(ink.max()) < MIN_CONTRAST:
        raise NoDigitFound("no digit found: the image is blank (no ink stands out from the background)")
    threshold = otsu_threshold(ink)
    strokes = ink > threshold
    fraction = float(strokes.mean())
    if not 0 < fraction < 1:
        raise NoDigitFound("no digit found: the image is blank (no ink stands out from the background)")
    contrast = float(ink[strokes].mean() - ink[~strokes].mean())
    if contrast < max(MIN_CONTRAST, NOISE_MARGIN * noise):
        raise _TooFaint("no digit found: nothing stands out from the background enough to be ink")
    if fraction < MIN_INK_FRACTION:
        raise NoDigitFound("no digit found: only a speck of ink")
    if fraction > MAX_INK_FRACTION:
        raise NoDigitFound(
            "no digit found: the image is mostly ink (write a dark digit on light paper, or light on dark)"
        )
    full = float(np.percentile(ink[strokes], 90))
    floor = threshold / 2  # keep the soft edges of strokes, drop the background's noise
    level = bold_level(ink, threshold, full)
    if level > threshold:  # bolder than MNIST's boldest: its edge is where the strokes are that wide
        floor = max(floor, 2 * level - full)  # so `level` maps to half intensity, the edge `stroke_width` reads
    return np.clip((ink - floor) / max(full - floor, 1e-6), 0.0, 1.0)


def bold_level(ink: np.ndarray, threshold: float, full: float, steps: int = 10) -> float:
    """The ink level at which a digit's strokes are no wider than `BOLD_STROKE` in the 28x28:
    ``threshold`` when they already are there, else the least of ``steps`` levels from it up to
    ``full`` (their strength) that makes them so, or the highest. A digit under 2 x `BOX` pixels
    tall and wide is left as it is: a pixel of it is over half a pixel of the 28x28, and a
    one-pixel line already reads 2 pixels wide, so its width cannot be measured finely enough.

    Widths are `stroke_width` of the ink over the level, scaled as `fit_box` will scale the
    digit's `ink_box` to `BOX` pixels. A blurred bold stroke (a felt marker, a photo out of focus,
    a small scan made big) narrows as the level rises; a sharp one (a bold font) does not, and is
    left as it is.
    """
    top, left, bottom, right = ink_box((ink > threshold).astype(np.float32))
    if max(bottom - top, right - left) < 2 * BOX:  # its pixels are too coarse to tell MNIST's widths apart
        return threshold
    crop = ink[top:bottom, left:right]
    scale = BOX / max(bottom - top, right - left)
    levels = threshold + (full - threshold) * np.arange(steps) / steps
    for level in levels:
        if stroke_width(crop > level) * scale <= BOLD_STROKE:
            return float(level)
    return float(levels[-1])


def ink_box(ink: np.ndarray, trim: float = 0.002) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the ink, bottom and right exclusive.

    The box holds all but ``trim`` of the mass of the strokes' cores (ink over half
    strength) on each side, so neither a stray dot of dust far from the digit nor a faint
    haze of noise over a dim photo stretches the box and shrinks the digit.
    """
    core = np.where(ink > 0.5, ink, 0.0)
    if not core.any():
        core = ink
    rows, cols = core.sum(axis=1), core.sum(axis=0)

    def span(profile: np.ndarray) -> tuple[int, int]:
        cumulative = np.cumsum(profile) / profile.sum()
        start = int(np.searchsorted(cumulative, trim, side="right"))
        stop = int(np.searchsorted(cumulative, 1.0 - trim, side="left")) + 1
        return start, max(stop, start + 1)

    (top, bottom), (left, right) = span(rows), span(cols)
    return top, left, bottom, right


def stroke_width(ink: np.ndarray) -> float:
    """The typical stroke width in pixels: 2 x area / boundary of the ink over half intensity.

    A stroke of width w and length L has area w L and a boundary of about 2 L pixels, so the
    ratio recovers w without tracing the strokes (it reads 2 for one-pixel lines).
    """
    mask = ink > 0.5
    area = int(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    boundary = area - int(interior.sum())
    return 2.0 * area / max(boundary, 1)


def fit_box(ink: np.ndarray, box: tuple[int, int, int, int], size: int = BOX) -> np.ndarray:
    """The ink inside ``box``, scaled so its longer side is ``size`` pixels (aspect kept), anti-aliased.

    The crop is first resampled to 4x the final size, where strokes thinner than MNIST's
    thinnest are thickened (a thin pen on a big canvas would otherwise fade to a faint grey
    at 20 px), then reduced by area averaging, which is what anti-aliasing a reduction
    means. Then the strokes' cores are brought back to full intensity, as MNIST's are.
    """
    from PIL import Image, ImageFilter

    top, left, bottom, right = box
    crop = ink[top:bottom, left:right]
    height, width = crop.shape
    factor = WORK_SIZE / max(height, width)
    work = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = Image.fromarray(crop.astype(np.float32), mode="F").resize(work, Image.Resampling.LANCZOS)
    pixels = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    # Stroke width at 4x scale against MNIST's thinnest, 4 x 20/28 of its width in 28x28.
    least = 4 * BOX / FIELD * MIN_STROKE
    width_now = stroke_width(pixels)
    if 0 < width_now < least:
        radius = min(round((least - width_now) / 2), 8)
        if radius >= 1:
            pixels = _filter(pixels, ImageFilter.MaxFilter(2 * radius + 1))  # thicken a thin pen's strokes
    final = (max(1, round(work[0] * size / WORK_SIZE)), max(1, round(work[1] * size / WORK_SIZE)))
    reduced = Image.fromarray(pixels, mode="F").resize(final, Image.Resampling.BOX)
    digit = np.clip(np.asarray(reduced, dtype=np.float32), 0.0, 1.0)
    # MNIST's strokes have solid cores (about 62 pixels over 90% of full ink per digit);
    # resampling softens them. Scaling the 70th percentile of the ink to full restores that
    # count (67), and it measurably helped the model (benchmarks/own_digits.py).
    ink = digit[digit > 0.05]
    level = float(np.percentile(ink, SOLID_PERCENTILE)) if ink.size else 0.0
    return np.clip(digit / level, 0.0, 1.0) if level > 0 else digit


def _filter(pixels: np.ndarray, kernel: Any) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(np.rint(pixels * 255).astype(np.uint8), mode="L").filter(kernel)
    return np.asarray(image, dtype=np.float32) / 255.0


def center_by_mass(digit: np.ndarray, size: int = FIELD, center: tuple[float, float] = CENTER) -> np.ndarray:
    """The digit placed in a ``size`` x ``size`` black field with its centre of mass at ``center``.

    MNIST translated each digit by whole pixels so that its centre of mass sits at the
    field's centre; the shift is clamped so that no ink leaves the field.
    """
    height, width = digit.shape
    total = float(digit.sum())
    rows, cols = np.arange(height), np.arange(width)
    mass_row = float((digit.sum(axis=1) * rows).sum() / total) if total else (height - 1) / 2
    mass_col = float((digit.sum(axis=0) * cols).sum() / total) if total else (width - 1) / 2
    top = int(np.clip(round(center[0] - mass_row), 0, size - height))
    left = int(np.clip(round(center[1] - mass_col), 0, size - width))
    field = np.zeros((size, size), dtype=np.float32)
    field[top : top + height, left : left + width] = digit
    return field


def to_mnist(source: Any, name: str | None = None) -> np.ndarray:
    """Any image of a digit -> an MNIST-style 28x28 uint8 array (light ink on black, centred).

    Args:
        source: a path, bytes, a binary file, a Pillow image, or a NumPy array: (H, W) grey,
            (H, W, 3|4) colour, or 784 values (floats read as 0-1, integers as 0-255).
        name: how errors name the input (default: the path).

    Raises `NotAnImage` for unreadable input (`ImageTooLarge`, a kind of it, for an image over
    `MAX_PIXELS`) and `NoDigitFound` for an image without a digit, each with a one-line message.
    """
    image = load_image(source, name)
    check_size(image)
    ink = find_ink(*remove_background(to_gray(image)))
    digit = fit_box(ink, ink_box(ink))
    return np.rint(center_by_mass(digit) * 255).astype(np.uint8)


@dataclass(frozen=True)
class Prediction:
    """What a model says of one image: the top classes with their probabilities, and the
    28x28 it saw; or, for an image it could not read or with no digit in it, the reason.

    Attributes:
        source: how the input was named (its path, or ``image 3``).
        label: the most probable class index, or None when there is no prediction.
        classes: the class names, index order (``"0"``..``"9"`` for MNIST).
        probabilities: one per class, summing to 1 (empty when there is no prediction).
        image: the MNIST-style 28x28 uint8 the model saw (None when the image was unreadable or blank).
        error: why there is no prediction (``"no digit found: ..."``), else None.
    """

    source: str
    label: int | None
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    image: np.ndarray | None = None
    error: str | None = None

    @property
    def found(self) -> bool:
        """Whether the image was classified."""
        return self.label is not None

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as ``(name, probability)``, most probable first."""
        order = sorted(range(len(self.probabilities)), key=lambda i: -self.probabilities[i])[:k]
        return [(self.classes[i], self.probabilities[i]) for i in order]

    def to_dict(self, k: int = 3) -> dict[str, Any]:
        """A JSON-ready summary: source, label and its name, top ``k``, every probability, or the error."""
        if self.label is None:  # not found
            return {"source": self.source, "found": False, "error": self.error}
        return {
            "source": self.source,
            "found": True,
            "label": self.label,
            "name": self.classes[self.label],
            "top": [{"name": n, "probability": p} for n, p in self.top(k)],
            "probabilities": list(self.probabilities),
        }


def predict(
    model: Any, sources: Any, *, normalize: str, spec: Any, names: list[str] | None = None, device: Any = "cpu"
) -> list[Prediction]:
    """`Prediction` of ``model`` for each image of ``sources``: a list of anything `to_mnist` takes,
    one such image, or a stack of grey images (N, H, W) as an array.

    Each image is prepared by `to_mnist`, then normalised exactly as the training images were
    (``normalize`` and the dataset ``spec``, `mlplab.data.normalize`); the prepared images go
    through the model in one batch. An unreadable or blank image gets its error and no
    prediction; the others are still predicted.
    """
    if isinstance(sources, (str, Path, bytes)) or _one_array_image(sources):
        sources = [sources]
    sources = list(sources)
    names = names or [str(s) if isinstance(s, (str, Path)) else f"image {i + 1}" for i, s in enumerate(sources)]
    if len(names) != len(sources):
        raise ValueError(f"{len(names)} names for {len(sources)} images: give one name per image")
    classes = tuple(spec.classes)
    prepared: dict[int, np.ndarray] = {}
    results: list[Prediction | None] = [None] * len(sources)
    for index, (source, name) in enumerate(zip(sources, names, strict=True)):
        try:
            prepared[index] = to_mnist(source, name)
        except NotAnImage as error:
            results[index] = Prediction(name, None, classes, (), None, str(error))
        except NoDigitFound as error:
            results[index] = Prediction(name, None, classes, (), None, f"{name}: {error}")
    if prepared:
        indices = sorted(prepared)
        probabilities = classify(
            model, np.stack([prepared[i] for i in indices]), normalize=normalize, spec=spec, device=device
        )
        for row, index in enumerate(indices):
            p = tuple(float(v) for v in probabilities[row])
            results[index] = Prediction(names[index], int(probabilities[row].argmax()), classes, p, prepared[index])
    return [result for result in results if result is not None]


def _one_array_image(sources: Any) -> bool:
    """Whether an array is one image (784 values, (H, W), or (H, W, 3|4) colour), not a stack of them."""
    if not isinstance(sources, np.ndarray):
        return False
    return sources.ndim in (1, 2) or (sources.ndim == 3 and sources.shape[-1] in (3, 4))


def classify(model: Any, images: np.ndarray, *, normalize: str, spec: Any, device: Any = "cpu") -> np.ndarray:
    """Class probabilities (N, classes) float64 of ``model`` for MNIST-style ``images`` (N, 28, 28) uint8.

    The images are normalised exactly as the training images were (``normalize`` and the
    dataset ``spec``, `mlplab.data.normalize`) and go through the model in one batch, in eval
    mode and without gradients; a model in training mode is put back in it afterwards. A model
    already in eval mode is only read, so threads may share it (as `mlplab serve` does).
    """
    import torch

    from mlplab.data.loading import normalize as normalize_images

    pixels = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).unsqueeze(1)  # (N, 1, 28, 28) uint8
    inputs = normalize_images(pixels, normalize, spec).to(device)
    was_training = model.training
    if was_training:  # eval mode turns dropout off
        model.eval()
    try:
        with torch.no_grad():
            return _probabilities(model(inputs)).cpu().double().numpy()
    finally:
        if was_training:
            model.train()


def _probabilities(outputs: Any) -> Any:
    """Class probabilities from a model's outputs: logits, or log-probabilities (a log_softmax model)."""
    import torch

    log_p = torch.log_softmax(outputs.double(), dim=1)  # log_softmax of log-probabilities returns them unchanged
    return log_p.exp()
