"""Read a dataset's four files into verified uint8 arrays, cached in-process.

The cache key is each file's path, resolved path, modification time and size, so
repeated loads in one process (tests, notebooks, sweeps) skip decompressing and hashing,
while a file replaced on disk is read again. Cached arrays are read-only: they are shared.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlplab.data.idx import IDXError, decode_stored, is_gzip_name, parse_idx, read_stored
from mlplab.data.registry import DatasetSpec, FileRecord
from mlplab.data.source import find_file, is_bundled, missing_files
from mlplab.data.verify import checksum_problem, max_content_bytes
from mlplab.errors import MlplabError

IMAGE_SHAPE = (28, 28)
_REINSTALL = (
    "the copy bundled with mlplab is damaged: reinstall mlplab (pip install --force-reinstall mlplab), "
    "or pass --data-dir DIR with a good copy"
)


@dataclass(frozen=True)
class RawArrays:
    """A dataset as stored: uint8 images (N, 28, 28) and uint8 labels (N,), read-only numpy arrays."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    files: tuple[Path, ...]  # the four files read, in ROLES order


def read_dataset(spec: DatasetSpec, folder: str | Path) -> RawArrays:
    """The dataset's arrays from the four files in ``folder``, checked against the spec's checksums."""
    folder = Path(folder)
    missing = missing_files(spec, folder)
    if missing:
        raise MlplabError(f"{folder} is missing {spec.name} files {', '.join(missing)} (raw or .gz)")
    key = []
    for _, record in spec.files.items():
        path = find_file(folder, record)
        assert path is not None  # checked above
        stat = path.stat()
        key.append((str(path), str(path.resolve()), stat.st_mtime_ns, stat.st_size))
    return _read_cached(spec, tuple(key))


def shared_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor viewing a cached (read-only) array without copying it; only ever read from it."""
    with warnings.catch_warnings():  # torch has no read-only tensors and warns; nothing here writes
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def clear_cache() -> None:
    """Forget every cached dataset (the next read decodes and verifies again)."""
    _read_cached.cache_clear()


@functools.lru_cache(maxsize=4)
def _read_cached(spec: DatasetSpec, key: tuple[tuple[str, str, int, int], ...]) -> RawArrays:
    paths = tuple(Path(entry[0]) for entry in key)
    arrays = [_read_verified(spec, record, path) for (_, record), path in zip(spec.files.items(), paths, strict=True)]
    _check_structure(spec, arrays, paths)
    for array in arrays:
        array.flags.writeable = False  # shared between every caller of the cache
    train_images, train_labels, test_images, test_labels = arrays
    return RawArrays(train_images, train_labels, test_images, test_labels, files=paths)


def _read_verified(spec: DatasetSpec, record: FileRecord, path: Path) -> np.ndarray:
    """One file decoded (structural checks first: they say more) and then checked against its checksums."""
    limit = max_content_bytes(record)  # refuses a gzip bomb or an absurd header before it costs memory
    try:
        stored = read_stored(path, limit)
        content = decode_stored(stored, path, limit)
        array = parse_idx(content, path, expect_ndim=record.ndim)
        problem = checksum_problem(record, stored, is_gzip_name(path), lambda: content)
    except IDXError as error:
        if is_bundled(spec, path):
            raise IDXError(f"{error}; {_REINSTALL}") from None
        raise
    if problem is not None:
        advice = (
            _REINSTALL
            if is_bundled(spec, path)
            else f"is it another dataset's file, or damaged? point --data-dir at the {spec.title} "
            "files, or delete it if it is a damaged download"
        )
        raise MlplabError(f"{path} does not match {spec.name}'s checksum for {record.raw_name} ({problem}); {advice}")
    return array


def _check_structure(spec: DatasetSpec, arrays: list[np.ndarray], paths: tuple[Path, ...]) -> None:
    """Checks that hold for every MNIST-family file, including raw files no checksum covers."""
    for array, path in zip(arrays, paths, strict=True):
        if array.dtype != np.uint8:
            raise IDXError(f"{path} holds {array.dtype} values; {spec.name} files hold uint8")
    for images, labels, image_path, label_path in (
        (arrays[0], arrays[1], paths[0], paths[1]),
        (arrays[2], arrays[3], paths[2], paths[3]),
    ):
        if images.shape[1:] != IMAGE_SHAPE:
            raise IDXError(
                f"{image_path} holds images of {images.shape[1]}x{images.shape[2]} pixels; {spec.name} images are 28x28"
            )
        if len(images) != len(labels):
            raise IDXError(f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels")
        if len(labels) and int(labels.max()) >= len(spec.classes):
            raise IDXError(
                f"{label_path} holds label {int(labels.max())}; {spec.name} has "
                f"{len(spec.classes)} classes (0 to {len(spec.classes) - 1})"
            )
