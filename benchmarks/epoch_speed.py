"""Seconds per training epoch: mlplab vs a lab-style DataLoader pipeline vs scikit-learn.

All contenders train the same 784-16-32-24-10 ReLU net with SGD (momentum 0.9, lr 0.01)
on the same 50,000 MNIST training images:

  mlplab       `mlplab train`'s loop as it runs by default: the whole split as one tensor,
               batches drawn by index, gradients from the manual engine (engine="auto")
  autograd     the same loop with engine="autograd": zero grad, forward, loss.backward(), step
  scratch      the same loop with engine="scratch": the step computed in NumPy by mlplab.scratch
  dataloader   torch.utils.data.Dataset + DataLoader written the way the labs do with
               torchvision: uint8 image -> PIL image -> ToTensor -> Normalize, per sample
               (torchvision's own code path, restated here because torchvision is not a dependency)
  sklearn      sklearn.neural_network.MLPClassifier, solver="sgd", same layers and batch size,
               given float32 inputs (its fastest path), one epoch (max_iter=1)
  handwritten  (with --ceiling) a hand-written PyTorch epoch with no autograd, meters or module
               calls: about the fastest any PyTorch loop can be on this machine

Each contender lives in a worker process of its own (no thread pool is shared), set up and
warmed up by one untimed epoch. Then the workers take turns, one epoch each, for --rounds
rounds, with a short pause between turns so the last one's idle threads have gone to sleep;
the order rotates every round. This small VM's speed swings by up to 2x within seconds (a
pure-Python loop on an idle machine takes 0.06 to 0.12 s), so only epochs run close together
compare fairly: each ratio is the median over rounds of that round's ratio, printed with its
quartiles; seconds are medians over rounds.
Targets: mlplab at batch 64 and 256 is >= 10x faster than dataloader and >= 1.5x faster than
sklearn (issue 2); scratch is within 3x of the torch engines at batch 256 (issue 3), i.e. its
"vs scratch" ratio (scratch seconds / mlplab seconds) is at most 3.

    pip install -e ".[bench]"
    python benchmarks/epoch_speed.py            # MNIST: the bundled copy, or --data-dir / MLPLAB_DATA_DIR
"""

from __future__ import annotations

import argparse
import contextlib
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
from mlplab.data import MNIST, bundled_folder, get_spec
from mlplab.training import prepare, train_epoch
from mlplab.threads import ThreadGovernor, model_work, using_threads

HIDDEN = (16, 32, 24)
LR, MOMENTUM = 0.01, 0.9
# The lab net and its plain SGD, stated in full: mlplab's default recipe (Nesterov, one-cycle) is not measured here.
LAB_NET = {"hidden": HIDDEN, "lr": LR, "momentum": MOMENTUM, "nesterov": False, "scheduler": "none"}
MEAN, STD = 0.1307, 0.3081
CONTENDERS = ("mlplab", "autograd", "scratch", "dataloader", "sklearn", "handwritten")


def mlplab_epoch(batch_size: int, data_dir: str | None, threads: int | None,
                 engine: str = "auto") -> Callable[[], None]:
    """One epoch of mlplab's own loop, with the thread count and engine `mlplab train` would use."""
    overrides = {**LAB_NET, "batch_size": batch_size, "device": "cpu", "progress": False, "threads": threads,
                 "engine": engine}
    if data_dir:
        overrides["data_dir"] = data_dir
    setup = prepare(apply_overrides(Config(), overrides))
    step = setup.engine.step(setup.model, setup.loss_fn, setup.optimizer)  # built once per run, as fit does
    epoch = iter(range(1, 10**6))

    def run_epoch():
        setup.train_batches.set_epoch(next(epoch))
        with ThreadGovernor(setup.config.train.threads, work=model_work(setup.model, batch_size),
                            numpy_blas=setup.engine.name == "scratch"):  # as fit chooses
            train_epoch(setup.model, setup.train_batches, setup.loss_fn, setup.optimizer, step=step)

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
    overrides = {**LAB_NET, "batch_size": batch_size, "device": "cpu", "progress": False}
    setup = prepare(apply_overrides(Config(), {**overrides, **({"data_dir": data_dir} if data_dir else {})}))
    images, labels = setup.data.train.images.reshape(len(setup.data.train), -1), setup.data.train.labels
    weights = [layer.weight.detach() for layer in setup.model.linears()]
    biases = [layer.bias.detach() for layer in setup.model.linears()]
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


