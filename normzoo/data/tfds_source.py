"""Reads a prepared TensorFlow Datasets directory without TensorFlow.

``tfds.data_source`` gives random access to datasets prepared in the
``array_record`` (or ``parquet``) file format and needs only numpy to decode
them, so TensorFlow stays uninstalled. Nothing is ever downloaded. A dataset
prepared in the default ``tfrecord`` format cannot be read this way; rebuild it
with ``tfds build NAME --file_format=array_record`` on a machine with network.
"""

from __future__ import annotations

import glob
import os
from typing import Callable, Optional

import numpy as np

from normzoo.data.dataset import DataError

IndexPicker = Callable[[int], Optional[np.ndarray]]


def default_tfds_dir() -> str:
  """TFDS's own default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
  return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def is_prepared_tfds_dir(data_dir: str, tfds_name: str) -> bool:
  """Whether ``data_dir`` holds ``<tfds_name>/<version>/dataset_info.json``."""
  if not data_dir:
    return False
  pattern = os.path.join(glob.escape(data_dir), tfds_name, "*", "dataset_info.json")
  return bool(glob.glob(pattern))


def load_tfds_split(tfds_name: str, data_dir: str, split: str,
                    pick: IndexPicker | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Decodes one split of a prepared image-classification dataset.

  Args:
    tfds_name: e.g. ``'mnist'``, ``'cifar10'``.
    data_dir: the TFDS data directory (the one holding ``<tfds_name>/``).
    split: ``'train'`` or ``'test'``.
    pick: given the split size, returns the indices to keep (``None``: all).
      Choosing before decoding keeps quick runs on a subset quick.

  Returns:
    ``(images, labels)``: uint8 ``(N, H, W, C)`` and int32 ``(N,)``.
  """
  if not is_prepared_tfds_dir(data_dir, tfds_name):
    raise DataError(
        f"{os.path.join(data_dir, tfds_name)}: no prepared TFDS dataset "
        f"(no {tfds_name}/<version>/dataset_info.json under {data_dir}); prepare it on a "
        f"machine with network with `tfds build {tfds_name} --file_format=array_record "
        f"--data_dir=DIR` and pass --config.data_dir=DIR")
  # Imported here: tensorflow_datasets takes ~0.5 s to import and only this
  # source needs it.
  import tensorflow_datasets as tfds

  try:
    source = tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds reports a bad directory with many unrelated types.
    raise DataError(
        f"{data_dir}: cannot open TFDS {tfds_name}[{split}] "
        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
        "random access needs --file_format=array_record when preparing") from e
  total = len(source)
  indices = pick(total) if pick is not None else None
  if indices is None:
    indices = np.arange(total)
  if len(indices) == 0:
    raise DataError(f"{data_dir}: TFDS {tfds_name}[{split}] selects no examples")
  first = source[int(indices[0])]
  image_shape = np.shape(first["image"])
  images = np.empty((len(indices), *image_shape), np.uint8)
  labels = np.empty((len(indices),), np.int32)
  # One record at a time: batched __getitems__ is not supported by
  # tfds.testing.mock_data, and decoding dominates the cost either way.
  for out, index in enumerate(indices):
    example = first if out == 0 else source[int(index)]
    images[out] = example["image"]
    labels[out] = example["label"]
  return images, labels
