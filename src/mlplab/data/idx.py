"""Read and write IDX files, the format MNIST ships in, raw or gzip-compressed.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values, big-endian, row-major.
Reading checks all of it: a truncated, corrupt or mislabelled file fails with an
`IDXError` that names the file and the problem, never with a reshape traceback.

A ``.gz`` file is decompressed in pieces, and only as far as its header says the array
goes (plus `TRAILING_SLACK`, so that a slightly long file is reported exactly): a gzip
bomb costs the memory of the array it claims to hold, not of what it expands to. Callers
that know how big a file can be pass ``max_bytes``, which also refuses a header declaring
absurd dimensions before anything that size is decompressed or allocated.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np

from mlplab.errors import MlplabError

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {(dtype.kind, dtype.itemsize): code for code, dtype in IDX_DTYPES.items()}

TRAILING_SLACK = 1 << 16  # bytes past the declared array still decompressed, to count them in the error
_READ_CHUNK = 1 << 22  # decompressed bytes read at a time (4 MiB)


class IDXError(MlplabError):
    """An IDX file is missing, truncated, corrupt or not the kind of file expected."""


def is_gzip_name(path: str | Path) -> bool:
    """Whether a file is gzip-compressed, judged (like torchvision) by its ``.gz`` suffix."""
    return str(path).endswith(".gz")


def decode_stored(stored: bytes, path: str | Path, max_bytes: int | None = None) -> bytes:
    """The IDX bytes of a file's stored content: decompressed when the name ends ``.gz``.

    Args:
        stored: the file's bytes as stored on disk.
        path: the file's name (a ``.gz`` suffix means gzip), also used in errors.
        max_bytes: the most IDX bytes (header and values) the caller accepts; a header declaring
            more, or a file too big to be one that fits, is refused. None: no limit beyond the header's.
    """
    if not is_gzip_name(path):
        _check_stored_size(len(stored), path, max_bytes)
        if max_bytes is not None:
            _bounded_header(stored, path, max_bytes)  # refuses a header declaring too much
        return stored
    try:
        return _gunzip_idx(stored, path, max_bytes)
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
        reason = str(error) or type(error).__name__
        raise IDXError(f"{path} is not a valid gzip file ({reason}); copy or download it again") from None


def read_stored(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a file as stored on disk, with a one-line error when it cannot be read.

    ``max_bytes`` is as for `decode_stored`: a file too big for that much IDX data is refused
    from its size on disk, before it is read.
    """
    try:
        _check_stored_size(Path(path).stat().st_size, path, max_bytes)
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise IDXError(f"{path} does not exist") from None
    except OSError as error:
        raise IDXError(f"cannot read {path}: {error.strerror or error}") from None


def parse_idx(payload: bytes, path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Decode uncompressed IDX bytes (``path`` only names the file in errors) to a native-endian array."""
    dtype, shape, header = _read_header(payload, path)
    if expect_ndim is not None and len(shape) != expect_ndim:
        raise IDXError(
            f"{path} holds a {len(shape)}-dimensional array of shape {_dims(shape)} where a "
            f"{expect_ndim}-dimensional one was expected; is it the wrong file (images vs labels)?"
        )
    expected = math.prod(shape) * dtype.itemsize  # exact: numpy's int64 product would wrap
    actual = len(payload) - header
    if actual < expected:
        raise IDXError(
            f"{path} is truncated: its header promises {_dims(shape)} {dtype.name} values "
            f"({expected} bytes) but only {actual} bytes follow"
        )
    if actual > expected:
        raise IDXError(
            f"{path} has {actual - expected} unexpected trailing bytes after its {_dims(shape)} {dtype.name} values"
        )
    values = np.frombuffer(payload, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    try:
        array = values.reshape(shape)
    except ValueError as error:  # an empty array numpy cannot shape: over 64 dimensions, or huge ones beside a 0
        raise IDXError(f"{path} declares shape {_dims(shape)}, which numpy cannot hold ({error})") from None
    return array.astype(dtype.newbyteorder("="))  # astype copies: writable, native order


def read_idx(path: str | Path, expect_ndim: int | None = None, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array, checking its header and size.

    Args:
        path: the file; names ending ``.gz`` are decompressed.
        expect_ndim: the number of dimensions the caller needs (3 for images, 1 for labels);
            a different count is an error, which catches swapped image and label files.
        max_bytes: the most IDX bytes (header and values) to accept; a file or header promising
            more is refused before it is decompressed. None: the header alone bounds decompression.
    """
    stored = read_stored(path, max_bytes)
    return parse_idx(decode_stored(stored, path, max_bytes), path, expect_ndim)


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes (header and big-endian values) of an array."""
    array = np.asarray(array)
    code = _CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise IDXError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    if not 1 <= array.ndim <= 255:
        raise IDXError(f"IDX stores 1 to 255 dimensions; got an array with {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise IDXError(f"IDX dimensions must be under 2**32; got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write an array as an IDX file, gzip-compressed when the name ends ``.gz``; returns the path."""
    path = Path(path)
    payload = encode_idx(array)
    if is_gzip_name(path):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)  # mtime=0: same bytes every time
    path.write_bytes(payload)
    return path


