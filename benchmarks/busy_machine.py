"""mlplab's CPU thread policy on an idle machine and beside one and two CPU-bound processes.

By default mlplab picks PyTorch's thread count from the CPUs other processes leave free and
from the work per step, and reads the load again every second (`mlplab.threads`). This script
checks that choice against the two fixed ones, ``--threads 1`` and ``--threads N`` (N =
os.cpu_count()), for four workloads, each run as a fresh ``sys.executable`` process:

  fast      mlplab train --preset fast            seconds: the sum of history.json's epoch times
  default   mlplab train (the default recipe)     seconds: likewise
  sklearn   mlplab.MLPClassifier((100,), max_iter=10) on all 60,000 images, as in the README;
            seconds: its fit, timed inside the process (threads set by torch.set_num_threads)
  sweep     mlplab sweep --preset lab --epochs 2 over 16 configurations (lr x momentum x seed);
            seconds: its "trained 16 configurations in S s"; also the plan's predicted seconds

Conditions: 0, 1 or 2 busy processes ("hogs") started before the condition's runs and killed
after: a pure-Python spin loop (--hog python) or another PyTorch program on 2 threads
multiplying 512x784 by 784x512 over and over (--hog torch). Within a condition the thread
settings take turns (default, 1, N, then again for each round) so drift hits all alike; with
--rounds R > 1 each cell is the median over rounds. Wall-clock seconds of every process are
printed beside the training seconds, which leave out Python's and torch's start-up. The CPU
that other work on the machine (not this script, its runs or hogs) took beside each run is
read from the kernel's counters and printed; a cell it disturbed is marked † in the table.

Targets: default / best fixed choice <= 1.3 in every cell; the sweep planner's predicted /
measured seconds within 1.5x (between 0.67 and 1.5). "threads" says what the default chose,
from the run's metrics.json (or the estimator's history_.threads): "2→1" if it changed.

    python benchmarks/busy_machine.py                   # all workloads, 0, 1 and 2 hogs
    python benchmarks/busy_machine.py --quick           # fast and sweep, idle and 1 hog (1-2 min)
    python benchmarks/busy_machine.py --workloads sklearn --conditions 0 --hog torch --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

WORKLOADS = ("fast", "default", "sklearn", "sweep")
DEFAULT_RATIO_TARGET, PREDICTION_TARGET = 1.3, 1.5
BACKGROUND = 0.25  # CPUs of other work (not ours) beside a run that mark its cell as disturbed
THREADS_ENV = "BUSY_MACHINE_THREADS"  # the sklearn snippet's thread count (unset: mlplab's default)

HOGS = {  # each says "ready" once it is about to spin, so the parent knows the machine is busy
    "python": "print('ready', flush=True)\nwhile True: pass",
    "torch": ("import torch\ntorch.set_num_threads(2)\na, w = torch.randn(512, 784), torch.randn(784, 512)\n"
              "print('ready', flush=True)\nwhile True: (a @ w).relu_()"),
}

SKLEARN_SNIPPET = """
import json, os, time, warnings
import torch
from sklearn.exceptions import ConvergenceWarning
from mlplab import MNIST, MLPClassifier
from mlplab.data import bundled_folder, get_spec

warnings.filterwarnings("ignore", category=ConvergenceWarning)  # max_iter=10 stops before tol is met
root = os.environ.get("MLPLAB_DATA_DIR") or str(bundled_folder(get_spec("mnist")))
train, test = MNIST(root, train=True, download=False), MNIST(root, train=False, download=False)
X, y = (train.data.reshape(-1, 784) / 255).numpy(), train.targets.numpy()  # (60000, 784) float32 in [0, 1]
X_test, y_test = (test.data.reshape(-1, 784) / 255).numpy(), test.targets.numpy()
if os.environ.get("%s"):
    torch.set_num_threads(int(os.environ["%s"]))
