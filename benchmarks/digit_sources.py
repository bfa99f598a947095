"""Digits that are not MNIST's re-renders, per source and medium, read by mlplab and by a plain pipeline.

`own_digits.py` renders MNIST's own test digits onto canvases and photos; its strokes are
MNIST's. This benchmark (issue 26) reads digits whose strokes are not:

  mnist     MNIST's own test digits enlarged tenfold (bicubic): its strokes, for reference
  lowres    MNIST test digits reduced to 8x8 or 12x12, then enlarged with bicubic or
            nearest-neighbour resampling (a small scan, a thumbnail made big again)
  marker    bold strokes: the digit thickened by 1.2-2 px of MNIST's scale per side and blurred
            (a felt marker, a phone photo out of focus)
  pen       thin strokes: the digit thinned to about a pixel of MNIST's scale
  typed     the digits 0-9 typed in the print fonts Debian ships (Liberation, FreeFont, URW
            base35, Noto), every weight and slant of each, at random size and position and
            rotated up to 6 degrees; DejaVu is never used (a held-out set of the issue uses it)
  handfont  the same in handwriting-style fonts (Comic Neue, Humor Sans, Breip, URW's Z003)

each in two media:

  canvas    dark ink on a white 280x280 canvas (PNG), the digit 40-80% of its side
  photo     a photo of it on paper (`own_digits.photograph`): uneven light, noise, a colour
            cast, JPEG at quality 30-90

and read three ways:

  plain     the usual 30-line pipeline: Otsu threshold, crop to the ink, the longer side resized
            to 20 px with Lanczos, pasted into 28x28 at the centre of mass; default model
  mlplab    `mlplab.digits.to_mnist`, the default model (784-512-10, 8 epochs, about 98.4%)
  digits    `mlplab.digits.to_mnist`, the model of the `digits` recipe (`--digits-run`, default
            `mlplab.pretrained("digits")`: the one `mlplab predict` uses with no run)

    python benchmarks/digit_sources.py                       # trains the default model first (~15 s), and
                                                             # the digits model once if not cached (~30 s)
    python benchmarks/digit_sources.py --run runs/mnist --digits-run runs/digits --count 500
    python benchmarks/digit_sources.py --ablate              # also: each preprocessing step switched off
    python benchmarks/digit_sources.py --worst grids/        # the worst-read images of each source, as PNG grids
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_digits import photograph  # noqa: E402 - the photo of paper, shared with own_digits.py

SOURCES = ("mnist", "lowres", "marker", "pen", "typed", "handfont")
MEDIA = ("canvas", "photo")
CANVAS = 280  # px: the page's drawing canvas
PHOTO = (400, 300)  # px: width, height of a photo
HELD_OUT_FONTS = ("dejavu",)  # never rendered here: a held-out set of the issue uses them
# Font files by family, as Debian's packages name them (fonts-liberation, fonts-freefont-ttf,
# fonts-urw-base35, fonts-noto-core, fonts-comic-neue, fonts-humor-sans, fonts-breip).
FONT_FILES = {
    "typed": r"^(Liberation(Sans|Serif|Mono|SansNarrow)|Free(Sans|Serif|Mono)|NimbusSans|NimbusSansNarrow|"
             r"NimbusRoman|NimbusMonoPS|C059|P052|URWBookman|URWGothic|Noto(Sans|Serif|SansMono))-?[A-Za-z]*\.(ttf|otf)$",
    "handfont": r"^(ComicNeue-[A-Za-z]+|Humor-Sans|Breip|breipfont|Z003-[A-Za-z]+)\.(ttf|otf)$",
}


def encode_png(pixels: np.ndarray) -> bytes:
    """A grey (H, W) uint8 array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def cropped(pixels: np.ndarray) -> Image.Image:
    """Light-on-black ink (H, W) uint8 cut to the pixels over a faint haze, as an "L" image."""
    rows, cols = np.nonzero(pixels > 8)
    return Image.fromarray(np.ascontiguousarray(pixels[rows.min():rows.max() + 1, cols.min():cols.max() + 1]))


