"""Reader for the IDX files MNIST and Fashion-MNIST are distributed as.

An IDX file is a 4-byte magic number -- two zero bytes, a type code and the
number of dimensions -- then one big-endian uint32 per dimension, then the
values in row-major order. Files may be gzipped (``name.gz``).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from normzoo.data.dataset import DataError

# Type code -> big-endian numpy dtype, as the format defines them.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Split -> (images stem, labels stem); each stem may carry a ".gz" suffix.
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def parse_idx(data: bytes, path: str = "<bytes>") -> np.ndarray:
  """Decodes the bytes of an (uncompressed) IDX file; ``path`` is for errors."""
  if len(data) < 4:
    raise DataError(f"{path}: not an IDX file (only {len(data)} bytes)")
  zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
  if zero0 != 0 or zero1 != 0 or type_code not in IDX_DTYPES:
    raise DataError(
        f"{path}: not an IDX file (bad magic number 0x{data[:4].hex()}); "
        "expected 0x0000 then a type code in "
        f"{{{', '.join(hex(c) for c in IDX_DTYPES)}}} and the rank")
  header_len = 4 + 4 * ndim
  if len(data) < header_len:
    raise DataError(f"{path}: truncated IDX header (rank {ndim}, {len(data)} bytes)")
  shape = struct.unpack(f">{ndim}I", data[4:header_len])
  dtype = IDX_DTYPES[type_code]
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) - header_len != expected:
    raise DataError(
        f"{path}: IDX header says shape {shape} ({expected} bytes of data) "
        f"but the file holds {len(data) - header_len} bytes after the header")
  array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
  # Native byte order so downstream arithmetic does not pay for swapping.
  return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file, gunzipping it when its name ends in ``.gz``."""
  try:
    with open(path, "rb") as f:
      data = f.read()
    if path.endswith(".gz"):
      data = gzip.decompress(data)
  except FileNotFoundError as e:
    raise DataError(f"IDX file not found: {path}") from e
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{path}: cannot read gzipped IDX file ({e})") from e
  return parse_idx(data, path)


def find_idx_file(directory: str, stem: str, how_to_get: str = "") -> str:
  """Path of ``stem`` or ``stem.gz`` in ``directory`` (plain wins if both exist)."""
  for name in (stem, stem + ".gz"):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  hint = f"; {how_to_get}" if how_to_get else ""
  raise DataError(
      f"missing IDX file {os.path.join(directory, stem)}[.gz] in {directory}{hint}")


def load_idx_split(directory: str, split: str,
                   how_to_get: str = "") -> tuple[np.ndarray, np.ndarray]:
  """Reads one split of an MNIST-style directory.

  Returns:
    ``(images, labels)``: uint8 ``(N, H, W, 1)`` and int32 ``(N,)``.
  """
  image_stem, label_stem = IDX_FILES[split]
  image_path = find_idx_file(directory, image_stem, how_to_get)
  label_path = find_idx_file(directory, label_stem, how_to_get)
  images = read_idx(image_path)
  labels = read_idx(label_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise DataError(
        f"{image_path}: expected uint8 images of rank 3 (N, H, W), "
        f"got {images.dtype} of shape {images.shape}")
  if labels.ndim != 1:
    raise DataError(f"{label_path}: expected labels of rank 1, got shape {labels.shape}")
  if len(labels) != len(images):
    raise DataError(
        f"{label_path}: {len(labels)} labels but {image_path} holds {len(images)} images")
  return images[..., None], labels.astype(np.int32)
