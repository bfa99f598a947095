"""Run a sweep and write its directory: `run_sweep`.

A sweep directory holds, every file written atomically::

    sweep.toml      the base config and the [grid] (and [random] draw): what was run
    plan.json       the groups, memory and predicted seconds (written before training)
    members.json    every configuration's config, per-epoch history, test metrics and divergence
    results.csv/.json   one row per configuration (`mlplab.sweep.summary.result_row`)
    settings.csv/.json  one row per setting, mean and std over seeds, best first
    best.toml       the best setting's best seed, as a config `mlplab train --config` reruns exactly

results.json is written last: when it exists, the sweep finished and every other file is
whole. A folder that holds sweep.toml already holds a sweep and is refused, so that no
sweep's results are overwritten. To rerun a sweep::

    mlplab sweep --config DIR/sweep.toml --grid-file DIR/sweep.toml --out NEW_DIR
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplab.config import Config, apply_overrides, to_toml
from mlplab.config import _toml_value as toml_value
from mlplab.errors import MlplabError
from mlplab.files import atomic_write_text
from mlplab.sweep.grid import Grid
from mlplab.sweep.summary import plain, result_row, setting_rows, to_csv

SWEEP_FILE = "sweep.toml"  # its presence marks a folder as a sweep's


@dataclass
class SweepOutcome:
    """What `run_sweep` wrote and found."""

    out: Path
    rows: list[dict[str, Any]]  # results.json
    settings: list[dict[str, Any]]  # settings.json, best first
    best: Config | None  # best.toml's config; None when every member diverged
    written: list[Path]
    seconds: float


def check_sweep_dir(out: Path) -> None:
    """Refuse an ``out`` that is a file or already holds a sweep (one line)."""
    if out.exists() and not out.is_dir():
        raise MlplabError(f"--out {out} is a file, not a folder; choose another folder")
    if (out / SWEEP_FILE).exists():
        if not (out / "results.json").exists():
            raise MlplabError(f"--out {out} holds a sweep that did not finish (no results.json); delete that folder "
                              "to run it again there, or choose another folder")
        raise MlplabError(f"--out {out} already holds a sweep ({SWEEP_FILE}); choose another folder")


def sweep_configs(base: Config, combinations: Sequence[dict[str, Any]]) -> list[Config]:
    """One config per combination (the base with its overrides), checked to train together."""
    from mlplab.sweep.members import check_members

    if not combinations:
        raise MlplabError("the sweep has no configurations")
    configs = [apply_overrides(base, overrides) for overrides in combinations]
    check_members(configs)
    return configs


def run_sweep(base: Config, combinations: list[dict[str, Any]], out: str | Path, *, grid: Grid | None = None,
              random: tuple[int, int] | None = None, memory_budget: int | None = None,
              max_group_size: int | None = None, calibrate: bool = True, on_plan: Callable[[Any], None] | None = None,
              on_epoch_end: Sequence[Callable[[Any], None]] = ()) -> SweepOutcome:
    """Train one config per combination (``base`` with its overrides) as a vectorised sweep and write ``out``.

    Args:
        base: the config every member starts from.
        combinations: ``{field: value}`` overrides, one per member (`mlplab.sweep.grid.expand`).
        out: the sweep directory; refused if it already holds a sweep.
        grid: the grid the combinations came from (recorded in sweep.toml); derived from them when None.
        random: ``(count, seed)`` of a random draw from the grid, recorded in sweep.toml.
        memory_budget, max_group_size: as `plan_sweep`.
        calibrate: time a few steps to predict the sweep's seconds.
        on_plan: called with the `SweepPlan` before training (the CLI prints it).
        on_epoch_end: hooks given to `train_vectorised`.
    """
    from mlplab.sweep.data import SweepDataCache
    from mlplab.sweep.plan import plan_sweep
    from mlplab.sweep.vectorised import sweep_work, train_vectorised
    from mlplab.threads import ThreadGovernor, monitor

    out = Path(out)
    check_sweep_dir(out)
    configs = sweep_configs(base, combinations)
    data = SweepDataCache()  # each dataset read once, for the plan and the training
    monitor()  # the CPU load is read from here on, for the thread choice below
    # One thread choice for the calibration and the training, so that the plan times what will run.
    with ThreadGovernor(base.train.threads, work=sweep_work(configs)):
        plan = plan_sweep(configs, memory_budget=memory_budget, max_group_size=max_group_size, calibrate=calibrate,
                          data=data)
        if on_plan is not None:
            on_plan(plan)
        check_sweep_dir(out)  # again: another sweep may have claimed the folder while this one planned
        written = [_write(out / "sweep.toml", sweep_toml(base, grid or grid_of(combinations), random)),
                   _write(out / "plan.json", _json(plan.to_dict()))]
        result = train_vectorised(configs, data=data, plan=plan, on_epoch_end=on_epoch_end)
    return write_results(out, combinations, result, written)


def write_results(out: Path, combinations: list[dict[str, Any]], result: Any, written: list[Path]) -> SweepOutcome:
    """Write members.json, the result and setting tables and best.toml; results.json last."""
    rows = [result_row(k, overrides, member.history, member.metrics,
                       None if member.diverged is None else str(member.diverged))
            for k, (overrides, member) in enumerate(zip(combinations, result.members))]
    settings = setting_rows(rows, combinations)
    members = [{**member.to_dict(), "overrides": {n: plain(v) for n, v in overrides.items()}}
               for overrides, member in zip(combinations, result.members)]
    written.append(_write(out / "members.json", _json({"members": members, "seconds": result.seconds,
                                                        **result.extras})))
    best = None
    if settings and settings[0]["best_index"] is not None:
        chosen = result.members[settings[0]["best_index"]].config
        best = rerun_config(chosen, chosen.train.threads)
        written.append(_write(out / "best.toml", to_toml(best)))
    written += [_write(out / "results.csv", to_csv(rows)), _write(out / "settings.csv", to_csv(settings)),
                _write(out / "settings.json", _json(settings)), _write(out / "results.json", _json(rows))]
    return SweepOutcome(out=out, rows=rows, settings=settings, best=best, written=written, seconds=result.seconds)


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
    lines = [to_toml(base), "[grid]", *(f"{name} = {toml_value([plain(v) for v in values])}"
                                        for name, values in grid.items()), ""]
    if random is not None:
        lines += ["[random]", f"count = {random[0]}", f"seed = {random[1]}", ""]
    return "\n".join(lines)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def _write(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path
