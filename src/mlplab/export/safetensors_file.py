"""Export trained weights to safetensors (no pickle), with the config in the file's metadata."""

from __future__ import annotations

import json
from pathlib import Path

from mlplab.config import from_dict
from mlplab.errors import MlplabError
from mlplab.files import atomic_write
from mlplab.models import MLP, build_model
from mlplab.runs.reader import SavedModel

EXPORT_FORMAT = "mlplab.mlp"


def export_safetensors(checkpoint_path: str | Path, out: str | Path, which: str = "best") -> Path:
    """Write the model weights of a checkpoint to ``out`` (.safetensors); returns the path.

    Args:
        checkpoint_path: a .pt file, or a run directory: its checkpoint ``which`` (see `mlplab.runs.reader`).
        out: the file to write.
        which: for a run directory, ``"best"`` (best.pt, else last.pt) or ``"last"``.
    """
    from safetensors.torch import save

    checkpoint = SavedModel(checkpoint_path, which).record
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in checkpoint["model"].items()}
    metadata = {
        "format": EXPORT_FORMAT,
        "config": json.dumps(checkpoint["config"]),
        "model_info": json.dumps(checkpoint["model_info"]),
        "epoch": str(checkpoint["epoch"]),
    }
    out = Path(out)
    atomic_write(out, lambda handle: handle.write(save(tensors, metadata=metadata)))
    return out


def load_safetensors(path: str | Path) -> MLP:
    """Rebuild an MLP from a file written by `export_safetensors`, in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MlplabError(f"no file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for malformed headers
        raise MlplabError(f"{path} is not a readable safetensors file ({error})") from error
    if metadata.get("format") != EXPORT_FORMAT:
        raise MlplabError(f"{path} was not written by `mlplab export` (no '{EXPORT_FORMAT}' metadata)")
    config, info = json.loads(metadata["config"]), json.loads(metadata["model_info"])
    if config is None:  # a user-defined module's weights: mlplab cannot rebuild the class
        raise MlplabError(
            f"{path} holds a user-defined model ({info.get('class')}); build the module and load the "
            "weights into it: module.load_state_dict(safetensors.torch.load_file(path))"
        )
    config = from_dict(config)
    model = build_model(config.model, in_features=info["in_features"], num_classes=info["num_classes"])
    model.load_state_dict(tensors)
    return model.eval()
