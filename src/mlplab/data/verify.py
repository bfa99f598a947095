"""Decide whether a file's bytes are the published file of a dataset.

A ``.gz`` is accepted when its MD5 is the recorded one, or, when the spec records it,
when the SHA-256 of its decompressed content matches (mirrors may re-compress). A raw
file is checked by SHA-256 when one is recorded, else only structurally by the reader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from mlplab.data.registry import FileRecord


def md5_hex(data: bytes) -> str:
    """Hex MD5 of some bytes (an identity check, not a security one)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def checksum_problem(record: FileRecord, stored: bytes, compressed: bool,
                     content: Callable[[], bytes]) -> str | None:
    """None when the file is acceptable, else a short description of the mismatch.

    Args:
        record: what the file should be.
        stored: the file's bytes as stored (compressed for a ``.gz``).
        compressed: whether ``stored`` is gzip data.
        content: returns the decompressed bytes; only called when the SHA-256 is needed.
    """
    if compressed:
        md5 = md5_hex(stored)
        if md5 == record.md5:
            return None
        if record.sha256 is None:
            return f"MD5 {md5}, expected {record.md5}"
        sha256 = sha256_hex(content())
        if sha256 == record.sha256:
            return None
        return f"MD5 {md5}, expected {record.md5}; content SHA-256 {sha256[:16]}..., expected {record.sha256[:16]}..."
    if record.sha256 is None:
        return None  # raw file and no content checksum on record: the IDX reader's checks stand alone
    sha256 = sha256_hex(stored)
    if sha256 == record.sha256:
        return None
    return f"SHA-256 {sha256[:16]}..., expected {record.sha256[:16]}..."
