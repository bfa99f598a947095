"""Mini-batches drawn by index from a split held whole on the device.

No DataLoader, no workers, no per-sample Python: one permutation per epoch, drawn on
the CPU from a generator seeded by (seed, epoch) and moved to the device once; each
batch is one ``index_select`` (small batches: a slice of one, see `GATHER_ROWS`). Without
shuffling, batches are slices (views, no copy).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mlplab.data.loading import TensorSplit
from mlplab.errors import MlplabError

# Small batches are gathered this many rows at a time (one index_select, then views of it):
# a call costs ~5 µs of dispatch however few rows it copies, a third of a batch-4 step's overhead.
GATHER_ROWS = 256


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of one epoch: (seed, epoch) mixed so nearby pairs give unrelated orders."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])


class Batches:
    """Iterate a split in batches of ``(images, labels)``: (B, 1, 28, 28) float32 and (B,) int64.

    The order of epoch ``e`` depends only on ``seed`` and ``e``, never on the global RNG,
    so resuming at epoch ``e`` (``set_epoch(e)``) reproduces it exactly with no saved state.
    Each pass advances the epoch by one, so a loop that never calls `set_epoch` still gets
    a fresh order every epoch.

    Args:
        split: the images and labels, already on the training device.
        batch_size: images per batch (the last batch may be smaller).
        shuffle: draw a new permutation each epoch (training); False keeps file order (evaluation).
        drop_last: drop the last partial batch; evaluation must leave this False.
        seed: the shuffling seed.
    """

    def __init__(
        self, split: TensorSplit, batch_size: int, shuffle: bool = False, drop_last: bool = False, seed: int = 0
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise MlplabError(f"batch size must be a whole number of at least 1; got {batch_size!r}")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (its order comes from ``(seed, epoch)`` alone)."""
        self.epoch = epoch

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation (int64, on the CPU) that epoch ``epoch`` visits the split in."""
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        return torch.randperm(len(self.split), generator=generator)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        count = len(self.split)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # Eager (not a generator function): the epoch advances when the pass starts.
        epoch, self.epoch = self.epoch, self.epoch + 1
        stop = len(self) * self.batch_size
        if not self.shuffle:
            return self._slices(stop)
        return self._gathers(self.order(epoch).to(self.split.images.device), stop)

    def _slices(self, stop: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels, size = self.split.images, self.split.labels, self.batch_size
        for start in range(0, min(stop, len(labels)), size):
            yield images[start : start + size], labels[start : start + size]

    def _gathers(self, order: torch.Tensor, stop: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = order[:stop]
        # The labels are tiny: gathered for the whole epoch at once, then sliced (views).
        labels = self.split.labels.index_select(0, order).split(self.batch_size)
        images = self.split.images
        rows = max(1, GATHER_ROWS // self.batch_size) * self.batch_size  # a whole number of batches
        batch_labels = iter(labels)
        for index in order.split(rows):
            for batch_images in images.index_select(0, index).split(self.batch_size):
                yield batch_images, next(batch_labels)
