"""Seconds per training epoch: mlplab vs a lab-style DataLoader pipeline vs scikit-learn.

All three train the same 784-16-32-24-10 ReLU net with plain SGD (momentum 0.9, lr 0.01)
on the same 50,000 MNIST training images, one epoch each, in this one process:

  mlplab      the whole split as one tensor, batches drawn by index (mlplab.training.train_epoch)
  dataloader  torch.utils.data.Dataset + DataLoader written the way the labs do with
              torchvision: uint8 image -> PIL image -> ToTensor -> Normalize, per sample
              (torchvision's own code path, restated here because torchvision is not a dependency)
  sklearn     sklearn.neural_network.MLPClassifier, solver="sgd", same layers and batch size,
              given float32 inputs (its fastest path), one epoch (max_iter=1)

Each entry is the median of --repeats epochs after a warm-up, each contender measured in a
fresh process of its own. Targets (issue 2): mlplab at
batch 64 and 256 is >= 10x faster than dataloader and >= 1.5x faster than sklearn.

    pip install -e ".[bench]"
    MLPLAB_DATA_DIR=/path/to/mnist python benchmarks/epoch_speed.py
"""

from __future__ import annotations

import argparse
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
CONTENDERS = ("mlplab", "dataloader", "sklearn")


def median_seconds(run_epoch: Callable[[], None], repeats: int) -> float:
    """Median wall time of ``repeats`` epochs, after one untimed warm-up epoch."""
    run_epoch()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_epoch()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def mlplab_epoch(batch_size: int, data_dir: str | None, threads: int | None) -> Callable[[], None]:
    """One epoch of mlplab's own loop, with the thread count `mlplab train` would use."""
    overrides = {"hidden": HIDDEN, "lr": LR, "momentum": MOMENTUM, "batch_size": batch_size,
                 "device": "cpu", "progress": False, "threads": threads}
    if data_dir:
        overrides["data_dir"] = data_dir
    run = prepare(apply_overrides(Config(), overrides))
    epoch = iter(range(1, 10**6))

    def run_epoch():
        run.train_batches.set_epoch(next(epoch))
        with using_threads(run.threads):
            train_epoch(run.model, run.train_batches, run.loss_fn, run.optimizer)

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
    """transforms.Compose([ToTensor(), Normalize((0.1307,), (0.3081,))]) as torchvision runs it."""
    array = np.array(image, dtype=np.uint8, copy=True)
    tensor = torch.from_numpy(array).view(image.size[1], image.size[0], 1).permute(2, 0, 1).contiguous()
    tensor = tensor.to(torch.float32).div(255)
    mean = torch.as_tensor((MEAN,), dtype=tensor.dtype).view(-1, 1, 1)
    std = torch.as_tensor((STD,), dtype=tensor.dtype).view(-1, 1, 1)
    return tensor.sub_(mean).div_(std)


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


def measure(contender: str, batch_size: int, repeats: int, data_dir: str | None, threads: int | None) -> float:
    """Seconds per epoch of one contender, measured in this process."""
    if contender == "mlplab":
        return median_seconds(mlplab_epoch(batch_size, data_dir, threads), repeats)
    # The baselines get the raw uint8 images of the same 50k training split.
    train = MNIST(data_dir or os.environ.get("MLPLAB_DATA_DIR", "data"), train=True, download=True)
    images, labels = train.data[:50_000].numpy(), train.targets[:50_000].numpy()
    make = dataloader_epoch if contender == "dataloader" else sklearn_epoch
    return median_seconds(make(images, labels, batch_size), repeats)


def measure_apart(contender: str, batch_size: int, args: argparse.Namespace) -> float:
    """`measure` in a fresh Python process: no thread pool or cache left over from another contender.

    (sklearn's OpenBLAS threads keep spinning for a while after each call, which slows
    PyTorch's threads on a small machine if both live in one process.)
    """
    command = [sys.executable, __file__, "--only", contender, "--batch-sizes", str(batch_size),
               "--repeats", str(args.repeats)]
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    command += ["--threads", str(args.threads)] if args.threads else []
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="4,64,256", help="comma-separated (default: 4,64,256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per entry (default: 3)")
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files (default: MLPLAB_DATA_DIR)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads for every contender (default: each one's own default; "
                             "mlplab uses 1 below batch 128)")
    parser.add_argument("--skip", default="", help="comma-separated baselines to skip: dataloader,sklearn")
    parser.add_argument("--only", choices=CONTENDERS, help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only:
        print(measure(args.only, int(args.batch_sizes), args.repeats, args.data_dir, args.threads))
        return

    skip = set(filter(None, args.skip.split(",")))
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads by default); 50000 training images; "
          f"net 784-{'-'.join(map(str, HIDDEN))}-10, SGD lr {LR} momentum {MOMENTUM}; median of {args.repeats}, "
          "each contender in its own process")
    print(f"{'batch':>5} {'mlplab s':>9} {'dataloader s':>12} {'sklearn s':>9} {'vs dataloader':>13} {'vs sklearn':>10}")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        seconds = {name: measure_apart(name, batch_size, args) if name not in skip else float("nan")
                   for name in CONTENDERS}
        ours, loader, sk = seconds["mlplab"], seconds["dataloader"], seconds["sklearn"]
        print(f"{batch_size:>5} {ours:>9.3f} {loader:>12.3f} {sk:>9.3f} {loader / ours:>12.1f}x {sk / ours:>9.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
