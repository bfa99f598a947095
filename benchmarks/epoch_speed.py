"""Seconds per training epoch: mlplab vs a lab-style DataLoader pipeline vs scikit-learn.

All contenders train the same 784-16-32-24-10 ReLU net with SGD (momentum 0.9, lr 0.01)
on the same 50,000 MNIST training images:

  mlplab       `mlplab train`'s loop as it runs by default: the whole split as one tensor,
               batches drawn by index, gradients from the manual engine (engine="auto")
  autograd     the same loop with engine="autograd": zero grad, forward, loss.backward(), step
  dataloader   torch.utils.data.Dataset + DataLoader written the way the labs do with
               torchvision: uint8 image -> PIL image -> ToTensor -> Normalize, per sample
               (torchvision's own code path, restated here because torchvision is not a dependency)
  sklearn      sklearn.neural_network.MLPClassifier, solver="sgd", same layers and batch size,
               given float32 inputs (its fastest path), one epoch (max_iter=1)
  handwritten  (with --ceiling) a hand-written PyTorch epoch with no autograd, meters or module
               calls: about the fastest any PyTorch loop can be on this machine

In each of --rounds rounds every contender runs in a fresh process of its own, one after the
other (no thread pool is shared), times --repeats epochs after a warm-up epoch and keeps the
fastest (as timeit does: on a shared machine the others only add other tenants' noise).
Seconds are medians over the rounds; each ratio is the median over the rounds of that round's
ratio, so a slow spell, which falls on one round, cancels out.
Targets (issue 2): mlplab at batch 64 and 256 is >= 10x faster than dataloader and >= 1.5x
faster than sklearn.

    pip install -e ".[bench]"
    MLPLAB_DATA_DIR=/path/to/mnist python benchmarks/epoch_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mlplab.config import Config, apply_overrides
from mlplab.data import MNIST
from mlplab.training import prepare, train_epoch
from mlplab.training.device import using_threads

HIDDEN = (16, 32, 24)
LR, MOMENTUM = 0.01, 0.9
MEAN, STD = 0.1307, 0.3081
CONTENDERS = ("mlplab", "autograd", "dataloader", "sklearn", "handwritten")


def epoch_seconds(run_epoch: Callable[[], None], repeats: int) -> list[float]:
    """Wall times of ``repeats`` epochs, after one untimed warm-up epoch."""
    run_epoch()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_epoch()
        times.append(time.perf_counter() - started)
    return times


def mlplab_epoch(batch_size: int, data_dir: str | None, threads: int | None,
                 engine: str = "auto") -> Callable[[], None]:
    """One epoch of mlplab's own loop, with the thread count and engine `mlplab train` would use."""
    overrides = {"hidden": HIDDEN, "lr": LR, "momentum": MOMENTUM, "batch_size": batch_size,
                 "device": "cpu", "progress": False, "threads": threads, "engine": engine}
    if data_dir:
        overrides["data_dir"] = data_dir
    run = prepare(apply_overrides(Config(), overrides))
    epoch = iter(range(1, 10**6))

    def run_epoch():
        run.train_batches.set_epoch(next(epoch))
        with using_threads(run.threads):
            train_epoch(run.model, run.train_batches, run.loss_fn, run.optimizer, engine=run.engine)

    return run_epoch


class LabMNIST(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST's __getitem__: a PIL image through the transform, per sample."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.data, self.targets, self.transform = torch.from_numpy(images), torch.from_numpy(labels), transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        from PIL import Image

        image, target = self.data[index], int(self.targets[index])
        image = Image.fromarray(image.numpy(), mode="L")
        return self.transform(image), target


def lab_transform(image) -> torch.Tensor:
    """transforms.Compose([ToTensor(), Normalize((0.1307,), (0.3081,))]), step by step as torchvision runs them."""
    # ToTensor: PIL "L" image -> uint8 HxWx1 -> 1xHxW -> float in [0, 1].
    array = np.array(image, dtype=np.uint8, copy=True)
    tensor = torch.from_numpy(array).view(image.size[1], image.size[0], 1).permute(2, 0, 1).contiguous()
    tensor = tensor.to(torch.float32).div(255)
    # Normalize (inplace=False): copy, per-channel mean/std tensors, a zero-std check, then subtract and divide.
    tensor = tensor.clone()
    mean = torch.as_tensor((MEAN,), dtype=tensor.dtype)
    std = torch.as_tensor((STD,), dtype=tensor.dtype)
    if not bool((std != 0).all()):
        raise ValueError("std evaluated to zero")
    return tensor.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))


def lab_model() -> nn.Module:
    layers, width = [nn.Flatten()], 784
    for hidden in HIDDEN:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 10))


def dataloader_epoch(images: np.ndarray, labels: np.ndarray, batch_size: int) -> Callable[[], None]:
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(LabMNIST(images, labels, lab_transform), batch_size=batch_size, shuffle=True)
    model = lab_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()

    def run_epoch():
        model.train()
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()

    return run_epoch


