"""`mlplab predict --show`: each of your images beside the 28x28 the model saw and its probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlplab.plots.backend import pyplot, short_name

BAR = "#4c72b0"  # the probability bars
TOP = "#1a7f37"  # the predicted class's bar


def predictions_figure(predictions: Sequence[Any], originals: Sequence[Any]) -> Any:
    """One row per `mlplab.digits.Prediction`: the image as given (RGB, transparency shown on
    white), the 28x28 the model saw, and a bar per class; an image without a prediction shows its reason."""
    plt = pyplot()
    rows = max(len(predictions), 1)
    figure, axes = plt.subplots(
        rows, 3, figsize=(8.0, 2.0 * rows), squeeze=False, gridspec_kw={"width_ratios": [1.0, 1.0, 2.2]}
    )
    for row, (prediction, original) in enumerate(zip(predictions, originals, strict=True)):
        given, seen, bars = axes[row]
        given.imshow(original)
        given.set_title(_shorten(Path(prediction.source).name or prediction.source), fontsize=9)
        if prediction.found:
            seen.imshow(prediction.image, cmap="gray", vmin=0, vmax=255)
            seen.set_title("the model saw", fontsize=9)
            names = [short_name(name) for name in prediction.classes]
            colors = [TOP if index == prediction.label else BAR for index in range(len(names))]
            bars.bar(range(len(names)), prediction.probabilities, color=colors)
            bars.set_xticks(range(len(names)), names, fontsize=8)
            bars.set_ylim(0, 1)
            bars.set_title(
                f"{prediction.classes[prediction.label]}: {100 * max(prediction.probabilities):.1f}%", fontsize=9
            )
            bars.tick_params(axis="y", labelsize=8)
        else:
            seen.set_axis_off()
            bars.text(0.0, 0.5, _wrap(prediction.error or "no prediction"), fontsize=9, va="center", wrap=True)
            bars.set_axis_off()
        for axis in (given, seen):
            axis.set_xticks([])
            axis.set_yticks([])
    figure.tight_layout()
    return figure


def shown_as_given(source: Any) -> np.ndarray:
    """An input image as RGB for display (transparent parts on white); grey when it cannot be read."""
    from PIL import Image

    from mlplab.digits import NotAnImage, load_image

    try:
        image = load_image(source).convert("RGBA")
    except NotAnImage:
        return np.full((28, 28, 3), 200, dtype=np.uint8)
    image.thumbnail((256, 256))
    return np.asarray(Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB"))


def _shorten(text: str, width: int = 28) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def _wrap(text: str, width: int = 40) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
