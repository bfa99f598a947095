"""`Inspector`: what the model being trained makes of one image, layer by layer, while it trains.

The drawing pad and the test-image picker read a copy of the model, not the one the training
thread updates: a forward pass there would need eval mode (turning dropout off under the
trainer's feet) and could read weights half-way through an optimizer step. `LiveFeed` copies
the weights into it at every point (a quarter of a second apart at most), under a lock the
readers take too, so every answer comes from one step's weights.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class Inspector:
    """A copy of a run's `mlplab.MLP` in eval mode, answering what it makes of images.

    Args:
        model: the run's model (copied; the copy is moved to the CPU).
        normalize, spec: how the run's images are scaled (``DataConfig.normalize``, its `DatasetSpec`).
        classes: the class names.
    """

    def __init__(self, model: Any, normalize: str, spec: Any, classes: Sequence[str]) -> None:
        self.model = copy.deepcopy(model).to("cpu").eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.normalize, self.spec, self.classes = normalize, spec, list(classes)
        self.step = 0
        self._lock = threading.Lock()

    def update(self, model: Any, step: int) -> None:
        """Copy ``model``'s weights (the training thread calls this between two steps)."""
        with self._lock, torch.no_grad():
            for mine, theirs in zip(self.model.parameters(), model.parameters(), strict=True):
                mine.copy_(theirs.detach())
            self.step = step

    def inspect(self, image: np.ndarray) -> dict[str, Any]:
        """The model's reading of one MNIST-style image (28, 28) uint8: the label, the probabilities,
        the image, and every layer's output (hidden activations, then the output scores)."""
        from mlplab.data.loading import normalize

        pixels = torch.from_numpy(np.ascontiguousarray(image, dtype=np.uint8)).reshape(1, 1, 28, 28)
        inputs = normalize(pixels, self.normalize, self.spec)
        with self._lock, torch.no_grad():
            outputs = self.model.layer_outputs(inputs)
            step = self.step
        probabilities = torch.log_softmax(outputs[-1].double(), dim=1).exp()[0]
        label = int(probabilities.argmax())
        names = [f"hidden {index}" for index in range(1, len(outputs))] + ["output"]
        return {
            "label": label,
            "name": self.classes[label],
            "probabilities": [float(p) for p in probabilities],
            "image": np.asarray(image, dtype=np.uint8).ravel().tolist(),
            "layers": [
                {"name": name, "width": int(values.shape[1]), "values": [_finite(v) for v in values[0].tolist()]}
                for name, values in zip(names, outputs, strict=True)
            ],
            "step": step,
        }


def _finite(value: float) -> float | None:
    """A JSON-safe number: None for inf and nan (a diverged model)."""
    return value if value == value and abs(value) != float("inf") else None
