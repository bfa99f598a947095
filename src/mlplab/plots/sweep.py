"""Figures of a sweep directory, drawn from its files (settings.json, results.json, members.json, sweep.toml).

figures/accuracy_by_<field>.png   mean accuracy of each setting against one swept field, the
                                  spread over seeds (std) as error bars; one colour per value
                                  of the other swept fields; lines only along an ordered
                                  series (`axis_order`), never between architectures
figures/curves.png                validation accuracy by epoch of the best few configurations
"""

from __future__ import annotations

import itertools
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
    if isinstance(value, list):
        return ",".join(map(str, value)) if value else "none"  # hidden=[]: no hidden layer
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # True/False are choices, not a scale


def axis_order(values: list[Any]) -> tuple[list[Any], list[list[int]]]:
    """A swept field's values in the order its axis shows them, and the runs of positions a line may join.

    A line between two points claims that the x values between them lie on one scale, so:

    - numbers (lr, epochs): sorted, one run, since they are points of one ordered scale;
    - layer lists (``hidden``): grouped by depth, each group sorted; a group is one run only when
      no layer narrows along it (64 -> 128, or 32,32 -> 64,64), otherwise (32,64 next to 64,32)
      each point stands alone; different depths are different architectures, never joined;
    - anything else (activation names, booleans, None among numbers): categories in grid order, no line.

    Example::

        >>> axis_order([[128], [64, 64], [64]])
        ([[64], [128], [64, 64]], [[0, 1], [2]])
    """
    if all(_is_number(value) for value in values):
        return sorted(values), [list(range(len(values)))]
    if not all(isinstance(value, list) and all(map(_is_number, value)) for value in values):
        return list(values), [[position] for position in range(len(values))]
    ordered = sorted(values, key=lambda layers: (len(layers), layers))
    runs: list[list[int]] = []
    for _, group in itertools.groupby(range(len(ordered)), key=lambda position: len(ordered[position])):
        positions = list(group)
        widths = [ordered[position] for position in positions]
        widens = all(a <= b for narrow, wide in itertools.pairwise(widths) for a, b in zip(narrow, wide, strict=True))
        runs += [positions] if widens else [[position] for position in positions]
    return ordered, runs


def accuracy_by_field(settings: list[dict[str, Any]], field: str, values: list[Any], others: list[str]) -> Any:
    """Validation (left, when measured) and test (right) accuracy of each setting against ``field``.

    Each setting is a marker at its mean over seeds with the std as error bars; lines join only
    the values `axis_order` calls one ordered series (never two depths of ``hidden``). With other
    swept fields, each of their combinations has its own colour, its markers set a little apart
    so that error bars at one x do not hide each other.
    """
    plt = pyplot()
    splits = [s for s in ("val", "test") if any(row[f"{s}_accuracy_mean"] is not None for row in settings)]
    figure, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4.2), squeeze=False)
    lines: dict[tuple, list[dict[str, Any]]] = {}
    for row in settings:
        lines.setdefault(tuple(_label(row[name]) for name in others), []).append(row)
    ordered, runs = axis_order(values)
    positions = {_label(value): position for position, value in enumerate(ordered)}
    for axis, split in zip(axes[0], splits, strict=True):
        for number, (key, rows) in enumerate(lines.items()):
            points = {
                positions[_label(r[field])]: (100 * r[f"{split}_accuracy_mean"], 100 * r[f"{split}_accuracy_std"])
                for r in rows
                if r[f"{split}_accuracy_mean"] is not None
            }  # position -> (mean %, std %)
            label = " ".join(f"{n}={v}" for n, v in zip(others, key, strict=True)) or None
            style = {"color": f"C{number}", "label": label} if number < MAX_LINES else {"color": "0.7", "label": None}
            _draw_points(axis, points, runs, _dodge(number, len(lines)), style)
        axis.set_xticks(range(len(ordered)), [_label(v) for v in ordered])
        axis.set_xlim(-0.5, len(ordered) - 0.5)  # every category a slot of the same width
        _mark_depths(axis, ordered)
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


def _dodge(number: int, count: int) -> float:
    """How far from its tick (in tick spacings) combination ``number`` of ``count`` sets its markers."""
    slots = min(count, MAX_LINES + 1)  # the grey combinations share the last slot
    if slots == 1:
        return 0.0
    spacing = min(0.1, 0.5 / (slots - 1))  # apart enough for the error bars' caps, all within half a spacing
    return spacing * (min(number, slots - 1) - (slots - 1) / 2)


def _draw_points(
    axis: Any, points: dict[int, tuple[float, float]], runs: list[list[int]], offset: float, style: dict[str, Any]
) -> None:
    """Markers with error bars at ``{position: (mean, std)}``, a line through each run of two or more."""
    for run in runs:
        run = [position for position in run if position in points]  # a random sweep may skip some
        if run:
            axis.errorbar(
                [position + offset for position in run],
                [points[p][0] for p in run],
                yerr=[points[p][1] for p in run],
                marker="o",
                capsize=4,
                linestyle="-" if len(run) > 1 else "none",
                **style,
            )
            style = {**style, "label": None}  # one legend entry per combination, however many runs it has


def _mark_depths(axis: Any, ordered: list[Any]) -> None:
    """Between layer lists of different depths a dotted rule, and above each depth its name ("2 layers")."""
    if not all(isinstance(value, list) for value in ordered) or len({len(v) for v in ordered}) < 2:
        return
    centres, names, start = [], [], 0
    for depth, group in itertools.groupby(ordered, key=len):
        end = start + len(list(group))
        if start:
            axis.axvline(start - 0.5, color="0.6", linestyle=":", linewidth=1)
        centres.append((start + end - 1) / 2)
        names.append("no hidden layer" if depth == 0 else f"{depth} layer{'s' if depth > 1 else ''}")
        start = end
    # On a top axis of their own, so the names never sit on a marker or an error bar.
    top = axis.secondary_xaxis("top")
    top.set_xticks(centres, names)
    top.tick_params(length=0, labelsize=8, labelcolor="0.35")


def curves(members: list[dict[str, Any]]) -> Any:
    """Validation accuracy (training accuracy without a validation split) by epoch of each member."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    key = (
        "val_accuracy"
        if members[0]["history"]["epochs"] and members[0]["history"]["epochs"][0].get("val_accuracy") is not None
        else "train_accuracy"
    )
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
