"""CIFAR python-version reading: CHW rows -> HWC images, both variants, errors."""

import os
import pickle
import re

import numpy as np
import pytest

from normzoo.data import DataError
from normzoo.data import cifar
from tests.data import fakes


def test_known_pixel_lands_in_hwc(tmp_path):
  rng = np.random.default_rng(0)
  rows = fakes.cifar_rows(rng, 3)
  fakes.set_pixel(rows, 1, y=3, x=17, rgb=(10, 200, 77))
  path = fakes.write_cifar_batch(str(tmp_path / "test_batch"), rows, [4, 5, 6])
  images, labels = cifar.read_batch(path, b"labels")
  assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
  assert images.flags.c_contiguous
  np.testing.assert_array_equal(images[1, 3, 17], [10, 200, 77])
  # Transposed layouts would put these values elsewhere; check they are not.
  assert not np.array_equal(images[1, 17, 3], [10, 200, 77])
  np.testing.assert_array_equal(labels, [4, 5, 6])
  assert labels.dtype == np.int32


def test_every_pixel_against_an_explicit_loop(tmp_path):
  rows = fakes.cifar_rows(np.random.default_rng(1), 2)
  path = fakes.write_cifar_batch(str(tmp_path / "b"), rows, [0, 1])
  images, _ = cifar.read_batch(path, b"labels")
  expected = np.empty((2, 32, 32, 3), np.uint8)
  for n in range(2):
    for c in range(3):
      for y in range(32):
        for x in range(32):
          expected[n, y, x, c] = rows[n, c * 1024 + y * 32 + x]
  np.testing.assert_array_equal(images, expected)


@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_dir_or_parent(tmp_path, nested):
  batch_dir = tmp_path / "cifar-10-batches-py"
  written = fakes.write_cifar10_dir(str(batch_dir), np.random.default_rng(2))
  data_dir = str(tmp_path if nested else batch_dir)
  images, labels = cifar.load_cifar_split(data_dir, "cifar10", "train")
  assert images.shape == (15, 32, 32, 3)
  # Batches are concatenated in order 1..5.
  np.testing.assert_array_equal(labels, written["train_labels"])
  np.testing.assert_array_equal(images[7, 0, 0], written["train_rows"][7, [0, 1024, 2048]])
  test_images, test_labels = cifar.load_cifar_split(data_dir, "cifar10", "test")
  assert test_images.shape == (4, 32, 32, 3)
  np.testing.assert_array_equal(test_labels, written["test_labels"])


def test_cifar100_uses_fine_labels(tmp_path):
  batch_dir = tmp_path / "cifar-100-python"
  batch_dir.mkdir()
  rows = fakes.cifar_rows(np.random.default_rng(3), 2)
  fakes.set_pixel(rows, 0, y=31, x=0, rgb=(1, 2, 3))
  for split in ("train", "test"):
    fakes.write_cifar_batch(str(batch_dir / split), rows, [99, 42], label_key=b"fine_labels",
                            extra={b"coarse_labels": [19, 7]})
  images, labels = cifar.load_cifar_split(str(tmp_path), "cifar100", "train")
  np.testing.assert_array_equal(labels, [99, 42])
  np.testing.assert_array_equal(images[0, 31, 0], [1, 2, 3])


def test_missing_batch_file_names_the_path(tmp_path):
  fakes.write_cifar10_dir(str(tmp_path), np.random.default_rng(4))
  os.remove(tmp_path / "data_batch_3")
  with pytest.raises(DataError, match=re.escape(str(tmp_path / "data_batch_3"))) as info:
    cifar.load_cifar_split(str(tmp_path), "cifar10", "train", how_to_get="download it")
  assert "download it" in str(info.value)


def test_malformed_batches(tmp_path):
  path = str(tmp_path / "test_batch")
  fakes.write_cifar_batch(path, np.zeros((2, 3072), np.uint8), [1, 2], label_key=b"fine_labels")
  with pytest.raises(DataError, match=re.escape(path) + ".*b'labels'"):
    cifar.read_batch(path, b"labels")
  fakes.write_cifar_batch(path, np.zeros((2, 1024), np.uint8), [1, 2])
  with pytest.raises(DataError, match="3072"):
    cifar.read_batch(path, b"labels")
  with open(path, "wb") as f:
    f.write(b"garbage")
  with pytest.raises(DataError, match=re.escape(path)):
    cifar.read_batch(path, b"labels")


class _RunsCode:
  def __reduce__(self):
    return (os.mkdir, ("should-not-exist",))


def test_pickle_with_foreign_globals_is_refused(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = tmp_path / "test_batch"
  path.write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}, protocol=2))
  with pytest.raises(DataError, match="refusing"):
    cifar.read_batch(str(path), b"labels")
  assert not (tmp_path / "should-not-exist").exists()
