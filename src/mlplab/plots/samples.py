"""Grids of a dataset's images: with their labels (``mlplab show samples``), or one image and its random
distortions (``mlplab show augment``)."""

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


def sample_figure(
    config: DataConfig, split: str = "train", count: int = 40, label: str | int | None = None, seed: int | None = None
) -> Any:
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


def augment_figure(config: DataConfig, index: int = 0, seed: int = 0, count: int = 19) -> Any:
    """Training image ``index`` as loaded, then ``count`` versions distorted as ``config`` says, at steps 0, 1, ...

    Each version is what `mlplab.augment.Augmentation` (seeded with ``seed``) makes of the
    image when it is a batch of one at that optimizer step.
    """
    import torch

    from mlplab.augment import Augmentation, background_value
    from mlplab.data import load_data

    if count < 1:
        raise MlplabError(f"--count must be at least 1; got {count}")
    data = load_data(config)
    if not 0 <= index < len(data.train):
        raise MlplabError(f"--index must be in [0, {len(data.train) - 1}] (the training split); got {index}")
    augmentation = Augmentation(config, seed, background_value(config, data.spec))
    image = data.train.images[index : index + 1]  # (1, 1, 28, 28)
    with torch.no_grad():
        versions = [image] + [augmentation(image, step) for step in range(count)]
    label = data.spec.classes[int(data.train.labels[index])]
    title = f"{config.dataset} training image {index} ({label}), augment {_settings(config)}, seed {seed}"
    return images.image_grid(
        torch.cat(versions).numpy(), ["original"] + [f"step {step}" for step in range(count)], title
    )


# How each augmentation setting reads in a title; `augment_fields` says which of them apply.
_SETTING_TEXT = {
    "rotate": "rotate ±{:g}°",
    "scale": "scale ±{:g}",
    "shear": "shear ±{:g}°",
    "translate": "translate ±{:g} px",
    "elastic_alpha": "elastic α {:g} px",
    "elastic_sigma": "σ {:g} px",
    "stroke": "stroke ±{:g} px",
    "blur": "blur σ ≤ {:g} px",
}
AUGMENT_FIELDS = tuple(_SETTING_TEXT)  # every DataConfig field that sizes a distortion


def augment_fields(config: DataConfig) -> list[str]:
    """The augmentation settings of ``config`` that act on the training images, in `AUGMENT_FIELDS` order.

    The affine sizes (rotate, scale, shear, translate) act only with ``augment`` "affine" or
    "both", the elastic ones (elastic_alpha, elastic_sigma) only with "elastic" or "both";
    stroke and blur act with any ``augment``, "none" included, once above 0 (as
    `mlplab.augment.Augmentation` applies them).

    Example::

        >>> augment_fields(DataConfig(augment="elastic", download=False))
        ['elastic_alpha', 'elastic_sigma']
        >>> augment_fields(DataConfig(augment="none", blur=1.0, download=False))
        ['blur']
    """
    fields = []
    if config.augment in ("affine", "both"):
        fields += ["rotate", "scale", "shear", "translate"]
    if config.augment in ("elastic", "both"):
        fields += ["elastic_alpha", "elastic_sigma"]
    return fields + [name for name in ("stroke", "blur") if getattr(config, name) > 0]


def _settings(config: DataConfig) -> str:
    """``"both: rotate ±12°, scale ±0.12, ..."``: the kind and the settings it uses (stroke and blur with any kind)."""
    parts = [_SETTING_TEXT[name].format(getattr(config, name)) for name in augment_fields(config)]
    return config.augment + (": " + ", ".join(parts) if parts else "")
