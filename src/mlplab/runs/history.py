"""Training history as plain data: one dict of numbers per epoch, saved as JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplab.files import atomic_write_text

# The columns of every epoch record, in the order they are written.
EPOCH_FIELDS = ("epoch", "step", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")


def epoch_record(
    epoch: int,
    step: int,
    lr: float,
    train_loss: float,
    train_accuracy: float,
    val_loss: float | None,
    val_accuracy: float | None,
    seconds: float,
) -> dict[str, Any]:
    """One epoch of a run's history (`EPOCH_FIELDS`), as `fit` and the vectorised trainer both write it.

    ``step`` counts the optimizer steps taken by the end of the epoch, ``lr`` is the learning rate
    the epoch started with; the validation numbers are None without a validation split.
    """
    return {
        "epoch": epoch,
        "step": step,
        "lr": lr,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "seconds": seconds,
    }


def new_best(best: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any] | None:
    """The best-epoch record ``{"epoch", "score", "metric"}`` if ``record``'s epoch beats ``best``, else None.

    "Best" is judged on validation accuracy, or on training accuracy without validation data; of
    equal scores the earliest stays best.
    """
    metric = "val_accuracy" if record["val_accuracy"] is not None else "train_accuracy"
    if best is not None and record[metric] <= best["score"]:
        return None
    return {"epoch": record["epoch"], "score": record[metric], "metric": metric}


def judged_by(best: dict[str, Any] | None) -> str:
    """What chose a best-epoch record (`new_best`), in words: "validation accuracy" or "training accuracy"."""
    return "validation accuracy" if (best or {}).get("metric") == "val_accuracy" else "training accuracy"


def test_metrics(
    test: dict[str, Any],
    classes: list[str],
    history: History,
    tested_epoch: int,
    best: dict[str, Any] | None,
    device: str,
    engine: str,
    precision: str = "32-true",
) -> dict[str, Any]:
    """A finished run's test metrics (metrics.json), from `mlplab.evaluate`'s result on the tested weights.

    ``test`` holds ``loss``, ``accuracy``, ``count``, ``per_class_accuracy`` (one per class, in the
    order of ``classes``) and ``confusion``; ``history`` gives the epoch count and the thread choices;
    ``precision`` is what the training steps computed in (`mlplab.precision`).
    """
    from mlplab.runs.checkpoint import versions  # checkpoints import torch; history files do not

    return {
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "test_count": test["count"],
        "per_class_accuracy": dict(zip(classes, test["per_class_accuracy"], strict=True)),
        "confusion": test["confusion"],
        "epochs": len(history),
        "tested_epoch": tested_epoch,
        "best": best,
        "device": device,
        "engine": engine,
        "precision": precision,
        "threads": [dict(entry) for entry in history.threads],
        "versions": versions(),
    }


@dataclass
class History:
    """Per-epoch records (skorch style) and, optionally, every training batch's loss."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    batch_losses: list[float] = field(default_factory=list)
    run_dir: Path | None = None  # where fit() wrote the run, if anywhere
    metrics: dict[str, Any] | None = None  # the test metrics fit() measured at the end, if it had test data
    stopped: dict[str, Any] | None = None  # {"epoch", "reason"} when training ended before its last epoch
    threads: list[dict[str, Any]] = field(
        default_factory=list
    )  # each CPU thread choice: {"step", "threads", "set_by", "reason"}
    # Each change made while training (`mlplab.Steering`): {"step", "epoch", "lr"} or {"step", "epoch", "momentum"},
    # ``step`` the optimizer steps taken before it.
    changes: list[dict[str, Any]] = field(default_factory=list)

    def append(self, record: dict[str, Any]) -> None:
        """Add one epoch's record."""
        self.epochs.append(dict(record))

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.epochs[index]

    def column(self, name: str) -> list[Any]:
        """One field across epochs, e.g. ``history.column("val_accuracy")``."""
        return [record.get(name) for record in self.epochs]

    def best_epoch(self, key: str = "val_accuracy") -> dict[str, Any] | None:
        """The record with the highest ``key`` (the earliest on ties), or None."""
        scored = [r for r in self.epochs if r.get(key) is not None]
        return max(scored, key=lambda r: (r[key], -r["epoch"])) if scored else None

    def to_dict(self) -> dict[str, Any]:
        """Builtins only, for JSON and checkpoints."""
        data: dict[str, Any] = {"epochs": [dict(r) for r in self.epochs], "batch_losses": list(self.batch_losses)}
        if self.stopped is not None:
            data["stopped"] = dict(self.stopped)
        if self.threads:
            data["threads"] = [dict(entry) for entry in self.threads]
        if self.changes:
            data["changes"] = [dict(change) for change in self.changes]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of `to_dict`."""
        stopped = data.get("stopped")
        return cls(
            epochs=[dict(r) for r in data.get("epochs", [])],
            batch_losses=list(data.get("batch_losses", [])),
            stopped=dict(stopped) if stopped is not None else None,
            threads=[dict(entry) for entry in data.get("threads", [])],
            changes=[dict(change) for change in data.get("changes", [])],
        )

    def save(self, run_dir: Path) -> None:
        """Write history.csv, batches.csv (when logged) and, last, history.json into ``run_dir``.

        history.json comes last: when it holds this history, so do the CSV files.
        """
        atomic_write_text(
            run_dir / "history.csv", _csv(EPOCH_FIELDS, [[r.get(k) for k in EPOCH_FIELDS] for r in self.epochs])
        )
        if self.batch_losses:
            rows = [[step, loss] for step, loss in enumerate(self.batch_losses, start=1)]
            atomic_write_text(run_dir / "batches.csv", _csv(("step", "loss"), rows))
        atomic_write_text(run_dir / "history.json", json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> History:
        """Read history.json (or the history.json inside a run directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / "history.json"
        return cls.from_dict(json.loads(path.read_text()))


def _csv(header: tuple[str, ...], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()