started = time.perf_counter()
model = MLPClassifier(hidden_layer_sizes=(100,), max_iter=10, random_state=0).fit(X, y)
print(f"fit {time.perf_counter() - started:.3f} s")
print(f"test accuracy {100 * model.score(X_test, y_test):.2f}%%")
print("threads " + json.dumps(model.history_.threads))
""" % (THREADS_ENV, THREADS_ENV)


@dataclass
class Run:
    """One process's outcome: seconds (training where the tool printed them, else wall) and what it reported."""

    wall: float
    seconds: float | None = None  # training seconds parsed from the output
    accuracy: float | None = None  # test accuracy in %
    predicted: float | None = None  # the sweep plan's predicted seconds
    threads: str = "-"  # the default's choice, "2→1" when it changed
    failed: bool = False
    background: float = 0.0  # CPUs' worth of time neither the run, the hogs nor this script took meanwhile

    @property
    def time(self) -> float:
        return self.wall if self.seconds is None else self.seconds


def command(workload: str, threads: int | None, out: Path) -> list[str]:
    """The command line of one workload with a fixed thread count (None: mlplab's default)."""
    flag = [] if threads is None else ["--threads", str(threads)]
    mlplab = [sys.executable, "-m", "mlplab"]
    if workload == "fast":
        return mlplab + ["train", "--preset", "fast", "--out", str(out), "--no-progress"] + flag
    if workload == "default":
        return mlplab + ["train", "--out", str(out), "--no-progress"] + flag
    if workload == "sweep":
        return mlplab + ["sweep", "--preset", "lab", "--epochs", "2", "--grid", "lr=0.01,0.03,0.1,0.3",
                         "momentum=0.5,0.9", "seed=0-1", "--no-nesterov", "--out", str(out), "--no-progress"] + flag
    return [sys.executable, "-c", SKLEARN_SNIPPET]  # threads travel in THREADS_ENV


def describe_threads(entries: list[dict] | None) -> str:
    """``2`` or, when training changed it, ``2→1→2``; ``-`` when nothing was recorded."""
    return "→".join(str(count) for count, _ in itertools.groupby(e["threads"] for e in entries or [])) or "-"


