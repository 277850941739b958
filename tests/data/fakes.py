"""Writers for tiny on-disk datasets in the real formats, for tests.

They encode files from the format descriptions directly (not through the
package under test), so a reader bug cannot cancel out a writer bug.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np

# IDX type codes, from the format description.
IDX_TYPE = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
            np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
  """Magic (0, 0, type, rank), big-endian uint32 dims, big-endian values."""
  big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
  header = bytes([0, 0, IDX_TYPE[big.dtype], array.ndim])
  header += b"".join(struct.pack(">I", d) for d in array.shape)
  return header + big.tobytes(order="C")


def write_idx(path: str, array: np.ndarray) -> str:
  data = idx_bytes(array)
  if path.endswith(".gz"):
    data = gzip.compress(data)
  with open(path, "wb") as f:
    f.write(data)
  return path


def write_mnist_dir(directory: str, train: tuple[np.ndarray, np.ndarray],
                    test: tuple[np.ndarray, np.ndarray], gz: bool = True) -> str:
  """Writes the four MNIST files; images are uint8 (N, H, W)."""
  os.makedirs(directory, exist_ok=True)
  suffix = ".gz" if gz else ""
  for prefix, (images, labels) in (("train", train), ("t10k", test)):
    write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"), images)
    write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"),
              labels.astype(np.uint8))
  return directory


def random_mnist(rng: np.random.Generator, n: int, size: int = 28, classes: int = 10):
  images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
  labels = rng.integers(0, classes, size=(n,)).astype(np.uint8)
  return images, labels


def write_cifar_batch(path: str, rows: np.ndarray, labels, label_key: bytes = b"labels",
                      extra: dict | None = None) -> str:
  """``rows`` is uint8 (N, 3072): per image 1024 R, 1024 G, 1024 B values."""
  batch = {b"batch_label": b"fake batch", label_key: list(int(l) for l in labels),
           b"data": rows, b"filenames": [b"img%d.png" % i for i in range(len(rows))]}
  batch.update(extra or {})
  with open(path, "wb") as f:
    pickle.dump(batch, f, protocol=2)  # the official files are protocol-2 pickles
  return path


def cifar_rows(rng: np.random.Generator, n: int) -> np.ndarray:
  return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def set_pixel(rows: np.ndarray, index: int, y: int, x: int, rgb: tuple[int, int, int]) -> None:
  """Sets one pixel of image ``index`` using the documented CHW row layout."""
  for channel, value in enumerate(rgb):
    rows[index, channel * 1024 + y * 32 + x] = value


def write_cifar10_dir(directory: str, rng: np.random.Generator, per_batch: int = 3,
                      test: int = 4) -> dict:
  """Writes data_batch_1..5 and test_batch; returns the rows and labels written."""
  os.makedirs(directory, exist_ok=True)
  written = {"train_rows": [], "train_labels": []}
  for i in range(1, 6):
    rows, labels = cifar_rows(rng, per_batch), rng.integers(0, 10, per_batch)
    write_cifar_batch(os.path.join(directory, f"data_batch_{i}"), rows, labels)
    written["train_rows"].append(rows)
    written["train_labels"].append(labels)
  written["train_rows"] = np.concatenate(written["train_rows"])
  written["train_labels"] = np.concatenate(written["train_labels"])
  written["test_rows"], written["test_labels"] = cifar_rows(rng, test), rng.integers(0, 10, test)
  write_cifar_batch(os.path.join(directory, "test_batch"), written["test_rows"],
                    written["test_labels"])
  return written
