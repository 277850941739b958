"""In-memory dataset containers and the error raised for unusable data."""

from __future__ import annotations

import dataclasses

import numpy as np


class DataError(ValueError):
  """Data that is missing, unreadable or malformed.

  The message is one line naming the offending path and how to get the data,
  so a command-line entry point can print it without a traceback.
  """


@dataclasses.dataclass(frozen=True)
class Split:
  """One split held in host memory.

  Attributes:
    images: float32 ``(N, H, W, C)``, already normalized.
    labels: int32 ``(N,)``.
  """
  images: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    if self.labels.shape != self.images.shape[:1]:
      raise ValueError(
          f"labels shape {self.labels.shape} does not match {len(self.images)} images")

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A loaded dataset: both splits plus what a model and train step need.

  Attributes:
    name: the ``config.dataset`` value that produced it.
    train, test: the splits.
    num_classes: labels lie in ``[0, num_classes)``.
    augment: ``'none'`` or ``'crop_flip'``; pass to :func:`augment_batch`.
    validation: examples held out of the training set (``None`` when
      ``config.validation_examples`` is 0); disjoint from ``train``.
  """
  name: str
  train: Split
  test: Split
  num_classes: int
  augment: str
  validation: Split | None = None

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """``(H, W, C)`` of one example."""
    return tuple(self.train.images.shape[1:])
