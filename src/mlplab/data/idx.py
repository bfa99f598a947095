"""Read and write IDX files, the format MNIST ships in, raw or gzip-compressed.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values, big-endian, row-major.
Reading checks all of it: a truncated, corrupt or mislabelled file fails with an
`IDXError` that names the file and the problem, never with a reshape traceback.
"""

from __future__ import annotations

import gzip
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


class IDXError(MlplabError):
    """An IDX file is missing, truncated, corrupt or not the kind of file expected."""


def is_gzip_name(path: str | Path) -> bool:
    """Whether a file is gzip-compressed, judged (like torchvision) by its ``.gz`` suffix."""
    return str(path).endswith(".gz")


def decode_stored(stored: bytes, path: str | Path) -> bytes:
    """The IDX bytes of a file's stored content: decompressed when the name ends ``.gz``."""
    if not is_gzip_name(path):
        return stored
    try:
        return gzip.decompress(stored)
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
        reason = str(error) or type(error).__name__
        raise IDXError(f"{path} is not a valid gzip file ({reason}); copy or download it again") from None


def read_stored(path: str | Path) -> bytes:
    """The bytes of a file as stored on disk, with a one-line error when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise IDXError(f"{path} does not exist") from None
    except OSError as error:
        raise IDXError(f"cannot read {path}: {error.strerror or error}") from None


def parse_idx(payload: bytes, path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Decode uncompressed IDX bytes (``path`` only names the file in errors) to a native-endian array."""
    if len(payload) < 4:
        raise IDXError(f"{path} is truncated: {len(payload)} bytes, too short for an IDX header")
    if payload[0] != 0 or payload[1] != 0:
        raise IDXError(f"{path} is not an IDX file: it starts with bytes {payload[:4].hex()}, "
                       "expected 0000 then a type code and a dimension count")
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
    if expect_ndim is not None and ndim != expect_ndim:
        raise IDXError(f"{path} holds a {ndim}-dimensional array of shape {_dims(shape)} where a "
                       f"{expect_ndim}-dimensional one was expected; is it the wrong file (images vs labels)?")
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(payload) - header
    if actual < expected:
        raise IDXError(f"{path} is truncated: its header promises {_dims(shape)} {dtype.name} values "
                       f"({expected} bytes) but only {actual} bytes follow")
    if actual > expected:
        raise IDXError(f"{path} has {actual - expected} unexpected trailing bytes after its "
                       f"{_dims(shape)} {dtype.name} values")
    values = np.frombuffer(payload, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return values.reshape(shape).astype(dtype.newbyteorder("="))  # astype copies: writable, native order


def read_idx(path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array, checking its header and size.

    Args:
        path: the file; names ending ``.gz`` are decompressed.
        expect_ndim: the number of dimensions the caller needs (3 for images, 1 for labels);
            a different count is an error, which catches swapped image and label files.
    """
    return parse_idx(decode_stored(read_stored(path), path), path, expect_ndim)


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


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)
