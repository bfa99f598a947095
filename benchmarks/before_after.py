"""Before and after a change: the same measurements on two source trees, paired round by round.

A restructuring must not slow training down. This measures this tree ("after") against a git
commit ("before", checked out into a temporary worktree) on what users wait for:

  epoch64   one training epoch of `train_epoch` on the lab net (784-16-32-24-10, ReLU, SGD with
            momentum, the manual engine `mlplab train` picks), batch 64, 50,000 images
  epoch4    the same at batch 4 (the tutorial lab's), on 10,000 images: where per-step overhead shows
  fit       `mlplab.train` of the ``fast`` preset, the whole run as ``mlplab train --preset fast``
            does it (run directory, checkpoints, validation, test): its epochs' seconds, and its
            test accuracy (which must not change: the arithmetic is the same)
  sweep16   `mlplab.sweep.train_vectorised`: 16 lab-net members (lr and momentum varied), one epoch

Every measurement runs in a fresh process with one CPU thread (thread choice is not what is
compared), on the bundled MNIST, after an untimed warm-up of the same work (an epoch: the
median of the next three). Rounds alternate
the order (before, after; then after, before), so a slow spell of this small VM falls on both
alike; each round gives the ratio after/before, and the median over rounds is printed with its
quartiles. A ratio above 1 means the change is slower.

    python benchmarks/before_after.py --baseline f71c096             # about 6 minutes
    python benchmarks/before_after.py --baseline main~3 --rounds 3 --only epoch64,epoch4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURES = ("epoch64", "epoch4", "fit", "sweep16")
EPOCHS_TIMED = 3  # epochs timed per process after the warm-up; the median is the process's measurement


def _lab_config(batch_size: int, val_size: int):
    """The lab net as `mlplab train --hidden 16,32,24 ...` resolves it: APIs both trees share."""
    from mlplab.config import apply_overrides, from_preset

    return apply_overrides(from_preset("lab"), {"batch_size": batch_size, "val_size": val_size, "threads": 1,
                                                "progress": False, "download": False, "device": "cpu"})


def _epoch_seconds(batch_size: int, val_size: int) -> dict[str, float]:
    from mlplab.training import prepare, train_epoch

    setup = prepare(_lab_config(batch_size, val_size))
    run = lambda: train_epoch(setup.model, setup.train_batches, setup.loss_fn, setup.optimizer,  # noqa: E731
                              setup.schedule, engine=setup.engine, threads=1)
    run()  # warm-up: first-touch allocations, kernels chosen, probes run
    times = []
    for _ in range(EPOCHS_TIMED):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times)}


def _fit_seconds() -> dict[str, float]:
    from mlplab.config import apply_overrides, from_preset
    from mlplab.training import train

    with tempfile.TemporaryDirectory() as folder:
        base = {"threads": 1, "progress": False, "download": False, "device": "cpu"}
        train(apply_overrides(from_preset("fast"), {**base, "epochs": 1, "out": f"{folder}/warm"}))
        history = train(apply_overrides(from_preset("fast"), {**base, "out": f"{folder}/run"}))
    return {"seconds": sum(record["seconds"] for record in history.epochs),
            "test_accuracy": history.metrics["test_accuracy"]}


def _sweep_seconds() -> dict[str, float]:
    import dataclasses

    from mlplab.sweep import train_vectorised

    base = _lab_config(64, 10_000)
    configs = [dataclasses.replace(base, optim=dataclasses.replace(base.optim, lr=0.005 + 0.006 * k,
                                                                   momentum=0.05 * (k % 16)),
                                   train=dataclasses.replace(base.train, seed=k, epochs=1)) for k in range(16)]
    train_vectorised(configs[:2], threads=1)  # warm-up
    started = time.perf_counter()
    train_vectorised(configs, threads=1)
    return {"seconds": time.perf_counter() - started}


def measure(name: str) -> dict[str, float]:
    """One measurement in this process (the worker's side)."""
    import torch

    torch.set_num_threads(1)
    return {"epoch64": lambda: _epoch_seconds(64, 10_000), "epoch4": lambda: _epoch_seconds(4, 50_000),
            "fit": _fit_seconds, "sweep16": _sweep_seconds}[name]()


def run_worker(tree: Path, name: str) -> dict[str, float]:
    """``measure(name)`` in a fresh process importing mlplab from ``tree``."""
    environment = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", name], env=environment,
                          capture_output=True, text=True, check=False, cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, middle, high


def compare(baseline: Path, names: list[str], rounds: int) -> None:
    trees = {"before": baseline, "after": ROOT}
    print(f"before: {baseline} ({_describe(baseline)})\nafter:  {ROOT} ({_describe(ROOT)})\n"
          f"{rounds} rounds, one thread, order alternating\n")
    print(f"{'measure':9} {'before s':>9} {'after s':>9} {'after/before (quartiles)':>30}  notes")
    for name in names:
        seconds: dict[str, list[float]] = {"before": [], "after": []}
        notes: dict[str, set] = {"before": set(), "after": set()}
        ratios = []
        for round_index in range(rounds):
            order = ("before", "after") if round_index % 2 == 0 else ("after", "before")
            got = {side: run_worker(trees[side], name) for side in order}
            for side in order:
                seconds[side].append(got[side]["seconds"])
                if "test_accuracy" in got[side]:
                    notes[side].add(f"{100 * got[side]['test_accuracy']:.2f}%")
            ratios.append(got["after"]["seconds"] / got["before"]["seconds"])
        low, middle, high = _quartiles(ratios)
        note = (f"test accuracy before {', '.join(sorted(notes['before']))}; after {', '.join(sorted(notes['after']))}"
                if notes["before"] else "")
        print(f"{name:9} {statistics.median(seconds['before']):9.3f} {statistics.median(seconds['after']):9.3f} "
              f"{middle:12.3f} ({low:.3f}-{high:.3f})  {note}", flush=True)


def _describe(tree: Path) -> str:
    found = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return found.stdout.strip()[:60] + (" + uncommitted changes" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="the git commit to compare against (checked out in a temporary worktree)")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds per measure (default: 5)")
    parser.add_argument("--only", help=f"comma-separated measures (default: all of {', '.join(MEASURES)})")
    parser.add_argument("--worker", choices=MEASURES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker)))
        return
    if not args.baseline:
        parser.error("--baseline REF is required (the commit to compare this tree against)")
    names = args.only.split(",") if args.only else list(MEASURES)
    unknown = set(names) - set(MEASURES)
    if unknown or args.rounds < 1:
        parser.error(f"--only takes {', '.join(MEASURES)}; --rounds at least 1")
    with tempfile.TemporaryDirectory() as folder:
        baseline = Path(folder) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(baseline), args.baseline],
                       check=True)
        try:
            compare(baseline, names, args.rounds)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], check=False)


if __name__ == "__main__":
    main()
