"""Digits that are not MNIST's re-renders, per source, read by mlplab and by a plain pipeline.

`own_digits.py` renders MNIST's own test digits onto canvases and photos; its strokes are
MNIST's. This benchmark (issue 26, first part) adds sources whose strokes are not:

  lowres   MNIST test digits reduced to 8x8 or 12x12, then enlarged to 280 px with bicubic or
           nearest-neighbour resampling (a small scan, a thumbnail made big again)
  marker   bold strokes: the digit thickened by 1.2-2 px of MNIST's scale per side and blurred
           (a felt marker, a phone photo out of focus)
  pen      thin strokes: the digit thinned to about a pixel of MNIST's scale, on a 280 px canvas
  typed    the digits 0-9 typed in the fonts this machine has, other than DejaVu (kept held out,
           as the issue asks), at random size, position and a slight rotation; skipped when none

Each is read two ways by the same model:

  mlplab   `mlplab.digits` preprocessing (`Run.predict`)
  plain    the usual 30-line pipeline: Otsu threshold, crop to the ink, the longer side resized
           to 20 px with Lanczos, pasted into 28x28 at the centre of mass

    python benchmarks/digit_sources.py                    # trains 784-512-10 for 8 epochs first (~15 s)
    python benchmarks/digit_sources.py --run runs/mnist --count 500
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SOURCES = ("lowres", "marker", "pen", "typed")
CANVAS = 280  # px: the page's drawing canvas
HELD_OUT_FONTS = ("dejavu",)  # never rendered here: a held-out set of the issue uses them


def encode_png(pixels: np.ndarray) -> bytes:
    """A grey (H, W) uint8 array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def on_paper(ink: Image.Image, rng: np.random.Generator) -> bytes:
    """Light-on-black ink ("L") made dark on a white CANVAS square, its longer side 40-80% of it."""
    side = rng.uniform(0.4, 0.8) * CANVAS
    factor = side / max(ink.size)
    ink = ink.resize((max(1, round(ink.width * factor)), max(1, round(ink.height * factor))), Image.Resampling.BICUBIC)
    field = Image.new("L", (CANVAS, CANVAS), 0)
    field.paste(ink, (int(rng.integers(0, CANVAS - ink.width + 1)), int(rng.integers(0, CANVAS - ink.height + 1))))
    return encode_png(255 - np.asarray(field))


def lowres_image(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """The 28x28 digit reduced to 8x8 or 12x12 and enlarged to the canvas, bicubic or nearest."""
    small = int(rng.choice([8, 12]))
    reduced = Image.fromarray(digit).resize((small, small), Image.Resampling.BOX)
    resample = Image.Resampling.BICUBIC if rng.random() < 0.5 else Image.Resampling.NEAREST
    return encode_png(255 - np.asarray(reduced.resize((CANVAS, CANVAS), resample)))


def stroke_image(digit: np.ndarray, rng: np.random.Generator, bold: bool) -> bytes:
    """The digit at 10x MNIST's scale, thickened 1.2-2 MNIST pixels per side and blurred (``bold``),
    or thinned to strokes about one MNIST pixel wide."""
    big = Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC)
    if bold:
        step = int(rng.integers(3, 6))  # four passes of a (2 step + 1) max filter: 1.2-2 MNIST pixels per side at 10x
        for _ in range(4):  # four small filters cost far less than one of the whole width
            big = big.filter(ImageFilter.MaxFilter(2 * step + 1))
        big = big.filter(ImageFilter.GaussianBlur(rng.uniform(3, 8)))
    else:
        big = Image.fromarray(np.where(np.asarray(big) > 200, 255, 0).astype(np.uint8)).filter(ImageFilter.MinFilter(5))
    pixels = np.asarray(big)
    rows, cols = np.nonzero(pixels > 8)
    if rows.size == 0:  # thinned away: keep the digit as it was
        pixels = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC))
        rows, cols = np.nonzero(pixels > 8)
    return on_paper(Image.fromarray(pixels[rows.min():rows.max() + 1, cols.min():cols.max() + 1]), rng)


def fonts() -> list[Path]:
    """The TrueType and OpenType fonts under /usr/share/fonts, other than the held-out ones."""
    root = Path("/usr/share/fonts")
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf")) if root.is_dir() else []
    return [p for p in found if not any(held in str(p).lower() for held in HELD_OUT_FONTS)]


def typed_image(label: int, font: Path, rng: np.random.Generator) -> bytes:
    """The digit ``label`` typed in ``font``, rotated up to 6 degrees, on the canvas."""
    face = ImageFont.truetype(str(font), 200)
    field = Image.new("L", (CANVAS + 120, CANVAS + 120), 0)
    ImageDraw.Draw(field).text((60, 20), str(label), fill=255, font=face)
    field = field.rotate(rng.uniform(-6, 6), resample=Image.Resampling.BICUBIC)
    pixels = np.asarray(field)
    rows, cols = np.nonzero(pixels > 8)
    return on_paper(Image.fromarray(pixels[rows.min():rows.max() + 1, cols.min():cols.max() + 1]), rng)


