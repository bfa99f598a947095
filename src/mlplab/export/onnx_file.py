"""Export a run's MLP to ONNX, with what a runtime needs to feed it in the file's metadata.

**The graph.** One input, ``images``: (batch, 1, 28, 28) float32, **already normalised** as the
run's training images were, ``(pixels / 255 - mean) / std`` with ``mean`` and ``std`` read from
the metadata. One output, ``logits`` (batch, classes), or ``log_probabilities`` for a net built
with a log-softmax output. The batch dimension is dynamic: any number of images per call.

**The metadata** (the model's ``metadata_props``; all strings, read them with onnxruntime's
``session.get_modelmeta().custom_metadata_map``):

    format, format_version   "mlplab.mlp.onnx", "1"
    mlplab_version           the mlplab that wrote the file
    dataset                  e.g. "mnist"
    classes                  the class names by label, JSON (``["0 - zero", ...]``)
    normalize                "standard", "unit" or "symmetric": how the run scaled its images
    mean, std                that scaling as ``(pixels / 255 - mean) / std`` (decimal strings):
                             the dataset's for "standard", 0 and 1 for "unit", 0.5 and 0.5 for
                             "symmetric"
    input, output            the graph's input and output names
    architecture             e.g. "784-256-10 relu MLP -> logits, 203,530 parameters"
    config                   the run's resolved config, JSON
    epoch                    the epoch whose weights these are
    test_accuracy            on the test split, when the run is finished and measured these
                             very weights (absent otherwise)

The exporter is torch's own (``torch.onnx.export(..., dynamo=True)``, the one torch 2.9+ uses by
default), written in ONNX Script. Every file is checked before it is written: by ``onnx.checker``,
and in onnxruntime against PyTorch on a batch of another size than the traced one.

Needs the ``onnx`` extra (onnx, onnxscript, onnxruntime): ``pip install "mlplab[onnx]"``.
Importing this module imports none of them, nor torch.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplab.errors import MlplabError, one_line

if TYPE_CHECKING:
    from mlplab.models import MLP
    from mlplab.runs.reader import SavedModel

ONNX_FORMAT = "mlplab.mlp.onnx"
ONNX_FORMAT_VERSION = 1
INPUT_NAME = "images"
OUTPUT_NAMES = {"logits": "logits", "log_softmax": "log_probabilities"}  # MLP.output -> the graph's output
IMAGE_SHAPE = (1, 28, 28)  # (channels, height, width) of every dataset mlplab trains on
# The largest |ONNX - PyTorch| a written file may show on the check batch, relative to its
# largest |output| (at least 1): float32 products summed in another order differ by ~1e-6 of
# that; a wrong graph differs by far more.
CHECK_TOLERANCE = 1e-4
_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the `onnx` extra, in the order they are imported


def export_onnx(checkpoint_path: str | Path, out: str | Path, which: str = "best", opset: int | None = None) -> Path:
    """Write the MLP of a checkpoint to ``out`` as an ONNX model; returns the path.

    The model takes ``images``, (batch, 1, 28, 28) float32 normalised as in training, and
    returns ``logits`` (or ``log_probabilities``), (batch, classes); its metadata says how to
    normalise, the class names, the architecture, the epoch and the test accuracy (see the
    module docstring). The file is written atomically.

    Args:
        checkpoint_path: a .pt file, or a run directory: its checkpoint ``which`` (see `mlplab.runs.reader`).
        out: the file to write (conventionally ``model.onnx``).
        which: for a run directory, ``"best"`` (best.pt, else last.pt) or ``"last"``.
        opset: the ONNX operator set to target; None for torch's default (a recent one). Give an
            older one for an older runtime; 18 is the oldest torch targets without conversion.

    Example::

        export_onnx("runs/mnist", "runs/mnist/model.onnx")
    """
    from mlplab.files import atomic_write
    from mlplab.runs import SavedModel

    _import_onnx_packages()
    saved = SavedModel(checkpoint_path, which)
    model = _rebuild(saved)
    proto = _to_onnx(model, opset)
    _label(proto, _metadata(saved.record, saved.path, model), model)
    data = proto.SerializeToString()
    _check(data, model)
    out = Path(out)
    atomic_write(out, lambda handle: handle.write(data))
    return out


def scaling(normalize: str, mean: float, std: float) -> tuple[float, float]:
    """``normalize`` (see `mlplab.data.loading.normalize`) as the ``(mean, std)`` of ``(pixels/255 - mean) / std``;
    ``mean`` and ``std`` are the dataset's, used by ``"standard"``."""
    return {"standard": (mean, std), "unit": (0.0, 1.0), "symmetric": (0.5, 0.5)}[normalize]


def _rebuild(saved: SavedModel) -> MLP:
    """The checkpoint's MLP in eval mode, or a one-line error for a net this export cannot take."""
    path = saved.path
    if saved.config is None:
        name = saved.record["model_info"].get("class", "a user-defined module")
        raise MlplabError(
            f"{path} holds a user-defined model ({name}) that mlplab cannot rebuild; export it yourself: "
            "torch.onnx.export(open_run(RUN_DIR).model(into=YourModule()), (torch.zeros(2, 1, 28, 28),), "
            "'model.onnx', dynamo=True)"
        )
    from mlplab.models import MLP

    model = saved.model()
    assert isinstance(model, MLP)  # a checkpoint with a config is rebuilt as the MLP it describes
    if model.widths[0] != math.prod(IMAGE_SHAPE):
        raise MlplabError(f"{path} holds a net of {model.widths[0]} inputs; ONNX export takes 28x28 images (784)")
    return model


