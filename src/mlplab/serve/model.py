"""`ServedModel`: a run's model, loaded once, that answers predictions from several threads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlplab.errors import MlplabError

if TYPE_CHECKING:
    from mlplab.runs.reader import Run


class ServedModel:
    """The best checkpoint of a run directory (the rule of `mlplab.Run`), ready to classify.

    The network is loaded once, in eval mode, and only ever read afterwards, so the web
    server's worker threads share it. Loading fails with a one-line `MlplabError` for a path
    that is no run directory, a run with no saved epoch, or a run of a user-defined model
    (mlplab cannot rebuild it without its code).

    Args:
        run_dir: a run directory written by ``mlplab train`` (or `mlplab.train`), or a `mlplab.Run`
            already open (`mlplab.pretrained`'s: its checked checkpoints are used as they are).

    Attributes:
        info: what ``GET /api/model`` answers (see `describe`).

    Example::

        served = ServedModel("runs/mnist")
        served.predict(open("seven.png", "rb").read(), "seven.png")["name"]   # '7 - seven'
    """

    def __init__(self, run_dir: str | Path | Run) -> None:
        from mlplab.data import get_spec
        from mlplab.runs.reader import Run, open_run

        run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
        config = run.config
        if config is None:
            raise MlplabError(
                f"{run_dir} is a run of a user-defined model, which mlplab cannot rebuild to serve; "
                "serve a run of mlplab's MLP (one written by `mlplab train`)"
            )
        self.model = run.model()  # the best epoch, in eval mode
        self.spec = get_spec(config.data.dataset)
        self.normalize = config.data.normalize
        self.info = describe(run)

    def predict(self, source: Any, name: str) -> dict[str, Any]:
        """The answer of ``POST /api/predict`` for one image (anything `mlplab.digits.to_mnist` takes).

        Returns ``{"label", "name", "top" (3 of {"name", "probability"}), "probabilities" (one per
        class), "image" (the 28x28 the model saw, 784 ints 0-255, row by row)}``. Raises
        `mlplab.digits.NotAnImage` and `mlplab.digits.NoDigitFound` (one line each, naming
        ``name``) for an unreadable image and for one with no digit.
        """
        from mlplab.digits import Prediction, classify, to_mnist

        image = to_mnist(source, name)  # (28, 28) uint8, light ink on black, centred
        probabilities = classify(self.model, image[None], normalize=self.normalize, spec=self.spec)[0]
        prediction = Prediction(
            name, int(np.argmax(probabilities)), tuple(self.spec.classes), tuple(float(p) for p in probabilities), image
        )
        answer = prediction.to_dict(3)
        del answer["source"], answer["found"]  # the client knows what it sent; an answer is always found
        answer["image"] = image.ravel().tolist()
        return answer


def describe(run: Any) -> dict[str, Any]:
    """A run's model for people: the run's folder name and preset (None: none), dataset (name and
    title), classes, architecture (``784-256-10``), activation, test accuracy (None before the run
    finished), the served (best) epoch and the epochs trained, and how its inputs are normalised."""
    from mlplab.data import get_spec

    config, checkpoint, metrics = run.config, run.checkpoint(), run.metrics
    spec = get_spec(config.data.dataset)
    return {
        "run": run.path.name,
        "preset": config.preset,
        "dataset": config.data.dataset,
        "dataset_title": spec.title,
        "classes": list(spec.classes),
        "architecture": run.architecture,
        "activation": config.model.activation,
        "test_accuracy": None if metrics is None else metrics.get("test_accuracy"),
        "epoch": checkpoint["epoch"],
        "epochs": run.epochs,
        "normalize": config.data.normalize,
    }
