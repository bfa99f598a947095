"""Drop-in stand-ins for torchvision's MNIST, FashionMNIST and KMNIST datasets.

A lab's ``DataLoader(MNIST("data", train=True, transform=...), batch_size=64, shuffle=True)``
works with only its import changed. Differences from torchvision: items are already
tensors (1, 28, 28) float32 in [0, 1], what ``transforms.ToTensor()`` would give, so a
transform receives that tensor rather than a PIL image; files are checksum-verified.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mlplab.data.arrays import read_dataset
from mlplab.data.registry import DatasetSpec, get_spec
from mlplab.data.source import candidate_folders, fetch_missing, find_folder, missing_files
from mlplab.errors import MlplabError


class MNIST(Dataset[tuple[Any, Any]]):
    """MNIST as torchvision exposes it: ``.data`` (N, 28, 28) uint8, ``.targets`` (N,) int64, ``.classes``.

    Args:
        root: folder holding ``MNIST/raw/`` (torchvision's layout; ``root/mnist/`` or ``root`` itself
            also work).
        train: the 60k training images if True, else the 10k test images.
        transform: applied to each (1, 28, 28) float32 image in [0, 1].
        target_transform: applied to each int label.
        download: fetch missing files into ``root/MNIST/raw/``.
    """

    dataset = "mnist"  # registry name; subclasses change only this

    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        transform: Callable[[torch.Tensor], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = False,
    ) -> None:
        super().__init__()
        self.root = os.path.expanduser(root) if isinstance(root, str) else root
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        self.spec: DatasetSpec = get_spec(self.dataset)
        self.classes = list(self.spec.classes)
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        raw = read_dataset(self.spec, self._folder(download))
        images, labels = (raw.train_images, raw.train_labels) if train else (raw.test_images, raw.test_labels)
        self.data = torch.from_numpy(np.array(images, copy=True))  # own copy: the cached arrays are shared
        self.targets = torch.from_numpy(labels.astype(np.int64))

    @property
    def raw_folder(self) -> str:
        """Where torchvision keeps (and ``download=True`` puts) the files: ``root/<Name>/raw``."""
        return os.path.join(self.root, self.spec.torchvision_folder, "raw")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = self.data[index].unsqueeze(0).to(torch.float32).div_(255.0)  # (1, 28, 28) in [0, 1]
        target = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        split = "Train" if self.train else "Test"
        return (
            f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
            f"    Root location: {self.root}\n    Split: {split}"
        )

    def _folder(self, download: bool) -> Path:
        """The folder with all four files, downloading the missing ones into ``raw_folder`` if asked."""
        root = Path(self.root)
        found = find_folder(self.spec, root)
        if found is not None:
            return found
        raw = Path(self.raw_folder)
        if not download:
            looked = ", ".join(str(folder) for folder in candidate_folders(self.spec, root))
            raise MlplabError(
                f"{self.spec.title} files not found (looked in {looked}); pass download=True "
                f"or copy {', '.join(missing_files(self.spec, raw))} into {raw}"
            )
        fetch_missing(self.spec, raw)
        return raw


class FashionMNIST(MNIST):
    """Fashion-MNIST, files in ``root/FashionMNIST/raw/``; same interface as `MNIST`."""

    dataset = "fashion-mnist"


class KMNIST(MNIST):
    """Kuzushiji-MNIST, files in ``root/KMNIST/raw/``; same interface as `MNIST`."""

    dataset = "kmnist"
