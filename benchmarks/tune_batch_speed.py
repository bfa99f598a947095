"""Wall time of an `mlplab tune` study with --batch 1 (one trial at a time) against --batch K.

Each study is a fresh `mlplab tune` process (start-up, data and every trial included), in a
fresh folder with its own SQLite file; the two settings run interleaved, --repeats times, so a
busy machine slows both alike. Trials are 1 epoch (so no trial is pruned: the median pruner never
stops a trial at its last epoch, and both settings train the same number of epochs).

  same      --preset lab (784-16-32-24-10, SGD, batch 64) over lr, momentum and weight_decay:
            every trial has one shape, so a batch of K trains as one vectorised program
  default   the default flags and the default space (depth, width and batch size vary too):
            nearly every trial is a program of its own

    python benchmarks/tune_batch_speed.py --trials 16 --batch 8 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
SAME_SHAPE = """\
[lr]
low = 0.005
high = 0.2
log = true

[momentum]
low = 0.0
high = 0.95

[weight_decay]
low = 1e-6
high = 1e-3
log = true
"""


def study_seconds(space: str, trials: int, batch: int, folder: Path) -> float:
    """Seconds one `mlplab tune` worker takes to finish a study of ``trials`` trials."""
    args = ["tune", "--study", "bench", "--trials", str(trials), "--epochs", "1", "--batch", str(batch),
            "--out", str(folder), "--no-download", "--device", "cpu"]
    if space == "same":
        (folder.parent / "space.toml").write_text(SAME_SHAPE)
        args += ["--preset", "lab", "--space", str(folder.parent / "space.toml")]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlplab", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16, help="trials per study (default: 16)")
    parser.add_argument("--batch", type=int, default=8, help="K of --batch K (default: 8)")
    parser.add_argument("--repeats", type=int, default=3, help="studies per setting, interleaved (default: 3)")
    parser.add_argument("--spaces", default="same,default", help="which spaces: same, default (default: both)")
    args = parser.parse_args()
    for space in args.spaces.split(","):
        times: dict[int, list[float]] = {1: [], args.batch: []}
        with tempfile.TemporaryDirectory() as root:
            for repeat in range(args.repeats):
                for batch in times:
                    folder = Path(root) / f"{space}-{batch}-{repeat}" / "study"
                    folder.parent.mkdir(parents=True)
                    times[batch].append(study_seconds(space, args.trials, batch, folder))
                    print(f"{space} space, --batch {batch}: {times[batch][-1]:.1f} s", flush=True)
        one, many = (statistics.median(times[batch]) for batch in times)
        print(f"{space} space, {args.trials} trials: --batch 1 {one:.1f} s, --batch {args.batch} {many:.1f} s "
              f"(medians of {args.repeats}): {one / many:.2f}x")


if __name__ == "__main__":
    main()
