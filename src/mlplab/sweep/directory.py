"""Run a sweep and write its directory (`run_sweep`), with its results as tables.

A sweep directory holds, every file written atomically::

    sweep.toml      the base config and the [grid] (and [random] draw): what was run
    plan.json       the groups, memory and predicted seconds (written before training)
    checkpoints/group-<n>.pt   each group's training state after its latest epoch (`mlplab.sweep.checkpoints`)
    members.json    every configuration's config, per-epoch history, test metrics and divergence
    results.csv/.json   one row per configuration (`result_row`)
    settings.csv/.json  one row per setting, mean and std over seeds, best first
    best.toml       the best setting's best seed, as a config `mlplab train --config` reruns exactly

results.json is written last: when it exists, the sweep finished and every other file is
whole. Until then the checkpoints hold what was trained, and the same sweep run again into the
folder resumes: finished groups are kept, the group in progress continues from its saved
epoch, the rest train, and every member ends as it would have without the stop
(`mlplab.sweep.folder`; ``mlplab sweep --resume DIR`` runs it from its own sweep.toml). A
finished sweep run again is read back, not trained; another sweep is refused, so that no
sweep's results are overwritten. To rerun a sweep elsewhere::

    mlplab sweep --config DIR/sweep.toml --grid-file DIR/sweep.toml --out NEW_DIR

The tables are plain data (`result_row`, `setting_rows`), so that they can be rebuilt from a
sweep directory's results.json. A *setting* is the configurations equal apart from their
seed (`mlplab.sweep.grid.setting_key`); its accuracies are the mean and the sample standard
deviation (n - 1) over its seeds that did not diverge. Settings are ranked by mean
validation accuracy (the test set never chooses), or by mean best training accuracy when
the sweep holds out no validation split.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.config import Config, apply_overrides, load_config, to_toml
from mlplab.config import _toml_value as toml_value
from mlplab.errors import MlplabError
from mlplab.files import atomic_write_text
from mlplab.sweep.checkpoints import FOLDER, GroupCheckpoints
from mlplab.sweep.folder import PLAN_FILE, RESULTS_FILE, SWEEP_FILE, SWEEP_FILES, SavedSweep, saved_sweep, sweep_lock
from mlplab.sweep.grid import Grid, describe, setting_key
from mlplab.sweep.members import SweepDataCache, check_members
from mlplab.sweep.plan import SweepPlan, plan_sweep, sweep_work
from mlplab.sweep.vectorised import SweepEpoch, SweepResult, train_vectorised
from mlplab.threads import ThreadGovernor, monitor

# The columns every row has after its swept fields, in the order they are written.
RESULT_FIELDS = ("best_epoch", "best_val_accuracy", "best_train_accuracy", "test_accuracy", "test_loss", "diverged")
SETTING_FIELDS = (
    "seeds",
    "diverged",
    "val_accuracy_mean",
    "val_accuracy_std",
    "test_accuracy_mean",
    "test_accuracy_std",
    "test_loss_mean",
    "rank_metric",
    "best_index",
)


@dataclass
class SweepOutcome:
    """What `run_sweep` wrote and found."""

    out: Path
    rows: list[dict[str, Any]]  # results.json
    settings: list[dict[str, Any]]  # settings.json, best first
    best: Config | None  # best.toml's config; None when every member diverged
    written: list[Path]
    seconds: float  # the wall time of the call that finished the sweep
    kept: int = 0  # members an earlier, stopped call had finished: kept, not trained again
    complete: bool = False  # the folder held the finished sweep already: nothing was trained


def sweep_configs(base: Config, combinations: Sequence[dict[str, Any]]) -> list[Config]:
    """One config per combination (the base with its overrides), checked to train together."""
    if not combinations:
        raise MlplabError("the sweep has no configurations")
    configs = [apply_overrides(base, overrides) for overrides in combinations]
    check_members(configs)
    return configs


def run_sweep(
    base: Config,
    combinations: list[dict[str, Any]],
    out: str | Path,
    *,
    grid: Grid | None = None,
    random: tuple[int, int] | None = None,
    memory_budget: int | None = None,
    max_group_size: int | None = None,
    calibrate: bool = True,
    on_plan: Callable[[SweepPlan], None] | None = None,
    on_resume: Callable[[SavedSweep], None] | None = None,
    on_epoch_end: Sequence[Callable[[SweepEpoch], None]] = (),
) -> SweepOutcome:
    """Train one config per combination (``base`` with its overrides) as a vectorised sweep and write ``out``.

    Args:
        base: the config every member starts from.
        combinations: ``{field: value}`` overrides, one per member (`mlplab.sweep.grid.expand`).
        out: the sweep directory. When it holds this same sweep (base, grid and draw), stopped,
            the sweep resumes there; finished, its outcome is read back and nothing trains; another
            sweep is refused (`mlplab.sweep.folder`).
        grid: the grid the combinations came from (recorded in sweep.toml); derived from them when None.
        random: ``(count, seed)`` of a random draw from the grid, recorded in sweep.toml.
        memory_budget, max_group_size: as `plan_sweep` (a resumed sweep follows its saved plan.json).
        calibrate: time a few steps to predict the sweep's seconds.
        on_plan: called with the `SweepPlan` before training (the CLI prints it).
        on_resume: called with the `SavedSweep` before a stopped sweep resumes (the CLI says what is kept).
        on_epoch_end: hooks given to `train_vectorised`.
    """
    out = Path(out)
    configs = sweep_configs(base, combinations)
    recipe = sweep_toml(base, grid or grid_of(combinations), random)
    saved = saved_sweep(out, recipe)
    if saved is not None and saved.complete:
        return read_outcome(out)
    if saved is not None and on_resume is not None:
        on_resume(saved)
    data = SweepDataCache()  # each dataset read once, for the plan and the training
    monitor()  # the CPU load is read from here on, for the thread choice below
    # One thread choice for the calibration and the training, so that the plan times what will run.
    with ThreadGovernor(base.train.threads, work=sweep_work(configs)):
        plan = (
            saved.plan
            if saved is not None and saved.plan is not None
            else plan_sweep(
                configs, memory_budget=memory_budget, max_group_size=max_group_size, calibrate=calibrate, data=data
            )
        )
        if on_plan is not None:
            on_plan(plan)
        with sweep_lock(out):
            saved = saved_sweep(out, recipe)  # again, under the lock: another process may have gone on meanwhile
            if saved is not None and saved.complete:
                return read_outcome(out)
            plan, written = _begin(out, recipe, plan, saved)
            result = train_vectorised(
                configs, data=data, plan=plan, on_epoch_end=on_epoch_end, store=GroupCheckpoints(out / FOLDER)
            )
            return write_results(out, combinations, result, written, kept=saved.kept if saved is not None else 0)


def _begin(out: Path, recipe: str, plan: SweepPlan, saved: SavedSweep | None) -> tuple[SweepPlan, list[Path]]:
    """The plan to follow, and sweep.toml and plan.json: the saved ones of a stopped sweep, else written now."""
    if saved is not None and saved.plan is not None:
        return saved.plan, [out / SWEEP_FILE, out / PLAN_FILE, out / FOLDER]
    if saved is None:  # else sweep.toml is there: a sweep stopped before it wrote its plan
        _write(out / SWEEP_FILE, recipe)
    return plan, [out / SWEEP_FILE, _write(out / PLAN_FILE, _json(plan.to_dict())), out / FOLDER]


def read_outcome(out: Path) -> SweepOutcome:
    """The outcome of the finished sweep in ``out``, read back from its files (nothing trains)."""
    rows = json.loads((out / RESULTS_FILE).read_text())
    best = load_config(out / "best.toml") if (out / "best.toml").is_file() else None
    seconds = json.loads((out / "members.json").read_text()).get("seconds", 0.0)
    return SweepOutcome(
        out=out,
        rows=rows,
        settings=json.loads((out / "settings.json").read_text()),
        best=best,
        written=[out / name for name in (*SWEEP_FILES[:2], FOLDER, *SWEEP_FILES[2:]) if (out / name).exists()],
        seconds=seconds,
        kept=len(rows),
        complete=True,
    )


def write_results(
    out: Path, combinations: list[dict[str, Any]], result: SweepResult, written: list[Path], kept: int = 0
) -> SweepOutcome:
    """Write members.json, the result and setting tables and best.toml; results.json last (the sweep's commit)."""
    rows = [
        result_row(
            k, overrides, member.history, member.metrics, None if member.diverged is None else str(member.diverged)
        )
        for k, (overrides, member) in enumerate(zip(combinations, result.members, strict=True))
    ]
    settings = setting_rows(rows, combinations)
    members = [
        {**member.to_dict(), "overrides": {n: plain(v) for n, v in overrides.items()}}
        for overrides, member in zip(combinations, result.members, strict=True)
    ]
    written.append(
        _write(out / "members.json", _json({"members": members, "seconds": result.seconds, **result.extras}))
    )
    best = None
    if settings and settings[0]["best_index"] is not None:
        chosen = result.members[settings[0]["best_index"]].config
        best = rerun_config(chosen, chosen.train.threads)
        written.append(_write(out / "best.toml", to_toml(best)))
    written += [
        _write(out / "results.csv", to_csv(rows)),
        _write(out / "settings.csv", to_csv(settings)),
        _write(out / "settings.json", _json(settings)),
        _write(out / "results.json", _json(rows)),
    ]
    return SweepOutcome(
        out=out, rows=rows, settings=settings, best=best, written=written, seconds=result.seconds, kept=kept
    )


def rerun_config(config: Config, threads: int | None) -> Config:
    """A member's config for ``mlplab train``: no --out (a fresh run directory), the thread count ``threads``.

    The vectorised trainer equals the member's own manual-engine run on the same number of
    threads (``auto`` picks the manual engine for every config a sweep accepts). The sweep's
    ``--threads`` is kept; without it the rerun chooses for its machine (`mlplab.threads`), and
    equals the member bit for bit when it runs on the count members.json records.
    """
    return dataclasses.replace(config, train=dataclasses.replace(config.train, out=None, threads=threads))


def grid_of(combinations: Sequence[dict[str, Any]]) -> Grid:
    """Each field's distinct values, in order of appearance (for combinations not made from a grid)."""
    grid: Grid = {}
    for overrides in combinations:
        for name, value in overrides.items():
            if value not in grid.setdefault(name, []):
                grid[name].append(value)
    return grid


def sweep_toml(base: Config, grid: Grid, random: tuple[int, int] | None) -> str:
    """The base config as `to_toml` writes it, then the ``[grid]`` (and ``[random]``) tables."""
    lines = [
        to_toml(base),
        "[grid]",
        *(f"{name} = {toml_value([plain(v) for v in values])}" for name, values in grid.items()),
        "",
    ]
    if random is not None:
        lines += ["[random]", f"count = {random[0]}", f"seed = {random[1]}", ""]
    return "\n".join(lines)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def _write(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


def result_row(
    index: int, overrides: dict[str, Any], history: Any, metrics: dict[str, Any] | None, diverged: str | None
) -> dict[str, Any]:
    """One configuration's row: its index, its swept values, then `RESULT_FIELDS`."""
    has_val = any(record.get("val_accuracy") is not None for record in history.epochs)
    best = history.best_epoch("val_accuracy" if has_val else "train_accuracy")
    return {
        "index": index,
        **{name: plain(value) for name, value in overrides.items()},
        "best_epoch": best["epoch"] if best else None,
        "best_val_accuracy": best.get("val_accuracy") if best else None,
        "best_train_accuracy": best.get("train_accuracy") if best else None,
        "test_accuracy": metrics["test_accuracy"] if metrics else None,
        "test_loss": metrics["test_loss"] if metrics else None,
        "diverged": diverged,
    }


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
        settings.append(
            {
                "setting": describe(dict(key)) or "(base)",
                **{name: plain(value) for name, value in key},
                "seeds": len(members),
                "diverged": len(members) - len(finished),
                "val_accuracy_mean": mean(val),
                "val_accuracy_std": spread(val),
                "test_accuracy_mean": mean(test),
                "test_accuracy_std": spread(test),
                "test_loss_mean": mean([row["test_loss"] for row in finished]),
                "rank_metric": mean([row[rank_by] for row in finished]),
                "best_index": best["index"] if best else None,
            }
        )
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
        writer.writerow(
            ["" if v is None else ",".join(map(str, v)) if isinstance(v, list) else v for v in row.values()]
        )
    return buffer.getvalue()
