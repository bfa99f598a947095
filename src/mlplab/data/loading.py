"""Whole splits as tensors: read once, normalise once on the CPU, move to the device once.

The 60k training images are split into train and validation (the last ``val_size``
images, like mnist.pkl.gz's 50k/10k, or a seeded random subset, or no validation);
the 10k test images are kept whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlplab.choices import NORMALIZATIONS
from mlplab.config import DataConfig
from mlplab.data.arrays import read_dataset, shared_tensor
from mlplab.data.registry import DATASET_SPECS, DatasetSpec, get_spec
from mlplab.data.source import ORIGINS, find_source
from mlplab.errors import MlplabError, check_choice


@dataclass
class TensorSplit:
    """One split held whole on the training device."""

    images: torch.Tensor  # (N, 1, 28, 28) float32, normalised, contiguous
    labels: torch.Tensor  # (N,) int64, same device
    name: str  # one of `mlplab.choices.SPLITS`
    indices: torch.Tensor | None = None  # (N,) int64 on the CPU: positions in the source file's split

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass
class DataBundle:
    """A dataset's train, validation and test splits, with where they came from."""

    spec: DatasetSpec
    train: TensorSplit
    val: TensorSplit | None
    test: TensorSplit
    source: Path  # folder the files were read from
    origin: str  # how `source` was chosen: a key of `mlplab.data.source.ORIGINS` ("bundled", "cache", ...)
    normalize: str = "standard"  # how the images were scaled (see `normalize`)

    @property
    def origin_description(self) -> str:
        """How the files were found, in words (``"bundled with mlplab"``)."""
        return ORIGINS[self.origin]


def normalize(images_uint8: torch.Tensor, kind: str, spec: DatasetSpec) -> torch.Tensor:
    """Scale uint8 pixels to float32: ``standard`` ((x/255 - mean)/std), ``unit`` [0, 1] or ``symmetric`` [-1, 1].

    ``kind`` comes from Python, so it is checked here; `scale_pixels` takes a config's, checked already.
    """
    check_choice("normalization", kind, NORMALIZATIONS)
    return scale_pixels(images_uint8, kind, spec)


def scale_pixels(images_uint8: torch.Tensor, kind: str, spec: DatasetSpec) -> torch.Tensor:
    """`normalize` for a ``kind`` already checked (a `DataConfig`'s ``normalize``)."""
    images = images_uint8.to(torch.float32).div_(255.0)  # a new tensor: the in-place ops below are safe
    if kind == "standard":
        return images.sub_(spec.mean).div_(spec.std)
    if kind == "symmetric":
        return images.mul_(2.0).sub_(1.0)
    return images


def unscale_pixels(images: torch.Tensor, kind: str, spec: DatasetSpec) -> torch.Tensor:
    """Inverse of `scale_pixels`: normalised images back to uint8 pixels (for showing them)."""
    images = images.detach().to("cpu", torch.float32)
    if kind == "standard":
        images = images * spec.std + spec.mean
    elif kind == "symmetric":
        images = (images + 1.0) / 2.0
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def split_indices(total: int, val_split: str, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sorted positions (int64) of the training and validation images among ``total``.

    ``val_split`` and ``val_size`` are a `DataConfig`'s (checked by it); only ``total``, known once
    the files are read, is checked here.
    """
    every = torch.arange(total)
    if val_split == "none":
        return every, None
    if val_size >= total:
        raise MlplabError(
            f"val_size must be a whole number between 1 and {total - 1} "
            f"(the training set has {total} images); got {val_size!r}"
        )
    if val_split == "last":
        return every[: total - val_size], every[total - val_size :]
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    # Sorted, so a split is a choice of images, not an order: shuffling is the batcher's job.
    return order[val_size:].sort().values, order[:val_size].sort().values


def load_data(
    config: DataConfig | str | None = None, device: torch.device | str = "cpu", seed: int = 0, progress: bool = False
) -> DataBundle:
    """Find (or download), verify and read a dataset, and return its splits as tensors on ``device``.

    ``load_data()`` is MNIST as `mlplab train` uses it by default: 50,000 training, 10,000
    validation (the last of the training file) and 10,000 test images, standardised.

    Args:
        config: dataset, folders, normalisation and validation split: a `DataConfig` (checked when it
            was built), a dataset name (``"fashion-mnist"``, an alias such as ``"FashionMNIST"``: the
            other settings as by default), or None (MNIST).
        device: where the tensors will live (the training device).
        seed: drives the ``random`` validation split.
        progress: show a download progress bar on a terminal.
    """
    if config is None or isinstance(config, str):
        config = DataConfig() if config is None else DataConfig(dataset=get_spec(config).name)
    spec = DATASET_SPECS[config.dataset]
    source = find_source(spec, config.data_dir, config.cache_dir, config.download, progress)
    raw = read_dataset(spec, source.folder)
    device = torch.device(device)
    train_index, val_index = split_indices(len(raw.train_labels), config.val_split, config.val_size, seed)
    train_images, train_labels = _to_tensors(raw.train_images, raw.train_labels, config.normalize, spec)
    test_images, test_labels = _to_tensors(raw.test_images, raw.test_labels, config.normalize, spec)

    return DataBundle(
        spec=spec,
        train=_take("train", train_images, train_labels, train_index, device),
        val=_take("val", train_images, train_labels, val_index, device) if val_index is not None else None,
        test=_take("test", test_images, test_labels, torch.arange(len(test_labels)), device),
        source=source.folder,
        origin=source.origin,
        normalize=config.normalize,
    )


def _to_tensors(
    images: np.ndarray, labels: np.ndarray, kind: str, spec: DatasetSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 28, 28) normalised float32 images and (N,) int64 labels on the CPU."""
    pixels = scale_pixels(shared_tensor(images), kind, spec)  # scale_pixels allocates the float tensor
    return pixels.unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _take(
    name: str, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, device: torch.device
) -> TensorSplit:
    """The rows ``index`` (sorted) of a CPU split, moved to ``device`` in one copy."""
    start, stop = int(index[0]), int(index[-1]) + 1
    if stop - start == len(index):  # a run of rows: a view, still contiguous, no copy on the CPU
        images, labels = images[start:stop], labels[start:stop]
    else:
        images, labels = images.index_select(0, index), labels.index_select(0, index)
    return TensorSplit(images.to(device), labels.to(device), name, index)
