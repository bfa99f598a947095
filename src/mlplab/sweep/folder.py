"""A sweep's folder met again: whether it holds this sweep, what it has kept, and the lock of its one writer.

`mlplab sweep` run into a folder that already holds a sweep compares the sweep it was asked
for (its sweep.toml text: the base config, the grid, the random draw) with the folder's
sweep.toml (`saved_sweep`):

- another sweep (any setting that can change a result differs) is refused in one line that
  names what differs;
- the same sweep, finished (results.json is there), is not trained again;
- the same sweep, stopped (a kill, a Ctrl-C, a full disk), is resumed: it follows its own
  plan.json, keeps its finished groups and continues the others from their saved epochs
  (`mlplab.sweep.checkpoints`).

Settings that cannot change a result may differ (`RESUMABLE`): where the data is read from,
the progress bar, trackers, and the fields a sweep does not read, as ``mlplab train
--resume`` allows. One process at a time writes a sweep's folder: it holds the folder's lock
(`sweep_lock`, the run directory's `mlplab.runs.directory.locked`), and first removes the
temporary files a killed writer left.
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplab.config import SECTIONS, read_toml
from mlplab.errors import MlplabError
from mlplab.files import leftover_temporaries
from mlplab.runs.directory import RESUMABLE_CHANGES, locked
from mlplab.sweep.checkpoints import FOLDER, GroupCheckpoints
from mlplab.sweep.plan import SweepPlan

SWEEP_FILE = "sweep.toml"  # written first: its presence marks a folder as a sweep's
PLAN_FILE = "plan.json"
RESULTS_FILE = "results.json"  # written last: its presence means the sweep is finished and every file whole
FIGURES = "figures"  # drawn from the files once the sweep is finished (`mlplab.plots.sweep`)
SWEEP_FILES = (
    SWEEP_FILE,
    PLAN_FILE,
    "members.json",
    "best.toml",
    "results.csv",
    "settings.csv",
    "settings.json",
    RESULTS_FILE,
)
# Settings a resumed sweep may change: they cannot change its results (a sweep reads no engine and logs no batches).
RESUMABLE = tuple(name for name in RESUMABLE_CHANGES if name != "epochs") + ("engine", "log_batches")


@dataclass
class SavedSweep:
    """What a folder holds of a sweep: its plan, how far each group got, whether it is finished."""

    out: Path
    plan: SweepPlan | None  # plan.json; None when the sweep stopped before writing it
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)  # `GroupCheckpoints.saved`
    complete: bool = False  # results.json is there

    @property
    def members(self) -> int | None:
        """How many members the sweep has (None before its plan was written)."""
        return None if self.plan is None else self.plan.members

    @property
    def kept(self) -> int:
        """Members of the groups that finished: they are not trained again."""
        return sum(len(group["members"]) for group in self.groups.values() if group["finished"])

    @property
    def epochs_done(self) -> int:
        """Epochs saved, summed over the groups (a progress bar's start)."""
        return sum(group["epoch"] for group in self.groups.values())

    def describe(self) -> str:
        """One line: what is kept and what is left, e.g. for ``resuming`` or ``interrupted``."""
        if self.members is None:
            return "no member had started"
        kept = f"{self.kept} of {self.members} members finished"
        partial = [(number, group) for number, group in sorted(self.groups.items()) if not group["finished"]]
        saved = "".join(
            f", group {number + 1} saved after epoch {group['epoch']} of {group['epochs']}" for number, group in partial
        )
        return kept + saved


def saved_sweep(out: Path, recipe: str) -> SavedSweep | None:
    """What ``out`` holds of the sweep whose sweep.toml text is ``recipe``; None when it holds no sweep.

    Refuses (one line) an ``out`` that is a file, or that holds another sweep (naming what differs).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MlplabError(f"--out {out} is a file, not a folder; choose another folder")
    if not (out / SWEEP_FILE).is_file():
        if GroupCheckpoints(out / FOLDER).saved():
            raise MlplabError(
                f"--out {out} holds a sweep's checkpoints but no {SWEEP_FILE} to say which sweep; choose another folder"
            )
        return None
    changed = differences(read_toml(out / SWEEP_FILE, "sweep file"), tomllib.loads(recipe))
    if changed:
        shown = "; ".join(changed[:4]) + ("; ..." if len(changed) > 4 else "")
        raise MlplabError(
            f"--out {out} already holds a sweep of another plan ({shown}); run its own command again "
            f"to finish or show it (`mlplab sweep --resume {out}`), or choose another folder"
        )
    return read_saved(out)


def read_saved(out: Path) -> SavedSweep:
    """What the sweep folder ``out`` holds now (its plan, its groups' saved epochs), unchecked: for saying so."""
    plan = _read_plan(out / PLAN_FILE) if (out / PLAN_FILE).is_file() else None
    return SavedSweep(out, plan, GroupCheckpoints(out / FOLDER).saved(), (out / RESULTS_FILE).is_file())


def differences(saved: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """The settings that differ between two sweep.toml tables (`RESUMABLE` ones aside), each in words."""
    before, after = _flat(saved), _flat(asked)
    names = [*before, *(name for name in after if name not in before)]
    # A base value the grid sets for every member (in both sweeps) is never trained with.
    swept = {name for name in names if f"grid.{name}" in before and f"grid.{name}" in after}
    return [
        f"{name} {_shown(before.get(name))} in its {SWEEP_FILE}, {_shown(after.get(name))} asked"
        for name in names
        if name not in RESUMABLE and name not in swept and before.get(name) != after.get(name)
    ]


def _flat(tables: dict[str, Any]) -> dict[str, Any]:
    """A sweep.toml's settings by name: the preset, every config field, ``grid.<field>``, ``random.<count|seed>``."""
    flat: dict[str, Any] = {"preset": tables.get("preset")}
    for section in SECTIONS:
        flat.update(tables.get(section) or {})
    for table in ("grid", "random"):
        flat.update({f"{table}.{name}": value for name, value in (tables.get(table) or {}).items()})
    return flat


def _shown(value: Any) -> str:
    return "not set" if value is None else json.dumps(value)


def _read_plan(path: Path) -> SweepPlan:
    try:
        return SweepPlan.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MlplabError(
            f"{path} is not a sweep's plan ({type(error).__name__}: {error}); start the sweep again in another folder"
        ) from None


@contextlib.contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """Make ``out`` if needed and hold its lock while the body runs (a second writer is refused in one line);
    first remove the temporary files a killed writer left there."""
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        stray = leftover_temporaries(out, SWEEP_FILES)
        for folder in (out / FOLDER, out / FIGURES):  # folders of the sweep's own files only
            stray += leftover_temporaries(folder, None) if folder.is_dir() else []
        for path in stray:
            path.unlink(missing_ok=True)
        yield
