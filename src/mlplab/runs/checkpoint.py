"""Self-describing checkpoints: one dict of tensors and builtins, written atomically.

Loading always uses ``torch.load(weights_only=True)``: a file that would need arbitrary
pickled objects (and so could run code) is refused before anything in it runs. Since
schema 2 a checkpoint records the SHA-256 of every tensor it holds (``tensor_sha256``),
checked on load, so flipped bytes on disk are caught instead of silently evaluated or
resumed; and every checkpoint is checked against its own config (the keys, shapes and
dtypes of the network it describes) before anything uses it.
"""

from __future__ import annotations

import hashlib
import pickle
import platform
import random
import zipfile
from pathlib import Path
from typing import Any

import torch

from mlplab._version import __version__
from mlplab.config import from_dict
from mlplab.errors import MlplabError, one_line
from mlplab.files import atomic_write

CHECKPOINT_FORMAT = "mlplab.checkpoint"
SCHEMA_VERSION = 3  # 2: tensor_sha256 recorded and checked; 3: config None for a model mlplab did not build
DIGEST_KEY = "tensor_sha256"
# What every checkpoint written by the training loop holds (besides format, schema and versions).
REQUIRED_KEYS = ("config", "model", "model_info", "optimizer", "schedule", "epoch", "step", "best", "history", "rng")


def versions() -> dict[str, str]:
    """The software that wrote a checkpoint or a run."""
    # str(): torch.__version__ is a TorchVersion, which weights_only loading does not allow.
    return {"mlplab": __version__, "torch": str(torch.__version__), "python": platform.python_version()}