def recorded_threads(out: Path) -> list[dict] | None:
    """The "threads" list of a run's metrics.json (a sweep's: members.json's "threads_log"), if it has one."""
    for name, key in (("metrics.json", "threads"), ("members.json", "threads_log")):
        try:
            entries = json.loads((out / name).read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(entries, list):
            return entries
    return None


def number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def parse(workload: str, stdout: str, wall: float, out: Path) -> Run:
    """What the workload printed: its training seconds, test accuracy, thread choice and (sweep) prediction."""
    run = Run(wall, threads=describe_threads(recorded_threads(out)))
    if workload in ("fast", "default"):
        try:  # the epochs' own clock, unrounded
            run.seconds = sum(epoch["seconds"] for epoch in json.loads((out / "history.json").read_text())["epochs"])
        except (OSError, ValueError, KeyError):
            run.seconds = None
        run.accuracy = number(r"^test loss \S+\s+accuracy\s+([\d.]+)%", stdout)
    elif workload == "sklearn":
        run.seconds = number(r"^fit ([\d.]+) s", stdout)
        run.accuracy = number(r"^test accuracy ([\d.]+)%", stdout)
        line = re.search(r"^threads (.*)$", stdout, re.MULTILINE)
        run.threads = describe_threads(json.loads(line.group(1))) if line else "-"
    else:
        run.seconds = number(r"^trained \d+ configurations in ([\d.]+) s", stdout)
        run.predicted = number(r"^predicted: ([\d.]+) s", stdout)
    printed = re.search(r"^threads: (\d+)", stdout, re.MULTILINE)
    if run.threads == "-" and printed:  # a sweep records no choice: take the first one it printed, marked *
        run.threads = printed.group(1) + "*"
    return run


def others_seconds(hogs: list[subprocess.Popen]) -> float:
    """CPU seconds the machine has been busy since boot, less those of this script, its finished runs and hogs."""
    times = psutil.cpu_times()  # busy: all but idle and I/O wait; guest time is counted in user already
    busy = sum(times) - times.idle - sum(getattr(times, name, 0.0) for name in ("iowait", "guest", "guest_nice"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # runs that have ended (and been waited for)
    ours = time.process_time() + children.ru_utime + children.ru_stime
    for hog in hogs:
        with contextlib.suppress(psutil.Error):
            ours += sum(psutil.Process(hog.pid).cpu_times()[:2])  # user + system
    return busy - ours


def run_beside(workload: str, threads: int | None, hogs: list[subprocess.Popen], timeout: float) -> Run:
    """`run_once`, noting how many CPUs other work on the machine (not ours) took while it ran."""
    others, started = others_seconds(hogs), time.monotonic()
    run = run_once(workload, threads, timeout)
    run.background = max(0.0, (others_seconds(hogs) - others) / max(time.monotonic() - started, 1e-9))
    return run


def run_once(workload: str, threads: int | None, timeout: float) -> Run:
    """One workload in a fresh process inside a temporary folder, timed by wall clock from here."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_ENV)}
    if workload == "sklearn" and threads is not None:
        env[THREADS_ENV] = str(threads)
    # A thread count set in the environment would count as the user's choice and turn mlplab's policy off.
    with tempfile.TemporaryDirectory(prefix="busy_machine_") as folder:
        out = Path(folder) / "run"
        started = time.perf_counter()
        try:
            done = subprocess.run(command(workload, threads, out), cwd=folder, env=env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"    {workload} timed out after {timeout:.0f} s", flush=True)
            return Run(time.perf_counter() - started, failed=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            print(f"    {workload} failed (exit status {done.returncode}):\n{tail}", flush=True)
            return Run(wall, failed=True)
        return parse(workload, done.stdout, wall, out)


def start_hogs(kind: str, count: int) -> list[subprocess.Popen]:
    """``count`` busy processes, each returned once it has said it is spinning."""
    hogs = []
    for _ in range(count):
        hogs.append(subprocess.Popen([sys.executable, "-c", HOGS[kind]], stdout=subprocess.PIPE, text=True))
        hogs[-1].stdout.readline()
    return hogs


def describe(run: Run, default: bool) -> str:
    """One run's log line: seconds, wall, accuracy, prediction, the default's choice, the other work beside it."""
    if run.failed:
        return "failed"
    return (f"{run.time:6.2f} s (wall {run.wall:5.1f} s)"
            + (f"  acc {run.accuracy:.2f}%" if run.accuracy is not None else "")
            + (f"  predicted {run.predicted:.1f} s" if run.predicted is not None else "")
            + (f"  threads {run.threads}" if default else "") + f"  [other work: {run.background:.1f} CPUs]")


def measure_condition(hog_count: int, workloads: list[str], settings: list[int | None],
                      args: argparse.Namespace) -> dict[tuple[str, int | None], list[Run]]:
    """Every (workload, thread setting) beside ``hog_count`` hogs, the settings taking turns each round."""
    runs: dict[tuple[str, int | None], list[Run]] = {(w, s): [] for w in workloads for s in settings}
    hogs: list[subprocess.Popen] = []
    try:
        hogs = start_hogs(args.hog, hog_count)
        for workload in workloads:
            for round_ in range(args.rounds):
                for setting in settings:
                    run = run_beside(workload, setting, hogs, args.timeout)
                    runs[workload, setting].append(run)
                    print(f"  {hog_count} hog(s)  {workload:<8} {setting_name(setting):<10} round {round_ + 1}: "
                          + describe(run, setting is None), flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return runs


def setting_name(setting: int | None) -> str:
    return "default" if setting is None else f"threads {setting}"


def seconds_cell(runs: list[Run]) -> tuple[float | None, str]:
    """The median seconds of a cell's runs, and the cell's text: † when other work took > BACKGROUND CPUs."""
    times = [run.time for run in runs if not run.failed]
    if not times:
        return None, "failed"
    noisy = any(run.background > BACKGROUND for run in runs if not run.failed)
    return statistics.median(times), f"{statistics.median(times):.2f}" + ("†" if noisy else "")


def table_row(where: str, cell: dict[int | None, list[Run]], verdicts: list[tuple[str, str, bool]]) -> str:
    """One markdown row; appends (target, cell, met) to ``verdicts``."""
    medians, texts = zip(*(seconds_cell(runs) for runs in cell.values()))
    times = dict(zip(cell, medians))
    fixed = {s: t for s, t in times.items() if s is not None and t is not None}
    best = min(fixed, key=fixed.get) if fixed else None
    ratio = times[None] / fixed[best] if best is not None and times[None] is not None else None
    if ratio is not None:
        verdicts.append(("ratio", where, ratio <= DEFAULT_RATIO_TARGET))
    predictions = []
    for setting, runs in cell.items():
        pairs = [run.predicted / run.seconds for run in runs if not run.failed and run.predicted and run.seconds]
        if pairs:
            value = statistics.median(pairs)
            predictions.append(f"{value:.2f}")
            ok = 1 / PREDICTION_TARGET <= value <= PREDICTION_TARGET
            verdicts.append(("prediction", f"{where} {setting_name(setting)}", ok))
    chosen = " / ".join(dict.fromkeys(run.threads for run in cell[None] if not run.failed)) or "-"
    return (f"| {where.replace(' ', ' | ', 1)} | " + " | ".join(texts) + f" | {chosen} | "
            + ("-" if best is None else str(best)) + " | " + ("-" if ratio is None else f"{ratio:.2f}") + " | "
            + (" / ".join(predictions) or "-") + " |")


def machine() -> str:
    """CPU model, CPU count, torch version and the date."""
    model = platform.processor() or "unknown CPU"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{model}, {os.cpu_count()} CPUs; torch {torch.__version__}; Python {platform.python_version()}; "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")


def report(results: dict, workloads: list[str], settings: list[int | None], args: argparse.Namespace) -> None:
    """The markdown table, its notes and one line per target."""
    verdicts: list[tuple[str, str, bool]] = []
    print(f"\n{machine()}; hogs: {args.hog}; {args.rounds} round(s) per cell"
          + (" (medians)" if args.rounds > 1 else "") + "\n")
    print("| busy | workload | " + " | ".join(f"{setting_name(s)} s" for s in settings)
          + " | default chose | best fixed | default ÷ best | predicted ÷ measured |")
    print("|---" * (len(settings) + 6) + "|")
    for hog_count, runs in results.items():
        condition = "idle" if hog_count == 0 else f"{hog_count}×{args.hog}"
        for workload in workloads:
            print(table_row(f"{condition} {workload}", {s: runs[workload, s] for s in settings}, verdicts))
    print("\nSeconds: training seconds the tool printed (the sum of epoch times; the estimator's fit; the sweep's "
          "total), not process start-up. predicted ÷ measured: the sweep plan's, per setting. *: the first choice as "
          f"printed (the run recorded none: a sweep). †: other work on the machine took over {BACKGROUND} CPUs meanwhile.")
    for key, target in (("ratio", f"default ÷ best fixed <= {DEFAULT_RATIO_TARGET}"),
                        ("prediction", f"sweep predicted ÷ measured within {PREDICTION_TARGET}x")):
        outcomes = [(where, met) for name, where, met in verdicts if name == key]
        missed = [where for where, met in outcomes if not met]
        state = "no data" if not outcomes else ("met" if not missed else "NOT met")
        print(f"target {target}: {state} ({len(outcomes) - len(missed)} of {len(outcomes)} cells)"
              + (f"; missed in: {', '.join(missed)}" if missed else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, of {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--conditions", default="0,1,2",
                        help="numbers of busy processes, comma-separated (default: 0,1,2)")
    parser.add_argument("--hog", choices=sorted(HOGS), default="python",
                        help="a busy process: a Python spin loop or a 2-thread PyTorch matmul loop (default: python)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per cell; cells report the median (default: 1)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run is stopped (default: 900)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: fast and sweep, idle and one hog")
    args = parser.parse_args()
    if args.quick:
        args.workloads, args.conditions = "fast,sweep", "0,1"
    workloads = [name.strip() for name in args.workloads.split(",") if name.strip()]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    conditions = [int(count) for count in args.conditions.split(",") if count.strip()]
    if args.rounds < 1 or any(count < 0 for count in conditions):
        parser.error("--rounds must be at least 1 and --conditions at least 0")
    settings = list(dict.fromkeys([None, 1, os.cpu_count() or 1]))  # default, 1, N (N = 1: just two)
    print(machine(), flush=True)
    results = {}
    for hog_count in conditions:
        print(f"\n{hog_count} busy {args.hog} process(es):", flush=True)
        results[hog_count] = measure_condition(hog_count, workloads, settings, args)
    report(results, workloads, settings, args)


if __name__ == "__main__":
    main()
