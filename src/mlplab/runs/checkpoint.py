"""Self-describing checkpoints: one dict of tensors and builtins, written atomically.

Loading always uses ``torch.load(weights_only=True)``: a file that would need arbitrary
pickled objects (and so could run code) is refused before anything in it runs. Before that, the
archive's declared sizes are checked (`mlplab.runs.archive`: nothing compressed, nothing listed
twice), and a file larger than its network can need is refused once its config is read. Since
schema 4 a checkpoint records the SHA-256 of its whole record (``record_sha256``: every key,
number, string and tensor, in a canonical encoding), checked on load, so a flipped byte
anywhere (a learning rate, an epoch count, a class name, a weight) is caught instead of
silently evaluated or resumed; schemas 2 and 3 recorded the tensors' only (``tensor_sha256``),
and are still read. Every checkpoint is then checked against its own config (the keys, shapes
and dtypes of the network it describes), and its weights must be finite numbers, as training
refuses to save any other.
"""

from __future__ import annotations

import hashlib
import pickle
import platform
import random
from pathlib import Path
from typing import Any

import torch

from mlplab._version import __version__
from mlplab.config import from_dict
from mlplab.errors import MlplabError, one_line
from mlplab.files import atomic_write
from mlplab.runs.archive import check_archive

CHECKPOINT_FORMAT = "mlplab.checkpoint"
# 2: tensor_sha256 recorded and checked; 3: config None for a model mlplab did not build; 4: record_sha256
SCHEMA_VERSION = 4
DIGEST_KEY = "record_sha256"  # the whole record's checksum (schema 4 on)
TENSOR_DIGEST_KEY = "tensor_sha256"  # the tensors' checksum (schemas 2 and 3)
# What a checkpoint's tensors may declare at most (`_check_tensor_bytes`): copies of its network's
# weights (the model, the training model beside averaged ones, an optimizer's state: up to 3 a
# weight, Adam with amsgrad or RMSprop centred with momentum), with room to spare, and bytes
# for the rest (random generator states of 5 kB each, one-element step counters).
WEIGHT_COPIES = 8
TENSOR_MARGIN = 16 * 2**20  # bytes
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


def record_digest(data: Any) -> str:
    """SHA-256 over a canonical encoding of nested dicts, lists and tuples of builtins and tensors:
    every key and value, with its type (dict keys in the order of their text). Anything else has no
    encoding: a TypeError."""
    digest = hashlib.sha256()
    _encode(data, digest.update)
    return digest.hexdigest()


def _encode(value: Any, out: Any) -> None:
    """Feed ``value``'s canonical bytes to ``out``: a type tag, a length where one is needed, the contents."""
    if isinstance(value, torch.Tensor):
        out(f"T{value.dtype}|{tuple(value.shape)}|".encode())
        out(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        out(f"D{len(value)}|".encode())
        for key in sorted(value, key=lambda key: (type(key).__name__, str(key))):
            _encode(key, out)
            _encode(value[key], out)
    elif isinstance(value, (list, tuple)):
        out(f"{'L' if isinstance(value, list) else 'U'}{len(value)}|".encode())
        for item in value:
            _encode(item, out)
    elif value is None or isinstance(value, bool):  # before int: True is an int too
        out(f"B{value}|".encode())
    elif isinstance(value, int):
        out(f"I{value}|".encode())
    elif isinstance(value, float):
        out(f"F{value.hex()}|".encode())
    elif isinstance(value, str):
        encoded = value.encode("utf-8", "surrogatepass")
        out(f"S{len(encoded)}|".encode())
        out(encoded)
    elif isinstance(value, bytes):
        out(f"Y{len(value)}|".encode())
        out(value)
    else:
        raise TypeError(f"a {type(value).__name__} has no place in a checkpoint")


def tensor_digest(data: Any) -> str:
    """SHA-256 over every tensor in nested dicts and lists: its place, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for place, tensor in _tensors(data, ""):
        digest.update(f"{place}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)  # no copy
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
    for key in (DIGEST_KEY, TENSOR_DIGEST_KEY):  # a record read back from a file: its checksum is computed anew
        payload.pop(key, None)
    payload[DIGEST_KEY] = record_digest(payload)
    atomic_write(Path(path), lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; refuses pickles that would run code, and
    archives that would take more memory than their size on disk or their network needs."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    checkpoint = load_record(path, map_location)
    check_contents(checkpoint, path)
    return checkpoint


def load_record(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read any record `save_checkpoint` wrote (a run's checkpoint, a sweep group's state), its checksum
    checked, without asking for a run's keys; refuses pickles that would run code."""
    if not path.is_file():
        raise MlplabError(f"no checkpoint at {path}: give a run directory or a .pt file written by `mlplab train`")
    tensor_bytes = check_archive(path)  # before torch reads a byte: it allocates what the archive declares
    if tensor_bytes > TENSOR_MARGIN:  # under the margin no config's bound can be exceeded: data.pkl is read once
        _check_tensor_bytes(path, tensor_bytes)
    checkpoint = _torch_load(path, map_location)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise MlplabError(
            f"{path} is not an mlplab checkpoint (no '{CHECKPOINT_FORMAT}' marker); "
            "use a last.pt or best.pt from `mlplab train`"
        )
    schema = checkpoint.get("schema_version", 0)
    if type(schema) is not int:  # not isinstance: True is an int too, but never a schema
        raise MlplabError(
            f"{path} has a schema_version of type {type(schema).__name__}, not a whole number; "
            "use a last.pt or best.pt written by `mlplab train`"
        )
    if schema > SCHEMA_VERSION:
        raise MlplabError(
            f"{path} has checkpoint schema {schema}, newer than this mlplab reads ({SCHEMA_VERSION}); upgrade mlplab"
        )
    _check_digest(checkpoint, path)
    return checkpoint


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)``, every failure one line. With ``map_location="meta"`` only
    data.pkl is read: tensors come back with their shapes and dtypes, and no data."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if "Unsupported" in line or "GLOBAL" in line]
        first_line = lines[0].split(" was not ")[0] if lines else "unsupported content"
        raise MlplabError(
            f"refusing to load {path}: it holds objects that safe (weights_only) loading rejects ({first_line}); "
            "only load checkpoints written by mlplab"
        ) from None
    except Exception as error:
        # Broad on purpose: torch wraps only UnpicklingError, and its pure-Python safe unpickler lets a
        # damaged pickle raise whatever its opcodes trip (IndexError popping an empty stack, KeyError
        # on a memo slot, struct.error, TypeError from an allowed constructor); the zip reader and
        # the storage checks add RuntimeError, OSError and EOFError. None of these runs code.
        raise MlplabError(
            f"{path} is not a readable checkpoint ({type(error).__name__}); it may be truncated "
            "or not a torch file; use a last.pt or best.pt written by `mlplab train`"
        ) from None


