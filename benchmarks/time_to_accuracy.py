"""Seconds of training until the MNIST test accuracy first reaches 97%, 98% and 99%, recipe against recipe.

Contenders, each trained in this process one after another, on the same machine and data:

  fast      mlplab's ``fast`` preset, run as ``mlplab train --preset fast`` runs it (run directory,
            checkpoints, validation each epoch: all on the clock)
  best      mlplab's ``best`` preset, likewise (up to 15 minutes; leave it out with --recipes)
  labs      the labs' recipe: the lab net 784-16-32-24-10, SGD lr 0.01 momentum 0.9, batch 64,
            through a torch DataLoader over a torchvision-style dataset (PIL image -> ToTensor ->
            Normalize per sample; `epoch_speed.py`'s pipeline)
  sklearn   scikit-learn's MLPClassifier with its defaults (100 hidden units, adam, batch 200) and
            early_stopping=True, on float32 inputs
  keras     the Keras example mnist_mlp written in plain PyTorch with the tensors in memory:
            784-512-512-10 ReLU, dropout 0.2, Glorot-uniform weights, RMSprop (lr 1e-3, rho 0.9,
            eps 1e-7), batch 128, 20 epochs, inputs x / 255, all 60,000 training images

After every epoch each contender's test accuracy on the 10,000 test images is measured off
the clock (the clock stops while it is scored); the time to a threshold is the training
time up to the end of the first epoch whose test accuracy reaches it. For scikit-learn
the clock stops at each of its epochs through a hook on its per-epoch bookkeeping
(``_update_no_improvement_count``, a private method: if a scikit-learn release renames it,
only the final accuracy and total time are reported). Ratios are the other recipe's seconds
over ``fast``'s (higher: ``fast`` is that many times quicker).

Target (issue 16): ``fast`` reaches 98% in at least 5x less time than the Keras recipe.

    pip install -e ".[bench]"
    python benchmarks/time_to_accuracy.py                       # fast, labs, sklearn, keras
    python benchmarks/time_to_accuracy.py --recipes fast,best   # the best preset too (about 15 min)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))  # epoch_speed's lab pipeline

from epoch_speed import LabMNIST, lab_model, lab_transform  # noqa: E402

from mlplab.config import apply_overrides, from_preset  # noqa: E402
from mlplab.data import MNIST, bundled_folder, get_spec  # noqa: E402
from mlplab.training import Callback, evaluate, prepare  # noqa: E402
from mlplab.training.runner import train_prepared  # noqa: E402

THRESHOLDS = (0.97, 0.98, 0.99)
RECIPES = ("fast", "best", "labs", "sklearn", "keras")
LAB_EPOCHS, SKLEARN_EPOCHS, KERAS_EPOCHS = 15, 200, 20
Curve = list[tuple[float, float]]  # (training seconds so far, test accuracy) after each epoch


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


def mlplab_curve(preset: str, seed: int, data_dir: str | None) -> Curve:
    """``mlplab train --preset PRESET`` into a temporary run directory, scored on the test set every epoch."""
    overrides = {"device": "cpu", "progress": False, "seed": seed}
    if data_dir:
        overrides["data_dir"] = data_dir
    curve: Curve = []
    with tempfile.TemporaryDirectory() as folder:
        setup = prepare(apply_overrides(from_preset(preset), {**overrides, "out": str(Path(folder) / "run")}))
        train_prepared(setup, callbacks=[TestEachEpoch(setup.test_batches, curve)])
    return curve


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


def time_to(curve: Curve, threshold: float) -> float | None:
    """Training seconds at the end of the first epoch whose test accuracy reaches ``threshold``."""
    return next((seconds for seconds, accuracy in curve if accuracy >= threshold), None)


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


def seconds_cell(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}"


def ratio_cell(theirs: float | None, ours: float | None, their_total: float) -> str:
    """Their seconds over ours; ``> N x`` when they never got there (N from their whole training time)."""
    if ours is None:
        return "-"
    return f"> {their_total / ours:.1f}x" if theirs is None else f"{theirs / ours:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="fast,labs,sklearn,keras",
                        help=f"comma-separated, of {', '.join(RECIPES)} (default: all but best)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="MNIST folder (default: the copy bundled with mlplab)")
    parser.add_argument("--max-epochs", type=int, help="cap the other recipes' epochs (a quick check of the script)")
    args = parser.parse_args()
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    data = load(args.data_dir)
    cap = args.max_epochs or 10**6
    runners: dict[str, Callable[[], Curve]] = {
        "fast": lambda: mlplab_curve("fast", args.seed, args.data_dir),
        "best": lambda: mlplab_curve("best", args.seed, args.data_dir),
        "labs": lambda: labs_curve(data, args.seed, min(LAB_EPOCHS, cap)),
        "sklearn": lambda: sklearn_curve(data, args.seed, min(SKLEARN_EPOCHS, cap)),
        "keras": lambda: keras_curve(data, args.seed, min(KERAS_EPOCHS, cap)),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seed {args.seed}", flush=True)
    curves = {}
    for name in recipes:
        curves[name] = runners[name]()
        seconds, accuracy = curves[name][-1]
        best = max(a for _, a in curves[name])
        print(f"{name}: {len(curves[name])} epochs, {seconds:.1f} s of training, last test accuracy "
              f"{100 * accuracy:.2f}% (best {100 * best:.2f}%)", flush=True)
    header = " | ".join(f"s to {100 * t:.0f}%" for t in THRESHOLDS)
    ratios = " | ".join(f"vs fast at {100 * t:.0f}%" for t in THRESHOLDS) if "fast" in curves else ""
    print(f"\n| recipe | epochs | training s | best test % | {header} |" + (f" {ratios} |" if ratios else ""))
    print("|---" * (4 + len(THRESHOLDS) * (2 if ratios else 1)) + "|")
    for name, curve in curves.items():
        cells = [seconds_cell(time_to(curve, t)) for t in THRESHOLDS]
        if ratios:
            cells += [ratio_cell(time_to(curve, t), time_to(curves["fast"], t), curve[-1][0]) for t in THRESHOLDS]
        print(f"| {name} | {len(curve)} | {curve[-1][0]:.1f} | {100 * max(a for _, a in curve):.2f} | "
              + " | ".join(cells) + " |")
    print("\n'-': the threshold was never reached; '> Nx': fast reached it and the other recipe never did "
          "(N: its whole training time over fast's time to it).")


if __name__ == "__main__":
    main()
