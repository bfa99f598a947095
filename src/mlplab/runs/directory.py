"""The run directory: resolved config in, history, checkpoints and metrics out.

**last.pt decides.** Every file is written atomically, and an epoch ends in one step: the
rename of last.pt, which carries the whole state of the run (weights, optimizer, history,
the best epoch so far and, once the run is finished, its test metrics). Everything else is
a view of it, written after it by `publish`:

- best.pt: a new best epoch's checkpoint is first written as ``.best-next.pt``; once last.pt
  names that epoch as the best, `publish` renames it over best.pt. Until then the old
  best.pt stays, so a kill at any moment leaves either the old best or the new one in reach;
- history.json, history.csv and batches.csv: the history inside last.pt;
- metrics.json: the test metrics inside last.pt, once the run is finished.

Whatever moment a process dies, the directory holds one consistent state: the one last.pt
describes. The views a kill left behind are brought in line by `repair_run_dir` the next
time anything opens the directory (resume, eval, export, plot, report), which also removes
temporary files a killed writer left.

One process at a time trains in a run directory: it holds an exclusive OS lock on the
folder itself (released by the kernel when the process dies, however it dies; deleting
``RUN_DIR/.lock``, which only names the holder, does not release it), and a second writer
is refused with the holder's PID. Readers repair only when they can take the
lock. Where the OS has no ``fcntl`` (Windows) the lock is skipped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlplab.config import Config, to_dict, to_toml
from mlplab.errors import MlplabError
from mlplab.files import atomic_write_text, fault_point, leftover_temporaries
from mlplab.runs.history import History

# Fields a resume may change: they move the run or extend it but cannot change its result.
RESUMABLE_CHANGES = (
    "epochs",
    "device",
    "out",
    "progress",
    "data_dir",
    "cache_dir",
    "download",
    "tensorboard",
    "wandb",
    "wandb_project",
)


def default_run_dir(config: Config, root: Path = Path("runs")) -> Path:
    """``runs/<dataset>-<preset or mlp>-<YYYYmmdd-HHMMSS>``, with a suffix if that exists."""
    stem = f"{config.data.dataset}-{config.preset or 'mlp'}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, suffix = root / stem, 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stem}-{suffix}"
    return candidate


NEXT_BEST = ".best-next.pt"  # a new best epoch's checkpoint, until last.pt commits that epoch
# The files that hold a run's work: any of them in a folder means a run (or part of one) is there.
WORK_FILES = ("last.pt", "best.pt", "history.json", "history.csv", "batches.csv", "metrics.json")
RUN_FILES = ("config.toml", "config.json", NEXT_BEST, *WORK_FILES)  # everything a training run writes
LOCK_NAME = ".lock"


class RunDirInUse(MlplabError):
    """Another process holds the run directory's lock: it is training there."""


