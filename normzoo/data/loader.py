"""``load_dataset``: config -> normalized in-memory :class:`Dataset`.

Config fields read (an ``ml_collections.ConfigDict`` or anything with the
same keys/attributes; all but ``dataset`` are optional):

* ``dataset``: ``'mnist'``, ``'fashion_mnist'``, ``'cifar10'``,
  ``'cifar100'``, ``'synthetic'``, or ``'tfds:<name>'`` for one of the first
  four read through TFDS.
* ``data_dir`` (default ``''``): where the files are; see below.
* ``train_examples`` / ``test_examples`` (default 0 = all): keep a random
  subset of this size, chosen from ``seed`` (train and test independently;
  a size above the split's size keeps everything). For ``synthetic`` they are
  the generated sizes (0 = 8192 / 2048).
* ``validation_examples`` (default 0 = none): hold this many training
  examples out as ``Dataset.validation``. The held-out indices depend only on
  the training split's size and count, NOT on ``seed``, so every seed of a
  sweep validates on the same images; ``train_examples`` then subsamples the
  remaining ones (never a held-out image).
* ``seed`` (default 0).
* ``synthetic_image_shape`` (default ``(28, 28, 1)``) and
  ``synthetic_num_classes`` (default 10): only for ``synthetic``.

How the source is chosen (nothing is ever downloaded):

1. ``'tfds:<name>'``: TFDS ``data_source`` on ``data_dir``, or on TFDS's
   default directory (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``) when
   ``data_dir`` is empty.
2. Otherwise an empty ``data_dir`` means the system package location
   (``/usr/share/datasets/fashion-mnist`` from the Debian package
   ``dataset-fashion-mnist``); datasets without one need ``data_dir``.
3. A ``data_dir`` that is a prepared TFDS data directory (holds
   ``<tfds_name>/<version>/dataset_info.json``) is read through TFDS.
4. Anything else is read in the dataset's own format: IDX files for
   (Fashion-)MNIST, the python-version batch directory (or its parent) for
   CIFAR.

Images are scaled to ``[0, 1]`` then standardized with the dataset's fixed
per-channel statistics (see :mod:`normzoo.data.registry`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from normzoo.data import cifar, idx, synthetic, tfds_source
from normzoo.data.dataset import DataError, Dataset, Split
from normzoo.data.registry import DatasetSpec, get_spec
from normzoo.data.seeding import Stream, rng_for

_SUBSAMPLE_STREAMS = {"train": Stream.SUBSAMPLE_TRAIN, "test": Stream.SUBSAMPLE_TEST}


def load_dataset(config: Any) -> Dataset:
  """Loads ``config.dataset`` into host memory; see the module docstring.

  Raises:
    ValueError: unknown dataset name (lists the valid ones) or bad sizes.
    DataError: missing or malformed files (names the path and how to get them).
  """
  spec, forced_tfds = get_spec(str(_field(config, "dataset", "")))
  seed = int(_field(config, "seed", 0))
  counts = {split: int(_field(config, f"{split}_examples", 0) or 0)
            for split in ("train", "test")}
  num_validation = int(_field(config, "validation_examples", 0) or 0)
  for split, count in {**counts, "validation": num_validation}.items():
    if count < 0:
      raise ValueError(f"config.{split}_examples must be >= 0 (0 = all), got {count}")

  if spec.native_format == "synthetic":
    num_classes = int(_field(config, "synthetic_num_classes", spec.num_classes))
    num_train = counts["train"] or synthetic.DEFAULT_TRAIN
    # Validation is generated on top of the requested training size, then held out.
    train, test = synthetic.make_synthetic(
        seed, num_train=num_train + num_validation,
        num_test=counts["test"] or synthetic.DEFAULT_TEST,
        image_shape=tuple(_field(config, "synthetic_image_shape", (28, 28, 1))),
        num_classes=num_classes)
    train, validation = hold_out(train, num_validation, 0, seed)
    return Dataset(spec.name, train, test, num_classes, spec.augment, validation)

  use_tfds, data_dir = choose_source(spec, forced_tfds, str(_field(config, "data_dir", "") or ""))
  splits: dict[str, Split | None] = {"validation": None}
  for split, count in counts.items():
    def pick(n: int, count=count, split=split) -> np.ndarray | None:
      return subsample_indices(n, count, seed, _SUBSAMPLE_STREAMS[split])

    if split == "train" and num_validation:
      # Hold out first (from the whole split), then subsample the rest.
      pick = lambda n: None  # noqa: E731

    if use_tfds:
      images, labels = tfds_source.load_tfds_split(spec.tfds_name, data_dir, split, pick)
    else:
      images, labels = _read_native(spec, data_dir, split)
      keep = pick(len(labels))
      if keep is not None:
        images, labels = images[keep], labels[keep]
    _check_labels(labels, spec, data_dir, split)
    splits[split] = Split(normalize(images, spec, data_dir), labels)
    if split == "train" and num_validation:
      splits["train"], splits["validation"] = hold_out(splits["train"], num_validation,
                                                       count, seed)
  return Dataset(spec.name, splits["train"], splits["test"], spec.num_classes, spec.augment,
                 splits["validation"])


def validation_indices(n: int, count: int) -> np.ndarray:
  """Sorted indices of the ``count`` held-out examples of an ``n``-example training split.

  A function of ``(n, count)`` only (a fixed stream, not the run's seed), so
  runs that differ in seed or norm validate on the same examples.
  """
  if count >= n:
    raise ValueError(f"config.validation_examples={count} must be smaller than the "
                     f"{n} training examples")
  return np.sort(rng_for(0, Stream.VALIDATION, n).choice(n, size=count, replace=False))


def hold_out(train: Split, num_validation: int, train_examples: int,
             seed: int) -> tuple[Split, Split | None]:
  """Splits ``train`` into (training, validation) disjointly; ``(train, None)`` for 0.

  The remaining training examples keep their order, then ``train_examples``
  (0 = all) of them are subsampled with ``seed``.
  """
  if not num_validation:
    return train, None
  held = validation_indices(len(train), num_validation)
  rest = np.setdiff1d(np.arange(len(train)), held, assume_unique=True)
  keep = subsample_indices(len(rest), train_examples, seed, Stream.SUBSAMPLE_TRAIN)
  if keep is not None:
    rest = rest[keep]
  return (Split(train.images[rest], train.labels[rest]),
          Split(train.images[held], train.labels[held]))


def choose_source(spec: DatasetSpec, forced_tfds: bool, data_dir: str) -> tuple[bool, str]:
  """Returns ``(use_tfds, directory)`` following the rules in the module docstring."""
  if forced_tfds:
    return True, data_dir or tfds_source.default_tfds_dir()
  if not data_dir:
    if spec.default_dir is None:
      raise DataError(
          f"{spec.name}: config.data_dir is empty; {spec.how_to_get} "
          f"(a prepared TFDS data directory holding {spec.tfds_name}/ also works)")
    data_dir = spec.default_dir
    if not os.path.isdir(data_dir):
      raise DataError(
          f"{spec.name}: {data_dir} does not exist (config.data_dir is empty, so the "
          f"system package location was tried); {spec.how_to_get}")
  if not os.path.isdir(data_dir):
    raise DataError(f"{spec.name}: data directory {data_dir} does not exist; {spec.how_to_get}")
  if spec.tfds_name and tfds_source.is_prepared_tfds_dir(data_dir, spec.tfds_name):
    return True, data_dir
  return False, data_dir


def subsample_indices(n: int, count: int, seed: int, stream: Stream) -> np.ndarray | None:
  """Sorted indices of a ``count``-subset of ``range(n)``; ``None`` keeps all.

  ``count == 0`` or ``count >= n`` keeps everything. Depends only on
  ``(n, count, seed, stream)``.
  """
  if count == 0 or count >= n:
    return None
  return np.sort(rng_for(seed, stream).choice(n, size=count, replace=False))


def normalize(images: np.ndarray, spec: DatasetSpec, source: str = "") -> np.ndarray:
  """uint8 ``(N, H, W, C)`` -> float32 ``(pixel / 255 - mean) / std`` per channel."""
  channels = images.shape[-1]
  if channels != len(spec.mean):
    raise DataError(
        f"{source}: {spec.name} images have {channels} channel(s), "
        f"expected {len(spec.mean)}")
  # Folded into one multiply-add so the full-size float array is written once.
  scale = (1.0 / (255.0 * np.asarray(spec.std))).astype(np.float32)
  shift = (-np.asarray(spec.mean) / np.asarray(spec.std)).astype(np.float32)
  out = images.astype(np.float32)
  out *= scale
  out += shift
  return out


def _read_native(spec: DatasetSpec, data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  if spec.native_format == "idx":
    return idx.load_idx_split(data_dir, split, spec.how_to_get)
  return cifar.load_cifar_split(data_dir, spec.native_format, split, spec.how_to_get)


def _check_labels(labels: np.ndarray, spec: DatasetSpec, data_dir: str, split: str) -> None:
  bad = (labels < 0) | (labels >= spec.num_classes)
  if bad.any():
    raise DataError(
        f"{data_dir}: {spec.name} {split} labels must lie in [0, {spec.num_classes}), "
        f"found {int(labels[bad][0])}")


def _field(config: Any, name: str, default: Any) -> Any:
  """``config[name]`` for mappings (ConfigDict included), else the attribute."""
  try:
    return config[name]
  except (KeyError, TypeError, AttributeError):
    return getattr(config, name, default)
