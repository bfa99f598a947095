"""matplotlib, imported on first use with the Agg backend, and figures saved atomically as PNG or SVG."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

from mlplab.choices import FIGURE_FORMATS
from mlplab.errors import MlplabError
from mlplab.files import atomic_write

DPI = 100  # pixels per inch: a figure of 8 x 5 inches is an 800 x 500 PNG


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no window), or a one-line error naming the extra.

    In a Jupyter kernel the notebook's own backend stays (inline figures there are not windows,
    and switching to Agg would stop the notebook's own ``plt.show()`` from showing anything).
    """
    try:
        import matplotlib
    except ImportError:
        raise MlplabError('plots need matplotlib: pip install "mlplab[plots]"') from None
    from mlplab import session

    if not session.in_notebook():
        matplotlib.use("Agg", force=True)  # never open a window, even where a display exists
    import matplotlib.pyplot as plt

    return plt


def short_name(name: str) -> str:
    """A class name for tick labels: "3" for MNIST's "3 - three", Fashion-MNIST's names as they are."""
    return name.split(" - ")[0]


def save(figure: Any, *paths: str | Path) -> list[Path]:
    """Write ``figure`` to each path (its suffix, .png or .svg, picks the format) atomically, then close it."""
    written = []
    try:
        for path in map(Path, paths):
            _save_as(figure, path)
            written.append(path)
    finally:
        pyplot().close(figure)
    return written


def _save_as(figure: Any, path: Path) -> None:
    """Render ``figure`` in the format ``path``'s suffix names, then write it to ``path`` atomically."""
    kind = path.suffix.lstrip(".").lower()
    if kind not in FIGURE_FORMATS:
        raise MlplabError(f"cannot write a figure as {path.name}: use a .png or .svg file name")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=kind, dpi=DPI)
    buffer.seek(0)
    atomic_write(path, lambda handle: shutil.copyfileobj(buffer, handle))