def _check_tensor_bytes(path: Path, tensor_bytes: int) -> None:
    """Refuse an archive whose tensor records declare more bytes than the network its config describes can
    need, reading data.pkl alone (a user's own model, with no config, is bounded by the file's size only)."""
    record = _torch_load(path, "meta")
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        return  # not an mlplab checkpoint, or a user's model: the full load decides
    weights = _expected_weights(record, path)
    weight_bytes = sum(tensor.numel() * tensor.element_size() for tensor in weights.values())
    most = WEIGHT_COPIES * weight_bytes + TENSOR_MARGIN
    if tensor_bytes > most:
        raise MlplabError(
            f"refusing to load {path}: it declares {tensor_bytes / 1e6:,.1f} MB of tensor data, but "
            f"the network its config describes ({weight_bytes / 1e6:,.1f} MB of weights) needs at most "
            f"{most / 1e6:,.1f} MB; use a last.pt or best.pt written by `mlplab train`"
        )


def _check_digest(checkpoint: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint whose record (schema 4 on; its tensors, schemas 2 and 3) is not what was written.

    A recorded checksum is always checked, whatever the schema says: one flipped bit can change
    the schema number or the checksum's key, never both.
    """
    schema = checkpoint.get("schema_version", 0)
    if DIGEST_KEY in checkpoint or schema >= 4:
        key, digest, what = DIGEST_KEY, record_digest, "its contents do"
    elif TENSOR_DIGEST_KEY in checkpoint or schema >= 2:
        key, digest, what = TENSOR_DIGEST_KEY, tensor_digest, "its tensors do"
    else:
        return  # written before checksums were recorded
    recorded = checkpoint.get(key)
    try:
        actual = digest({name: value for name, value in checkpoint.items() if name != key})
    # RuntimeError: a sparse, nested, meta or conjugate tensor, or nesting too deep (RecursionError);
    # TypeError: a value of a type no checkpoint holds
    except (RuntimeError, TypeError) as error:
        reason = one_line(error)
        raise MlplabError(
            f"{path} holds contents no mlplab checkpoint has, so its checksum cannot be computed "
            f"({reason}); use a last.pt or best.pt written by `mlplab train`"
        ) from None
    if recorded != actual:
        raise MlplabError(
            f"{path} is damaged: {what} not match the checksum recorded when it was written "
            "(bytes changed on disk); use another checkpoint (best.pt or last.pt) or train again"
        )


def check_contents(checkpoint: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint that lacks a key or whose weights do not fit the network its config describes."""
    import json

    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise MlplabError(
            f"{path} is incomplete: it has no {', '.join(missing)}; use a last.pt or best.pt written by `mlplab train`"
        )
    for key in ("epoch", "step"):  # counts a resume compares and adds to
        count = checkpoint[key]
        if type(count) is not int or count < 0:  # not isinstance: True is an int too
            kind = "a negative number" if type(count) is int else type(count).__name__
            raise MlplabError(
                f"{path} records its {key} as {kind}, not a whole number >= 0; use a last.pt or "
                "best.pt written by `mlplab train`"
            )
    try:  # plain data, as `to_dict` writes it: `mlplab export` stores both as JSON
        json.dumps([checkpoint["config"], checkpoint["model_info"]])
    except (TypeError, ValueError, RuntimeError) as error:  # RuntimeError: RecursionError, nesting too deep
        reason = one_line(error)
        raise MlplabError(
            f"{path} has a config or model_info that is not plain data ({reason}); use a last.pt or "
            "best.pt written by `mlplab train`"
        ) from None
    if checkpoint["config"] is None:  # a model fit() trained but mlplab did not build: the user rebuilds it
        _check_weights_are_tensors(checkpoint["model"], path)
    else:
        _check_weights_fit_the_config(checkpoint, path)
    for key in ("model", "training_model"):
        if key in checkpoint:
            _check_finite(checkpoint[key], path)


def _check_finite(weights: Any, path: Path) -> None:
    """Refuse weights that hold inf or nan: training refuses to save them, so a file holding them was made otherwise."""
    if not isinstance(weights, dict):
        raise MlplabError(f"{path} holds no state dict of named weights; use a last.pt or best.pt written by mlplab")
    broken = [
        str(name)
        for name, tensor in weights.items()
        if isinstance(tensor, torch.Tensor)
        and not tensor.is_nested
        and not tensor.is_meta
        and tensor.layout == torch.strided
        and (tensor.is_floating_point() or tensor.is_complex())
        and not bool(torch.isfinite(tensor).all())
    ]
    if broken:
        raise MlplabError(
            f"{path} holds weights that are not finite numbers ({', '.join(broken[:3])} hold inf or "
            "nan), which training never saves; use another checkpoint, or train again"
        )


def _expected_weights(checkpoint: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The state dict of the network the checkpoint's config describes, as meta tensors (shapes and dtypes)."""
    from mlplab.models import build_model  # here: the models module needs torch.nn, the rest of this file not

    try:
        config = from_dict(checkpoint["config"])
        info = checkpoint["model_info"]
        with torch.device("meta"):  # shapes and dtypes only: no memory, no draw from the RNG
            return build_model(
                config.model, in_features=info["in_features"], num_classes=info["num_classes"]
            ).state_dict()
    # Config values of any type reach plain conversions here: float(10**400) overflows, int() of a
    # many-element tensor and str() of a deeply nested list raise RuntimeError, a tensor indexed by
    # a name raises IndexError.
    except (MlplabError, LookupError, TypeError, ValueError, AttributeError, ArithmeticError, RuntimeError) as error:
        reason = one_line(error)
        raise MlplabError(
            f"{path} describes no network mlplab can build ({reason}); use a last.pt or best.pt "
            "written by `mlplab train`"
        ) from None


def _check_weights_fit_the_config(checkpoint: dict[str, Any], path: Path) -> None:
    """Refuse weights that are not the tensors of the network the checkpoint's config describes."""
    expected = _expected_weights(checkpoint, path)
    weights = checkpoint["model"]
    if not isinstance(weights, dict) or set(weights) != set(expected):
        # Other keys by their type: a damaged file's keys need not sort together, nor print in one line
        found = (
            sorted(key if isinstance(key, str) else f"<{type(key).__name__}>" for key in weights)
            if isinstance(weights, dict)
            else type(weights).__name__
        )
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
        raise MlplabError(f"{path} holds {name} of {found} where its config describes {tuple(want.shape)} {want.dtype}")


def _check_weights_are_tensors(weights: Any, path: Path) -> None:
    """A state dict of a user's model: names to dense tensors with data (shapes are checked when loaded into it)."""
    if not isinstance(weights, dict) or not all(isinstance(name, str) for name in weights):
        raise MlplabError(f"{path} holds no state dict of named weights; use a last.pt or best.pt written by mlplab")
    for name, tensor in weights.items():
        if not isinstance(tensor, torch.Tensor) or tensor.is_nested or tensor.is_meta or tensor.layout != torch.strided:
            raise MlplabError(
                f"{path} holds {name} as {type(tensor).__name__}, not a dense tensor with data; "
                "use a last.pt or best.pt written by mlplab"
            )
