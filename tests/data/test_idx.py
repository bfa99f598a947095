"""IDX reading and writing: round-trips, and a one-line error naming the file for every bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mlplab.data import read_idx, write_idx
from mlplab.data.idx import IDXError, encode_idx
from mlplab.errors import MlplabError


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 28, 28)), (np.int32, (7,)), (np.float32, (3, 4)),
                                         (np.float64, (2, 3, 4)), (np.int16, (6, 2)), (np.int8, (9,))])
def test_round_trip(tmp_path, suffix, dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = write_idx(tmp_path / f"a-idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable and back.dtype.isnative


def test_gz_file_is_gzip_and_raw_is_not(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    assert write_idx(tmp_path / "x.gz", array).read_bytes()[:2] == b"\x1f\x8b"
    assert write_idx(tmp_path / "x", array).read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(range(10))


def test_reads_real_mnist_labels(mnist_dir):
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", expect_ndim=1)
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the famous first test digits


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(IDXError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


def _good_bytes() -> bytes:
    return encode_idx(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 251)


def _corruptions() -> dict[str, tuple[str, bytes, str]]:
    """case -> (file name, stored bytes, phrase the message must contain)."""
    good = _good_bytes()
    return {
        "truncated": ("images-idx3-ubyte", good[:-100], "truncated"),
        "truncated header": ("images-idx3-ubyte", good[:9], "truncated"),
        "tiny": ("images-idx3-ubyte", good[:2], "truncated"),
        "bad magic": ("images-idx3-ubyte", b"\x12\x34" + good[2:], "not an IDX file"),
        "bad dtype code": ("images-idx3-ubyte", good[:2] + b"\x07" + good[3:], "type code 0x07"),
        "zero dimensions": ("images-idx3-ubyte", good[:3] + b"\x00", "0 dimensions"),
        "trailing bytes": ("images-idx3-ubyte", good + b"junk", "4 unexpected trailing bytes"),
        "broken gzip": ("images-idx3-ubyte.gz", b"\x1f\x8b\x08\x00 this is not deflate data", "not a valid gzip"),
        "not gzip at all": ("images-idx3-ubyte.gz", good, "not a valid gzip"),
        "truncated gzip": ("images-idx3-ubyte.gz", gzip.compress(good)[:-30], "not a valid gzip"),
        "truncated inside gzip": ("images-idx3-ubyte.gz", gzip.compress(good[:-1]), "truncated"),
    }


@pytest.mark.parametrize("case", list(_corruptions()))
def test_corrupt_input_gives_one_line_error_naming_the_file(tmp_path, case):
    name, stored, phrase = _corruptions()[case]
    path = tmp_path / name
    path.write_bytes(stored)
    with pytest.raises(MlplabError) as caught:
        read_idx(path)
    message = str(caught.value)
    assert str(path) in message and phrase in message and "\n" not in message


def test_wrong_kind_labels_where_images_expected(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(60, dtype=np.uint8))
    with pytest.raises(IDXError) as caught:
        read_idx(path, expect_ndim=3)
    assert str(path) in str(caught.value) and "1-dimensional" in str(caught.value)
    assert read_idx(path, expect_ndim=1).shape == (60,)


def test_missing_file(tmp_path):
    with pytest.raises(IDXError, match="does not exist"):
        read_idx(tmp_path / "nope-idx1-ubyte")


def test_multi_member_gzip_with_nul_padding_reads_like_gzip_module(tmp_path):
    # gzip.decompress reads concatenated members and skips NUL padding after one; so does the streamed reader.
    payload = _good_bytes()
    stored = gzip.compress(payload[:700]) + bytes(5) + gzip.compress(payload[700:]) + bytes(3)
    assert gzip.decompress(stored) == payload
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(stored)
    assert encode_idx(read_idx(path)) == payload


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_max_bytes_refuses_a_header_declaring_more(tmp_path, suffix):
    array = np.zeros((3, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / f"images-idx3-ubyte{suffix}", array)
    assert read_idx(path, max_bytes=16 + array.size).shape == (3, 28, 28)  # exactly at the bound
    with pytest.raises(IDXError) as caught:
        read_idx(path, max_bytes=16 + array.size - 1)
    assert str(path) in str(caught.value) and "declares 3x28x28 uint8 values" in str(caught.value)


def test_header_numpy_cannot_shape_is_an_idx_error(tmp_path):
    # No values (one dimension is 0), but more dimensions than numpy arrays can have.
    path = tmp_path / "odd-idx"
    path.write_bytes(bytes([0, 0, 8, 70]) + bytes(4 * 70))
    with pytest.raises(IDXError, match="numpy cannot hold"):
        read_idx(path)
