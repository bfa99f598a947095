"""Decide whether a file's bytes are the published file of a dataset.

When the spec records the SHA-256 of a file's decompressed content (MNIST), that is the
check, for ``.gz`` and raw files alike: it holds whatever gzip container a mirror or a
copy uses. Otherwise a ``.gz`` must have the recorded MD5, and a raw file is checked only
structurally by the reader.

Before any of that, `max_content_bytes` bounds how much a file may decompress to, so that
a gzip bomb or an absurd header is refused before it costs gigabytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from mlplab.data.registry import FileRecord

MAX_EXAMPLES = 60_000  # the most images (or labels) in any MNIST-family file: the training split's
PIXELS = 28 * 28  # per image, uint8


def max_content_bytes(record: FileRecord) -> int:
    """The most bytes a dataset file's decompressed IDX content may hold: header, then 60,000 images or labels."""
    header = 4 + 4 * record.ndim
    return header + MAX_EXAMPLES * (PIXELS if record.ndim == 3 else 1)


def md5_hex(data: bytes) -> str:
    """Hex MD5 of some bytes (an identity check, not a security one)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def checksum_problem(record: FileRecord, stored: bytes, compressed: bool, content: Callable[[], bytes]) -> str | None:
    """None when the file is acceptable, else a short description of the mismatch.

    Args:
        record: what the file should be.
        stored: the file's bytes as stored (compressed for a ``.gz``).
        compressed: whether ``stored`` is gzip data.
        content: returns the decompressed bytes; only called when a ``.gz`` is checked by SHA-256.
    """
    if record.sha256 is not None:
        sha256 = sha256_hex(content() if compressed else stored)
        if sha256 == record.sha256:
            return None
        return f"content SHA-256 {sha256[:16]}..., expected {record.sha256[:16]}..."
    if not compressed:
        return None  # raw file and no content checksum on record: the IDX reader's checks stand alone
    md5 = md5_hex(stored)
    return None if md5 == record.md5 else f"MD5 {md5}, expected {record.md5}"
