"""Batching of an in-memory split, per-process sharding, device prefetch.

Every process computes the same global order from ``(seed, epoch)`` and takes
its own contiguous slice of each global batch, so processes never need to
communicate to agree on what a step sees and their slices never overlap.
"""

from __future__ import annotations

import collections
from typing import Any, Iterable, Iterator

import jax
import numpy as np

from normzoo.data.dataset import Split
from normzoo.data.seeding import Stream, rng_for

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]


def num_batches(split: Split, batch_size: int, drop_remainder: bool = True) -> int:
  """Global batches per epoch: ``floor`` or ``ceil`` of ``len(split) / batch_size``."""
  _check_batch_size(batch_size)
  n = len(split)
  return n // batch_size if drop_remainder else -(-n // batch_size)


def epoch_order(n: int, *, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
  """The example order of one epoch; a function of ``(n, seed, epoch)`` only."""
  if not shuffle:
    return np.arange(n)
  return rng_for(seed, Stream.SHUFFLE, epoch).permutation(n)


def epoch_batches(split: Split, batch_size: int, *, seed: int, epoch: int,
                  shuffle: bool = True, drop_remainder: bool = True,
                  process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
  """Yields this process's part of each global batch of one epoch.

  Args:
    split: the examples.
    batch_size: the GLOBAL batch size; must be divisible by ``process_count``.
    seed, epoch: the shuffle order depends on these only.
    shuffle: ``False`` keeps the stored order (evaluation).
    drop_remainder: ``True`` drops the last partial batch; ``False`` pads it
      to full size with zero images and label 0, marked ``False`` in the mask.
    process_index, process_count: this process's rank and the number of
      processes; rank ``p`` gets rows ``[p * b, (p + 1) * b)`` of each global
      batch, ``b = batch_size // process_count``.

  Yields:
    ``(images, labels, mask)``: ``(b, *image_shape)`` of the split's dtype,
    int32 ``(b,)``, bool ``(b,)`` (``True`` for real examples).

  Raises:
    ValueError: bad batch or process arguments, or ``drop_remainder`` with
      fewer examples than one batch (the epoch would be silently empty).
  """
  _check_batch_size(batch_size)
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(
        f"need 0 <= process_index < process_count, got {process_index}, {process_count}")
  if batch_size % process_count:
    raise ValueError(
        f"global batch_size {batch_size} is not divisible by process_count {process_count}")
  n = len(split)
  if drop_remainder and 0 < n < batch_size:
    raise ValueError(
        f"split has {n} examples, fewer than batch_size {batch_size}, so drop_remainder=True "
        "would yield no batch; lower the batch size or use drop_remainder=False")
  local = batch_size // process_count
  order = epoch_order(n, seed=seed, epoch=epoch, shuffle=shuffle)
  for b in range(num_batches(split, batch_size, drop_remainder)):
    # Rows of the global batch owned by this process, clipped at the end.
    start = b * batch_size + process_index * local
    rows = order[start:min(start + local, n)]
    yield _gather(split, rows, local)


def _gather(split: Split, rows: np.ndarray, size: int) -> Batch:
  images = np.zeros((size, *split.images.shape[1:]), split.images.dtype)
  labels = np.zeros((size,), np.int32)
  mask = np.zeros((size,), bool)
  k = len(rows)
  images[:k] = split.images[rows]
  labels[:k] = split.labels[rows]
  mask[:k] = True
  return images, labels, mask


def prefetch_to_device(iterator: Iterable[Any], size: int = 2,
                       sharding: jax.sharding.Sharding | None = None) -> Iterator[Any]:
  """Keeps ``size`` items of ``iterator`` already transferred to devices.

  Each item is a pytree (e.g. the tuple from :func:`epoch_batches`) of numpy
  arrays. Transfers are asynchronous, so while the train step runs on batch
  ``t`` the copies of batches ``t + 1 .. t + size`` are in flight.

  Args:
    iterator: yields pytrees of host arrays.
    size: how many items to keep in flight (2 hides the copy of one step).
    sharding: applied to every array, e.g. ``NamedSharding(mesh, P('batch'))``
      to split axis 0 over a 1-D mesh; ``None`` puts them on the default
      device. When it spans several processes, each array is taken as this
      process's slice of the global array.
  """
  if size < 1:
    raise ValueError(f"prefetch size must be >= 1, got {size}")
  queue: collections.deque = collections.deque()

  def put(item):
    if sharding is not None and not sharding.is_fully_addressable:
      # Multi-host: each process holds only its rows of the global batch.
      return jax.tree.map(
          lambda x: jax.make_array_from_process_local_data(sharding, x), item)
    return jax.device_put(item, sharding)

  iterator = iter(iterator)
  for item in iterator:
    queue.append(put(item))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


def _check_batch_size(batch_size: int) -> None:
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
