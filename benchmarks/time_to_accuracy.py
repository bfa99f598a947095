"""Seconds of training until the MNIST test accuracy first reaches 97%, 98% and 99%, recipe against recipe,
seed by seed, reported as a speedrun is.

Contenders, each trained in this process one after another, on the same machine and data:

  fast      mlplab's ``fast`` preset, run as ``mlplab train --preset fast`` runs it (run directory,
            checkpoints, validation each epoch: all on the clock)
  fast99    mlplab's ``fast99`` preset (99% in about 21 s), likewise
  best      mlplab's ``best`` preset, likewise (about 13 minutes; leave it out with --recipes)
  labs      the labs' recipe: the lab net 784-16-32-24-10, SGD lr 0.01 momentum 0.9, batch 64,
            through a torch DataLoader over a torchvision-style dataset (PIL image -> ToTensor ->
            Normalize per sample; `epoch_speed.py`'s pipeline)
  sklearn   scikit-learn's MLPClassifier with its defaults (100 hidden units, adam, batch 200) and
            early_stopping=True, on float32 inputs
  keras     the Keras example mnist_mlp written in plain PyTorch with the tensors in memory:
            784-512-512-10 ReLU, dropout 0.2, Glorot-uniform weights, RMSprop (lr 1e-3, rho 0.9,
            eps 1e-7), batch 128, 20 epochs, inputs x / 255, all 60,000 training images

The clock. It starts when training starts (the data already in memory, the model built: the
seconds that took are printed as "load s", off the clock) and runs through every epoch's
training, validation, checkpoints and run-directory writes. It stops only while the 10,000
test images are scored after each epoch, and at the end. The time to a threshold is the
training time at the end of the first epoch whose test accuracy reaches it. "test %" is what
the recipe hands over: for mlplab the test accuracy in metrics.json (the weights of the best
validation epoch, or for ``best``, which holds none out, of the best training epoch), for the
others the last epoch's. For scikit-learn the clock stops at each
of its epochs through a hook on its per-epoch bookkeeping (``_update_no_improvement_count``, a
private method: if a scikit-learn release renames it, only the final accuracy and total time
are reported).

Every recipe runs once per seed (``--seeds``); the report gives every seed's row, then the mean
and sample standard deviation over seeds, the slowest seed, and how many seeds reached each
threshold (the mean time to a threshold is over the seeds that reached it). The machine line
names the CPU, its cores, PyTorch, the threads each run used and what ran beside it:
``--busy`` starts one CPU-bound process first (`busy_machine.py`'s hogs), as a laptop with
other work open would have.

Targets (issue 28), on the 2-core development machine, idle:
  fast    98% in <= 1.0 s mean over 10 seeds, no seed above 1.3 s
  fast99  99.0% test accuracy, mean of 5 seeds, in <= 30 s of training
  best    >= 99.55% test accuracy, mean of 3 seeds, within 15 minutes

    pip install -e ".[bench]"
    python benchmarks/time_to_accuracy.py                                   # fast, fast99, labs, sklearn, keras
    python benchmarks/time_to_accuracy.py --recipes fast --seeds 0-9        # the fast target
    python benchmarks/time_to_accuracy.py --recipes fast99 --seeds 0-4 --busy torch
    python benchmarks/time_to_accuracy.py --recipes best --seeds 0-2        # about 40 minutes
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))  # epoch_speed's lab pipeline, busy_machine's hogs

import busy_machine  # noqa: E402
from busy_machine import HOGS, start_hogs  # noqa: E402
from epoch_speed import LabMNIST, lab_model, lab_transform  # noqa: E402

from mlplab.config import apply_overrides, from_preset  # noqa: E402
from mlplab.data import MNIST, bundled_folder, get_spec  # noqa: E402
from mlplab.training import Callback, evaluate, prepare  # noqa: E402
from mlplab.training.runner import train_prepared  # noqa: E402

THRESHOLDS = (0.97, 0.98, 0.99)
RECIPES = ("fast", "fast99", "best", "labs", "sklearn", "keras")
MLPLAB_RECIPES = ("fast", "fast99", "best")
LAB_EPOCHS, SKLEARN_EPOCHS, KERAS_EPOCHS = 15, 200, 20
Curve = list[tuple[float, float]]  # (training seconds so far, test accuracy) after each epoch


@dataclass
class Trial:
    """One recipe trained once, with one seed."""

    seed: int
    curve: Curve  # (training seconds so far, test accuracy) after each epoch
    accuracy: float  # the test accuracy of what the recipe hands over
    load: float = 0.0  # seconds to load the data and build the model, off the clock
    threads: str = ""  # the CPU threads it trained on

    @property
    def seconds(self) -> float:
        return self.curve[-1][0]

    def time_to(self, threshold: float) -> float | None:
        """Training seconds at the end of the first epoch whose test accuracy reaches ``threshold``."""
        return next((seconds for seconds, accuracy in self.curve if accuracy >= threshold), None)


class Stopwatch:
    """Training time with pauses: ``lap()`` stops the clock and returns the seconds so far; ``go()`` restarts it."""

    def __init__(self) -> None:
        self.total, self.started = 0.0, time.perf_counter()

    def lap(self) -> float:
        self.total += time.perf_counter() - self.started
        return self.total

    def go(self) -> None:
        self.started = time.perf_counter()


class TestEachEpoch(Callback):
    """Stops the clock at each epoch's end (after the run directory's commit), scores the test set, restarts it."""

    def __init__(self, test_batches, curve: Curve) -> None:
        self.test_batches, self.curve, self.watch = test_batches, curve, None

    def on_fit_start(self, state) -> None:
        self.watch = Stopwatch()

    def on_epoch_end(self, state, record) -> None:
        seconds = self.watch.lap()
        accuracy = evaluate(state.eval_model, self.test_batches, state.loss)["accuracy"]
        state.model.train()
        self.curve.append((seconds, accuracy))
        self.watch.go()


def mlplab_trial(preset: str, seed: int, data_dir: str | None, threads: int | None,
                 changes: dict[str, str] | None = None) -> Trial:
    """``mlplab train --preset PRESET --seed SEED`` into a temporary run directory, scored on the test set every epoch;
    ``changes``: settings changed from the preset's (as ``--set`` gives them)."""
    overrides = {**(changes or {}), "device": "cpu", "progress": False, "seed": seed, "threads": threads}
    if data_dir:
        overrides["data_dir"] = data_dir
    curve: Curve = []
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        setup = prepare(apply_overrides(from_preset(preset), {**overrides, "out": str(Path(folder) / "run")}))
        load = time.perf_counter() - started
        history = train_prepared(setup, callbacks=[TestEachEpoch(setup.test_batches, curve)])
    used = "/".join(dict.fromkeys(str(entry["threads"]) for entry in history.threads or [])) or "?"
    return Trial(seed, curve, history.metrics["test_accuracy"], load, used)