def create_run_dir(config: Config) -> Path:
    """Make the folder of a fresh run (``--out``, or a new name under runs/); `fit` then takes its
    lock and calls `check_fresh`, so a folder in use is refused with its holder's PID."""
    run_dir = Path(config.train.out) if config.train.out else default_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def check_fresh(run_dir: Path, command_line: bool = True) -> None:
    """Refuse a folder that already holds any work of a run, so nothing is ever overwritten.

    A config alone (a run killed before its first epoch was saved) is no work: it is written again.
    ``command_line``: give the advice as `mlplab train` flags, else as `fit` arguments.
    """
    found = [name for name in WORK_FILES if (run_dir / name).exists()]
    if found:
        resume, elsewhere = (
            (f"`mlplab train --resume {run_dir}`", "another --out")
            if command_line
            else ("fit(..., resume=True)", "another run_dir")
        )
        advice = (
            f"continue it with {resume} or choose {elsewhere}"
            if "last.pt" in found
            else f"choose {elsewhere} (or move those files away)"
        )
        raise MlplabError(f"{run_dir} already holds a run ({', '.join(found)}); {advice}")


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock while the body runs; a second writer gets a one-line error.

    The lock is taken on the folder itself, which cannot be deleted from under the writer while it
    holds files (``rm RUN/.lock`` used to let a second writer in). ``.lock`` only names the holder's
    PID for that error message. A filesystem that cannot lock a folder (NFS) falls back to the file.
    """
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): one writer is the user's own care there
        yield
        return
    with contextlib.ExitStack() as stack:
        descriptor = _lock_descriptor(run_dir, fcntl, stack)
        note = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        stack.callback(os.close, note)
        if descriptor is None:
            raise RunDirInUse(
                f"{run_dir} is in use: another mlplab process (PID {_holder(note)}) is training in "
                "it; wait for it to finish, or choose another --out"
            )
        os.ftruncate(note, 0)
        os.pwrite(note, f"{os.getpid()}\n".encode(), 0)
        remove_leftovers(run_dir)
        yield  # closing the descriptor (the ExitStack) releases the lock


def _lock_descriptor(run_dir: Path, fcntl: Any, stack: contextlib.ExitStack) -> int | None:
    """An open descriptor holding the exclusive lock (closed by ``stack``), or None if another has it."""
    folder = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    stack.callback(os.close, folder)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return folder
    except BlockingIOError:
        return None
    except OSError:  # a folder this filesystem cannot lock (NFS): lock the file beside the run instead
        pass
    descriptor = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    stack.callback(os.close, descriptor)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    return descriptor


def _holder(note: int) -> str:
    """The PID the lock's holder wrote into ``.lock`` ("unknown" if it was deleted or not yet written)."""
    return os.pread(note, 32, 0).decode(errors="replace").strip() or "unknown"


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete what a killed writer left that no state holds (only safe under the lock): temporary
    files beside the run files, and a staged best of a run that never committed an epoch."""
    stray = leftover_temporaries(run_dir, RUN_FILES)
    if not (run_dir / "last.pt").exists() and (run_dir / NEXT_BEST).exists():
        stray.append(run_dir / NEXT_BEST)
    for path in stray:
        path.unlink(missing_ok=True)
    return stray


def check_startable(run_dir: Path, resume: bool = False) -> None:
    """Refuse at once, before any data loads, what a run's writer would refuse when training starts:
    a folder another process trains in (`RunDirInUse`), a fresh run's folder that holds a run
    already, a resume of a run with no saved epoch. The writer checks again under its lock."""
    run_dir = Path(run_dir)
    if resume:
        last_checkpoint(run_dir)
    if not run_dir.is_dir():
        return  # a fresh run's new folder, or a resume the writer tells how to start
    with locked(run_dir):
        if not resume:
            check_fresh(run_dir)


def last_checkpoint(run_dir: Path) -> Path:
    """``run_dir/last.pt``, the checkpoint a resume continues; a run stopped before it saved one is
    told how to start again."""
    if Path(run_dir).is_file():  # `--resume run/best.pt`: the folder that holds it is the run
        raise MlplabError(
            f"{run_dir} is a file, not a run directory; resume the run that holds it: "
            f"`mlplab train --resume {Path(run_dir).parent}`"
        )
    path = Path(run_dir) / "last.pt"
    if not path.exists() and (Path(run_dir) / "config.toml").exists():
        raise MlplabError(
            f"{run_dir} has no saved epoch yet (it was stopped during its first epoch); start it "
            f"again with `mlplab train --config {Path(run_dir) / 'config.toml'} --out {run_dir}`"
        )
    return path


def publish(run_dir: Path, last: dict[str, Any], staged_epoch: int | None = None) -> None:
    """Bring best.pt, the history files and metrics.json in line with ``last`` (last.pt's contents).

    ``staged_epoch``: the epoch of the .best-next.pt the caller has just written, if it has (the
    training loop); otherwise it is read from the file. Idempotent: what already agrees is not
    written again. Only the lock holder calls it.
    """
    from mlplab.runs.checkpoint import load_checkpoint  # checkpoint imports config, which is light; torch is not

    best = last.get("best") or {}
    staged = run_dir / NEXT_BEST
    if staged.exists():
        if staged_epoch is None:
            staged_epoch = load_checkpoint(staged).get("epoch")
        if staged_epoch == best.get("epoch"):
            fault_point("best.pt:before-rename")
            os.replace(staged, run_dir / "best.pt")  # the epoch last.pt names as the best: it is committed
        else:
            staged.unlink()  # an epoch last.pt never committed: a resume trains it again
    history = History.from_dict(last["history"])
    if _read_json(run_dir / "history.json") != history.to_dict():  # written last of the history files
        history.save(run_dir)
    if "metrics" not in last:
        return  # written before checkpoints carried the metrics: metrics.json stands on its own
    metrics = last["metrics"]
    if metrics is None:
        (run_dir / "metrics.json").unlink(missing_ok=True)  # not finished (any more: its epochs were extended)
    elif _read_json(run_dir / "metrics.json") != metrics:
        write_json(run_dir / "metrics.json", metrics)


def repair_run_dir(run_dir: Path) -> bool:
    """What every reader does first: if no process trains in ``run_dir``, remove what a killed
    writer left (`remove_leftovers`) and bring the views in line with last.pt. Returns whether it
    could look (False: in use, read-only, or no run there)."""
    run_dir = Path(run_dir)
    if not any((run_dir / name).is_file() for name in ("last.pt", "config.toml")):
        return False  # not a run directory: nothing to lock or mend
    from mlplab.runs.checkpoint import load_checkpoint

    try:
        with locked(run_dir):
            if (run_dir / "last.pt").is_file():
                publish(run_dir, load_checkpoint(run_dir / "last.pt"))
    except RunDirInUse:
        return False  # the trainer publishes its own epochs
    except PermissionError:
        return False  # a folder we may read but not write: nothing a reader can mend
    except OSError as error:
        if error.errno == errno.EROFS:
            return False
        raise
    return True


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


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
    changed = [
        name
        for name in saved_fields
        if name not in RESUMABLE_CHANGES and saved_fields[name] != requested_fields.get(name)
    ]
    if changed:
        details = ", ".join(
            f"{n}: checkpoint has {saved_fields[n]!r}, asked for {requested_fields.get(n)!r}" for n in changed
        )
        raise MlplabError(
            f"cannot resume {path} with a different config ({details}); drop those flags, "
            "or start a new run with another --out"
        )


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {"preset": data.get("preset")}
    for value in data.values():
        if isinstance(value, dict):
            flat.update(value)
    return flat
