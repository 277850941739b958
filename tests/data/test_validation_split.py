"""config.validation_examples: a held-out part of the training split."""

import ml_collections
import numpy as np
import pytest

from normzoo.data import load_dataset
from tests.data import fakes


def _config(**overrides):
  config = ml_collections.ConfigDict(
      dict(dataset="mnist", data_dir="", train_examples=0, test_examples=0, seed=0,
           validation_examples=0))
  config.update(overrides)
  return config


@pytest.fixture
def mnist_dir(tmp_path):
  rng = np.random.default_rng(1)
  train, test = fakes.random_mnist(rng, 60), fakes.random_mnist(rng, 10)
  return fakes.write_mnist_dir(str(tmp_path / "mnist"), train, test)


def _rows_in(full: np.ndarray, part: np.ndarray) -> np.ndarray:
  """Index in ``full`` of every image of ``part`` (each must occur exactly once)."""
  flat = full.reshape(len(full), -1)
  found = [np.flatnonzero((flat == row).all(1)) for row in part.reshape(len(part), -1)]
  assert all(len(f) == 1 for f in found)
  return np.array([f[0] for f in found])


def test_held_out_examples_are_disjoint_and_cover_the_split(mnist_dir):
  full = load_dataset(_config(data_dir=mnist_dir))
  ds = load_dataset(_config(data_dir=mnist_dir, validation_examples=15))
  assert len(ds.validation) == 15 and len(ds.train) == 45
  val = _rows_in(full.train.images, ds.validation.images)
  train = _rows_in(full.train.images, ds.train.images)
  assert not set(val) & set(train)
  assert sorted(set(val) | set(train)) == list(range(60))
  np.testing.assert_array_equal(ds.validation.labels, full.train.labels[val])
  assert load_dataset(_config(data_dir=mnist_dir)).validation is None


def test_validation_does_not_depend_on_the_seed_and_subsets_avoid_it(mnist_dir):
  a = load_dataset(_config(data_dir=mnist_dir, validation_examples=15, seed=1,
                           train_examples=20))
  b = load_dataset(_config(data_dir=mnist_dir, validation_examples=15, seed=2,
                           train_examples=20))
  np.testing.assert_array_equal(a.validation.images, b.validation.images)
  assert len(a.train) == 20 and not np.array_equal(a.train.images, b.train.images)
  for ds in (a, b):
    flat_val = ds.validation.images.reshape(15, -1)
    for row in ds.train.images.reshape(20, -1):
      assert not (flat_val == row).all(1).any()


def test_synthetic_validation_keeps_the_requested_training_size():
  config = _config(dataset="synthetic", train_examples=64, test_examples=16,
                   validation_examples=32)
  config.synthetic_image_shape = (8, 8, 1)
  ds = load_dataset(config)
  assert (len(ds.train), len(ds.validation), len(ds.test)) == (64, 32, 16)


@pytest.mark.parametrize("count", [-1, 60, 100])
def test_bad_validation_size(mnist_dir, count):
  with pytest.raises(ValueError, match="validation_examples"):
    load_dataset(_config(data_dir=mnist_dir, validation_examples=count))
