"""Fetch dataset files from their mirrors: the only module in mlplab that touches the network.

A file is streamed into a temporary file beside its destination and moved into place
(`mlplab.files.atomic_write`) only after its checksum passes, so the cache never holds a
partial or corrupt download. Mirrors are tried in order; any network error or checksum
mismatch moves on to the next one.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from mlplab.data.idx import IDXError, decode_stored
from mlplab.data.registry import DatasetSpec, FileRecord
from mlplab.data.verify import checksum_problem, max_content_bytes
from mlplab.errors import MlplabError
from mlplab.files import atomic_write

DEFAULT_TIMEOUT = 30.0  # seconds to wait for a connection or for the next chunk
CHUNK_BYTES = 1 << 16


class _MirrorError(Exception):
    """One mirror could not deliver a good copy; the message says why."""


def default_cache_dir() -> Path:
    """``$MLPLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlplab``, else ``~/.cache/mlplab``."""
    if os.environ.get("MLPLAB_CACHE_DIR"):
        return Path(os.environ["MLPLAB_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "mlplab"
    return Path.home() / ".cache" / "mlplab"


def local_copy_hint(spec: DatasetSpec) -> str:
    """How to point mlplab at files the user already has (ends the offline and download errors)."""
    names = ", ".join(record.name for _, record in spec.files.items())
    return (
        f"to use a local copy, put the four {spec.title} files ({names}; raw or .gz) in a folder "
        "and pass --data-dir DIR (data_dir= in Python) or set MLPLAB_DATA_DIR=DIR"
    )


def download_file(
    spec: DatasetSpec, role: str, folder: str | Path, *, timeout: float = DEFAULT_TIMEOUT, progress: bool = False
) -> Path:
    """Download one of a dataset's files into ``folder``, trying each mirror in turn; returns its path.

    Args:
        spec: the dataset; its mirrors are tried in order.
        role: which file, one of ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.
        folder: destination, created if needed.
        timeout: seconds to wait for a connection or for data before trying the next mirror.
        progress: show a tqdm bar (only when stderr is a terminal).
    """
    record = spec.files[role]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / record.name
    failures = []
    for base in spec.mirrors:
        url = base.rstrip("/") + "/" + record.name
        try:
            _fetch_verified(url, record, target, timeout, progress)
            return target
        except _MirrorError as failure:
            failures.append(f"{url}: {failure}")
        except urllib.error.HTTPError as error:
            failures.append(f"{url}: HTTP {error.code} {error.reason}")
        except urllib.error.URLError as error:
            failures.append(f"{url}: {_network_reason(error.reason, timeout)}")
        except (OSError, http.client.HTTPException, ValueError) as error:
            failures.append(f"{url}: {_network_reason(error, timeout)}")
    tried = "; ".join(" ".join(f.split()) for f in failures) or "no mirrors are configured"
    raise MlplabError(f"could not download {spec.name} file {record.name} ({tried}); {local_copy_hint(spec)}")


def _fetch_verified(url: str, record: FileRecord, target: Path, timeout: float, progress: bool) -> None:
    """Stream ``url`` to a temporary file beside ``target``; move it into place only if it verifies."""

    def write(out: BinaryIO) -> None:
        _stream(url, out, timeout, progress, record.name)
        out.seek(0)
        stored = out.read()
        limit = max_content_bytes(record)  # a gzip bomb is refused, not decompressed whole
        try:
            problem = checksum_problem(record, stored, True, lambda: decode_stored(stored, record.name, limit))
        except IDXError:  # a broken gzip stream, or IDX content of the wrong kind or size (a gzip bomb)
            problem = "not a valid gzip file, or not the IDX data expected"
        if problem is not None:
            raise _MirrorError(f"checksum mismatch ({problem})")

    atomic_write(target, write)


def _stream(url: str, out: BinaryIO, timeout: float, progress: bool, label: str) -> None:
    """Copy the body at ``url`` to ``out``, failing if the server sends less than it announced."""
    request = urllib.request.Request(url, headers={"User-Agent": "mlplab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        show = progress and sys.stderr.isatty()
        received = 0
        with tqdm(
            total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=not show, leave=False
        ) as bar:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client returns a short body without complaint when the peer closes early.
    if total is not None and received != total:
        raise _MirrorError(f"connection closed after {received} of {total} bytes")


def _network_reason(error: object, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(error, ValueError):
        return f"invalid URL ({error})"
    if isinstance(error, http.client.HTTPException) and not str(error):
        return type(error).__name__
    return str(error) or type(error).__name__
