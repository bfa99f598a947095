"""Seconds for the symmetry experiment: all seeds at once (batched) against one network at a time.

`mlplab experiment symmetry` trains every seed as one batched tensor program. The baseline,
measured in the same run, is the same code given one seed at a time (what a loop over seeds
would do). Both use the paper's settings; the baseline trains --baseline-seeds seeds and is
scaled to --seeds, since its time grows linearly with the number of seeds.
Target (issue 5): report how long 100 seeds x 20,000 sweeps take on 2 cores.

    python benchmarks/symmetry_speed.py            # 100 seeds x 20,000 sweeps
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from mlplab.experiments.symmetry import SymmetryConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds trained at once (default: 100)")
    parser.add_argument("--sweeps", type=int, default=20_000, help="sweeps per seed (default: 20000)")
    parser.add_argument("--baseline-seeds", type=int, default=5, help="seeds timed one at a time (default: 5)")
    args = parser.parse_args()
    config = SymmetryConfig(seeds=args.seeds, sweeps=min(1425, args.sweeps), long_sweeps=args.sweeps)

    started = time.perf_counter()
    batched = train(config)
    batched_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for seed in range(args.baseline_seeds):
        train(replace(config, seeds=1, first_seed=seed))
    one_at_a_time = (time.perf_counter() - started) / args.baseline_seeds * args.seeds

    solved = int((batched.solved_at >= 0).sum())
    print(f"{args.seeds} seeds x {args.sweeps:,} sweeps, paper's settings ({solved} seeds solved)")
    print(f"batched:        {batched_seconds:8.1f} s")
    print(f"one at a time:  {one_at_a_time:8.1f} s (measured on {args.baseline_seeds} seeds, scaled to {args.seeds})")
    print(f"speed-up:       {one_at_a_time / batched_seconds:8.1f}x")


if __name__ == "__main__":
    main()
