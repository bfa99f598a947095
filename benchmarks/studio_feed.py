"""What watching a run in `mlplab studio` costs its training: the same run with and without the studio's
callbacks (`mlplab.Steering` and `LiveFeed`, publishing into a sink as the studio's hub would), on an
idle machine and beside a busy process.

The feed scores 1,000 held-out images every 20 steps (at most 20 times a second) and pictures the
first layer at most twice a second; Steering looks for a request before every step. Both runs train
the same config in this process, one after the other, alternating over rounds so drift hits both;
the time is the sum of the history's epoch seconds (training and validation, no data loading).

    python benchmarks/studio_feed.py                  # the studio's default run and the fast preset, idle and busy
    python benchmarks/studio_feed.py --rounds 5 --conditions 0

Target: watched / plain <= 1.10 on every row (the class should not be waiting for the pictures).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from busy_machine import start_hogs  # noqa: E402 - the benchmarks' shared busy process

# name -> the page's fields (`mlplab.studio.session.DEFAULTS` for the first)
WORKLOADS = {
    "studio default (784-128-10, batch 64, 3 epochs)": {},
    "fast preset (784-384-10, batch 256, 2 epochs, bf16-mixed)": {"preset": "fast"},
}
TARGET = 1.10


def train_seconds(fields: dict, watched: bool, out: Path) -> float:
    """Train the run the page's ``fields`` describe; returns the sum of its epochs' seconds."""
    from mlplab.studio.feed import PROBE_SIZE, LiveFeed
    from mlplab.studio.session import Studio
    from mlplab.training.runner import prepare, train_prepared
    from mlplab.training.steering import Steering

    studio = Studio(out)
    config = studio.config_of(fields)
    setup = prepare(config)
    callbacks = []
    if watched:
        steering = Steering()
        split = setup.data.val
        feed = LiveFeed(lambda kind, data: None, (split.images[:PROBE_SIZE], split.labels[:PROBE_SIZE]),
                        paused_seconds=lambda: steering.paused_seconds)
        callbacks = [steering, feed]
    history = train_prepared(setup, callbacks=callbacks)
    return sum(record["seconds"] for record in history.epochs)


def measure(fields: dict, rounds: int) -> tuple[list[float], list[float]]:
    plain, watched = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(rounds):
            for kind, times in (("plain", plain), ("watched", watched)):
                out = Path(scratch) / f"{kind}-{round_}"
                times.append(train_seconds(fields, kind == "watched", out))
                shutil.rmtree(out, ignore_errors=True)
    return plain, watched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind per row (median; default 3)")
    parser.add_argument("--conditions", type=int, nargs="+", default=[0, 1], help="busy processes beside (default 0 1)")
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"{'run':<50} {'busy':>4} {'plain s':>8} {'watched s':>10} {'ratio':>6}")
    worst = 0.0
    for hogs_count in args.conditions:
        hogs = start_hogs("torch", hogs_count)
        try:
            for name, fields in WORKLOADS.items():
                plain, watched = measure(fields, args.rounds)
                ratio = statistics.median(watched) / statistics.median(plain)
                worst = max(worst, ratio)
                print(f"{name:<50} {hogs_count:>4} {statistics.median(plain):>8.2f} {statistics.median(watched):>10.2f} "
                      f"{ratio:>6.3f}", flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    print(f"worst ratio {worst:.3f}: {'within' if worst <= TARGET else 'OVER'} the target {TARGET}")


if __name__ == "__main__":
    main()