def make_epoch(contender: str, batch_size: int, data_dir: str | None, threads: int | None) -> Callable[[], None]:
    """One contender's epoch, set up in this process: call it to train one epoch."""
    if contender in ("mlplab", "autograd", "scratch"):
        return mlplab_epoch(batch_size, data_dir, threads, engine="auto" if contender == "mlplab" else contender)
    if contender == "handwritten":
        return handwritten_epoch(batch_size, data_dir)
    # The baselines get the raw uint8 images of the same 50k training split.
    train = MNIST(data_dir or os.environ.get("MLPLAB_DATA_DIR") or bundled_folder(get_spec("mnist")), train=True)
    images, labels = train.data[:50_000].numpy(), train.targets[:50_000].numpy()
    make = dataloader_epoch if contender == "dataloader" else sklearn_epoch
    return make(images, labels, batch_size)


def serve(contender: str, batch_size: int, data_dir: str | None, threads: int | None) -> None:
    """Worker: set up, train one untimed epoch, say "ready"; then time one epoch per line read."""
    if threads is None and contender == "handwritten":  # as mlplab does: one thread for small batches
        threads = 1 if batch_size < 128 else torch.get_num_threads()
    with using_threads(threads) if threads else contextlib.nullcontext():
        run_epoch = make_epoch(contender, batch_size, data_dir, threads)
        run_epoch()
        print("ready", flush=True)
        for _ in sys.stdin:
            started = time.perf_counter()
            run_epoch()
            print(time.perf_counter() - started, flush=True)


class Worker:
    """One contender in a process of its own, training an epoch whenever asked."""

    def __init__(self, contender: str, batch_size: int, args: argparse.Namespace) -> None:
        command = [sys.executable, __file__, "--serve", contender, "--batch-sizes", str(batch_size)]
        command += ["--data-dir", args.data_dir] if args.data_dir else []
        command += ["--threads", str(args.threads)] if args.threads else []
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {contender} worker failed to start (exit status {self.process.wait()})")

    def epoch(self) -> float:
        """Seconds the worker took for one more epoch."""
        self.process.stdin.write("epoch\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def paired_ratios(theirs: list[float], ours: list[float]) -> list[float]:
    """Each round's ratio of their seconds to ours (> 1: ours is that many times faster), sorted."""
    return sorted(other / mine for other, mine in zip(theirs, ours, strict=True))


def take_turns(names: list[str], batch_size: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per epoch of each contender, one epoch per turn, the order rotating every round."""
    workers = {name: Worker(name, batch_size, args) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        for round_ in range(args.rounds):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                time.sleep(args.pause)  # let the previous turn's spinning BLAS/OpenMP threads go to sleep
                times[name].append(workers[name].epoch())
    finally:
        for worker in workers.values():
            worker.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="4,64,256", help="comma-separated (default: 4,64,256)")
    parser.add_argument("--rounds", type=int, default=9,
                        help="epochs timed per contender, one per round (default: 9)")
    parser.add_argument("--pause", type=float, default=0.25, help="seconds of rest before each turn (default: 0.25)")
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files (default: MLPLAB_DATA_DIR, else the bundled copy)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads for every contender (default: each one's own default; "
                             "mlplab uses 1 below batch 128)")
    parser.add_argument("--skip", default="",
                        help="comma-separated contenders to skip: autograd,scratch,dataloader,sklearn")
    parser.add_argument("--ceiling", action="store_true",
                        help="also time a hand-written, autograd-free PyTorch epoch: the most any torch loop could do")
    parser.add_argument("--serve", choices=CONTENDERS, help=argparse.SUPPRESS)  # internal: a worker process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, int(args.batch_sizes), args.data_dir, args.threads)
        return

    skip = set(filter(None, args.skip.split(","))) | (set() if args.ceiling else {"handwritten"})
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads by default); 50000 training images; "
          f"net 784-{'-'.join(map(str, HIDDEN))}-10, SGD lr {LR} momentum {MOMENTUM}; {args.rounds} rounds, "
          "one epoch per contender each; seconds: median over rounds; ratios: median of each round's "
          "ratio (quartiles)")
    names = [name for name in CONTENDERS if name not in skip]
    others = [name for name in names if name != "mlplab"]
    print(f"{'batch':>5} " + " ".join(f"{name + ' s':>{max(9, len(name) + 2)}}" for name in names)
          + "".join(f" {'vs ' + name:>20}" for name in others))
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        times = take_turns(names, batch_size, args)
        line = f"{batch_size:>5} " + " ".join(f"{statistics.median(times[n]):>{max(9, len(n) + 2)}.3f}" for n in names)
        for name in others:
            ratios = paired_ratios(times[name], times["mlplab"])
            low, middle, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            line += f" {f'{statistics.median(ratios):.2f}x ({low:.2f}-{high:.2f})':>20}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