def test_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = int((model(images).argmax(dim=1) == labels).sum())
    model.train()
    return correct / len(labels)


def labs_curve(data: dict, seed: int, epochs: int = LAB_EPOCHS) -> Curve:
    """The lab net through a DataLoader, as the labs write it (`epoch_speed.py`), for LAB_EPOCHS epochs."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(LabMNIST(data["train_images"], data["train_labels"], lab_transform),
                                         batch_size=64, shuffle=True)
    test_images = torch.stack([lab_transform(image) for image in data["test_pil"]])
    model, loss_fn = lab_model(), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    curve, watch = [], Stopwatch()
    for _ in range(epochs):
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss_fn(model(inputs), targets).backward()
            optimizer.step()
        seconds = watch.lap()
        curve.append((seconds, test_accuracy(model, test_images, data["test_labels_t"])))
        watch.go()
    return curve


def keras_curve(data: dict, seed: int, epochs: int = KERAS_EPOCHS) -> Curve:
    """Keras's mnist_mlp example in plain PyTorch, tensors in memory, all 60,000 training images."""
    torch.manual_seed(seed)
    x = torch.from_numpy(data["all_images"]).reshape(-1, 784).float() / 255
    y = torch.from_numpy(data["all_labels"]).long()
    test = torch.from_numpy(data["test_images"]).reshape(-1, 784).float() / 255
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 512), nn.ReLU(),
                          nn.Dropout(0.2), nn.Linear(512, 10))
    for layer in model:
        if isinstance(layer, nn.Linear):  # Keras's Dense: glorot_uniform kernel, zero bias
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    curve, watch = [], Stopwatch()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), 128):
            index = order[start:start + 128]
            optimizer.zero_grad()
            loss_fn(model(x[index]), y[index]).backward()
            optimizer.step()
        seconds = watch.lap()
        curve.append((seconds, test_accuracy(model, test, data["test_labels_t"])))
        watch.go()
    return curve


