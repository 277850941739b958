"""A learnable class-conditional image dataset generated from a seed.

Each class owns a smooth random template (a coarse Gaussian grid upsampled
4x, so neighbouring pixels correlate as in real images); an example is its
class template at a random contrast plus i.i.d. Gaussian pixel noise. The
classes are far apart relative to the noise, so a small CNN (or a
nearest-class-mean classifier) learns it well above chance in a few hundred
steps -- enough for smoke runs and tests without any files.
"""

from __future__ import annotations

import numpy as np

from normzoo.data.dataset import Split
from normzoo.data.seeding import Stream, rng_for

DEFAULT_TRAIN = 8192
DEFAULT_TEST = 2048
_UPSAMPLE = 4   # template smoothness in pixels
_CONTRAST = (0.5, 1.5)


def class_templates(seed: int, image_shape: tuple[int, int, int],
                    num_classes: int) -> np.ndarray:
  """float32 ``(num_classes, H, W, C)``, each with zero mean and unit std."""
  height, width, channels = image_shape
  rng = rng_for(seed, Stream.SYNTHETIC_TEMPLATES)
  coarse = rng.standard_normal(
      (num_classes, -(-height // _UPSAMPLE), -(-width // _UPSAMPLE), channels),
      dtype=np.float32)
  fine = coarse.repeat(_UPSAMPLE, axis=1).repeat(_UPSAMPLE, axis=2)[:, :height, :width]
  fine -= fine.mean(axis=(1, 2, 3), keepdims=True)
  fine /= fine.std(axis=(1, 2, 3), keepdims=True) + 1e-6
  return fine


def make_synthetic(seed: int, num_train: int = DEFAULT_TRAIN, num_test: int = DEFAULT_TEST,
                   image_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10,
                   noise: float = 1.0) -> tuple[Split, Split]:
  """Builds ``(train, test)`` splits, already roughly zero-mean unit-variance.

  Train and test share the class templates but draw examples from separate
  streams, so changing ``num_test`` leaves the training set unchanged.

  Returns:
    Two :class:`Split` s with float32 ``(N, *image_shape)`` images and int32
    ``(N,)`` labels, classes balanced to within one example.
  """
  if num_classes < 2:
    raise ValueError(f"synthetic data needs at least 2 classes, got {num_classes}")
  image_shape = tuple(int(d) for d in image_shape)
  if len(image_shape) != 3 or min(image_shape) < 1:
    raise ValueError(f"synthetic image_shape must be (H, W, C), got {image_shape}")
  templates = class_templates(seed, image_shape, num_classes)
  return (_sample(rng_for(seed, Stream.SYNTHETIC_TRAIN), num_train, templates, noise),
          _sample(rng_for(seed, Stream.SYNTHETIC_TEST), num_test, templates, noise))


def _sample(rng: np.random.Generator, n: int, templates: np.ndarray,
            noise: float) -> Split:
  num_classes = len(templates)
  labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
  contrast = rng.uniform(*_CONTRAST, size=(n, 1, 1, 1)).astype(np.float32)
  images = rng.standard_normal((n, *templates.shape[1:]), dtype=np.float32)
  images *= noise
  images += contrast * templates[labels]
  # E[contrast^2] + noise^2 is the per-pixel variance; scale it to one.
  low, high = _CONTRAST
  images /= np.float32(np.sqrt((low * low + low * high + high * high) / 3 + noise * noise))
  return Split(images=images, labels=labels)

