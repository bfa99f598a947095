"""The run directory: resolved config in, history, checkpoints and metrics out.

One process at a time trains in a run directory: it holds an exclusive OS lock on
``RUN_DIR/.lock`` (released by the kernel when the process dies, however it dies), and a
second writer is refused with the holder's PID. Where the OS has no ``fcntl`` (Windows)
the lock is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
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


# The files a training run writes; any of them in a folder means a run (or part of one) is there.
RUN_FILES = ("config.toml", "config.json", "history.json", "history.csv", "batches.csv", "last.pt", "best.pt",
             "metrics.json")
LOCK_NAME = ".lock"


def create_run_dir(config: Config) -> Path:
    """Make the folder of a fresh run (``--out``, or a new name under runs/); `fit` then takes its
    lock and calls `check_fresh`, so a folder in use is refused with its holder's PID."""
    run_dir = Path(config.train.out) if config.train.out else default_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def check_fresh(run_dir: Path) -> None:
    """Refuse a folder that already holds any file of a run, so nothing is ever overwritten."""
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if found:
        advice = (f"continue it with `mlplab train --resume {run_dir}` or choose another --out"
                  if "last.pt" in found else "choose another --out (or move those files away)")
        raise MlplabError(f"{run_dir} already holds a run ({', '.join(found)}); {advice}")


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock while the body runs; a second writer gets a one-line error."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): one writer is the user's own care there
        yield
        return
    descriptor = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise MlplabError(f"{run_dir} is in use: another mlplab process (PID {holder}) is training in it; "
                              "wait for it to finish, or choose another --out") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        remove_stray_temporaries(run_dir)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def remove_stray_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files a killed writer left beside the run files (only safe under the lock)."""
    pattern = re.compile(r"^\.(" + "|".join(re.escape(name) for name in RUN_FILES) + r")\.[0-9a-f]{8}\.tmp$")
    stray = [path for path in run_dir.iterdir() if pattern.match(path.name)]
    for path in stray:
        path.unlink(missing_ok=True)
    return stray


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