def sklearn_curve(data: dict, seed: int, epochs: int = SKLEARN_EPOCHS) -> Curve:
    """MLPClassifier(adam, early_stopping=True) with its defaults; the clock stops at each of its epochs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    scale = lambda images: images.reshape(len(images), -1).astype(np.float32) / 255  # noqa: E731
    x, test = scale(data["all_images"]), scale(data["test_images"])
    curve: Curve = []
    watch = Stopwatch()

    class Timed(MLPClassifier):
        def _update_no_improvement_count(self, *args, **kwargs):  # once per epoch, after its updates
            seconds = watch.lap()
            coefs, intercepts = self.coefs_, self.intercepts_
            hidden = np.maximum(test @ coefs[0] + intercepts[0], 0)
            curve.append((seconds, float(((hidden @ coefs[1] + intercepts[1]).argmax(axis=1)
                                          == data["test_labels"]).mean())))
            watch.go()
            return super()._update_no_improvement_count(*args, **kwargs)

    classifier = Timed(solver="adam", early_stopping=True, max_iter=epochs, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x, data["all_labels"])
    total = watch.lap()
    if not curve:  # the hook was never called: another scikit-learn; report the end only
        curve.append((total, float(classifier.score(test, data["test_labels"]))))
    return curve


def load(data_dir: str | None) -> dict:
    root = data_dir or os.environ.get("MLPLAB_DATA_DIR") or str(bundled_folder(get_spec("mnist")))
    train, test = MNIST(root, train=True), MNIST(root, train=False)
    from PIL import Image

    data = {"all_images": train.data.numpy(), "all_labels": train.targets.numpy().astype(np.int64),
            "test_images": test.data.numpy(), "test_labels": test.targets.numpy().astype(np.int64)}
    # The labs train on the first 50,000 (as mlplab's presets, whose validation split is the last 10,000).
    data["train_images"], data["train_labels"] = data["all_images"][:50_000], data["all_labels"][:50_000]
    data["test_pil"] = [Image.fromarray(image, mode="L") for image in data["test_images"]]
    data["test_labels_t"] = torch.from_numpy(data["test_labels"])
    return data



def mean_sd(values: list[float], digits: int, scale: float = 1.0) -> str:
    """``mean ± sd`` (the sample standard deviation); one value alone."""
    if not values:
        return "-"
    mean = statistics.mean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def cell(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def recipe_table(name: str, trials: list[Trial]) -> list[str]:
    """Every seed's row, then mean ± sd, the slowest seed and how many seeds reached each threshold."""
    header = " | ".join(f"s to {100 * t:.0f}%" for t in THRESHOLDS)
    lines = [f"{name}, {len(trials)} seed(s):", "",
             f"| seed | epochs | load s | training s | test % | {header} | threads |",
             "|---" * (6 + len(THRESHOLDS)) + "|"]
    for trial in trials:
        lines.append(f"| {trial.seed} | {len(trial.curve)} | {trial.load:.1f} | {trial.seconds:.2f} | "
                     f"{100 * trial.accuracy:.2f} | " + " | ".join(cell(trial.time_to(t)) for t in THRESHOLDS)
                     + f" | {trial.threads} |")
    reached = [[trial.time_to(t) for trial in trials if trial.time_to(t) is not None] for t in THRESHOLDS]
    lines.append(f"| mean ± sd | | | {mean_sd([t.seconds for t in trials], 2)} | "
                 f"{mean_sd([t.accuracy for t in trials], 2, 100)} | "
                 + " | ".join(mean_sd(times, 2) for times in reached) + " | |")
    lines.append(f"| slowest | | | {max(t.seconds for t in trials):.2f} | {100 * min(t.accuracy for t in trials):.2f} "
                 "(lowest) | " + " | ".join(cell(max(times)) if times else "-" for times in reached) + " | |")
    lines.append("| reached | | | | | " + " | ".join(f"{len(times)}/{len(trials)}" for times in reached) + " | |")
    return lines


