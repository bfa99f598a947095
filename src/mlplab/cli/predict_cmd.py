"""`mlplab predict [RUN_DIR|CHECKPOINT] IMAGE...`: what a trained model (by default the cached
digits model, `mlplab.cli.cached_model`) says of your own digits."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mlplab.cli.cached_model import PRESET, RETRAIN_HELP, cached_run, check_retrain
from mlplab.cli.flags import add_number
from mlplab.cli.parser import EXIT_USER_ERROR
from mlplab.config import Bounds


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `predict` command."""
    parser = subparsers.add_parser(
        "predict",
        help="predict your own digit images (PNG, JPEG, WebP, GIF), with a trained run or a ready model",
        usage="mlplab predict [-h] [--top TOP] [--json] [--show OUT.png] [--retrain] [RUN_DIR | CHECKPOINT.pt] "
        "IMAGE [IMAGE ...]",
        description="Predict images of digits. With a run directory or a checkpoint file (.pt) first, its model "
        f"(a run's best checkpoint) reads them; with images only, the {PRESET} preset's model does: "
        "trained once on first use (seconds to a minute, offline, on the bundled MNIST) and kept in "
        "$MLPLAB_CACHE_DIR or ~/.cache/mlplab under models/; later calls load it (--retrain trains it "
        "again). Each image (any size; colour, grey or with transparency; dark ink on light paper or "
        "light on dark; a photo) is made into an MNIST-style 28x28 first (see mlplab.digits). An "
        "unreadable image, or one with no digit, gets one line and a non-zero exit; the others are "
        "still predicted.",
        epilog="The first argument is the model when it is a folder (which must be a run directory) or ends in "
        ".pt; otherwise every argument is an image. Examples: `mlplab predict seven.png photo.jpg`, "
        "`mlplab predict runs/mnist seven.png`.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="[RUN_DIR | CHECKPOINT.pt] IMAGE",
        help="a run directory (its best checkpoint) or a checkpoint file (.pt), then image files; "
        f"image files alone: the cached {PRESET} model",
    )
    add_number(parser, "--top", int, Bounds(1, 100), "classes to list per image", default=3)
    parser.add_argument("--json", action="store_true", help="print the predictions as JSON")
    parser.add_argument(
        "--show",
        metavar="OUT.png",
        help="also draw each image, the 28x28 the model saw and its probabilities (needs mlplab[plots])",
    )
    parser.add_argument("--retrain", action="store_true", help=RETRAIN_HELP + "; only with images alone")
    parser.set_defaults(func=execute, more_positionals="inputs")


def execute(args: argparse.Namespace) -> int:
    """Predict every image, print one line (or a JSON record) each; exit 2 if any could not be predicted."""
    from mlplab.digits import predict
    from mlplab.errors import MlplabError

    if args.top < 1:
        raise MlplabError(f"--top must be at least 1; got {args.top}")
    model_path, images = split_inputs(args.inputs)
    check_retrain(model_path, args.retrain)
    model, normalize, spec = _load(model_path, images, args.retrain)
    predictions = predict(model, [Path(image) for image in images], normalize=normalize, spec=spec, names=list(images))
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

        figure = predictions_figure(predictions, [shown_as_given(Path(image)) for image in images])
        print(f"wrote {save(figure, args.show)[0]}")
    return 0 if all(p.found for p in predictions) else EXIT_USER_ERROR


def _percent(probability: float) -> str:
    """``97.3%``; never a rounded ``100.0%`` or ``0.0%`` for what is not exactly that."""
    if 0.999 < probability < 1:
        return ">99.9%"
    if 0 < probability < 0.001:
        return " <0.1%"
    return f"{100 * probability:5.1f}%"


def split_inputs(inputs: list[str]) -> tuple[Path | None, list[str]]:
    """``(model, images)``: the first input is the model when it is a folder (a run directory, or a
    one-line error) or ends in ``.pt``, or when it names nothing and others follow (a mistyped run);
    otherwise there is no model and every input is an image."""
    from mlplab.errors import MlplabError

    first = Path(inputs[0])
    if first.is_dir():
        if not any((first / name).is_file() for name in ("last.pt", "config.toml")):
            raise MlplabError(
                f"{first} is a folder but not a run directory (no last.pt or config.toml); give a run "
                f"written by `mlplab train`, or image files (e.g. {first / '*.png'})"
            )
        return first, inputs[1:]
    if first.suffix.lower() == ".pt" or (len(inputs) > 1 and not os.path.lexists(first) and not first.suffix):
        return first, inputs[1:]  # a path that does not exist is told so by the checkpoint reader
    return None, inputs


def _load(path: Path | None, images: list[str], retrain: bool):
    """The model, normalisation and dataset spec of a run directory or checkpoint file; with no
    path, of the cached digits model (trained first if need be, unless no image exists to read)."""
    from mlplab.data import get_spec
    from mlplab.errors import MlplabError
    from mlplab.runs import SavedModel

    if path is None:
        if not any(os.path.lexists(image) for image in images):  # a typo should not cost a training first
            raise MlplabError(f"no such file: {', '.join(images)}; give image files (or a run directory first)")
        saved = cached_run(retrain).saved()
    else:
        saved = SavedModel(path)  # a run directory means its best checkpoint
        if not images:
            raise MlplabError(f"no images given after the model {path}; give image files after it")
    config = saved.config
    if config is None:
        raise MlplabError(
            f"{saved.path} holds a user-defined model that mlplab cannot rebuild; predict from Python: "
            "open_run(RUN_DIR).predict(images, normalize=..., dataset=..., into=your_module)"
        )
    return saved.model(), config.data.normalize, get_spec(config.data.dataset)
