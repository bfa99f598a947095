"""The run directory: resolved config in, history, checkpoints and metrics out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlplab.config import Config, to_dict, to_toml
from mlplab.errors import MlplabError
from mlplab.files import atomic_write_text

# Fields a resume may change: they move the run or extend it but cannot change its result.
RESUMABLE_CHANGES = ("epochs", "device", "out", "progress", "data_dir", "cache_dir", "download",
                     "tensorboard", "wandb", "wandb_project")


def default_run_dir(config: Config, root: Path = Path("runs")) -> Path:
    """``runs/<dataset>-<preset or mlp>-<YYYYmmdd-HHMMSS>``, with a suffix if that exists."""
    stem = f"{config.data.dataset}-{config.preset or 'mlp'}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, suffix = root / stem, 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stem}-{suffix}"
    return candidate


def create_run_dir(config: Config) -> Path:
    """Make a fresh run directory; refuses one that already holds a run, so nothing is overwritten."""
    run_dir = Path(config.train.out) if config.train.out else default_run_dir(config)
    if (run_dir / "last.pt").exists():
        raise MlplabError(
            f"{run_dir} already holds a run; continue it with `mlplab train --resume {run_dir}` "
            "or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_config(run_dir: Path, config: Config) -> None:
    """Write the resolved config as config.toml (reusable with --config) and config.json."""
    atomic_write_text(run_dir / "config.toml", to_toml(config))
    write_json(run_dir / "config.json", to_dict(config))


def write_json(path: Path, data: Any) -> None:
    """Pretty JSON, written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def check_resumable(saved: Config, requested: Config, path: Path) -> None:
    """Refuse a resume whose config differs from the checkpoint's in anything but `RESUMABLE_CHANGES`."""
    saved_fields = _flatten(to_dict(saved))
    requested_fields = _flatten(to_dict(requested))
    changed = [name for name in saved_fields if name not in RESUMABLE_CHANGES
               and saved_fields[name] != requested_fields.get(name)]
    if changed:
        details = ", ".join(f"{n}: checkpoint has {saved_fields[n]!r}, asked for {requested_fields.get(n)!r}"
                            for n in changed)
        raise MlplabError(
            f"cannot resume {path} with a different config ({details}); drop those flags, "
            "or start a new run with another --out"
        )


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {"preset": data.get("preset")}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
    return flat