def summary_table(results: dict[str, list[Trial]]) -> list[str]:
    """One row per recipe: mean ± sd over its seeds, and its mean time to each threshold over fast's
    (higher: fast is that many times quicker; ``> N x``: fast got there and the recipe never did,
    N its whole training time over fast's time to it)."""
    header = " | ".join(f"s to {100 * t:.0f}% (seeds)" for t in THRESHOLDS)
    against = [t for t in THRESHOLDS if "fast" in results and mean_time(results["fast"], t) is not None]
    ratios = "".join(f" vs fast at {100 * t:.0f}% |" for t in against)
    lines = [f"| recipe | seeds | training s | test % | {header} |{ratios}",
             "|---" * (4 + len(THRESHOLDS) + len(against)) + "|"]
    for name, trials in results.items():
        cells = []
        for threshold in THRESHOLDS:
            times = [t.time_to(threshold) for t in trials if t.time_to(threshold) is not None]
            cells.append(f"{mean_sd(times, 2)} ({len(times)}/{len(trials)})" if times else f"- (0/{len(trials)})")
        for threshold in against:
            ours, theirs = mean_time(results["fast"], threshold), mean_time(trials, threshold)
            total = statistics.mean(t.seconds for t in trials)
            cells.append(f"> {total / ours:.1f}x" if theirs is None else f"{theirs / ours:.1f}x")
        lines.append(f"| {name} | {len(trials)} | {mean_sd([t.seconds for t in trials], 2)} | "
                     f"{mean_sd([t.accuracy for t in trials], 2, 100)} | " + " | ".join(cells) + " |")
    return lines


def mean_time(trials: list[Trial], threshold: float) -> float | None:
    """The mean time to ``threshold`` over the seeds that reached it; None if none did."""
    times = [t.time_to(threshold) for t in trials if t.time_to(threshold) is not None]
    return statistics.mean(times) if times else None


def machine(threads: int | None, busy: str | None) -> str:
    """`busy_machine.machine`'s line (CPU model, CPUs, PyTorch, Python, date) with the cores, the threads and what
    ran beside: the line a record is stated with."""
    import psutil

    return (f"{busy_machine.machine()}; {psutil.cpu_count(logical=False)} cores; threads: "
            f"{threads if threads else 'mlplab chooses (per run below)'}; "
            f"beside: {f'one busy process ({busy})' if busy else 'nothing (idle)'}")


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,3,7`` (or both: ``0-2,9``)."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="fast,fast99,labs,sklearn,keras",
                        help=f"comma-separated, of {', '.join(RECIPES)} (default: all but best)")
    parser.add_argument("--seeds", default="0", help="seeds, e.g. 0-4 or 0,3,7 (default 0)")
    parser.add_argument("--threads", type=int, help="CPU threads for mlplab's recipes (default: mlplab chooses)")
    parser.add_argument("--busy", choices=sorted(HOGS), help="run beside one busy process of this kind")
    parser.add_argument("--data-dir", help="MNIST folder (default: the copy bundled with mlplab)")
    parser.add_argument("--max-epochs", type=int, help="cap the other recipes' epochs (a quick check of the script)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change mlplab's recipes: config fields as in a TOML file or the flags (epochs=7 lr=0.5)")
    args = parser.parse_args()
    changes = dict(item.split("=", 1) for item in args.set)
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    seeds = parse_seeds(args.seeds)
    data = load(args.data_dir) if set(recipes) - set(MLPLAB_RECIPES) else None
    cap = args.max_epochs or 10**6
    runners: dict[str, Callable[[int], Trial]] = {
        **{name: (lambda seed, name=name: mlplab_trial(name, seed, args.data_dir, args.threads, changes))
           for name in MLPLAB_RECIPES},
        "labs": lambda seed: other_trial(seed, labs_curve(data, seed, min(LAB_EPOCHS, cap))),
        "sklearn": lambda seed: other_trial(seed, sklearn_curve(data, seed, min(SKLEARN_EPOCHS, cap))),
        "keras": lambda seed: other_trial(seed, keras_curve(data, seed, min(KERAS_EPOCHS, cap))),
    }
    hogs = start_hogs(args.busy, 1) if args.busy else []
    try:
        print(machine(args.threads, args.busy) + (f"; changed: {' '.join(args.set)}" if args.set else ""), flush=True)
        results: dict[str, list[Trial]] = {}
        for name in recipes:
            for seed in seeds:
                trial = runners[name](seed)
                results.setdefault(name, []).append(trial)
                print(f"{name} seed {seed}: {len(trial.curve)} epochs, {trial.seconds:.2f} s of training, test "
                      f"{100 * trial.accuracy:.2f}%; " + ", ".join(f"{100 * t:.0f}% at {cell(trial.time_to(t))} s"
                                                                   for t in THRESHOLDS), flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print()
    for name, trials in results.items():
        print("\n".join(recipe_table(name, trials)) + "\n")
    print("\n".join(summary_table(results)))
    print("\n'-': never reached. The mean time to a threshold is over the seeds that reached it (in brackets).")


def other_trial(seed: int, curve: Curve) -> Trial:
    """A contender's trial: it hands over its last epoch's model, trained on torch's own thread count."""
    return Trial(seed, curve, curve[-1][1], threads=str(torch.get_num_threads()))


if __name__ == "__main__":
    main()
