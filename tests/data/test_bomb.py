"""Gzip bombs and absurd headers: refused after decompressing no more than the real file's size.

The bomb is a valid gzip file (right CRC and length) whose IDX header declares MNIST's
60000x28x28 training images and whose data goes on for a gibibyte of zeros. It is built
from one compressed block of zeros repeated, so the test never holds the zeros themselves.
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from data_helpers import NAMES, Route, link_files, serve
from mlplab.data import get_spec
from mlplab.data.arrays import read_dataset
from mlplab.data.download import download_file
from mlplab.data.idx import decode_stored, encode_idx
from mlplab.data.verify import max_content_bytes
from mlplab.errors import MlplabError

IMAGES = NAMES[0]  # train-images-idx3-ubyte.gz
BLOCK = 1 << 24  # 16 MiB of zeros per repeated deflate block
BOMB_BYTES = 1 << 30  # zeros after the header: 1 GiB, ~20x MNIST's largest file
REAL_BYTES = 16 + 60000 * 28 * 28  # the real train-images file, decompressed (47 MB)
EXTRA_MEMORY = 200 << 20  # peak Python allocations allowed while refusing a bomb
SECONDS = 10.0  # refusing must take well under this (decompressing the whole bomb took ~15 s)


def _header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def write_bomb(path: Path, header: bytes, zero_bytes: int = BOMB_BYTES) -> Path:
    """A single-member gzip file of ``header`` then ``zero_bytes`` zeros, written block by block.

    Each block of zeros ends with a full flush, after which deflate refers to nothing before
    it, so one compressed block can be written over and over: the zeros are compressed once.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate: the gzip framing is ours
    head = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(BLOCK)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + head)  # gzip header: deflate, no name, no mtime
        for _ in range(zero_bytes // BLOCK):
            out.write(block)
            crc = zlib.crc32(zeros, crc)
        size = len(header) + zero_bytes // BLOCK * BLOCK
        out.write(deflate.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF))  # last block, CRC, length
    return path


