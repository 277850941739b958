"""augment_batch: identity, determinism, and crop/flip against numpy oracles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from normzoo.data import augment_batch
from normzoo.data.augment import CROP_PAD, crop_flip_params

PAD = CROP_PAD


def _images(batch=16, size=32, channels=3):
  # Distinct nonzero values, so every window of the padded image is unique.
  return (np.arange(batch * size * size * channels, dtype=np.float32)
          .reshape(batch, size, size, channels) + 1)


def _numpy_crop_flip(images, offsets, flip):
  _, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
  out = np.stack([padded[i, r:r + h, c:c + w] for i, (r, c) in enumerate(offsets)])
  return np.where(flip[:, None, None, None], out[:, :, ::-1], out)


def test_none_is_identity():
  images = jnp.asarray(_images(2))
  assert augment_batch(jax.random.key(0), images, "none") is images


def test_unknown_kind():
  with pytest.raises(ValueError, match="crop_flip"):
    augment_batch(jax.random.key(0), jnp.zeros((1, 4, 4, 1)), "mixup")


def test_shape_dtype_and_determinism():
  images = jnp.asarray(_images())
  fn = jax.jit(augment_batch, static_argnums=2)
  a = fn(jax.random.key(1), images, "crop_flip")
  assert a.shape == images.shape and a.dtype == images.dtype
  np.testing.assert_array_equal(a, fn(jax.random.key(1), images, "crop_flip"))
  assert not np.array_equal(a, fn(jax.random.key(2), images, "crop_flip"))


def test_matches_numpy_oracle_for_the_drawn_parameters():
  images = _images()
  rng = jax.random.key(3)
  out = jax.jit(augment_batch, static_argnums=2)(rng, jnp.asarray(images), "crop_flip")
  offsets, flip = crop_flip_params(rng, len(images))
  np.testing.assert_array_equal(out, _numpy_crop_flip(images, np.asarray(offsets),
                                                      np.asarray(flip)))


def test_each_output_is_a_window_of_the_padded_image_maybe_flipped():
  # Independent of crop_flip_params: recover each example's window by search.
  images = _images(batch=64, size=8, channels=2)
  out = np.asarray(augment_batch(jax.random.key(4), jnp.asarray(images), "crop_flip"))
  padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
  found_offsets, found_flips = set(), set()
  for i in range(len(images)):
    matches = [(r, c, f) for r in range(2 * PAD + 1) for c in range(2 * PAD + 1)
               for f in (False, True)
               if np.array_equal(out[i], (lambda w: w[:, ::-1] if f else w)(
                   padded[i, r:r + 8, c:c + 8]))]
    assert len(matches) == 1, (i, matches)
    found_offsets.add(matches[0][:2])
    found_flips.add(matches[0][2])
  assert found_flips == {False, True}
  assert len(found_offsets) > 20  # offsets vary across examples


def test_flip_actually_flips():
  images = _images(batch=1024, size=4, channels=1)
  out = np.asarray(augment_batch(jax.random.key(5), jnp.asarray(images), "crop_flip"))
  offsets, flip = map(np.asarray, crop_flip_params(jax.random.key(5), 1024))
  centred = (offsets == PAD).all(1)  # uncropped: out is the image, maybe flipped
  assert centred.sum() >= 5
  for i in np.flatnonzero(centred):
    expected = images[i, :, ::-1] if flip[i] else images[i]
    np.testing.assert_array_equal(out[i], expected)
  assert 0.35 < flip.mean() < 0.65
  assert offsets.min() == 0 and offsets.max() == 2 * PAD
