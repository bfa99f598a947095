"""A grid of a dataset's images with their labels: what ``mlplab show samples`` draws."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlplab.choices import SPLITS
from mlplab.config import DataConfig
from mlplab.errors import MlplabError, check_choice
from mlplab.plots import images


def resolve_class(value: str | int, classes: tuple[str, ...]) -> int:
    """A class given as its label (``3``) or its name (``three``, ``3 - three``, ``Trouser``), as a label."""
    text = str(value).strip().lower()
    for label, name in enumerate(classes):
        if text in (str(label), name.lower(), name.lower().split(" - ")[-1]):
            return label
    raise MlplabError(f"unknown class {value!r}; give a label 0-{len(classes) - 1} or one of: {', '.join(classes)}")


def sample_figure(config: DataConfig, split: str = "train", count: int = 40, label: str | int | None = None,
                  seed: int | None = None) -> Any:
    """``count`` images of ``split`` (of class ``label`` only, if given): the first ones, or a seeded random draw."""
    from mlplab.data import load_data

    check_choice("split", split, SPLITS)
    if count < 1:
        raise MlplabError(f"--n must be at least 1; got {count}")
    data = load_data(config)
    chosen = getattr(data, split)
    if chosen is None:
        raise MlplabError("this data config has no validation split (--val-split none); use --split train or test")
    labels = chosen.labels.numpy()
    index = np.arange(len(labels))
    title = f"{config.dataset} {split} split"
    if label is not None:
        wanted = resolve_class(label, data.spec.classes)
        index = index[labels == wanted]
        title += f", class {data.spec.classes[wanted]}"
    if seed is not None:
        index = np.sort(np.random.default_rng(seed).choice(index, min(count, len(index)), replace=False))
    index = index[:count]
    title += f": {len(index)} {'random' if seed is not None else 'first'} images with their labels"
    return images.sample_grid(chosen.images[index].numpy(), labels[index], data.spec.classes, title)
