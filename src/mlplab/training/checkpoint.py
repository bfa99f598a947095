"""Self-describing checkpoints: one dict of tensors and builtins, written atomically.

Loading always uses ``torch.load(weights_only=True)``: a file that would need arbitrary
pickled objects (and so could run code) is refused before anything in it runs.
"""

from __future__ import annotations

import pickle
import platform
import random
import zipfile
from pathlib import Path
from typing import Any

import torch

from mlplab import __version__
from mlplab.errors import MlplabError
from mlplab.files import atomic_write

FORMAT = "mlplab.checkpoint"
SCHEMA_VERSION = 1


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


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` (built by the training loop) to ``path`` via a temporary file and a rename."""
    payload = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "versions": versions(), **checkpoint}
    atomic_write(Path(path), lambda handle: torch.save(payload, handle))


def best_or_last(path: str | Path) -> Path:
    """A run directory's best.pt (else its last.pt); a file path is returned as it is."""
    path = Path(path)
    if path.is_dir():
        return path / "best.pt" if (path / "best.pt").exists() else path / "last.pt"
    return path


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
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise MlplabError(f"{path} is not a readable checkpoint ({type(error).__name__}); it may be truncated or not a torch file")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise MlplabError(f"{path} is not an mlplab checkpoint (no '{FORMAT}' marker); use a last.pt or best.pt from `mlplab train`")
    if checkpoint.get("schema_version", 0) > SCHEMA_VERSION:
        raise MlplabError(
            f"{path} has checkpoint schema {checkpoint['schema_version']}, newer than this mlplab reads "
            f"({SCHEMA_VERSION}); upgrade mlplab"
        )
    return checkpoint
