"""`mlplab predict RUN_DIR|CHECKPOINT IMAGE...`: what a trained model says of your own digits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlplab.cli.flags import add_number
from mlplab.cli.parser import EXIT_USER_ERROR
from mlplab.config import Bounds


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `predict` command."""
    parser = subparsers.add_parser(
        "predict", help="predict your own digit images (PNG, JPEG, WebP, GIF) with a trained model",
        description="Predict images of digits with a trained model. Each image (any size; colour, grey or "
                    "with transparency; dark ink on light paper or light on dark; a photo) is made into an "
                    "MNIST-style 28x28 first (see mlplab.digits). An unreadable image, or one with no digit, "
                    "gets one line and a non-zero exit; the others are still predicted.")
    parser.add_argument("model", help="a run directory (its best checkpoint) or a checkpoint file (.pt)")
    parser.add_argument("images", nargs="+", help="image files")
    add_number(parser, "--top", int, Bounds(1, 100), "classes to list per image", default=3)
    parser.add_argument("--json", action="store_true", help="print the predictions as JSON")
    parser.add_argument("--show", metavar="OUT.png",
                        help="also draw each image, the 28x28 the model saw and its probabilities (needs mlplab[plots])")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Predict every image, print one line (or a JSON record) each; exit 2 if any could not be predicted."""
    from mlplab.digits import predict
    from mlplab.errors import MlplabError

    if args.top < 1:
        raise MlplabError(f"--top must be at least 1; got {args.top}")
    model, normalize, spec = _load(Path(args.model))
    predictions = predict(model, [Path(image) for image in args.images], normalize=normalize, spec=spec,
                          names=list(args.images))
    if args.json:
        print(json.dumps([p.to_dict(args.top) for p in predictions], indent=2))
    else:
        width = max(len(p.source) for p in predictions)
        for p in predictions:
            if p.found:
                top = "   ".join(f"{name} {_percent(probability)}" for name, probability in p.top(args.top))
                print(f"{p.source:<{width}}  {top}")
            else:
                print(p.error)
    if args.show:
        from mlplab.plots.backend import save
        from mlplab.plots.digits import predictions_figure, shown_as_given

        figure = predictions_figure(predictions, [shown_as_given(Path(image)) for image in args.images])
        print(f"wrote {save(figure, args.show)[0]}")
    return 0 if all(p.found for p in predictions) else EXIT_USER_ERROR


def _percent(probability: float) -> str:
    """``97.3%``; never a rounded ``100.0%`` or ``0.0%`` for what is not exactly that."""
    if 0.999 < probability < 1:
        return ">99.9%"
    if 0 < probability < 0.001:
        return " <0.1%"
    return f"{100 * probability:5.1f}%"


def _load(path: Path):
    """The model, normalisation and dataset spec of a run directory or checkpoint file."""
    from mlplab.data import get_spec
    from mlplab.errors import MlplabError
    from mlplab.runs import SavedModel

    saved = SavedModel(path)  # a run directory means its best checkpoint
    config = saved.config
    if config is None:
        raise MlplabError(f"{saved.path} holds a user-defined model that mlplab cannot rebuild; predict from Python: "
                          "open_run(RUN_DIR).predict(images, normalize=..., dataset=..., into=your_module)")
    return saved.model(), config.data.normalize, get_spec(config.data.dataset)
