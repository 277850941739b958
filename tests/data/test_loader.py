"""load_dataset: source selection, normalization, subsampling, errors."""

import dataclasses
import os
import re

import ml_collections
import numpy as np
import pytest

from normzoo import data
from normzoo.data import DataError, load_dataset, registry
from tests.data import fakes


def _config(**overrides):
  config = ml_collections.ConfigDict(
      dict(dataset="mnist", data_dir="", train_examples=0, test_examples=0, seed=0))
  config.update(overrides)
  return config


@pytest.fixture
def mnist_dir(tmp_path):
  rng = np.random.default_rng(0)
  train, test = fakes.random_mnist(rng, 40), fakes.random_mnist(rng, 10)
  train[0][0, 0, 0], train[0][0, 0, 1] = 0, 255
  directory = fakes.write_mnist_dir(str(tmp_path / "mnist"), train, test)
  return directory, train, test


def test_available_datasets():
  assert data.available_datasets() == ["cifar10", "cifar100", "fashion_mnist", "mnist",
                                       "synthetic"]


def test_mnist_from_idx_normalized(mnist_dir):
  directory, (train_images, train_labels), (test_images, _) = mnist_dir
  ds = load_dataset(_config(data_dir=directory))
  assert (ds.name, ds.num_classes, ds.augment) == ("mnist", 10, "none")
  assert ds.image_shape == (28, 28, 1)
  assert ds.train.images.dtype == np.float32 and ds.train.labels.dtype == np.int32
  assert len(ds.train) == 40 and len(ds.test) == 10
  np.testing.assert_allclose(ds.train.images[0, 0, 0, 0], -0.1307 / 0.3081, rtol=1e-6)
  np.testing.assert_allclose(ds.train.images[0, 0, 1, 0], (1 - 0.1307) / 0.3081, rtol=1e-6)
  np.testing.assert_allclose(ds.test.images[..., 0], (test_images / 255 - 0.1307) / 0.3081,
                             atol=1e-5)
  np.testing.assert_array_equal(ds.train.labels, train_labels)


def test_fashion_mnist_statistics(mnist_dir):
  directory, (train_images, _), _ = mnist_dir
  ds = load_dataset(_config(dataset="fashion_mnist", data_dir=directory))
  np.testing.assert_allclose(ds.train.images[..., 0], (train_images / 255 - 0.2860) / 0.3530,
                             atol=1e-5)


def test_fashion_mnist_defaults_to_package_location(mnist_dir, monkeypatch):
  directory, (train_images, _), _ = mnist_dir
  spec = dataclasses.replace(registry.DATASETS["fashion_mnist"], default_dir=directory)
  monkeypatch.setitem(registry.DATASETS, "fashion_mnist", spec)
  ds = load_dataset(_config(dataset="fashion_mnist", data_dir=""))
  assert len(ds.train) == len(train_images)


def test_missing_package_location_explains_how_to_install(tmp_path, monkeypatch):
  missing = str(tmp_path / "not-installed")
  spec = dataclasses.replace(registry.DATASETS["fashion_mnist"], default_dir=missing)
  monkeypatch.setitem(registry.DATASETS, "fashion_mnist", spec)
  with pytest.raises(DataError, match=re.escape(missing) + ".*apt-get install dataset-fashion"):
    load_dataset(_config(dataset="fashion_mnist", data_dir=""))


def test_registry_default_location_is_the_debian_package():
  assert registry.DATASETS["fashion_mnist"].default_dir == "/usr/share/datasets/fashion-mnist"


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_missing_directory_names_it(tmp_path, name):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(DataError, match=re.escape(missing)) as info:
    load_dataset(_config(dataset=name, data_dir=missing))
  assert "\n" not in str(info.value)  # printable as one line by the CLI
  assert "data_dir" in str(info.value)


def test_empty_data_dir_without_default(tmp_path):
  with pytest.raises(DataError, match="data_dir is empty.*cifar-10-python"):
    load_dataset(_config(dataset="cifar10"))


