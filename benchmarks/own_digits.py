"""Own-digit robustness: MNIST test digits made into what users hand in, predicted three ways.

Every test digit is rendered the way people's digits reach a model, at random:

  canvas   dark ink on a white 280x280 canvas (PNG; a third with a transparent background
           instead of white, as a drawing app exports it)
  photo    a photo of paper: a 400x300 grey-beige sheet under uneven light (a gradient in
           a random direction and a vignette), sensor noise, a colour cast, saved as JPEG
           at quality 30-90

and in both: the digit at a random scale (its longer side 30-90% of the canvas height) and
position, strokes thickened or thinned (dilate/erode, about -0.4 to +0.8 px of MNIST's scale
per side), and rotated by up to 12 degrees. Then the same model is scored on:

  (a) mlplab   `mlplab.digits` preprocessing (`Run.predict`)
  (b) naive    what many demos do: grey, resize to 28x28, invert, normalise
  (c) clean    the original test digits

Target (issue 14): (a) within 2 points of (c) for a model of >= 98% test accuracy, and far above (b).

    python benchmarks/own_digits.py                      # trains 784-512-10 for 8 epochs first (~15 s)
    python benchmarks/own_digits.py --run runs/mnist     # or score a run you have
    python benchmarks/own_digits.py --count 1000 --examples examples.png
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

STYLES = ("canvas", "photo")


def ink_crop(digit: np.ndarray) -> np.ndarray:
    """The 28x28 digit cut to its ink's bounding box."""
    rows, cols = np.nonzero(digit)
    return digit[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def user_digit(digit: np.ndarray, rng: np.random.Generator, height: int) -> Image.Image:
    """The digit as light ink ("L", black background), scaled so its longer side is 30-90% of
    ``height``, its strokes thickened or thinned, and rotated slightly."""
    crop = ink_crop(digit)
    side = rng.uniform(0.3, 0.9) * height
    factor = side / max(crop.shape)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    image = Image.fromarray(crop).resize(size, Image.Resampling.BICUBIC)
    change = rng.uniform(-0.4, 0.8) * factor * 20 / 28  # per side, in this image's pixels
    radius = round(abs(change))
    image = Image.fromarray(np.pad(np.asarray(image), radius + round(0.2 * side)))  # room to thicken and rotate
    if radius >= 1:
        kernel = ImageFilter.MaxFilter if change > 0 else ImageFilter.MinFilter
        image = image.filter(kernel(2 * radius + 1))
    image = image.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BICUBIC)
    pixels = np.asarray(image)
    pixels = np.where(pixels > 8, pixels, 0).astype(np.uint8)  # bicubic leaves a faint haze around strokes
    rows, cols = np.nonzero(pixels)
    return Image.fromarray(pixels[rows.min():rows.max() + 1, cols.min():cols.max() + 1])


