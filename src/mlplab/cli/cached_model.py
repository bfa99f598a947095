"""The model `mlplab predict` and `mlplab serve` use when no run is given: `mlplab.pretrained` of the
``digits`` preset, with what it does said on stderr (stdout stays the command's answer)."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplab.runs.reader import Run
    from mlplab.training.pretrained import Notice

PRESET = "digits"  # the recipe trained for people's own digits (mlplab.config.PRESETS)
RETRAIN_HELP = (
    f"train the cached {PRESET} model again (used when no run is given; it is kept in "
    "$MLPLAB_CACHE_DIR or ~/.cache/mlplab under models/)"
)


def check_retrain(model: object, retrain: bool) -> None:
    """Refuse ``--retrain`` beside a ``model`` the user named: it retrains only the cached model."""
    from mlplab.errors import MlplabError

    if model is not None and retrain:
        raise MlplabError(
            f"--retrain trains the cached {PRESET} model, used when no run is given; {model} is a "
            f"trained model already: drop --retrain or {model}"
        )


def cached_run(retrain: bool = False) -> Run:
    """The ``digits`` preset's run from the user's cache, trained first if none is usable; says which on stderr."""
    from mlplab.training.pretrained import pretrained

    started, trained = time.monotonic(), False

    def say(notice: Notice) -> None:
        nonlocal trained
        if notice.kind == "training":
            trained = True
            _err(
                f"no run given: training the {PRESET} model once ({_recipe()}; seconds to a minute), kept in "
                f"{_home(notice.path)}; later calls load it"
            )
        elif notice.kind != "loaded":
            _err(f"mlplab: {str(notice).replace(str(notice.path), _home(notice.path))}")

    run = pretrained(PRESET, notify=say, retrain=retrain)
    if trained:
        _err(f"trained in {time.monotonic() - started:.0f} s: {describe(run)}")
    else:
        _err(f"no run given: using the cached {PRESET} model ({_home(run.path)}): {describe(run)}")
    return run


def describe(run: Run) -> str:
    """``784-512-10, 98.93% on MNIST's test set``."""
    from mlplab.data import get_spec

    config, metrics = run.config, run.metrics
    assert config is not None and metrics is not None  # `pretrained` returns a preset's finished run only
    title = get_spec(config.data.dataset).title
    return f"{run.architecture}, {100 * metrics['test_accuracy']:.2f}% on {title}'s test set"


def _recipe() -> str:
    """``784-512-10, 8 epochs on MNIST``: the preset as it will be trained."""
    from mlplab.cli.progress import architecture
    from mlplab.config import from_preset
    from mlplab.data import get_spec
    from mlplab.data.arrays import IMAGE_SHAPE

    config = from_preset(PRESET)
    spec = get_spec(config.data.dataset)
    widths = architecture(math.prod(IMAGE_SHAPE), config.model.hidden, len(spec.classes))
    epochs = config.train.epochs
    return f"{widths}, {epochs} epoch{'s' if epochs != 1 else ''} on {spec.title}"


def _home(path: Path) -> str:
    """``path`` with the home folder written ``~``, as a user types it."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if home not in ("", "/") and text.startswith(home + "/") else text


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