def test_missing_file_inside_directory(mnist_dir):
  directory, _, _ = mnist_dir
  os.remove(os.path.join(directory, "t10k-labels-idx1-ubyte.gz"))
  with pytest.raises(DataError, match=re.escape(os.path.join(directory, "t10k-labels"))):
    load_dataset(_config(data_dir=directory))


def test_unknown_dataset_lists_valid_names():
  with pytest.raises(ValueError, match="valid names are: cifar10, cifar100, fashion_mnist"):
    load_dataset(_config(dataset="imagenet"))


def test_labels_out_of_range(tmp_path):
  images, labels = fakes.random_mnist(np.random.default_rng(0), 4)
  labels[2] = 10
  directory = fakes.write_mnist_dir(str(tmp_path), (images, labels), (images, labels))
  with pytest.raises(DataError, match=r"\[0, 10\).*found 10"):
    load_dataset(_config(data_dir=directory))


def test_cifar10_through_load_dataset(tmp_path):
  written = fakes.write_cifar10_dir(str(tmp_path / "cifar-10-batches-py"),
                                    np.random.default_rng(5))
  ds = load_dataset(_config(dataset="cifar10", data_dir=str(tmp_path)))
  assert (ds.num_classes, ds.augment, ds.image_shape) == (10, "crop_flip", (32, 32, 3))
  rgb = written["test_rows"][2, [32 * 5 + 6, 1024 + 32 * 5 + 6, 2048 + 32 * 5 + 6]]
  np.testing.assert_allclose(ds.test.images[2, 5, 6], (rgb / 255 - 0.5) / 0.5, atol=1e-6)


def test_subsampling_is_a_deterministic_subset(mnist_dir):
  directory, (train_images, _), (test_images, _) = mnist_dir
  full = load_dataset(_config(data_dir=directory))
  a = load_dataset(_config(data_dir=directory, train_examples=12, test_examples=3, seed=1))
  b = load_dataset(_config(data_dir=directory, train_examples=12, test_examples=3, seed=1))
  c = load_dataset(_config(data_dir=directory, train_examples=12, test_examples=3, seed=2))
  assert len(a.train) == 12 and len(a.test) == 3
  np.testing.assert_array_equal(a.train.images, b.train.images)
  np.testing.assert_array_equal(a.test.labels, b.test.labels)
  assert not np.array_equal(a.train.images, c.train.images)
  # Every kept example is a distinct original one, with its own label.
  flat_full = full.train.images.reshape(40, -1)
  matches = [np.flatnonzero((flat_full == row).all(1)) for row in a.train.images.reshape(12, -1)]
  assert all(len(m) == 1 for m in matches)
  kept = np.array([m[0] for m in matches])
  assert len(set(kept)) == 12
  np.testing.assert_array_equal(a.train.labels, full.train.labels[kept])


def test_subsample_larger_than_split_keeps_all(mnist_dir):
  directory, _, _ = mnist_dir
  ds = load_dataset(_config(data_dir=directory, train_examples=1000))
  assert len(ds.train) == 40
  with pytest.raises(ValueError, match="train_examples"):
    load_dataset(_config(data_dir=directory, train_examples=-1))


def test_synthetic_through_load_dataset():
  config = _config(dataset="synthetic", train_examples=50, test_examples=20, seed=3)
  config.synthetic_image_shape = (16, 16, 3)
  config.synthetic_num_classes = 4
  ds = load_dataset(config)
  assert (ds.name, ds.num_classes, ds.augment) == ("synthetic", 4, "none")
  assert ds.train.images.shape == (50, 16, 16, 3) and len(ds.test) == 20
  again = load_dataset(config)
  np.testing.assert_array_equal(ds.train.images, again.train.images)
  default = load_dataset(_config(dataset="synthetic"))
  assert default.train.images.shape == (8192, 28, 28, 1) and default.num_classes == 10


def test_config_without_optional_fields(mnist_dir):
  directory, _, _ = mnist_dir
  ds = load_dataset(ml_collections.ConfigDict(dict(dataset="mnist", data_dir=directory)))
  assert len(ds.train) == 40