def source_images(source: str, digits: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    """The images of one source and their labels (``typed`` takes only the labels, cycling the fonts)."""
    rng = np.random.default_rng([seed, SOURCES.index(source)])
    if source == "lowres":
        return [lowres_image(d, rng) for d in digits], labels
    if source in ("marker", "pen"):
        return [stroke_image(d, rng, bold=source == "marker") for d in digits], labels
    faces = fonts()
    if not faces:
        return [], labels[:0]
    return [typed_image(int(y), faces[i % len(faces)], rng) for i, y in enumerate(labels)], labels


def plain_pipeline(data: bytes) -> np.ndarray:
    """The plain contender: grey, Otsu threshold, crop to the ink, longer side to 20 px (Lanczos),
    pasted into 28x28 with the centre of mass at the centre; light ink on black, as MNIST."""
    gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
    threshold = otsu(gray)
    ink = gray < threshold if np.mean(gray < threshold) < 0.5 else gray > threshold  # the minority is ink
    rows, cols = np.nonzero(ink)
    if rows.size == 0:
        return np.zeros((28, 28), dtype=np.uint8)
    strength = np.where(ink, np.abs(gray - threshold), 0)[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    strength = (255 * strength / max(float(strength.max()), 1.0)).astype(np.uint8)
    height, width = strength.shape
    factor = 20 / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    box = np.asarray(Image.fromarray(strength).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    field = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
    field[top:top + size[1], left:left + size[0]] = box
    total = field.sum()
    if total > 0:
        ys, xs = np.mgrid[0:28, 0:28]
        shift = (round(13.5 - (ys * field).sum() / total), round(13.5 - (xs * field).sum() / total))
        field = np.roll(field, shift, axis=(0, 1))
    return np.clip(field, 0, 255).astype(np.uint8)


def otsu(gray: np.ndarray) -> float:
    """Otsu's threshold of grey levels in [0, 255]: the one that best separates two classes."""
    histogram = np.bincount(np.clip(gray, 0, 255).astype(np.int64).ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(histogram)
    mean = np.cumsum(histogram * np.arange(256))
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1e-12)
    return float(np.argmax(between[:-1])) + 0.5


def score_source(run, source: str, digits: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict | None:
    """Accuracy of the run's model on one source: mlplab's preprocessing and the plain pipeline."""
    import torch

    from mlplab.data import get_spec
    from mlplab.data.loading import normalize

    files, labels = source_images(source, digits, labels, seed)
    if not files:
        return None
    ours = np.array([p.label if p.found else -1 for p in run.predict(files)])
    plain = torch.from_numpy(np.stack([plain_pipeline(f) for f in files])).unsqueeze(1)
    with torch.no_grad():
        scores = run.model()(normalize(plain, run.config.data.normalize, get_spec(run.config.data.dataset)))
    return {"count": len(labels), "mlplab": float((ours == labels).mean()),
            "plain": float((scores.argmax(1).numpy() == labels).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained MNIST run directory (default: train 784-512-10 for 8 epochs now)")
    parser.add_argument("--count", type=int, default=1000, help="test digits per source (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rendering (default: 0)")
    args = parser.parse_args()

    import mlplab
    from mlplab.config import Config, apply_overrides
    from mlplab.data import bundled_folder, get_spec

    if args.run:
        run = mlplab.open_run(args.run)
    else:
        out = Path(tempfile.mkdtemp(prefix="digit-sources-")) / "run"
        started = time.perf_counter()
        mlplab.train(apply_overrides(Config(), {"hidden": (512,), "epochs": 8, "progress": False, "out": str(out)}))
        print(f"trained {out} (784-512-10, 8 epochs) in {time.perf_counter() - started:.0f} s")
        run = mlplab.open_run(out)
    test = mlplab.MNIST(bundled_folder(get_spec("mnist")), train=False)
    digits, labels = test.data[:args.count].numpy(), test.targets[:args.count].numpy()
    print(f"model: {run}")
    print(f"{'source':<8} {'images':>7} {'plain':>8} {'mlplab':>8}")
    for source in SOURCES:
        result = score_source(run, source, digits, labels, args.seed)
        if result is None:
            print(f"{source:<8} skipped: no fonts but the held-out {', '.join(HELD_OUT_FONTS)}")
            continue
        print(f"{source:<8} {result['count']:>7} {100 * result['plain']:>7.2f}% {100 * result['mlplab']:>7.2f}%")


if __name__ == "__main__":
    main()
