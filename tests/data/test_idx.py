"""IDX reading: exact round-trips, header handling, errors naming the file."""

import gzip
import os
import re

import numpy as np
import pytest

from normzoo.data import DataError
from normzoo.data import idx
from tests.data import fakes


def test_header_bytes_match_the_format():
  # The writer is the test oracle, so pin it to the format description first.
  data = fakes.idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
  assert data[:4] == b"\x00\x00\x08\x02"
  assert data[4:12] == b"\x00\x00\x00\x02\x00\x00\x00\x03"
  assert data[12:] == bytes(range(6))


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, suffix, dtype):
  rng = np.random.default_rng(0)
  array = (rng.normal(size=(3, 5, 4)) * 50).astype(dtype)
  path = fakes.write_idx(str(tmp_path / f"x-idx3{suffix}"), array)
  out = idx.read_idx(path)
  assert out.shape == (3, 5, 4)
  assert out.dtype == np.dtype(dtype)  # native byte order after reading
  np.testing.assert_array_equal(out, array)


def test_labels_round_trip(tmp_path):
  labels = np.array([7, 0, 9, 3], np.uint8)
  out = idx.read_idx(fakes.write_idx(str(tmp_path / "labels.gz"), labels))
  np.testing.assert_array_equal(out, labels)
  assert out.shape == (4,)


@pytest.mark.parametrize("content", [
    b"\x01\x00\x08\x01\x00\x00\x00\x01\x05",   # nonzero leading byte
    b"\x00\x00\x07\x01\x00\x00\x00\x01\x05",   # unknown type code
    b"\x00\x00",                               # too short
    b"\x00\x00\x08\x03\x00\x00\x00\x02",       # header cut short
    b"\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02",  # fewer values than the header says
    b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02",  # more values than the header says
])
def test_malformed_file_names_the_file(tmp_path, content):
  path = tmp_path / "bad-idx1-ubyte"
  path.write_bytes(content)
  with pytest.raises(DataError, match=re.escape(str(path))):
    idx.read_idx(str(path))


def test_corrupt_gzip_names_the_file(tmp_path):
  path = tmp_path / "train-images-idx3-ubyte.gz"
  good = gzip.compress(fakes.idx_bytes(np.zeros((2, 2, 2), np.uint8)))
  path.write_bytes(good[:-12])  # truncated stream
  with pytest.raises(DataError, match=re.escape(str(path))):
    idx.read_idx(str(path))
  path.write_bytes(b"not gzip at all")
  with pytest.raises(DataError, match=re.escape(str(path))):
    idx.read_idx(str(path))


def test_load_split_mixes_plain_and_gz(tmp_path):
  rng = np.random.default_rng(1)
  images, labels = fakes.random_mnist(rng, 5, size=6)
  fakes.write_idx(str(tmp_path / "t10k-images-idx3-ubyte"), images)
  fakes.write_idx(str(tmp_path / "t10k-labels-idx1-ubyte.gz"), labels)
  out_images, out_labels = idx.load_idx_split(str(tmp_path), "test")
  assert out_images.shape == (5, 6, 6, 1) and out_images.dtype == np.uint8
  assert out_labels.dtype == np.int32
  np.testing.assert_array_equal(out_images[..., 0], images)
  np.testing.assert_array_equal(out_labels, labels)


def test_missing_file_names_the_path(tmp_path):
  fakes.write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), np.zeros((2, 4, 4), np.uint8))
  with pytest.raises(DataError, match="train-labels-idx1-ubyte") as info:
    idx.load_idx_split(str(tmp_path), "train", how_to_get="get it somewhere")
  assert str(tmp_path) in str(info.value) and "get it somewhere" in str(info.value)


def test_count_mismatch_and_wrong_rank(tmp_path):
  fakes.write_idx(str(tmp_path / "train-images-idx3-ubyte"), np.zeros((3, 4, 4), np.uint8))
  fakes.write_idx(str(tmp_path / "train-labels-idx1-ubyte"), np.zeros((2,), np.uint8))
  with pytest.raises(DataError, match="2 labels but"):
    idx.load_idx_split(str(tmp_path), "train")
  os.remove(tmp_path / "train-images-idx3-ubyte")
  fakes.write_idx(str(tmp_path / "train-images-idx3-ubyte"), np.zeros((2, 16), np.uint8))
  with pytest.raises(DataError, match="rank 3"):
    idx.load_idx_split(str(tmp_path), "train")
