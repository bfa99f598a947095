"""Figures of a sweep directory, drawn from its files (settings.json, results.json, members.json, sweep.toml).

    figures/accuracy_by_<field>.png   mean accuracy of each setting against one swept field, the
                                      spread over seeds (std) as error bars; one line per value
                                      of the other swept fields
    figures/curves.png                validation accuracy by epoch of the best few configurations
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from mlplab.plots.backend import pyplot, save

CURVES = 5  # configurations drawn in curves.png: the best setting's best seed, then the next settings'
MAX_LINES = 8  # lines of accuracy_by_<field>.png: settings beyond these share one grey style


def plot_sweep(sweep_dir: str | Path, folder: str | Path | None = None) -> list[Path]:
    """Draw every figure of ``sweep_dir`` into ``folder`` (default ``sweep_dir/figures``); returns the paths written."""
    sweep_dir = Path(sweep_dir)
    folder = Path(folder) if folder else sweep_dir / "figures"
    settings = json.loads((sweep_dir / "settings.json").read_text())
    members = json.loads((sweep_dir / "members.json").read_text())["members"]
    grid = tomllib.loads((sweep_dir / "sweep.toml").read_text())["grid"]
    written = []
    for field in [name for name in grid if name != "seed" and len(grid[name]) > 1]:
        figure = accuracy_by_field(settings, field, grid[field], [n for n in grid if n not in (field, "seed")])
        written += save(figure, folder / f"accuracy_by_{field}.png")
    chosen = [members[s["best_index"]] for s in settings[:CURVES] if s["best_index"] is not None]
    if chosen:
        written += save(curves(chosen), folder / "curves.png")
    return written


def _label(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def accuracy_by_field(settings: list[dict[str, Any]], field: str, values: list[Any], others: list[str]) -> Any:
    """Validation (left, when measured) and test (right) accuracy of each setting against ``field``, std as error bars."""
    plt = pyplot()
    splits = [s for s in ("val", "test") if any(row[f"{s}_accuracy_mean"] is not None for row in settings)]
    figure, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4.2), squeeze=False)
    lines: dict[tuple, list[dict[str, Any]]] = {}
    for row in settings:
        lines.setdefault(tuple(_label(row[name]) for name in others), []).append(row)
    positions = {_label(value): position for position, value in enumerate(values)}
    for axis, split in zip(axes[0], splits):
        for number, (key, rows) in enumerate(lines.items()):
            rows = sorted((r for r in rows if r[f"{split}_accuracy_mean"] is not None),
                          key=lambda r: positions[_label(r[field])])
            label = " ".join(f"{n}={v}" for n, v in zip(others, key)) or None
            style = {} if number < MAX_LINES else {"color": "0.7", "label": None}
            axis.errorbar([positions[_label(r[field])] for r in rows],
                          [100 * r[f"{split}_accuracy_mean"] for r in rows],
                          yerr=[100 * r[f"{split}_accuracy_std"] for r in rows], marker="o", capsize=4,
                          **{"label": label if number < MAX_LINES else None, **style})
        axis.set_xticks(range(len(values)), [_label(v) for v in values])
        axis.set_xlabel(field)
        axis.set_ylabel(f"{'validation' if split == 'val' else 'test'} accuracy (%)")
        axis.set_title(f"{'Validation (best epoch)' if split == 'val' else 'Test'} accuracy by {field}")
        axis.grid(alpha=0.3)
        if others:
            axis.legend(fontsize=8)
    seeds = max(row["seeds"] for row in settings)
    figure.suptitle(f"mean over {seeds} seed{'s' if seeds > 1 else ''}, error bars: std over seeds", fontsize=10)
    figure.tight_layout()
    return figure


def curves(members: list[dict[str, Any]]) -> Any:
    """Validation accuracy (training accuracy without a validation split) by epoch of each member."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    key = "val_accuracy" if members[0]["history"]["epochs"] and \
        members[0]["history"]["epochs"][0].get("val_accuracy") is not None else "train_accuracy"
    for member in members:
        records = member["history"]["epochs"]
        label = " ".join(f"{n}={_label(v)}" for n, v in member["overrides"].items())
        axis.plot([r["epoch"] for r in records], [100 * r[key] for r in records], marker="o", label=label)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    axis.set_xlabel("epoch")
    axis.set_ylabel(f"{'validation' if key == 'val_accuracy' else 'training'} accuracy (%)")
    axis.set_title(f"The best {len(members)} configurations (each setting's best seed)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