def sklearn_epoch(images: np.ndarray, labels: np.ndarray, batch_size: int) -> Callable[[], None]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    inputs = ((images.reshape(len(images), -1).astype(np.float32) / 255) - MEAN) / STD

    def run_epoch():
        classifier = MLPClassifier(HIDDEN, solver="sgd", batch_size=batch_size, learning_rate_init=LR,
                                   momentum=MOMENTUM, nesterovs_momentum=False, max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(inputs, labels)

    return run_epoch


def handwritten_epoch(batch_size: int, data_dir: str | None) -> Callable[[], None]:
    """The fastest PyTorch epoch we know how to write, as a ceiling for any torch-based loop.

    No autograd (gradients by hand), no meters, no module calls, and the fused SGD kernel
    called directly: what is left is the arithmetic and PyTorch's per-op dispatch.
    """
    overrides = {"hidden": HIDDEN, "batch_size": batch_size, "device": "cpu", "progress": False}
    run = prepare(apply_overrides(Config(), {**overrides, **({"data_dir": data_dir} if data_dir else {})}))
    images, labels = run.data.train.images.reshape(len(run.data.train), -1), run.data.train.labels
    weights = [layer.weight.detach() for layer in run.model.linears()]
    biases = [layer.bias.detach() for layer in run.model.linears()]
    parameters = [t for pair in zip(weights, biases) for t in pair]
    buffers = [torch.zeros_like(p) for p in parameters]
    last = len(weights) - 1

    def run_epoch():
        for index in torch.randperm(len(labels)).split(batch_size):
            x, y = images.index_select(0, index), labels.index_select(0, index)
            activations = [x]
            for i, (W, b) in enumerate(zip(weights, biases)):  # forward: h = relu(h W^T + b)
                h = torch.addmm(b, activations[-1], W.t())
                activations.append(h.relu_() if i < last else h)
            g = torch.softmax(activations[-1], dim=1)  # dL/dz of mean cross-entropy: (p - onehot) / B
            g[torch.arange(len(y)), y] -= 1
            g /= len(y)
            grads: list[torch.Tensor] = [g] * len(parameters)
            for i in range(last, -1, -1):  # backward: dW = g^T h, db = sum g, g <- (g W) * [h > 0]
                grads[2 * i], grads[2 * i + 1] = g.t().mm(activations[i]), g.sum(0)
                if i > 0:
                    g = g.mm(weights[i]).mul_(activations[i] > 0)
            torch._fused_sgd_(parameters, grads, buffers, weight_decay=0.0, momentum=MOMENTUM, lr=LR,
                              dampening=0.0, nesterov=False, maximize=False, is_first_step=False,
                              grad_scale=None, found_inf=None)

    return run_epoch


def measure(contender: str, batch_size: int, repeats: int, data_dir: str | None, threads: int | None) -> list[float]:
    """Seconds per epoch of one contender, measured in this process."""
    if contender == "mlplab":
        return epoch_seconds(mlplab_epoch(batch_size, data_dir, threads), repeats)
    if contender == "autograd":
        return epoch_seconds(mlplab_epoch(batch_size, data_dir, threads, engine="autograd"), repeats)
    if contender == "handwritten":
        with using_threads(threads or (1 if batch_size < 128 else torch.get_num_threads())):
            return epoch_seconds(handwritten_epoch(batch_size, data_dir), repeats)
    # The baselines get the raw uint8 images of the same 50k training split.
    train = MNIST(data_dir or os.environ.get("MLPLAB_DATA_DIR", "data"), train=True, download=True)
    images, labels = train.data[:50_000].numpy(), train.targets[:50_000].numpy()
    make = dataloader_epoch if contender == "dataloader" else sklearn_epoch
    return epoch_seconds(make(images, labels, batch_size), repeats)


def measure_apart(contender: str, batch_size: int, args: argparse.Namespace) -> list[float]:
    """`measure` in a fresh Python process: no thread pool or cache left over from another contender.

    (sklearn's OpenBLAS threads keep spinning for a while after each call, which slows
    PyTorch's threads on a small machine if both live in one process.)
    """
    command = [sys.executable, __file__, "--only", contender, "--batch-sizes", str(batch_size),
               "--repeats", str(args.repeats)]
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    command += ["--threads", str(args.threads)] if args.threads else []
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="4,64,256", help="comma-separated (default: 4,64,256)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of one fresh process per contender (default: 5)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed epochs per process, the fastest kept (default: 3)")
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files (default: MLPLAB_DATA_DIR)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads for every contender (default: each one's own default; "
                             "mlplab uses 1 below batch 128)")
    parser.add_argument("--skip", default="",
                        help="comma-separated contenders to skip: autograd,dataloader,sklearn")
    parser.add_argument("--ceiling", action="store_true",
                        help="also time a hand-written, autograd-free PyTorch epoch: the most any torch loop could do")
    parser.add_argument("--only", choices=CONTENDERS, help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only:
        print(json.dumps(measure(args.only, int(args.batch_sizes), args.repeats, args.data_dir, args.threads)))
        return

    skip = set(filter(None, args.skip.split(","))) | (set() if args.ceiling else {"handwritten"})
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads by default); 50000 training images; "
          f"net 784-{'-'.join(map(str, HIDDEN))}-10, SGD lr {LR} momentum {MOMENTUM}; {args.rounds} rounds x "
          f"{args.repeats} epochs (fastest kept), a fresh process per contender and round; seconds are medians "
          "over rounds, ratios are medians of each round's ratio")
    names = [name for name in CONTENDERS if name not in skip]
    print(f"{'batch':>5} " + " ".join(f"{name + ' s':>{max(9, len(name) + 2)}}" for name in names)
          + "".join(f" {'vs ' + name:>{max(9, len(name) + 3)}}" for name in names if name != "mlplab"))
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.rounds):  # contenders take turns, so a slow spell of the machine hits all
            for name in names:
                times[name].append(min(measure_apart(name, batch_size, args)))
        line = f"{batch_size:>5} " + " ".join(f"{statistics.median(times[n]):>{max(9, len(n) + 2)}.3f}" for n in names)
        for name in names:
            if name != "mlplab":  # > 1: mlplab is that many times faster; paired within each round
                ratio = statistics.median(other / ours for other, ours in zip(times[name], times["mlplab"]))
                line += f" {ratio:>{max(9, len(name) + 3) - 1}.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
