"""Find a dataset's four files on disk, downloading them into the cache when allowed.

Search order: an explicit ``data_dir``, then ``$MLPLAB_DATA_DIR``, then the cache folder
``<cache>/<dataset>/``, then the copy bundled inside the package (MNIST only, under
``mlplab/data/bundled/``), then the mirrors (into the cache). A data folder may hold the
files directly, in a subfolder named after the dataset (``DIR/fashion-mnist/``) or in
torchvision's layout (``DIR/FashionMNIST/raw/``), so existing torchvision downloads are
reused. Each file may be ``.gz`` or raw. Checksums are checked when the files are read (`arrays.read_dataset`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlplab.data.download import DEFAULT_TIMEOUT, default_cache_dir, download_file, local_copy_hint
from mlplab.data.registry import DatasetSpec, FileRecord, get_spec
from mlplab.errors import MlplabError
from mlplab.files import atomic_copy

# Datasets shipped as package data, one folder each (``bundled/mnist/``). A Traversable that
# is not a folder on disk (a zipped install) offers no bundled copy.
_PACKAGE_DATA = resources.files(__package__) / "bundled"
BUNDLED_ROOT: Path | None = _PACKAGE_DATA if isinstance(_PACKAGE_DATA, Path) else None

# How a data folder was chosen -> how `mlplab data info` and the train header say it
# (`DataBundle.origin_description`).
ORIGINS = {
    "data_dir": "from --data-dir",
    "env": "from $MLPLAB_DATA_DIR",
    "cache": "from the download cache",
    "bundled": "bundled with mlplab",
    "download": "downloaded into the cache",
}


@dataclass(frozen=True)
class DataSource:
    """The folder holding a dataset's four files, and how it was chosen (a key of `ORIGINS`)."""

    folder: Path
    origin: str


def find_file(folder: Path, record: FileRecord) -> Path | None:
    """The copy of a file in ``folder``, raw or ``.gz``, preferring the form a checksum can verify."""
    names = (record.raw_name, record.name) if record.sha256 else (record.name, record.raw_name)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def missing_files(spec: DatasetSpec, folder: Path) -> list[str]:
    """Names (``.gz`` form) of the dataset's files that ``folder`` has in neither form."""
    return [record.name for _, record in spec.files.items() if find_file(folder, record) is None]


def candidate_folders(spec: DatasetSpec, root: Path) -> list[Path]:
    """Where a data folder may keep a dataset: directly, by dataset name, or torchvision's layout."""
    return [root, root / spec.name, root / spec.torchvision_folder / "raw"]


def find_folder(spec: DatasetSpec, root: Path) -> Path | None:
    """The first candidate folder under ``root`` that holds all four files, if any."""
    return next((folder for folder in candidate_folders(spec, root) if not missing_files(spec, folder)), None)


def bundled_folder(spec: DatasetSpec) -> Path | None:
    """The copy of the dataset shipped inside mlplab (MNIST), or None if this install has none."""
    if BUNDLED_ROOT is None:
        return None
    folder = BUNDLED_ROOT / spec.name
    return folder if folder.is_dir() and not missing_files(spec, folder) else None


def is_bundled(spec: DatasetSpec, path: Path) -> bool:
    """Whether ``path`` is one of the dataset's bundled files (its errors then advise a reinstall)."""
    folder = bundled_folder(spec)
    return folder is not None and Path(path).parent == folder


def find_source(
    spec: DatasetSpec | str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> DataSource:
    """Where the dataset's four files are, downloading missing ones into the cache if it comes to that.

    Looks in ``data_dir``, else ``$MLPLAB_DATA_DIR``, else the cache, else the bundled copy
    (MNIST), and only then downloads.

    Args:
        spec: the dataset (or its name).
        data_dir: a folder the user named; its files must all be there.
        cache_dir: the download cache; default `default_cache_dir()`.
        download: fetch missing files from the mirrors; when False, a missing file is an error.
        progress: show a download progress bar on a terminal.
        timeout: seconds a mirror may stall before the next one is tried.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    if data_dir is not None:
        return DataSource(_from_data_folder(spec, Path(data_dir).expanduser(), "--data-dir"), "data_dir")
    configured = os.environ.get("MLPLAB_DATA_DIR")
    if configured:
        root = Path(configured).expanduser()
        # A shared data folder may simply not hold this dataset: then the cache is used. Having
        # some of its files but not all is a mistake worth reporting.
        if not root.is_dir() or any(len(missing_files(spec, f)) < 4 for f in candidate_folders(spec, root)):
            return DataSource(_from_data_folder(spec, root, "MLPLAB_DATA_DIR"), "env")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / spec.name
    if not missing_files(spec, folder):
        return DataSource(folder, "cache")
    bundled = bundled_folder(spec)
    if bundled is not None:
        return DataSource(bundled, "bundled")
    if not download:
        raise MlplabError(
            f"no local copy of {spec.name} (looked in {folder}) and downloading is off; "
            f"drop --no-download to fetch it, or {local_copy_hint(spec)}"
        )
    fetch_missing(spec, folder, timeout=timeout, progress=progress)
    return DataSource(folder, "download")


def locate(
    spec: DatasetSpec | str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """The folder holding the dataset's four files: `find_source` without the origin."""
    return find_source(spec, data_dir, cache_dir, download, progress, timeout).folder


def fetch_missing(spec: DatasetSpec, folder: Path, timeout: float = DEFAULT_TIMEOUT, progress: bool = False) -> None:
    """Put into ``folder`` each of the dataset's files it holds in neither form.

    Files come from the bundled copy when mlplab ships one (no network), else from the mirrors.
    """
    bundled = bundled_folder(spec)
    for role, record in spec.files.items():
        if find_file(folder, record) is not None:
            continue
        if bundled is not None:
            atomic_copy(bundled / record.name, folder / record.name)
        else:
            download_file(spec, role, folder, timeout=timeout, progress=progress)


def _from_data_folder(spec: DatasetSpec, root: Path, origin: str) -> Path:
    """The complete candidate folder under a user-named root, or a one-line error naming what is missing."""
    if not root.is_dir():
        raise MlplabError(
            f"data folder {root} (from {origin}) does not exist; "
            f"point {origin} at a folder holding the four {spec.title} files"
        )
    found = find_folder(spec, root)
    if found is not None:
        return found
    candidates = candidate_folders(spec, root)
    best = min(candidates, key=lambda folder: len(missing_files(spec, folder)))  # first one on ties: root
    others = ", ".join(str(c) for c in candidates if c != best)
    raise MlplabError(
        f"data folder {best} (from {origin}) is missing {spec.name} files "
        f"{', '.join(missing_files(spec, best))} (raw or .gz; also looked in {others})"
    )
