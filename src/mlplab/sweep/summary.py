"""A finished sweep as tables: one row per configuration, one per setting (mean and spread over seeds).

Plain data only (no torch), so that the tables can be rebuilt from a sweep directory's
results.json. A *setting* is the configurations equal apart from their seed
(`mlplab.sweep.grid.setting_key`); its accuracies are the mean and the sample standard
deviation (n - 1) over its seeds that did not diverge. Settings are ranked by mean
validation accuracy (the test set never chooses), or by mean best training accuracy when
the sweep holds out no validation split.
"""

from __future__ import annotations

import csv
import io
import statistics
from typing import Any

from mlplab.sweep.grid import describe, setting_key

# The columns every row has after its swept fields, in the order they are written.
RESULT_FIELDS = ("best_epoch", "best_val_accuracy", "best_train_accuracy", "test_accuracy", "test_loss", "diverged")
SETTING_FIELDS = ("seeds", "diverged", "val_accuracy_mean", "val_accuracy_std", "test_accuracy_mean",
                  "test_accuracy_std", "test_loss_mean", "rank_metric", "best_index")


def result_row(index: int, overrides: dict[str, Any], history: Any, metrics: dict[str, Any] | None,
               diverged: str | None) -> dict[str, Any]:
    """One configuration's row: its index, its swept values, then `RESULT_FIELDS`."""
    has_val = any(record.get("val_accuracy") is not None for record in history.epochs)
    best = history.best_epoch("val_accuracy" if has_val else "train_accuracy")
    return {"index": index, **{name: plain(value) for name, value in overrides.items()},
            "best_epoch": best["epoch"] if best else None,
            "best_val_accuracy": best.get("val_accuracy") if best else None,
            "best_train_accuracy": best.get("train_accuracy") if best else None,
            "test_accuracy": metrics["test_accuracy"] if metrics else None,
            "test_loss": metrics["test_loss"] if metrics else None,
            "diverged": diverged}


def setting_rows(rows: list[dict[str, Any]], combinations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting (first appearance order), best first: its swept values apart from seed, `SETTING_FIELDS`."""
    groups: dict[tuple, list[int]] = {}
    for position, overrides in enumerate(combinations):
        groups.setdefault(setting_key(overrides), []).append(position)
    settings = []
    for key, positions in groups.items():
        members = [rows[p] for p in positions]
        finished = [row for row in members if not row["diverged"]]
        val = [row["best_val_accuracy"] for row in finished if row["best_val_accuracy"] is not None]
        test = [row["test_accuracy"] for row in finished]
        rank_by = "best_val_accuracy" if val else "best_train_accuracy"
        best = max(finished, key=lambda row: (row[rank_by], -row["index"])) if finished else None
        settings.append({
            "setting": describe(dict(key)) or "(base)", **{name: plain(value) for name, value in key},
            "seeds": len(members), "diverged": len(members) - len(finished),
            "val_accuracy_mean": mean(val), "val_accuracy_std": spread(val),
            "test_accuracy_mean": mean(test), "test_accuracy_std": spread(test),
            "test_loss_mean": mean([row["test_loss"] for row in finished]),
            "rank_metric": mean([row[rank_by] for row in finished]),
            "best_index": best["index"] if best else None})
    return sorted(settings, key=lambda s: -1.0 if s["rank_metric"] is None else s["rank_metric"], reverse=True)


def mean(values: list[float]) -> float | None:
    """The mean, or None for no values."""
    return statistics.fmean(values) if values else None


def spread(values: list[float]) -> float | None:
    """The sample standard deviation (n - 1); 0.0 for one value, None for none."""
    return statistics.stdev(values) if len(values) > 1 else 0.0 if values else None


def plain(value: Any) -> Any:
    """A value for JSON: tuples (``hidden``) become lists."""
    return list(value) if isinstance(value, tuple) else value


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of dict rows (the first row's keys as header); lists joined with commas, None empty."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(rows[0].keys())
    for row in rows:
        writer.writerow(["" if v is None else ",".join(map(str, v)) if isinstance(v, list) else v
                         for v in row.values()])
    return buffer.getvalue()
