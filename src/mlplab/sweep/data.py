"""The data a sweep trains on: each dataset's splits in the sweep's layout, loaded once (`SweepDataCache`).

A sweep whose programs differ only in the network or the optimizer reads one dataset; one
that sweeps ``dataset``, ``normalize`` or the split reads several. Each is loaded the first
time a program asks for it (`data_key` says which programs share one) and kept for the
sweep, since the plan and then the training read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mlplab.config import Config
from mlplab.data import DataBundle, load_data
from mlplab.sweep.members import SHARED_FIELDS
from mlplab.device import resolve_device


@dataclass
class SweepData:
    """A dataset's splits as a sweep reads them: flattened (N, n_0) images in the training dtype."""

    bundle: DataBundle
    train_images: Tensor  # (N, n_0)
    train_labels: Tensor  # (N,) int64
    val: tuple[Tensor, Tensor] | None
    test: tuple[Tensor, Tensor]

    @classmethod
    def from_bundle(cls, bundle: DataBundle, dtype: torch.dtype = torch.float32) -> "SweepData":
        """Flatten the bundle's splits and convert them to ``dtype`` (float32 keeps the same memory)."""
        def split(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
            return images.flatten(1).to(dtype).contiguous(), labels

        val = split(bundle.val.images, bundle.val.labels) if bundle.val is not None else None
        return cls(bundle, *split(bundle.train.images, bundle.train.labels), val,
                   split(bundle.test.images, bundle.test.labels))

    @property
    def in_features(self) -> int:
        return self.train_images.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.bundle.spec.classes)

    @property
    def nbytes(self) -> int:
        """Bytes of every split's images and labels."""
        splits = [(self.train_images, self.train_labels), self.val, self.test]
        return sum(t.numel() * t.element_size() for split in splits if split is not None for t in split)


def load_sweep_data(config: Config, dtype: torch.dtype = torch.float32) -> SweepData:
    """The data of ``config`` (as ``prepare`` loads it: device, split, normalisation) in the sweep's layout."""
    device = resolve_device(config.train.device)
    bundle = load_data(config.data, device=device, seed=config.train.seed, progress=config.train.progress)
    return SweepData.from_bundle(bundle, dtype)


def data_key(config: Config) -> tuple[Any, ...]:
    """What decides the data a config trains on: its data settings, the device, and the seed of a random split."""
    key = (*(getattr(config.data, name) for name in SHARED_FIELDS["data"]), config.train.device)
    return (*key, config.train.seed) if config.data.val_split == "random" else key


class SweepDataCache:
    """Each dataset a sweep's configs read, loaded on first use: ``cache.get(config) -> SweepData``.

    Args:
        dtype: of the images (float32, or float64 for exactness checks).
        data: an already loaded `SweepData`, used for every config (a sweep over one dataset).
    """

    def __init__(self, dtype: torch.dtype = torch.float32, data: SweepData | None = None) -> None:
        self.dtype = dtype
        self.given = data
        self.loaded: dict[tuple[Any, ...], SweepData] = {}

    def get(self, config: Config) -> SweepData:
        """``config``'s data (the given `SweepData` if there is one)."""
        if self.given is not None:
            return self.given
        key = data_key(config)
        if key not in self.loaded:
            self.loaded[key] = load_sweep_data(config, self.dtype)
        return self.loaded[key]

    @property
    def nbytes(self) -> int:
        """Bytes of every dataset loaded so far."""
        datasets = [self.given] if self.given is not None else list(self.loaded.values())
        return sum(data.nbytes for data in datasets)


def as_cache(data: SweepData | SweepDataCache | None, dtype: torch.dtype) -> SweepDataCache:
    """``data`` as a cache: a `SweepData` serves every config; None loads each dataset on first use."""
    return data if isinstance(data, SweepDataCache) else SweepDataCache(dtype, data)
