"""TFDS reading through ``tfds.data_source`` with ``tfds.testing.mock_data``.

``mock_data`` patches the data source itself, so no TensorFlow and no files
beyond a ``dataset_info.json`` marker (which source selection looks for) are
needed. Its default policy falls back to generating examples from the
dataset's code (``MockPolicy.USE_CODE``) because the package ships no
metadata files for these datasets; that path needs numpy only.
"""

import re

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from normzoo.data import DataError, load_dataset
from normzoo.data import tfds_source

NUM_EXAMPLES = 12


class NormzooTinyDigits(tfds.core.GeneratorBasedBuilder):
  """A real array_record dataset built offline, to exercise the unmocked path.

  Its image is a ``Tensor`` feature because encoding an ``Image`` feature
  (PNG) needs TensorFlow; reading and decoding, which is what we test, do not.
  """
  VERSION = tfds.core.Version("1.0.0")
  # tfds would otherwise locate this module's directory via the
  # `importlib_resources` backport, which is not installed; no code files needed.
  code_path = None

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(6, 5, 1), dtype=np.uint8),
        "label": tfds.features.ClassLabel(num_classes=10)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(7), "test": self._generate_examples(3)}

  def _generate_examples(self, n):
    for i in range(n):
      yield i, {"image": np.full((6, 5, 1), 10 * i, np.uint8), "label": i}


def _mark_prepared(root, name, version="1.0.0"):
  (root / name / version).mkdir(parents=True)
  (root / name / version / "dataset_info.json").write_text("{}")
  return str(root)


def _config(**overrides):
  config = ml_collections.ConfigDict(
      dict(dataset="mnist", data_dir="", train_examples=0, test_examples=0, seed=0))
  config.update(overrides)
  return config


@pytest.fixture
def mock_tfds():
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE):
    yield


def test_prepared_dir_detection(tmp_path):
  assert not tfds_source.is_prepared_tfds_dir(str(tmp_path), "mnist")
  assert not tfds_source.is_prepared_tfds_dir("", "mnist")
  _mark_prepared(tmp_path, "mnist")
  assert tfds_source.is_prepared_tfds_dir(str(tmp_path), "mnist")
  assert not tfds_source.is_prepared_tfds_dir(str(tmp_path), "cifar10")


def test_real_array_record_dataset(tmp_path):
  NormzooTinyDigits(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  images, labels = tfds_source.load_tfds_split("normzoo_tiny_digits", str(tmp_path), "train",
                                               pick=lambda n: np.array([1, 4, 6]))
  assert images.shape == (3, 6, 5, 1) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and len(set(labels)) == 3
  # tfds shuffles records when preparing; each image still matches its label.
  np.testing.assert_array_equal(images, np.broadcast_to(10 * labels[:, None, None, None],
                                                        images.shape))
  _, all_labels = tfds_source.load_tfds_split("normzoo_tiny_digits", str(tmp_path), "train")
  np.testing.assert_array_equal(np.sort(all_labels), np.arange(7))
  np.testing.assert_array_equal(labels, all_labels[[1, 4, 6]])


def test_load_split_matches_data_source(tmp_path, mock_tfds):
  data_dir = _mark_prepared(tmp_path, "mnist")
  images, labels = tfds_source.load_tfds_split("mnist", data_dir, "train")
  source = tfds.data_source("mnist", split="train", data_dir=data_dir, download=False)
  assert images.shape == (NUM_EXAMPLES, 28, 28, 1) and images.dtype == np.uint8
  assert labels.dtype == np.int32
  for i in (0, 5, NUM_EXAMPLES - 1):
    np.testing.assert_array_equal(images[i], source[i]["image"])
    assert labels[i] == source[i]["label"]


def test_pick_selects_before_decoding(tmp_path, mock_tfds):
  data_dir = _mark_prepared(tmp_path, "mnist")
  full_images, full_labels = tfds_source.load_tfds_split("mnist", data_dir, "test")
  seen = []

  def pick(n):
    seen.append(n)
    return np.array([2, 3, 9])

  images, labels = tfds_source.load_tfds_split("mnist", data_dir, "test", pick)
  assert seen == [NUM_EXAMPLES]
  np.testing.assert_array_equal(images, full_images[[2, 3, 9]])
  np.testing.assert_array_equal(labels, full_labels[[2, 3, 9]])


def test_load_dataset_auto_detects_tfds_dir(tmp_path, mock_tfds):
  data_dir = _mark_prepared(tmp_path, "cifar10", "3.0.2")
  ds = load_dataset(_config(dataset="cifar10", data_dir=data_dir, train_examples=5))
  assert ds.name == "cifar10" and ds.num_classes == 10 and ds.augment == "crop_flip"
  assert ds.train.images.shape == (5, 32, 32, 3) and ds.train.images.dtype == np.float32
  assert ds.test.images.shape == (NUM_EXAMPLES, 32, 32, 3)
  raw = tfds.data_source("cifar10", split="test", data_dir=data_dir, download=False)[0]["image"]
  np.testing.assert_allclose(ds.test.images[0], (raw / 255.0 - 0.5) / 0.5, atol=1e-6)


def test_tfds_prefix_forces_tfds(tmp_path, mock_tfds):
  data_dir = _mark_prepared(tmp_path, "cifar100")
  ds = load_dataset(_config(dataset="tfds:cifar100", data_dir=data_dir))
  assert ds.name == "cifar100" and ds.num_classes == 100
  assert ds.train.images.shape == (NUM_EXAMPLES, 32, 32, 3)
  assert ds.train.labels.min() >= 0 and ds.train.labels.max() < 100


def test_unprepared_dir_is_a_data_error(tmp_path, mock_tfds):
  with pytest.raises(DataError, match=re.escape(str(tmp_path)) + ".*tfds build fashion_mnist"):
    load_dataset(_config(dataset="tfds:fashion_mnist", data_dir=str(tmp_path)))


def test_tfds_prefix_needs_a_known_image_dataset():
  with pytest.raises(ValueError, match="valid names are:.*tfds:mnist"):
    load_dataset(_config(dataset="tfds:synthetic"))
  with pytest.raises(ValueError, match="tfds:imagenet2012"):
    load_dataset(_config(dataset="tfds:imagenet2012"))
