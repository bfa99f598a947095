"""Where scikit-learn's NumPy loop wins at batch 4, and what mlplab's engines cost there (issue 28, part 3).

At batch 4 (the tutorial lab's batch size) a training step of the lab net 784-16-32-24-10 does
almost no arithmetic: what it costs is the price of each call. This script measures, on one
thread, in one process, with the contenders taking turns round after round (medians):

1. Per call: the same small operation in NumPy and in PyTorch (a matrix product, a bias add, a
   ReLU, a column sum, the SGD-with-momentum update of one weight matrix).
2. Per step: one training step at batch 4 and 64, done by scikit-learn's MLPClassifier (its own
   forward pass, backprop and SGD update, called as its ``_fit_stochastic`` calls them), by
   mlplab's manual engine (`ManualStep`, PyTorch) and by mlplab's scratch engine (`ScratchStep`,
   NumPy), and how many PyTorch operations the manual step runs (``torch.profiler``).
3. Per epoch at batch 4 (50,000 MNIST images, 12,500 steps): scikit-learn's ``fit`` for one
   epoch; the manual step alone over batches gathered beforehand; mlplab's `train_epoch` with
   that step (gathering, meters, the non-finite-loss check: what `mlplab train` runs); and
   `train_epoch` with the scratch engine.

    pip install -e ".[bench]"
    python benchmarks/small_batch.py
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from mlplab.engines import ManualStep, ScratchStep
from mlplab.engines.optimizer_step import OptimizerStep
from mlplab.losses import build_loss
from mlplab.models import MLP

HIDDEN = (16, 32, 24)
LR, MOMENTUM = 0.01, 0.9


def per_call(function: Callable[[], object], calls: int) -> float:
    """Microseconds per call over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls * 1e6


