"""Summary statistics of loaded splits: the numbers the labs print before training."""

from __future__ import annotations

from typing import Any

import torch

from mlplab.data.loading import DataBundle, TensorSplit


def pixel_affine(bundle: DataBundle) -> tuple[float, float]:
    """``(scale, shift)`` with raw [0, 1] intensity = normalised value * scale + shift."""
    if bundle.normalize == "standard":
        return bundle.spec.std, bundle.spec.mean
    if bundle.normalize == "symmetric":
        return 0.5, 0.5
    return 1.0, 0.0


def split_statistics(split: TensorSplit, num_classes: int, scale: float, shift: float) -> dict[str, Any]:
    """Size, shape, value range, mean/std (normalised and raw [0, 1]) and class counts of one split."""
    low, high = torch.aminmax(split.images)
    std, mean = torch.std_mean(split.images, correction=0)  # population std; torch sums float32 accurately
    return {
        "size": len(split),
        "shape": list(split.images.shape),
        "min": float(low),
        "max": float(high),
        "mean": float(mean),
        "std": float(std),
        "raw_mean": float(mean) * scale + shift,  # the normalisation is affine, so the raw stats follow
        "raw_std": float(std) * scale,
        "class_counts": torch.bincount(split.labels.cpu(), minlength=num_classes).tolist(),
    }


def bundle_statistics(bundle: DataBundle) -> dict[str, Any]:
    """A JSON-ready summary of a bundle: dataset, source (folder and how it was found), normalisation
    and per-split statistics."""
    scale, shift = pixel_affine(bundle)
    classes = list(bundle.spec.classes)
    splits = [s for s in (bundle.train, bundle.val, bundle.test) if s is not None]
    return {
        "dataset": bundle.spec.name,
        "title": bundle.spec.title,
        "source": str(bundle.source),
        "origin": bundle.origin,
        "origin_description": bundle.origin_description,
        "normalize": bundle.normalize,
        "classes": classes,
        "splits": {s.name: split_statistics(s, len(classes), scale, shift) for s in splits},
    }
