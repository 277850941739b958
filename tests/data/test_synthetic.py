"""Synthetic data: deterministic from the seed, class-conditional, learnable."""

import numpy as np
import pytest

from normzoo.data import synthetic


def _nearest_mean_accuracy(train, test, num_classes):
  flat = lambda x: x.reshape(len(x), -1)
  means = np.stack([flat(train.images)[train.labels == k].mean(0) for k in range(num_classes)])
  distances = ((flat(test.images)[:, None, :] - means[None]) ** 2).sum(-1)
  return (distances.argmin(1) == test.labels).mean()


def test_deterministic_from_seed():
  a = synthetic.make_synthetic(3, num_train=64, num_test=16)
  b = synthetic.make_synthetic(3, num_train=64, num_test=16)
  c = synthetic.make_synthetic(4, num_train=64, num_test=16)
  for split_a, split_b in zip(a, b):
    np.testing.assert_array_equal(split_a.images, split_b.images)
    np.testing.assert_array_equal(split_a.labels, split_b.labels)
  assert not np.allclose(a[0].images, c[0].images)


def test_test_size_does_not_change_train():
  a_train, _ = synthetic.make_synthetic(0, num_train=32, num_test=8)
  b_train, _ = synthetic.make_synthetic(0, num_train=32, num_test=100)
  np.testing.assert_array_equal(a_train.images, b_train.images)


@pytest.mark.parametrize("shape,classes", [((28, 28, 1), 10), ((32, 32, 3), 7), ((9, 13, 2), 3)])
def test_shapes_dtypes_balance_scale(shape, classes):
  train, test = synthetic.make_synthetic(1, num_train=700, num_test=70, image_shape=shape,
                                         num_classes=classes)
  assert train.images.shape == (700, *shape) and train.images.dtype == np.float32
  assert test.images.shape == (70, *shape)
  assert train.labels.dtype == np.int32
  counts = np.bincount(train.labels, minlength=classes)
  assert counts.max() - counts.min() <= 1
  assert abs(train.images.mean()) < 0.1 and 0.8 < train.images.std() < 1.2


def test_class_conditional():
  train, test = synthetic.make_synthetic(0, num_train=1000, num_test=500)
  accuracy = _nearest_mean_accuracy(train, test, 10)
  assert accuracy > 0.9, accuracy
  # Labels carry the signal: shuffled labels leave the classifier at chance.
  shuffled = train.__class__(train.images, np.random.default_rng(0).permutation(train.labels))
  assert _nearest_mean_accuracy(shuffled, test, 10) < 0.3


def test_rejects_bad_arguments():
  with pytest.raises(ValueError, match="2 classes"):
    synthetic.make_synthetic(0, num_classes=1)
  with pytest.raises(ValueError, match="image_shape"):
    synthetic.make_synthetic(0, image_shape=(28, 28))
