"""Datasets: find or download MNIST-family IDX files, verify them, and hold splits as tensors.

Modules, in the order data flows through them:
    registry  dataset specs: files, checksums, mirrors, classes, mean/std
    download  the only code that touches the network (mirrors, checksums, atomic writes)
    source    where the files are: --data-dir, $MLPLAB_DATA_DIR, the cache, the bundled copy
    bundled/  MNIST's four files, shipped as package data (CC BY-SA 3.0)
    idx       the IDX file format, read and written
    verify    checksum rules (MD5 of the .gz, or SHA-256 of the content)
    arrays    the four files as verified uint8 arrays, cached in-process
    loading   splits as normalised tensors on the device (`load_data`)
    batches   mini-batches by index (`Batches`)
    vision    torchvision-compatible `MNIST`, `FashionMNIST`, `KMNIST`
    info      per-split statistics (`bundle_statistics`)

Names are imported on first use, so ``import mlplab.data`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplab.lazy import lazy_names

_EXPORTS = {
    "DatasetSpec": "registry",
    "FileRecord": "registry",
    "get_spec": "registry",
    "DATASET_SPECS": "registry",
    "read_idx": "idx",
    "write_idx": "idx",
    "IDXError": "idx",
    "default_cache_dir": "download",
    "locate": "source",
    "find_source": "source",
    "DataSource": "source",
    "bundled_folder": "source",
    "load_data": "loading",
    "DataBundle": "loading",
    "TensorSplit": "loading",
    "normalize": "loading",
    "Batches": "batches",
    "MNIST": "vision",
    "FashionMNIST": "vision",
    "KMNIST": "vision",
    "bundle_statistics": "info",
}
__all__ = [
    "DatasetSpec",
    "FileRecord",
    "get_spec",
    "DATASET_SPECS",
    "read_idx",
    "write_idx",
    "IDXError",
    "default_cache_dir",
    "locate",
    "find_source",
    "DataSource",
    "bundled_folder",
    "load_data",
    "DataBundle",
    "TensorSplit",
    "normalize",
    "Batches",
    "MNIST",
    "FashionMNIST",
    "KMNIST",
    "bundle_statistics",
]

if TYPE_CHECKING:
    from mlplab.data.batches import Batches
    from mlplab.data.download import default_cache_dir
    from mlplab.data.idx import IDXError, read_idx, write_idx
    from mlplab.data.info import bundle_statistics
    from mlplab.data.loading import DataBundle, TensorSplit, load_data, normalize
    from mlplab.data.registry import DATASET_SPECS, DatasetSpec, FileRecord, get_spec
    from mlplab.data.source import DataSource, bundled_folder, find_source, locate
    from mlplab.data.vision import KMNIST, MNIST, FashionMNIST


__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals(), __all__)
