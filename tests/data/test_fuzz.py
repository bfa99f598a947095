"""Fuzzing the IDX reader: any bytes, raw or gzip, give an array or a one-line MlplabError, never a crash.

Inputs are arbitrary bytes, and small real IDX files (`encode_idx`) mutated before or after
gzip: bit flips, truncation, appended bytes, and header fields set to edge values. Runs are
derandomized (the same examples every run) and keep no example database (Hypothesis's own
cache, ``.hypothesis/``, is ignored by git).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlplab.data.idx import IDX_DTYPES, decode_stored, encode_idx, parse_idx, read_idx
from mlplab.errors import MlplabError

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None)
NAMES = ("images-idx3-ubyte", "images-idx3-ubyte.gz")

# Byte and uint32 values at the edges of what a reader must handle.
EDGE_U32 = st.one_of(st.integers(0, 8), st.sampled_from([255, 256, 2**16, 2**31 - 1, 2**31, 2**32 - 1]),
                     st.integers(0, 2**32 - 1))
MAX_BYTES = st.one_of(st.none(), st.integers(0, 4096))

# One mutation: (kind, position, value); positions wrap around the data's length.
MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**16), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 2**16), st.none()),
    st.tuples(st.just("append"), st.none(), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("header byte"), st.integers(0, 3), st.integers(0, 255)),
    st.tuples(st.just("dimension"), st.integers(0, 3), EDGE_U32),
)


def small_arrays() -> st.SearchStrategy[np.ndarray]:
    """Arrays of every IDX dtype, 1 to 3 dimensions of 0 to 5 (native byte order)."""
    dtypes = st.sampled_from([dtype.newbyteorder("=") for dtype in IDX_DTYPES.values()])
    shapes = st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple)
    return st.tuples(dtypes, shapes).flatmap(lambda pair: arrays(*pair))


def mutate(data: bytes, mutation: tuple) -> bytes:
    """``data`` with one mutation applied."""
    kind, position, value = mutation
    if kind == "flip" and data:
        index = position % len(data)
        return data[:index] + bytes([data[index] ^ (1 << value)]) + data[index + 1:]
    if kind == "truncate":
        return data[:position % (len(data) + 1)]
    if kind == "append":
        return data + value
    if kind == "header byte" and len(data) > position:
        return data[:position] + bytes([value]) + data[position + 1:]
    if kind == "dimension" and len(data) >= 8 + 4 * position:
        offset = 4 + 4 * position
        return data[:offset] + value.to_bytes(4, "big") + data[offset + 4:]
    return data


def gzip_members(content: bytes, split: int, padding: int) -> bytes:
    """``content`` as gzip: two members when ``split`` falls inside it, then ``padding`` NUL bytes."""
    split = split % (len(content) + 1)
    members = [content[:split], content[split:]] if 0 < split < len(content) else [content]
    return b"".join(gzip.compress(part, mtime=0) for part in members) + bytes(padding)


def outcome(read: Callable[[], np.ndarray]) -> np.ndarray | None:
    """What a read returns: an array, or None when it refuses with a one-line MlplabError.

    Any other exception propagates and fails the test.
    """
    try:
        array = read()
    except MlplabError as error:
        assert "\n" not in str(error)
        return None
    assert isinstance(array, np.ndarray) and array.dtype.isnative and array.flags.writeable
    return array


def decode(stored: bytes, name: str, max_bytes: int | None) -> np.ndarray | None:
    """Decode in memory; a decoded array must re-encode to exactly the bytes it came from."""
    content: list[bytes] = []

    def read() -> np.ndarray:
        content.append(decode_stored(stored, name, max_bytes))
        return parse_idx(content[0], name)

    array = outcome(read)
    if array is not None:
        assert encode_idx(array) == content[0]
        assert max_bytes is None or len(content[0]) <= max_bytes
    return array


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Where `read_idx` examples are written (a module-scoped fixture: Hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=2048), name=st.sampled_from(NAMES), max_bytes=MAX_BYTES)
def test_arbitrary_bytes(data, name, max_bytes):
    decode(data, name, max_bytes)


@FUZZ
@given(code=st.sampled_from(sorted(IDX_DTYPES)), dims=st.lists(EDGE_U32, min_size=1, max_size=255),
       data=st.binary(max_size=64), name=st.sampled_from(NAMES), max_bytes=MAX_BYTES)
def test_arbitrary_headers(code, dims, data, name, max_bytes):
    # Up to 255 dimensions, of any size: products far past int64, empty arrays past numpy's 64 dimensions.
    content = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + data
    decode(gzip.compress(content, mtime=0) if name.endswith(".gz") else content, name, max_bytes)


@FUZZ
@given(array=small_arrays(), mutations=st.lists(MUTATION, max_size=3), after_gzip=st.booleans(),
       name=st.sampled_from(NAMES), split=st.integers(0, 2**16), padding=st.integers(0, 3),
       max_bytes=MAX_BYTES)
def test_mutated_real_files(folder, array, mutations, after_gzip, name, split, padding, max_bytes):
    content = encode_idx(array)
    if not after_gzip:
        for mutation in mutations:
            content = mutate(content, mutation)
    stored = gzip_members(content, split, padding) if name.endswith(".gz") else content
    if after_gzip:
        for mutation in mutations:
            stored = mutate(stored, mutation)
    in_memory = decode(stored, name, max_bytes)
    path = folder / name
    path.write_bytes(stored)
    from_file = outcome(lambda: read_idx(path, max_bytes=max_bytes))
    assert (in_memory is None) == (from_file is None)
    if in_memory is not None:
        np.testing.assert_array_equal(from_file, in_memory)
    if not mutations and (max_bytes is None or len(encode_idx(array)) <= max_bytes):
        np.testing.assert_array_equal(in_memory, array)  # unmutated files always read back


@FUZZ
@given(array=small_arrays(), mutations=st.lists(MUTATION, min_size=1, max_size=3),
       split=st.integers(0, 2**16), padding=st.integers(0, 3))
def test_the_decoder_accepts_only_what_gzip_accepts(array, mutations, split, padding):
    stored = gzip_members(encode_idx(array), split, padding)
    for mutation in mutations:
        stored = mutate(stored, mutation)
    try:
        content = decode_stored(stored, "x-idx1-ubyte.gz")
    except MlplabError:
        return
    assert gzip.decompress(stored) == content  # the streamed decoder is never laxer than gzip's
