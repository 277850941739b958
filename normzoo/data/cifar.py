"""Reader for the "python version" of CIFAR-10 and CIFAR-100.

Each batch file is a pickled dict whose ``b'data'`` is ``(N, 3072)`` uint8:
per image, the 1024 red values, then green, then blue, each 32x32 plane
row-major -- i.e. CHW. Labels are ``b'labels'`` (CIFAR-10) or
``b'fine_labels'`` (CIFAR-100).
"""

from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np

from normzoo.data.dataset import DataError


@dataclasses.dataclass(frozen=True)
class CifarLayout:
  """Where one CIFAR variant keeps its files."""
  batch_dir: str            # directory name inside the extracted archive
  files: dict[str, tuple[str, ...]]  # split -> batch file names
  label_key: bytes
  num_classes: int


CIFAR_LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        batch_dir="cifar-10-batches-py",
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)),
               "test": ("test_batch",)},
        label_key=b"labels",
        num_classes=10),
    "cifar100": CifarLayout(
        batch_dir="cifar-100-python",
        files={"train": ("train",), "test": ("test",)},
        label_key=b"fine_labels",
        num_classes=100),
}


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles plain containers and numpy arrays, nothing else.

  The batches come from a downloaded archive; refusing arbitrary globals means
  a tampered file cannot run code when it is loaded.
  """
  _ALLOWED = {
      ("numpy", "ndarray"), ("numpy", "dtype"),
      ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
      ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
      ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
      # Python 3 writes bytes as _codecs.encode(str, 'latin1') under protocol < 3.
      ("_codecs", "encode"),
  }

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")
    return super().find_class(module, name)


def resolve_batch_dir(data_dir: str, variant: str) -> str:
  """Accepts the batch directory itself or its parent; returns the former."""
  layout = CIFAR_LAYOUTS[variant]
  probe = layout.files["test"][0]
  nested = os.path.join(data_dir, layout.batch_dir)
  if not os.path.isfile(os.path.join(data_dir, probe)) and os.path.isdir(nested):
    return nested
  return data_dir


def read_batch(path: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
  """Reads one batch file.

  Returns:
    ``(images, labels)``: uint8 ``(N, 32, 32, 3)`` (HWC) and int32 ``(N,)``.
  """
  try:
    with open(path, "rb") as f:
      # The official files are Python 2 pickles of byte-string keys.
      batch = _ArrayUnpickler(f, encoding="bytes").load()
  except FileNotFoundError as e:
    raise DataError(f"missing CIFAR batch file {path}") from e
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
          ImportError, IndexError, KeyError, OSError) as e:
    raise DataError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e})") from e
  if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
    keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
    raise DataError(
        f"{path}: expected a dict with keys b'data' and {label_key!r}, got {keys}")
  data = np.asarray(batch[b"data"])
  labels = np.asarray(batch[label_key])
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
    raise DataError(
        f"{path}: b'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
  if labels.shape != (len(data),):
    raise DataError(
        f"{path}: {labels.shape} labels for {len(data)} images")
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels.astype(np.int32)


def load_cifar_split(data_dir: str, variant: str, split: str,
                     how_to_get: str = "") -> tuple[np.ndarray, np.ndarray]:
  """Reads and concatenates every batch file of ``split``.

  Args:
    data_dir: the batch directory (``cifar-10-batches-py``) or its parent.
    variant: ``'cifar10'`` or ``'cifar100'``.
    split: ``'train'`` or ``'test'``.
    how_to_get: appended to the error when a file is missing.

  Returns:
    ``(images, labels)``: uint8 ``(N, 32, 32, 3)`` and int32 ``(N,)``.
  """
  layout = CIFAR_LAYOUTS[variant]
  batch_dir = resolve_batch_dir(data_dir, variant)
  paths = [os.path.join(batch_dir, name) for name in layout.files[split]]
  for path in paths:
    if not os.path.isfile(path):
      hint = f"; {how_to_get}" if how_to_get else ""
      raise DataError(f"missing CIFAR batch file {path}{hint}")
  parts = [read_batch(path, layout.label_key) for path in paths]
  images = np.concatenate([p[0] for p in parts])
  labels = np.concatenate([p[1] for p in parts])
  return images, labels