def write_multi_member_bomb(path: Path, header: bytes, zero_bytes: int = BOMB_BYTES) -> Path:
    """The same bomb as many concatenated gzip members (legal: ``gzip.decompress`` reads them all)."""
    member = gzip.compress(bytes(BLOCK), compresslevel=9, mtime=0)
    with path.open("wb") as out:
        out.write(gzip.compress(header, mtime=0))
        for _ in range(zero_bytes // BLOCK):
            out.write(member)
    return path


def bomb_folder(mnist_dir: Path, folder: Path, write: Callable[[Path], Path]) -> Path:
    """A data folder with the real MNIST files, except train-images written by ``write``."""
    link_files(mnist_dir, folder, NAMES[1:])
    write(folder / IMAGES)
    return folder


def refuse(call: Callable[[], object]) -> tuple[str, int, float]:
    """Run ``call``, which must raise MlplabError: (its message, peak traced bytes, seconds)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(MlplabError) as caught:
            call()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(caught.value), peak, seconds


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """The single-member bomb, built once (about 1 MB on disk)."""
    path = write_bomb(tmp_path_factory.mktemp("bomb") / IMAGES, _header(60000, 28, 28))
    assert path.stat().st_size < 4 << 20
    return path


@pytest.mark.parametrize("kind", ["one member", "many members"])
def test_a_gzip_bomb_is_refused_after_decompressing_about_the_real_size(mnist_dir, tmp_path, bomb, kind):
    def write(path: Path) -> Path:
        if kind == "one member":
            path.symlink_to(bomb)
            return path
        return write_multi_member_bomb(path, _header(60000, 28, 28))

    folder = bomb_folder(mnist_dir, tmp_path / "data", write)
    message, peak, seconds = refuse(lambda: read_dataset(get_spec("mnist"), folder))
    assert str(folder / IMAGES) in message and "unexpected trailing bytes" in message and "\n" not in message
    assert peak < REAL_BYTES + EXTRA_MEMORY, f"peak {peak / 2**20:.0f} MiB"
    assert seconds < SECONDS


def test_the_bomb_is_valid_gzip_of_what_it_claims(tmp_path):
    """The bomb's construction, checked on a small one (the test's bomb is the same, only longer)."""
    header = _header(60000, 28, 28)
    small = write_bomb(tmp_path / "small.gz", header, zero_bytes=4 * BLOCK)
    assert gzip.decompress(small.read_bytes()) == header + bytes(4 * BLOCK)  # CRC and length checked too
    multi = write_multi_member_bomb(tmp_path / "multi.gz", header, zero_bytes=2 * BLOCK)
    assert gzip.decompress(multi.read_bytes()) == header + bytes(2 * BLOCK)


def test_a_header_declaring_absurd_dimensions_is_refused_from_the_header(mnist_dir, tmp_path):
    folder = bomb_folder(mnist_dir, tmp_path / "data",
                         lambda path: write_bomb(path, _header(2**32 - 1, 28, 28), zero_bytes=BLOCK))
    message, peak, _ = refuse(lambda: read_dataset(get_spec("mnist"), folder))
    assert str(folder / IMAGES) in message and "declares 4294967295x28x28 uint8 values" in message
    assert "\n" not in message
    # Stopped at the header: a few MiB of decompression buffers, not the 3.3 TB declared.
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_the_bound_holds_for_every_dimension_count():
    # 255 dimensions of 2**32-1: a number of bytes with thousands of digits, never multiplied out by numpy.
    stored = gzip.compress(bytes([0, 0, 0x08, 255]) + b"\xff" * 4 * 255 + bytes(1000))
    message, peak, _ = refuse(lambda: decode_stored(stored, "x-idx3-ubyte.gz", max_bytes=REAL_BYTES))
    assert "declares" in message and "\n" not in message and peak < 1 << 20


def test_a_raw_file_bigger_than_the_bound_is_refused_before_it_is_read(mnist_dir, tmp_path):
    folder = link_files(mnist_dir, tmp_path / "data", NAMES[1:])
    raw = folder / IMAGES.removesuffix(".gz")
    with raw.open("wb") as out:  # a sparse 1 GiB file: takes no disk space, and must not be read
        out.write(_header(60000, 28, 28))
        out.truncate(1 << 30)
    message, peak, seconds = refuse(lambda: read_dataset(get_spec("mnist"), folder))
    assert str(raw) in message and "too big" in message and "\n" not in message
    assert peak < 1 << 20 and seconds < SECONDS


@pytest.mark.parametrize("change,phrase", [
    (lambda content: content + bytes(10), "has 10 unexpected trailing bytes"),
    (lambda content: content + bytes(1 << 17), "has more than 65536 unexpected trailing bytes"),
    (lambda content: content[:-10], "is truncated"),
])
def test_a_slightly_wrong_real_file_gives_the_same_errors_as_before(mnist_dir, tmp_path, change, phrase):
    folder = link_files(mnist_dir, tmp_path / "data", NAMES[:3])
    labels = folder / NAMES[3]
    labels.write_bytes(gzip.compress(change(gzip.decompress((mnist_dir / NAMES[3]).read_bytes()))))
    with pytest.raises(MlplabError) as caught:
        read_dataset(get_spec("mnist"), folder)
    message = str(caught.value)
    assert str(labels) in message and phrase in message and "\n" not in message


def test_the_bound_fits_mnist_exactly(mnist_dir):
    spec = get_spec("mnist")
    assert max_content_bytes(spec.files.train_images) == REAL_BYTES
    assert max_content_bytes(spec.files.train_labels) == 8 + 60000
    raw = read_dataset(spec, mnist_dir)  # the real files, at the bound, still load
    assert raw.train_images.shape == (60000, 28, 28) and raw.test_labels.shape == (10000,)


def test_a_downloaded_bomb_is_refused_without_decompressing_it(tmp_path, bomb):
    with serve({f"/m/{IMAGES}": Route(bomb.read_bytes())}) as (base, _):
        spec = dataclasses.replace(get_spec("mnist"), mirrors=(base + "/m/",))
        message, peak, seconds = refuse(lambda: download_file(spec, "train_images", tmp_path / "cache"))
    assert "checksum mismatch" in message and "not the IDX data expected" in message and "\n" not in message
    assert peak < REAL_BYTES + EXTRA_MEMORY and seconds < SECONDS
    assert not any((tmp_path / "cache").iterdir())  # nothing partial left behind


def test_content_exactly_at_the_bound_is_accepted():
    array = np.arange(60000, dtype=np.uint8)
    stored = gzip.compress(encode_idx(array))
    assert decode_stored(stored, "labels-idx1-ubyte.gz", max_bytes=8 + 60000) == encode_idx(array)