def _label(proto: Any, metadata: dict[str, str], model: MLP) -> None:
    """Put ``metadata`` into the ModelProto's metadata_props, and a summary into its doc_string
    (what a model viewer such as Netron shows first)."""
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = (
        f"mlplab {metadata['architecture']}. Input '{INPUT_NAME}': (batch, 1, 28, 28) float32, "
        "normalised as in training: (pixels / 255 - mean) / std, mean and std in the metadata. "
        f"Output '{metadata['output']}': (batch, {model.widths[-1]})."
    )


def _metadata(checkpoint: dict[str, Any], path: Path, model: MLP) -> dict[str, str]:
    """The metadata of the ONNX file for a loaded checkpoint of an mlplab run (see the module docstring)."""
    from mlplab._version import __version__
    from mlplab.config import from_dict
    from mlplab.data import get_spec

    config = from_dict(checkpoint["config"])
    spec = get_spec(config.data.dataset)
    mean, std = scaling(config.data.normalize, spec.mean, spec.std)
    metadata = {
        "format": ONNX_FORMAT,
        "format_version": str(ONNX_FORMAT_VERSION),
        "mlplab_version": __version__,
        "dataset": spec.name,
        "classes": json.dumps(list(checkpoint["model_info"].get("classes") or spec.classes)),
        "normalize": config.data.normalize,
        "mean": repr(mean),
        "std": repr(std),
        "input": INPUT_NAME,
        "output": OUTPUT_NAMES[model.output],
        "architecture": model.describe(),
        "config": json.dumps(checkpoint["config"]),
        "epoch": str(checkpoint["epoch"]),
    }
    accuracy = _test_accuracy(checkpoint, path)
    if accuracy is not None:
        metadata["test_accuracy"] = repr(accuracy)
    return metadata


def _to_onnx(model: MLP, opset: int | None) -> Any:
    """The ONNX ModelProto of ``model`` (in eval mode, on the CPU), batch dimension dynamic."""
    import torch

    if torch.__version__ < "2.6":  # torch.export-based exporter with dynamic_shapes
        raise MlplabError(f"ONNX export needs torch 2.6 or newer (this is {torch.__version__}): pip install -U torch")
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= newest):
        raise MlplabError(
            f"opset must be a whole number from 1 to {newest} (the newest onnx {onnx.__version__} knows); got {opset!r}"
        )
    example = torch.zeros(2, *IMAGE_SHAPE)  # batch 2: torch.export specialises sizes 0 and 1
    batch = torch.export.Dim("batch")
    try:
        with _quiet():
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAMES[model.output]],
                opset_version=opset,
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # torch raises its own exporter error types (and anything a converter trips)
        raise MlplabError(
            f"torch could not export the model to ONNX ({one_line(error)}); try another --opset, or torch's default"
        ) from None
    assert program is not None  # dynamo=True returns the ONNXProgram (only the legacy exporter returns None)
    proto = program.model_proto
    written = next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:  # torch keeps its own opset when a conversion fails
        raise MlplabError(
            f"torch could not convert the model to opset {opset} (it stayed at {written}); "
            "choose a newer opset, or torch's default"
        )
    return proto


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's logging and warnings (torchvision absent, its own deprecations, the
    traceback of a failed opset conversion it recovers from): not the user's business; a failure
    still raises."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _check(data: bytes, model: MLP) -> None:
    """Refuse a serialised ONNX model that is malformed or that disagrees with ``model`` in onnxruntime."""
    import numpy as np
    import onnx
    import onnxruntime
    import torch

    try:
        onnx.checker.check_model(onnx.load_from_string(data))
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnx and onnxruntime raise their own error types
        raise MlplabError(
            f"the exported ONNX model does not load ({one_line(error)}); try another --opset, or torch's default"
        ) from None
    images = torch.rand(3, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(0))  # a batch size unlike the traced 2
    with torch.no_grad():
        expected = model(images).numpy()
    (got,) = session.run(None, {INPUT_NAME: images.numpy()})
    difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not difference <= CHECK_TOLERANCE * max(1.0, float(np.abs(expected).max())):
        raise MlplabError(
            f"the exported ONNX model disagrees with PyTorch (outputs {got.shape}, max difference "
            f"{difference:.3g}); nothing written: try another --opset, or torch's default"
        )


def _test_accuracy(checkpoint: dict[str, Any], path: Path) -> float | None:
    """The test accuracy measured on exactly these weights: a finished run's, when its tested epoch is
    this checkpoint's; None otherwise."""
    from mlplab.runs import SavedModel

    metrics = checkpoint.get("metrics")
    last = path.parent / "last.pt"
    if metrics is None and path.name != "last.pt" and last.is_file():
        # A run's test metrics live in last.pt (best.pt was saved before they were measured).
        try:
            record = SavedModel(last).record
        except MlplabError:
            return None  # only the metadata would use it; the weights being exported are fine
        if record["config"] == checkpoint["config"]:  # the same run, not a stray file beside it
            metrics = record.get("metrics")
    if metrics and metrics.get("tested_epoch") == checkpoint["epoch"]:
        return float(metrics["test_accuracy"])
    return None


def _import_onnx_packages() -> None:
    """Import the `onnx` extra's packages, or say in one line how to install them."""
    import importlib

    for name in _PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            raise MlplabError(f'ONNX export needs {name}, which is not installed: pip install "mlplab[onnx]"') from None
