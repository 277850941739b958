"""Name -> description of every dataset ``config.dataset`` may name.

A :class:`DatasetSpec` holds what does not depend on where the files are:
class count, normalization statistics, augmentation, the on-disk format read
without TFDS, the TFDS name, and where to get the data (used in errors).
"""

from __future__ import annotations

import dataclasses

TFDS_PREFIX = "tfds:"

_MNIST_FILES = ("train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Static facts about one dataset.

  Attributes:
    name: the ``config.dataset`` value.
    num_classes: labels lie in ``[0, num_classes)``.
    mean, std: per-channel statistics of pixels scaled to ``[0, 1]``; images
      become ``(pixel / 255 - mean) / std``. Empty for generated data.
    augment: ``'none'`` or ``'crop_flip'`` (training only).
    native_format: ``'idx'``, ``'cifar10'``, ``'cifar100'`` or ``'synthetic'``.
    tfds_name: name of the same data in TFDS, or ``None``.
    default_dir: where a system package installs it (used when
      ``config.data_dir`` is empty), or ``None``.
    how_to_get: one sentence telling the user how to obtain the files.
  """
  name: str
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  augment: str
  native_format: str
  tfds_name: str | None = None
  default_dir: str | None = None
  how_to_get: str = ""


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist", num_classes=10, mean=(0.1307,), std=(0.3081,), augment="none",
        native_format="idx", tfds_name="mnist",
        how_to_get=("download the MNIST IDX files (" + _MNIST_FILES + ") into a directory "
                    "and pass --config.data_dir=DIR")),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist", num_classes=10, mean=(0.2860,), std=(0.3530,), augment="none",
        native_format="idx", tfds_name="fashion_mnist",
        default_dir="/usr/share/datasets/fashion-mnist",
        how_to_get=("install it with `apt-get install dataset-fashion-mnist` (files go to "
                    "/usr/share/datasets/fashion-mnist) or pass --config.data_dir=DIR "
                    "holding " + _MNIST_FILES)),
    "cifar10": DatasetSpec(
        name="cifar10", num_classes=10, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        augment="crop_flip", native_format="cifar10", tfds_name="cifar10",
        how_to_get=("download the CIFAR-10 python version "
                    "(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), extract it "
                    "and pass --config.data_dir=DIR/cifar-10-batches-py (or its parent)")),
    "cifar100": DatasetSpec(
        name="cifar100", num_classes=100, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        augment="crop_flip", native_format="cifar100", tfds_name="cifar100",
        how_to_get=("download the CIFAR-100 python version "
                    "(https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz), extract it "
                    "and pass --config.data_dir=DIR/cifar-100-python (or its parent)")),
    "synthetic": DatasetSpec(
        name="synthetic", num_classes=10, mean=(), std=(), augment="none",
        native_format="synthetic"),
}


def available_datasets() -> list[str]:
  """Sorted names accepted by ``config.dataset`` (each file-backed one also as
  ``'tfds:<name>'`` to force the TFDS reader)."""
  return sorted(DATASETS)


def get_spec(name: str) -> tuple[DatasetSpec, bool]:
  """Looks up ``name``, which may carry the ``'tfds:'`` prefix.

  Returns:
    ``(spec, forced_tfds)``.

  Raises:
    ValueError: unknown name; the message lists the valid ones.
  """
  forced_tfds = name.startswith(TFDS_PREFIX)
  base = name[len(TFDS_PREFIX):] if forced_tfds else name
  spec = DATASETS.get(base)
  if spec is None or (forced_tfds and spec.tfds_name is None):
    tfds_names = [f"{TFDS_PREFIX}{n}" for n in available_datasets() if DATASETS[n].tfds_name]
    raise ValueError(
        f"unknown dataset {name!r}; valid names are: "
        f"{', '.join(available_datasets() + tfds_names)}")
  return spec, forced_tfds