def place(ink: Image.Image, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Ink strength in [0, 1] on a ``height`` x ``width`` field, the digit at a random position."""
    field = np.zeros((height, width), dtype=np.float32)
    pixels = np.asarray(ink, dtype=np.float32)[:height, :width] / 255
    top = int(rng.integers(0, height - pixels.shape[0] + 1))
    left = int(rng.integers(0, width - pixels.shape[1] + 1))
    field[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
    return field


def encode(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def canvas_image(digit: np.ndarray, rng: np.random.Generator, size: int = 280) -> bytes:
    """Dark ink on a white canvas (PNG), or on a transparent one (RGBA PNG, as drawing apps export)."""
    ink = place(user_digit(digit, rng, size), size, size, rng)
    if rng.random() < 1 / 3:
        rgba = np.zeros((size, size, 4), dtype=np.uint8)  # black strokes, alpha = ink
        rgba[:, :, 3] = np.rint(ink * 255).astype(np.uint8)
        return encode(Image.fromarray(rgba, mode="RGBA"), "PNG")
    return encode(Image.fromarray(np.rint(255 * (1 - ink)).astype(np.uint8), mode="L"), "PNG")


def photo_image(digit: np.ndarray, rng: np.random.Generator, width: int = 400, height: int = 300) -> bytes:
    """A photo of the digit on paper: uneven light, noise, a colour cast, JPEG."""
    return photograph(place(user_digit(digit, rng, height), width, height, rng), rng)


def photograph(ink: np.ndarray, rng: np.random.Generator) -> bytes:
    """Ink strength in [0, 1] (H, W) as a JPEG photo of it on paper: a grey-beige sheet under
    uneven light (a gradient in a random direction and a vignette), sensor noise, a colour cast."""
    height, width = ink.shape
    paper, pen = rng.uniform(150, 235), rng.uniform(15, 90)
    gray = paper + (pen - paper) * ink
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width] / max(width, height)
    gradient = (np.cos(angle) * xs + np.sin(angle) * ys)
    gradient = (gradient - gradient.min()) / np.ptp(gradient)
    light = 1 - rng.uniform(0.2, 0.5) * gradient  # one side up to half as bright
    vignette = 1 - rng.uniform(0.0, 0.25) * ((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2) / 0.25
    gray = gray * light * vignette + rng.normal(0, rng.uniform(2, 8), gray.shape)
    cast = rng.uniform(0.85, 1.05, size=3)
    rgb = np.clip(gray[:, :, None] * cast, 0, 255).astype(np.uint8)
    return encode(Image.fromarray(rgb, mode="RGB"), "JPEG", quality=int(rng.integers(30, 91)))


def user_images(digits: np.ndarray, seed: int = 0) -> tuple[list[bytes], list[str]]:
    """Each digit rendered in a random style; the encoded files and their styles."""
    rng = np.random.default_rng(seed)
    files, styles = [], []
    for digit in digits:
        style = STYLES[int(rng.integers(len(STYLES)))]
        files.append(canvas_image(digit, rng) if style == "canvas" else photo_image(digit, rng))
        styles.append(style)
    return files, styles


def naive_inputs(files: list[bytes], normalize):
    """What many demos do: grey, resize to 28x28, invert (MNIST's ink is light), normalise."""
    import torch

    pixels = [255 - np.asarray(Image.open(io.BytesIO(f)).convert("L").resize((28, 28), Image.Resampling.BILINEAR))
              for f in files]
    return normalize(torch.from_numpy(np.stack(pixels)).unsqueeze(1))


def score(run, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Accuracy of the run's model on ``images`` made into user images: (a) mlplab, (b) naive, (c) clean."""
    import torch

    from mlplab.data import get_spec
    from mlplab.data.loading import normalize as normalize_images

    spec, kind = get_spec(run.config.data.dataset), run.config.data.normalize
    model = run.model()
    normalize = lambda pixels: normalize_images(pixels, kind, spec)  # noqa: E731
    files, styles = user_images(images, seed)
    started = time.perf_counter()
    predictions = run.predict(files)
    seconds = time.perf_counter() - started
    ours = np.array([p.label if p.found else -1 for p in predictions])
    with torch.no_grad():
        naive = model(naive_inputs(files, normalize)).argmax(1).numpy()
        clean = model(normalize(torch.from_numpy(images).unsqueeze(1))).argmax(1).numpy()
    styles = np.array(styles)
    result = {
        "count": len(labels),
        "mlplab": float((ours == labels).mean()),
        "naive": float((naive == labels).mean()),
        "clean": float((clean == labels).mean()),
        "no_digit_found": int((ours == -1).sum()),
        "ms_per_image": 1000 * seconds / len(labels),
        "files": files,
        "predictions": predictions,
    }
    for style in STYLES:
        mask = styles == style
        result[style] = {"count": int(mask.sum()), "mlplab": float((ours[mask] == labels[mask]).mean()),
                         "naive": float((naive[mask] == labels[mask]).mean())}
    return result


def save_examples(result: dict, labels: np.ndarray, path: Path, count: int = 12) -> None:
    """A grid: each user image beside the 28x28 the model saw, with the label and the prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, count, figsize=(1.4 * count, 3.2))
    for column in range(count):
        prediction = result["predictions"][column]
        shown = Image.open(io.BytesIO(result["files"][column])).convert("RGBA")  # transparent canvases on white
        axes[0, column].imshow(Image.alpha_composite(Image.new("RGBA", shown.size, "white"), shown).convert("RGB"))
        axes[1, column].imshow(prediction.image if prediction.found else np.zeros((28, 28)), cmap="gray",
                               vmin=0, vmax=255)
        said = prediction.classes[prediction.label].split(" ")[0] if prediction.found else "none"
        axes[1, column].set_title(f"{labels[column]} -> {said}", fontsize=9,
                                  color="black" if prediction.found and prediction.label == labels[column] else "red")
        for row in (0, 1):
            axes[row, column].axis("off")
    axes[0, 0].set_title("user image", fontsize=9, loc="left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained MNIST run directory (default: train 784-512-10 for 8 epochs now)")
    parser.add_argument("--count", type=int, default=10_000, help="test digits to render (default: all 10,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rendering (default: 0)")
    parser.add_argument("--examples", help="also save a PNG grid of examples here")
    args = parser.parse_args()

    import mlplab
    from mlplab.config import Config, apply_overrides
    from mlplab.data import bundled_folder, get_spec

    if args.run:
        run = mlplab.open_run(args.run)
    else:
        out = Path(tempfile.mkdtemp(prefix="own-digits-")) / "run"
        config = apply_overrides(Config(), {"hidden": (512,), "epochs": 8, "progress": False, "out": str(out)})
        started = time.perf_counter()
        mlplab.train(config)
        print(f"trained {out} (784-512-10, 8 epochs) in {time.perf_counter() - started:.0f} s")
        run = mlplab.open_run(out)
    test = mlplab.MNIST(bundled_folder(get_spec("mnist")), train=False)  # the copy bundled with mlplab
    images, labels = test.data[:args.count].numpy(), test.targets[:args.count].numpy()
    result = score(run, images, labels, args.seed)
    print(f"model: {run}")
    print(f"{result['count']} MNIST test digits rendered as user images (seed {args.seed}); "
          f"preprocessing {result['ms_per_image']:.1f} ms per image")
    print(f"{'':>28} {'all':>7} {'canvas':>7} {'photo':>7}")
    print(f"{'(a) mlplab preprocessing':>28} {100 * result['mlplab']:>6.2f}% "
          + " ".join(f"{100 * result[s]['mlplab']:>6.2f}%" for s in STYLES))
    print(f"{'(b) naive resize to 28x28':>28} {100 * result['naive']:>6.2f}% "
          + " ".join(f"{100 * result[s]['naive']:>6.2f}%" for s in STYLES))
    print(f"{'(c) clean test digits':>28} {100 * result['clean']:>6.2f}%")
    print(f"(a) - (c): {100 * (result['mlplab'] - result['clean']):+.2f} points; "
          f"no digit found: {result['no_digit_found']}")
    if args.examples:
        save_examples(result, labels, Path(args.examples))
        print(f"examples: {args.examples}")


if __name__ == "__main__":
    main()