def _read_header(payload: bytes, path: str | Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, shape and header length (bytes) of IDX bytes, from their header alone."""
    if len(payload) < 4:
        raise IDXError(f"{path} is truncated: {len(payload)} bytes, too short for an IDX header")
    if payload[0] != 0 or payload[1] != 0:
        raise IDXError(
            f"{path} is not an IDX file: it starts with bytes {payload[:4].hex()}, "
            "expected 0000 then a type code and a dimension count"
        )
    code, ndim = payload[2], payload[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IDXError(f"{path} has unknown IDX type code 0x{code:02X}; known codes: {known}")
    if ndim == 0:
        raise IDXError(f"{path} declares 0 dimensions; an IDX array needs at least one")
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise IDXError(f"{path} is truncated inside its header ({len(payload)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(payload, dtype=">u4", count=ndim, offset=4))
    return IDX_DTYPES[code], shape, header


def _bounded_header(payload: bytes, path: str | Path, max_bytes: int | None) -> tuple[np.dtype, tuple[int, ...], int]:
    """`_read_header`, refusing a header that declares over ``max_bytes``; returns dtype, shape, declared bytes."""
    dtype, shape, header = _read_header(payload, path)
    declared = header + math.prod(shape) * dtype.itemsize  # exact: header plus values
    if max_bytes is not None and declared > max_bytes:
        raise IDXError(
            f"{path} declares {_dims(shape)} {dtype.name} values ({declared} bytes with its header), "
            f"more than the {max_bytes} bytes expected; is it the wrong file, or damaged? "
            "copy or download it again"
        )
    return dtype, shape, declared


def _check_stored_size(size: int, path: str | Path, max_bytes: int | None) -> None:
    """Refuse a stored file too big to hold ``max_bytes`` of IDX data (gzip adds well under 1/512)."""
    if max_bytes is not None and size > max_bytes + max_bytes // 512 + TRAILING_SLACK:
        raise IDXError(
            f"{path} is {size} bytes, too big for this file (at most {max_bytes} bytes of IDX data); "
            "is it the wrong file, or damaged? copy or download it again"
        )


def _gunzip_idx(stored: bytes, path: str | Path, max_bytes: int | None) -> bytes:
    """The IDX bytes of gzip data, decompressing no more than the header declares.

    `gzip.GzipFile` decompresses as it is read (every member, as `gzip.decompress` does), so
    reading stops ``TRAILING_SLACK`` bytes past the declared array and a longer file is refused
    there. An empty read has met the end of the data, where GzipFile has checked each
    member's CRC and length.
    """
    with gzip.GzipFile(fileobj=io.BytesIO(stored)) as archive:
        header = archive.read(4)
        if len(header) == 4:
            header += archive.read(4 * header[3])  # header[3]: the dimension count
        dtype, shape, declared = _bounded_header(header, path, max_bytes)
        limit = declared + TRAILING_SLACK
        pieces, size = [header], len(header)
        while size <= limit:  # in pieces: one read of the declared size would allocate it up front
            piece = archive.read(min(_READ_CHUNK, limit + 1 - size))
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
    if size > limit:
        raise IDXError(
            f"{path} has more than {TRAILING_SLACK} unexpected trailing bytes after its "
            f"{_dims(shape)} {dtype.name} values (decompression stopped there); "
            "is it the wrong file, or damaged? copy or download it again"
        )
    return b"".join(pieces)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)