def scaled(ink: Image.Image, side: float) -> np.ndarray:
    """``ink`` resized (bicubic) so its longer side is ``side`` px, as strength in [0, 1]."""
    factor = side / max(ink.size)
    size = (max(1, round(ink.width * factor)), max(1, round(ink.height * factor)))
    return np.clip(np.asarray(ink.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255, 0, 1)


def placed(ink: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Ink strength on a blank ``height`` x ``width`` field, at a random position."""
    field = np.zeros((height, width), dtype=np.float32)
    top = int(rng.integers(0, height - ink.shape[0] + 1))
    left = int(rng.integers(0, width - ink.shape[1] + 1))
    field[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    return field


def on_canvas(ink: Image.Image, rng: np.random.Generator) -> bytes:
    """Light-on-black ink made dark on a white CANVAS square (PNG), its longer side 40-80% of it."""
    field = placed(scaled(ink, rng.uniform(0.4, 0.8) * CANVAS), CANVAS, CANVAS, rng)
    return encode_png(np.rint(255 * (1 - field)).astype(np.uint8))


def on_photo(ink: Image.Image, rng: np.random.Generator) -> bytes:
    """Light-on-black ink photographed on paper (JPEG), its longer side 30-80% of the photo's height."""
    width, height = PHOTO
    return photograph(placed(scaled(ink, rng.uniform(0.3, 0.8) * height), width, height, rng), rng)


def lowres_ink(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The 28x28 digit reduced to 8x8 or 12x12 and enlarged tenfold, bicubic or nearest-neighbour."""
    small = int(rng.choice([8, 12]))
    reduced = Image.fromarray(digit).resize((small, small), Image.Resampling.BOX)
    resample = Image.Resampling.BICUBIC if rng.random() < 0.5 else Image.Resampling.NEAREST
    return cropped(np.asarray(reduced.resize((CANVAS, CANVAS), resample)))


def stroke_ink(digit: np.ndarray, rng: np.random.Generator, bold: bool) -> Image.Image:
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
    if not (pixels > 8).any():  # thinned away: keep the digit as it was
        pixels = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC))
    return cropped(pixels)


@lru_cache(maxsize=None)
def fonts(kind: str) -> tuple[Path, ...]:
    """The font files of ``kind`` (typed or handfont) this machine has, that draw all ten digits,
    never a held-out one. Empty when none is installed."""
    root = Path("/usr/share/fonts")
    pattern = re.compile(FONT_FILES[kind])
    found = sorted(p for p in root.rglob("*") if pattern.match(p.name)) if root.is_dir() else []
    return tuple(p for p in found if not any(held in str(p).lower() for held in HELD_OUT_FONTS) and draws_digits(p))


def draws_digits(path: Path) -> bool:
    """Whether the font has a glyph of its own for every digit (not the empty box of a missing one)."""
    face = ImageFont.truetype(str(path), 64)

    def glyph(text: str) -> bytes:
        image = Image.new("L", (96, 96), 0)
        ImageDraw.Draw(image).text((8, 0), text, fill=255, font=face)
        return image.tobytes()

    missing = glyph("\ue000")  # a private-use character: no font of these draws it
    return all(glyph(str(d)) != missing and any(glyph(str(d))) for d in range(10))


def typed_ink(label: int, font: Path, rng: np.random.Generator) -> Image.Image:
    """The digit ``label`` typed in ``font``, rotated up to 6 degrees."""
    face = ImageFont.truetype(str(font), 200)
    field = Image.new("L", (CANVAS + 120, CANVAS + 120), 0)
    ImageDraw.Draw(field).text((60, 20), str(label), fill=255, font=face)
    field = field.rotate(rng.uniform(-6, 6), resample=Image.Resampling.BICUBIC)
    return cropped(np.asarray(field))


def source_inks(source: str, digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> list[Image.Image]:
    """The ink of each digit of one source (light on black); typed sources take only the labels."""
    if source == "mnist":
        return [cropped(np.asarray(Image.fromarray(d).resize((CANVAS, CANVAS), Image.Resampling.BICUBIC))) for d in digits]
    if source == "lowres":
        return [lowres_ink(d, rng) for d in digits]
    if source in ("marker", "pen"):
        return [stroke_ink(d, rng, bold=source == "marker") for d in digits]
    faces = fonts(source)
    return [typed_ink(int(y), faces[i % len(faces)], rng) for i, y in enumerate(labels)] if faces else []


def source_images(source: str, medium: str, digits: np.ndarray, labels: np.ndarray,
                  seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    """The encoded images of one source in one medium and their labels (none for a typed source
    without fonts)."""
    rng = np.random.default_rng([seed, SOURCES.index(source), MEDIA.index(medium)])
    inks = source_inks(source, digits, labels, rng)
    render = on_canvas if medium == "canvas" else on_photo
    return [render(ink, rng) for ink in inks], labels[:len(inks)]


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


def mlplab_inputs(files: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each file through `mlplab.digits.to_mnist`: the 28x28s (N, 28, 28) uint8, and which had a digit."""
    from mlplab.digits import NoDigitFound, to_mnist

    images, found = [], []
    for data in files:
        try:
            images.append(to_mnist(data))
            found.append(True)
        except NoDigitFound:
            images.append(np.zeros((28, 28), dtype=np.uint8))
            found.append(False)
    return np.stack(images), np.array(found)


def probabilities(run, images: np.ndarray) -> np.ndarray:
    """The run's class probabilities (N, 10) for MNIST-style 28x28 uint8 images."""
    from mlplab.data import get_spec
    from mlplab.digits import classify

    data = run.config.data
    return classify(run.model(), images, normalize=data.normalize, spec=get_spec(data.dataset))


# Each step of `mlplab.digits.to_mnist` switched off: what replaces it, as patches of the module.
def _global_paper(gray: np.ndarray) -> np.ndarray:
    return np.full_like(gray, float(np.median(gray)))


def _box_centre(digit: np.ndarray, size: int = 28, center: tuple[float, float] = (13.5, 13.5)) -> np.ndarray:
    field = np.zeros((size, size), dtype=np.float32)
    top, left = (size - digit.shape[0]) // 2, (size - digit.shape[1]) // 2
    field[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return field


def _ablations() -> dict[str, Callable[[], dict]]:
    """Name -> the module attributes to patch for that ablation (built lazily: needs mlplab)."""
    from mlplab import digits

    find = digits.find_ink  # the step itself, not the patch
    hard = lambda ink, noise=0.0: (find(ink, noise) > 0.5).astype(np.float32)  # noqa: E731
    return {
        "no paper_level (one global level)": lambda: {"paper_level": _global_paper},
        "hard threshold (no soft edges)": lambda: {"find_ink": hard},
        # a millionth, not 0: float rounding can leave the cumulative mass short of 1, and the box then runs to the edge
        "no ink_box trim": lambda: {"ink_box": partial(digits.ink_box, trim=1e-6)},
        "no thickening of thin strokes": lambda: {"MIN_STROKE": 0.0},
        "no smoothed second look": lambda: {"_smoothed": lambda ink: ink, "SMOOTHED_NOISE": 1.0},
        "bold strokes at Otsu's level": lambda: {"bold_level": lambda ink, threshold, full: threshold},
        "no solid cores (peak to 1)": lambda: {"SOLID_PERCENTILE": 100},
        "box centre (no centre of mass)": lambda: {"center_by_mass": _box_centre},
    }


@contextmanager
def patched(module, values: dict) -> Iterator[None]:
    """``module``'s attributes set to ``values`` for the block, then restored."""
    saved = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def score_source(runs: dict, source: str, medium: str, digits: np.ndarray, labels: np.ndarray,
                 seed: int = 0) -> dict | None:
    """Accuracy on one source and medium: ``plain`` (the plain pipeline, ``runs["mlplab"]``'s model),
    and for each named run its model on `to_mnist`'s images. None for a typed source without fonts.

    The result also keeps the files, the 28x28s and each run's probabilities, for `save_worst`."""
    files, labels = source_images(source, medium, digits, labels, seed)
    if not files:
        return None
    images, found = mlplab_inputs(files)
    result = {"count": len(labels), "labels": labels, "files": files, "images": images, "found": found}
    plain = probabilities(runs["mlplab"], np.stack([plain_pipeline(f) for f in files]))
    result["plain"] = float((plain.argmax(1) == labels).mean())
    for name, run in runs.items():
        scores = probabilities(run, images)
        result[f"{name}_probabilities"] = scores
        result[name] = float(((scores.argmax(1) == labels) & found).mean())
    return result


def ablate(run, files: list[bytes], labels: np.ndarray) -> dict[str, float]:
    """The run's accuracy with each step of `to_mnist` switched off in turn."""
    from mlplab import digits

    accuracy = {}
    for name, patches in _ablations().items():
        with patched(digits, patches()):
            images, found = mlplab_inputs(files)
        accuracy[name] = float(((probabilities(run, images).argmax(1) == labels) & found).mean())
    return accuracy


def save_worst(result: dict, name: str, path: Path, count: int = 12) -> None:
    """A grid of the ``count`` images whose true class ``name``'s model found least likely: the
    image handed in, the 28x28 the model saw, and its top 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, scores = result["labels"], result[f"{name}_probabilities"]
    order = np.argsort(scores[np.arange(len(labels)), labels])[:count]
    figure, axes = plt.subplots(2, len(order), figsize=(1.5 * len(order), 3.6), squeeze=False)
    for column, index in enumerate(order):
        shown = Image.open(io.BytesIO(result["files"][index])).convert("RGB")
        axes[0, column].imshow(shown)
        axes[1, column].imshow(result["images"][index], cmap="gray", vmin=0, vmax=255)
        top = np.argsort(-scores[index])[:3]
        axes[0, column].set_title(f"true {labels[index]}", fontsize=9)
        said = "\n".join(f"{k} {100 * scores[index, k]:.0f}%" for k in top) if result["found"][index] else "no digit"
        axes[1, column].set_title(said, fontsize=8, color="black" if top[0] == labels[index] else "red")
        for row in (0, 1):
            axes[row, column].axis("off")
    figure.suptitle(f"{path.stem}: the {len(order)} worst read by {name} (top: handed in; bottom: what the model saw, "
                    "its top 3)", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def trained_default(seconds: list[float]):
    """The default model of this benchmark: 784-512-10, 8 epochs (about 98.4%), trained now."""
    import mlplab
    from mlplab.config import Config, apply_overrides

    out = Path(tempfile.mkdtemp(prefix="digit-sources-")) / "run"
    started = time.perf_counter()
    mlplab.train(apply_overrides(Config(), {"hidden": (512,), "epochs": 8, "progress": False, "out": str(out)}))
    seconds.append(time.perf_counter() - started)
    return mlplab.open_run(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained MNIST run directory (default: train 784-512-10 for 8 epochs now)")
    parser.add_argument("--digits-run", help="a run of the digits recipe, read as a third contender (default: "
                                             "mlplab.pretrained('digits'), the cached model, trained once if need be)")
    parser.add_argument("--count", type=int, default=500, help="test digits per source and medium (default: 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rendering (default: 0)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated (default: all)")
    parser.add_argument("--ablate", action="store_true", help="also score each preprocessing step switched off")
    parser.add_argument("--worst", metavar="DIR", help="save a grid of the worst-read images of each source here")
    args = parser.parse_args()

    import mlplab
    from mlplab.data import bundled_folder, get_spec

    seconds: list[float] = []
    runs = {"mlplab": mlplab.open_run(args.run) if args.run else trained_default(seconds)}
    runs["digits"] = mlplab.open_run(args.digits_run) if args.digits_run else mlplab.pretrained("digits")
    for name, run in runs.items():
        print(f"{name} model: {run}" + (f" (trained now in {seconds[0]:.0f} s)" if name == "mlplab" and seconds else ""))
    test = mlplab.MNIST(bundled_folder(get_spec("mnist")), train=False)
    digits, labels = test.data[:args.count].numpy(), test.targets[:args.count].numpy()
    columns = ["plain", *runs]
    print(f"\n| source | medium | images | {' | '.join(columns)} |\n|---|---|---|" + "---|" * len(columns))
    ablations = {}
    for source in args.sources.split(","):
        for medium in MEDIA:
            result = score_source(runs, source, medium, digits, labels, args.seed)
            if result is None:
                print(f"| {source} | {medium} | skipped: no fonts of this kind installed |")
                continue
            print(f"| {source} | {medium} | {result['count']} | "
                  + " | ".join(f"{100 * result[c]:.1f}%" for c in columns) + " |", flush=True)
            if args.ablate:
                ablations[source, medium] = (result["mlplab"], ablate(runs["mlplab"], result["files"], result["labels"]))
            if args.worst:
                for name in runs:
                    save_worst(result, name, Path(args.worst) / f"{source}-{medium}-{name}.png")
    if ablations:
        names = list(next(iter(ablations.values()))[1])
        print("\nAblation: accuracy change (points) when one step of to_mnist is switched off, default model")
        print("| source | medium | mlplab | " + " | ".join(names) + " |\n|---|---|---|" + "---|" * len(names))
        for (source, medium), (full, changed) in ablations.items():
            print(f"| {source} | {medium} | {100 * full:.1f}% | "
                  + " | ".join(f"{100 * (changed[n] - full):+.1f}" for n in names) + " |")
    if args.worst:
        print(f"\nworst-read grids: {args.worst}")


if __name__ == "__main__":
    main()