def interleaved(contenders: dict[str, Callable[[], object]], calls: int, rounds: int) -> dict[str, float]:
    """Median µs per call of each contender, the contenders taking turns every round (drift hits all alike)."""
    for function in contenders.values():
        per_call(function, max(1, calls // 10))  # warm-up
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, function in contenders.items():
            times[name].append(per_call(function, calls))
    return {name: statistics.median(values) for name, values in times.items()}


def operations(batch: int) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """The same operation in NumPy and PyTorch, on the lab net's first-layer shapes at ``batch``."""
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((batch, 784), dtype=np.float32), rng.standard_normal((784, 16), dtype=np.float32)
    b, h = rng.standard_normal(16, dtype=np.float32), rng.standard_normal((batch, 16), dtype=np.float32)
    g, v = rng.standard_normal((784, 16), dtype=np.float32), np.zeros((784, 16), dtype=np.float32)
    tx, tW, tb, th, tg, tv = (torch.from_numpy(a.copy()) for a in (x, W, b, h, g, v))
    parameter = torch.nn.Parameter(tW.clone())
    parameter.grad = tg.clone()
    optimizer = torch.optim.SGD([parameter], lr=LR, momentum=MOMENTUM)
    fused = OptimizerStep(torch.optim.SGD([parameter], lr=LR, momentum=MOMENTUM, fused=True))  # as mlplab builds it
    fused()  # the first step goes through .step() and makes the momentum buffer

    def numpy_sgd():  # scikit-learn's SGDOptimizer: v = momentum v - lr g; W += v
        np.multiply(v, MOMENTUM, out=v)
        np.subtract(v, LR * g, out=v)
        np.add(W, v, out=W)

    return {
        f"matmul ({batch},784)x(784,16)": (lambda: x @ W, lambda: tx @ tW),
        f"bias add ({batch},16)": (lambda: h + b, lambda: th + tb),
        f"relu in place ({batch},16)": (lambda: np.maximum(h, 0, out=h), lambda: th.relu_()),
        f"column sum ({batch},16)": (lambda: h.sum(axis=0), lambda: th.sum(dim=0)),
        "SGD momentum update (784,16): optimizer.step()": (numpy_sgd, optimizer.step),
        "the same, by mlplab's OptimizerStep (fused kernel)": (numpy_sgd, fused),
    }


def sklearn_step(images: np.ndarray, labels: np.ndarray, batch: int) -> Callable[[], None]:
    """One step of scikit-learn's SGD loop, as ``MLPClassifier._fit_stochastic`` takes it (private API)."""
    from sklearn.neural_network import MLPClassifier

    classifier = MLPClassifier(HIDDEN, solver="sgd", batch_size=batch, learning_rate_init=LR, momentum=MOMENTUM,
                               nesterovs_momentum=False, max_iter=1, random_state=0)
    classifier.partial_fit(images[:batch], labels[:batch], classes=np.arange(10))  # builds its arrays and optimizer
    layer_units = [784, *HIDDEN, 10]
    activations = [images[:batch]] + [np.empty((batch, n), dtype=np.float32) for n in layer_units[1:]]
    deltas = [np.empty_like(a) for a in activations[1:]]
    coef_grads = [np.empty((n_in, n_out), dtype=np.float32) for n_in, n_out in zip(layer_units[:-1], layer_units[1:])]
    intercept_grads = [np.empty(n, dtype=np.float32) for n in layer_units[1:]]
    y = classifier._label_binarizer.transform(labels[:batch]).astype(np.float32)
    optimizer = classifier._optimizer
    weighted = "sample_weight" in inspect.signature(classifier._backprop).parameters  # scikit-learn >= 1.7

    def step():
        activations[0] = images[:batch]
        extra = (None,) if weighted else ()
        loss, coef, intercept = classifier._backprop(images[:batch], y, *extra, activations, deltas, coef_grads,
                                                     intercept_grads)
        optimizer.update_params(classifier.coefs_ + classifier.intercepts_, coef + intercept)

    return step


def mlplab_steps(images: np.ndarray, labels: np.ndarray, batch: int) -> dict[str, Callable[[], object]]:
    """mlplab's manual (PyTorch) and scratch (NumPy) steps on the same batch."""
    x, y = torch.from_numpy(images[:batch]), torch.from_numpy(labels[:batch])
    steps = {}
    for name, kind in (("mlplab manual (torch)", ManualStep), ("mlplab scratch (numpy)", ScratchStep)):
        torch.manual_seed(0)
        model = MLP(hidden=HIDDEN)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, fused=True)  # as mlplab builds it
        step = kind(model, build_loss("cross_entropy", "logits"), optimizer)
        steps[name] = lambda step=step: step(x, y)
    return steps


def torch_ops_per_step(images: np.ndarray, labels: np.ndarray, batch: int) -> int:
    """How many top-level PyTorch operations one manual step runs."""
    step = mlplab_steps(images, labels, batch)["mlplab manual (torch)"]
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step()
    return sum(1 for event in profile.events() if event.cpu_parent is None and event.name.startswith("aten::"))


def epochs(rounds: int) -> dict[str, float]:
    """Median seconds of one batch-4 epoch of each contender, taking turns for ``rounds`` rounds."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from mlplab.config import Config, apply_overrides
    from mlplab.training import prepare, train_epoch

    lab = {"hidden": HIDDEN, "lr": LR, "momentum": MOMENTUM, "nesterov": False, "scheduler": "none", "batch_size": 4,
           "device": "cpu", "progress": False, "threads": 1}
    setups = {engine: prepare(apply_overrides(Config(), {**lab, "engine": engine})) for engine in ("manual", "scratch")}
    manual = setups["manual"]
    step = manual.engine.step(manual.model, manual.loss_fn, manual.optimizer)
    gathered = list(manual.train_batches)  # 12,500 batches of the 50,000 training images
    train = manual.data.train
    inputs = train.images.reshape(len(train), -1).numpy()
    labels = train.labels.numpy()

    def sklearn_epoch():
        classifier = MLPClassifier(HIDDEN, solver="sgd", batch_size=4, learning_rate_init=LR, momentum=MOMENTUM,
                                   nesterovs_momentum=False, max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(inputs, labels)

    def steps_alone():
        for images, targets in gathered:
            step(images, targets)

    scratch = setups["scratch"]
    contenders = {
        "scikit-learn fit, 1 epoch": sklearn_epoch,
        "manual step alone": steps_alone,
        "train_epoch, manual": lambda: train_epoch(manual.model, manual.train_batches, manual.loss_fn,
                                                   manual.optimizer, step=step, threads=1),
        "train_epoch, scratch": lambda: train_epoch(scratch.model, scratch.train_batches, scratch.loss_fn,
                                                    scratch.optimizer, engine="scratch", threads=1),
    }
    return {name: us / 1e6 for name, us in interleaved(contenders, 1, rounds).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits  # scikit-learn's dependency: NumPy's BLAS on one thread too

        threadpool_limits(1)
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    images = rng.standard_normal((256, 784), dtype=np.float32)
    labels = rng.integers(0, 10, 256)
    print(f"torch {torch.__version__}, numpy {np.__version__}, one thread; medians of {args.rounds} interleaved rounds\n")
    print("| operation (batch 4) | NumPy µs | PyTorch µs | PyTorch / NumPy |\n|---|---|---|---|")
    for name, (numpy_call, torch_call) in operations(4).items():
        times = interleaved({"numpy": numpy_call, "torch": torch_call}, args.calls, args.rounds)
        print(f"| {name} | {times['numpy']:.2f} | {times['torch']:.2f} | {times['torch'] / times['numpy']:.2f}x |")
    print()
    for batch in (4, 64):
        contenders = {"scikit-learn (numpy)": sklearn_step(images, labels, batch), **mlplab_steps(images, labels, batch)}
        times = interleaved(contenders, max(200, args.calls // 4), args.rounds)
        steps = 50_000 / batch
        print(f"batch {batch}: " + "; ".join(f"{name} {us:.1f} µs a step ({us * steps / 1e6:.2f} s an epoch of "
                                              f"{steps:.0f} steps)" for name, us in times.items()))
        print(f"  the manual step runs {torch_ops_per_step(images, labels, batch)} PyTorch operations")
    print("\n| one epoch at batch 4 (12,500 steps) | seconds |\n|---|---|")
    for name, seconds in epochs(args.rounds).items():
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
