"""Training-time augmentation as pure JAX, to run inside the jitted train step.

Running it on the accelerator, fused into the step, keeps the host side to
plain batch gathering. ``kind`` must be a Python string (static under jit).

``'crop_flip'`` is the standard CIFAR recipe: pad each side by 4 pixels, take
a random crop of the original size, flip left-right with probability 1/2. The
padding is zeros *after* normalization, i.e. the dataset mean colour (mid-grey
for CIFAR's 0.5/0.5 statistics) rather than black.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

AUGMENTATIONS = ("none", "crop_flip")
CROP_PAD = 4


def augment_batch(rng: jax.Array, images: jax.Array, kind: str) -> jax.Array:
  """Augments a batch; ``images`` is ``(B, H, W, C)``, the result has the same shape.

  ``kind='none'`` returns ``images`` itself. The result depends only on
  ``rng`` and ``images``.
  """
  if kind == "none":
    return images
  if kind == "crop_flip":
    return random_crop_flip(rng, images)
  raise ValueError(f"unknown augmentation {kind!r}; valid kinds are: {', '.join(AUGMENTATIONS)}")


def crop_flip_params(rng: jax.Array, batch: int,
                     pad: int = CROP_PAD) -> tuple[jax.Array, jax.Array]:
  """The random draws of :func:`random_crop_flip`.

  Returns:
    ``(offsets, flip)``: int32 ``(B, 2)`` top-left corner ``(row, col)`` of
    each crop in the padded image, each in ``[0, 2 * pad]``; bool ``(B,)``.
  """
  crop_key, flip_key = jax.random.split(rng)
  offsets = jax.random.randint(crop_key, (batch, 2), 0, 2 * pad + 1, dtype=jnp.int32)
  flip = jax.random.bernoulli(flip_key, 0.5, (batch,))
  return offsets, flip


def random_crop_flip(rng: jax.Array, images: jax.Array, pad: int = CROP_PAD) -> jax.Array:
  """Per-example random crop of a zero-padded image, then random left-right flip."""
  if images.ndim != 4:
    raise ValueError(f"images must be (B, H, W, C), got shape {images.shape}")
  batch, height, width, channels = images.shape
  offsets, flip = crop_flip_params(rng, batch, pad)
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

  def crop(image, offset):
    zero = jnp.zeros((), offset.dtype)
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], zero),
                                 (height, width, channels))

  cropped = jax.vmap(crop)(padded, offsets)
  return jnp.where(flip[:, None, None, None], cropped[:, :, ::-1], cropped)
