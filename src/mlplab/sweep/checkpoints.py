"""A sweep's groups saved after every epoch, so that a sweep stopped at any moment resumes where it was.

``DIR/checkpoints/group-<n>.pt`` (n counted from 1, in the plan's order) holds one group's
state after its latest epoch (`group_state`): the epoch, its members' indices, their weights
and best weights (K, P), the stacked optimizer's state, the steps taken, and per member its
history, best epoch, divergence and halt. It is written after every epoch, once the epoch's
hooks have run (a hook may halt a member), through `save_checkpoint`: atomically and
checksummed, so a kill at any moment leaves the group's previous epoch or its new one, never
half of one.

What the file does not hold comes back from the configs, as it does for a resumed run:
each member's data order (``Batches.order(epoch)`` of its seed) and its learning rates (its
schedule, walked through the saved epochs by `restore_group`). Nothing else is random (the
vectorised trainer has no dropout and no augmentation), so a group restored after epoch e
trains epoch e + 1 on exactly the numbers an uninterrupted sweep would.

A group saved after its last epoch, or with every member stopped, is *finished*: a resume
trains it no further and only tests its best weights again, which gives the same metrics.
The files stay when the sweep is done: they hold every member's last and best weights.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch

from mlplab.errors import MlplabError, one_line
from mlplab.runs.checkpoint import load_record, save_checkpoint
from mlplab.runs.history import History
from mlplab.sweep.trainer import Divergence, VectorisedGroup

FOLDER = "checkpoints"  # inside the sweep's folder
KIND = "mlplab.sweep.group"  # what a group's record says it is (a run's checkpoint says nothing)
_NAME = re.compile(r"^group-([1-9][0-9]*)\.pt$")


def group_state(group: VectorisedGroup, epoch: int) -> dict[str, Any]:
    """Everything ``group`` has learnt after ``epoch``, as tensors and builtins (see the module docstring).

    The tensors are the group's own, not copies: save the dict before the next step.
    """
    return {
        "kind": KIND,
        "epoch": epoch,
        "epochs": group.train_config.epochs,
        "finished": epoch >= group.train_config.epochs or not bool(group.alive.any()),
        "members": list(group.indices),
        "steps_taken": group.steps_taken,
        "weights": group.model.flat,
        "best_weights": group.best_weights,
        "optimizer": group.optimizer.state_dict(),
        "alive": group.alive.tolist(),
        "best": [None if b is None else dict(b) for b in group.best],
        "histories": [history.to_dict() for history in group.histories],
        "diverged": [None if d is None else dataclasses.asdict(d) for d in group.diverged],
        "halted": list(group.halted),
    }


def restore_group(group: VectorisedGroup, state: dict[str, Any]) -> int:
    """Put a `group_state` of the same members into a freshly built ``group``; returns the epoch it was saved after.

    Raises ValueError when the state is another group's (other members, shapes or dtype).
    """
    if state["members"] != list(group.indices):
        raise ValueError(f"it holds members {state['members']}, this group {list(group.indices)}")
    for name, mine in (("weights", group.model.flat), ("best_weights", group.best_weights)):
        saved = state[name]
        if saved.shape != mine.shape or saved.dtype != mine.dtype:
            raise ValueError(
                f"its {name} are {tuple(saved.shape)} {saved.dtype}, this group's {tuple(mine.shape)} {mine.dtype}"
            )
        mine.copy_(saved)
    group.optimizer.load_state_dict(state["optimizer"])
    group.steps_taken = state["steps_taken"]
    group.alive = torch.tensor(state["alive"], dtype=torch.bool, device=group.device)
    group.stopped = None if bool(group.alive.all()) else torch.nonzero(~group.alive).flatten()
    group.best = [None if b is None else dict(b) for b in state["best"]]
    group.histories = [History.from_dict(history) for history in state["histories"]]
    group.diverged = [None if d is None else Divergence(**d) for d in state["diverged"]]
    group.halted = list(state["halted"])
    for _ in range(state["epoch"]):
        group.epoch_rates()  # each member's schedule walked on as its run's was
    return state["epoch"]


class GroupCheckpoints:
    """The groups of one sweep in ``folder`` (``DIR/checkpoints``): `save` after an epoch, `restore` before training.

    `train_vectorised` takes one as its ``store``.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, number: int) -> Path:
        """The file of group ``number`` (0-based, in the plan's order)."""
        return self.folder / f"group-{number + 1}.pt"

    def save(self, number: int, group: VectorisedGroup, epoch: int) -> None:
        """Write group ``number``'s state after ``epoch`` over its previous one (atomically)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.path(number), group_state(group, epoch))

    def restore(self, number: int, group: VectorisedGroup) -> int:
        """Load group ``number``'s saved state into ``group``; returns the epochs it has done (0: none saved)."""
        path = self.path(number)
        if not path.is_file():
            return 0
        state = load_record(path, map_location=group.device)
        if state.get("kind") != KIND:
            raise MlplabError(
                f"{path} is not a sweep group's checkpoint; move it away, or start the sweep again in another folder"
            )
        try:
            return restore_group(group, state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise MlplabError(
                f"cannot resume from {path}: it does not fit group {number + 1} of this sweep's plan "
                f"({one_line(error)}); start the sweep again in another folder"
            ) from None

    def saved(self) -> dict[int, dict[str, Any]]:
        """Each saved group's number (0-based) and what it says of itself: ``epoch``, ``epochs``, ``finished``,
        ``members``.

        Read without the weights (memory-mapped, not checksummed): for saying how far a sweep got;
        `restore` checks the whole file.
        """
        found = {}
        for path in sorted(self.folder.glob("group-*.pt")) if self.folder.is_dir() else []:
            match = _NAME.match(path.name)
            if match is None:
                continue
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                found[int(match.group(1)) - 1] = {key: state[key] for key in ("epoch", "epochs", "finished", "members")}
            except Exception:  # noqa: BLE001 - a damaged file is reported by `restore`, which checks it
                continue
        return found


def saved_weights(path: str | Path, which: str = "last") -> dict[int, torch.Tensor]:
    """Each member's (P,) weights in a group's file, by its index among the sweep's configs: ``"last"`` or
    ``"best"``."""
    state = load_record(Path(path))
    weights = state["weights" if which == "last" else "best_weights"]
    return {index: weights[row] for row, index in enumerate(state["members"])}