def rng_state() -> dict[str, Any]:
    """Every random stream a training step may draw from (dropout uses torch's)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `rng_state` (CUDA streams only where both sides have CUDA)."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def tensor_digest(data: Any) -> str:
    """SHA-256 over every tensor in nested dicts and lists: its place, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for place, tensor in _tensors(data, ""):
        digest.update(f"{place}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _tensors(data: Any, place: str) -> list[tuple[str, torch.Tensor]]:
    """``(place, tensor)`` pairs in a fixed order (dict keys sorted by their text)."""
    if isinstance(data, torch.Tensor):
        return [(place, data)]
    if isinstance(data, dict):
        return [pair for key in sorted(data, key=str) for pair in _tensors(data[key], f"{place}/{key}")]
    if isinstance(data, (list, tuple)):
        return [pair for index, item in enumerate(data) for pair in _tensors(item, f"{place}/{index}")]
    return []


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` (built by the training loop) to ``path`` via a temporary file and a rename."""
    payload = {"format": CHECKPOINT_FORMAT, "schema_version": SCHEMA_VERSION, "versions": versions(), **checkpoint}
    payload[DIGEST_KEY] = tensor_digest(payload)
    atomic_write(Path(path), lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; refuses pickles that would run code."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise MlplabError(f"no checkpoint at {path}: give a run directory or a .pt file written by `mlplab train`")
    if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive
        raise MlplabError(f"{path} is not a readable checkpoint (not a torch.save archive); it may be truncated or another kind of file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if "Unsupported" in line or "GLOBAL" in line]
        first_line = lines[0].split(" was not ")[0] if lines else "unsupported content"
        raise MlplabError(
            f"refusing to load {path}: it holds objects that safe (weights_only) loading rejects ({first_line}); "
            "only load checkpoints written by mlplab"
        )
    except Exception as error:
        # Broad on purpose: torch wraps only UnpicklingError, and its pure-Python safe unpickler lets a
        # damaged pickle raise whatever its opcodes trip (IndexError popping an empty stack, KeyError
        # on a memo slot, struct.error, TypeError from an allowed constructor); the zip reader and
        # the storage checks add RuntimeError, OSError and EOFError. None of these runs code.
        raise MlplabError(f"{path} is not a readable checkpoint ({type(error).__name__}); it may be truncated "
                          "or not a torch file; use a last.pt or best.pt written by `mlplab train`") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise MlplabError(f"{path} is not an mlplab checkpoint (no '{CHECKPOINT_FORMAT}' marker); "
                          "use a last.pt or best.pt from `mlplab train`")
    schema = checkpoint.get("schema_version", 0)
    if type(schema) is not int:  # not isinstance: True is an int too, but never a schema
        raise MlplabError(f"{path} has a schema_version of type {type(schema).__name__}, not a whole number; "
                          "use a last.pt or best.pt written by `mlplab train`")
    if schema > SCHEMA_VERSION:
        raise MlplabError(
            f"{path} has checkpoint schema {schema}, newer than this mlplab reads ({SCHEMA_VERSION}); upgrade mlplab"
        )
    _check_digest(checkpoint, path)
    check_contents(checkpoint, path)
    return checkpoint


def _check_digest(checkpoint: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint whose tensors are not the ones it was written with (schema 2 on)."""
    if checkpoint.get("schema_version", 0) < 2 and DIGEST_KEY not in checkpoint:
        return  # written before checksums were recorded (one that is recorded is always checked)
    recorded = checkpoint.get(DIGEST_KEY)
    try:
        actual = tensor_digest({key: value for key, value in checkpoint.items() if key != DIGEST_KEY})
    except RuntimeError as error:  # a sparse, nested, meta or conjugate tensor; RecursionError: nesting too deep
        reason = one_line(error)
        raise MlplabError(f"{path} holds contents no mlplab checkpoint has, so its checksum cannot be computed "
                          f"({reason}); use a last.pt or best.pt written by `mlplab train`") from None
    if recorded != actual:
        raise MlplabError(f"{path} is damaged: its tensors do not match the checksum recorded when it was written "
                          "(bytes changed on disk); use another checkpoint (best.pt or last.pt) or train again")


def check_contents(checkpoint: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint that lacks a key or whose weights do not fit the network its config describes."""
    import json

    from mlplab.models import build_model  # here: the models module needs torch.nn, the rest of this file not

    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise MlplabError(f"{path} is incomplete: it has no {', '.join(missing)}; use a last.pt or best.pt "
                          "written by `mlplab train`")
    for key in ("epoch", "step"):  # counts a resume compares and adds to
        count = checkpoint[key]
        if type(count) is not int or count < 0:  # not isinstance: True is an int too
            kind = "a negative number" if type(count) is int else type(count).__name__
            raise MlplabError(f"{path} records its {key} as {kind}, not a whole number >= 0; use a last.pt or "
                              "best.pt written by `mlplab train`")
    try:  # plain data, as `to_dict` writes it: `mlplab export` stores both as JSON
        json.dumps([checkpoint["config"], checkpoint["model_info"]])
    except (TypeError, ValueError, RuntimeError) as error:  # RuntimeError: RecursionError, nesting too deep
        reason = one_line(error)
        raise MlplabError(f"{path} has a config or model_info that is not plain data ({reason}); use a last.pt or "
                          "best.pt written by `mlplab train`") from None
    if checkpoint["config"] is None:  # a model fit() trained but mlplab did not build: the user rebuilds it
        _check_weights_are_tensors(checkpoint["model"], path)
        return
    try:
        config = from_dict(checkpoint["config"])
        info = checkpoint["model_info"]
        with torch.device("meta"):  # shapes and dtypes only: no memory, no draw from the RNG
            expected = build_model(config.model, in_features=info["in_features"],
                                   num_classes=info["num_classes"]).state_dict()
    # Config values of any type reach plain conversions here: float(10**400) overflows, int() of a
    # many-element tensor and str() of a deeply nested list raise RuntimeError, a tensor indexed by
    # a name raises IndexError.
    except (MlplabError, LookupError, TypeError, ValueError, AttributeError, ArithmeticError, RuntimeError) as error:
        reason = one_line(error)
        raise MlplabError(f"{path} describes no network mlplab can build ({reason}); use a last.pt or best.pt "
                          "written by `mlplab train`") from None
    weights = checkpoint["model"]
    if not isinstance(weights, dict) or set(weights) != set(expected):
        # Other keys by their type: a damaged file's keys need not sort together, nor print in one line
        found = (sorted(key if isinstance(key, str) else f"<{type(key).__name__}>" for key in weights)
                 if isinstance(weights, dict) else type(weights).__name__)
        raise MlplabError(f"{path} holds weights {found} but its config describes {sorted(expected)}")
    for name, want in expected.items():
        got = weights[name]
        if not isinstance(got, torch.Tensor):
            found = type(got).__name__
        elif got.is_nested:  # checked first: a nested tensor has no .shape
            found = "a nested tensor"
        elif got.is_meta or got.layout != torch.strided:  # no data, or not a dense array of it
            found = "a meta tensor (no data)" if got.is_meta else f"a {got.layout} tensor"
        elif got.shape != want.shape or got.dtype != want.dtype:
            found = f"{tuple(got.shape)} {got.dtype}"
        else:
            continue
        raise MlplabError(f"{path} holds {name} of {found} where its config describes "
                          f"{tuple(want.shape)} {want.dtype}")


def _check_weights_are_tensors(weights: Any, path: Path) -> None:
    """A state dict of a user's model: names to dense tensors with data (shapes are checked when loaded into it)."""
    if not isinstance(weights, dict) or not all(isinstance(name, str) for name in weights):
        raise MlplabError(f"{path} holds no state dict of named weights; use a last.pt or best.pt written by mlplab")
    for name, tensor in weights.items():
        if not isinstance(tensor, torch.Tensor) or tensor.is_nested or tensor.is_meta or tensor.layout != torch.strided:
            raise MlplabError(f"{path} holds {name} as {type(tensor).__name__}, not a dense tensor with data; "
                              "use a last.pt or best.pt written by mlplab")
