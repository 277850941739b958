"""Batching: determinism, per-process slices, padding and mask, prefetch."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from normzoo.data import Split, epoch_batches, num_batches, prefetch_to_device


def _split(n, shape=(2, 2, 1)):
  # Image i is filled with the value i + 1 so rows identify examples (0 = padding).
  images = np.broadcast_to(np.arange(1, n + 1, dtype=np.float32)[:, None, None, None],
                           (n, *shape)).copy()
  return Split(images=images, labels=(np.arange(n) % 7).astype(np.int32))


def _ids(images):
  return images[:, 0, 0, 0].astype(int) - 1  # -1 marks padding


def _epoch_ids(split, batch_size, **kwargs):
  return [_ids(images) for images, _, _ in epoch_batches(split, batch_size, **kwargs)]


def test_num_batches():
  split = _split(10)
  assert num_batches(split, 4) == 2
  assert num_batches(split, 4, drop_remainder=False) == 3
  assert num_batches(split, 5) == 2 == num_batches(split, 5, drop_remainder=False)
  assert num_batches(split, 11, drop_remainder=False) == 1
  with pytest.raises(ValueError):
    num_batches(split, 0)


def test_batches_shapes_and_labels():
  split = _split(10)
  batches = list(epoch_batches(split, 4, seed=0, epoch=0))
  assert len(batches) == 2
  for images, labels, mask in batches:
    assert images.shape == (4, 2, 2, 1) and images.dtype == np.float32
    assert labels.dtype == np.int32 and mask.dtype == bool and mask.all()
    np.testing.assert_array_equal(labels, _ids(images) % 7)


def test_shuffle_depends_only_on_seed_and_epoch():
  split = _split(64)
  a = _epoch_ids(split, 8, seed=5, epoch=2)
  np.testing.assert_array_equal(a, _epoch_ids(split, 8, seed=5, epoch=2))
  assert not np.array_equal(a, _epoch_ids(split, 8, seed=5, epoch=3))
  assert not np.array_equal(a, _epoch_ids(split, 8, seed=6, epoch=2))
  # A full epoch is a permutation, and not the identity.
  assert sorted(np.concatenate(a)) == list(range(64))
  assert not np.array_equal(np.concatenate(a), np.arange(64))


def test_no_shuffle_keeps_order():
  ids = _epoch_ids(_split(12), 4, seed=0, epoch=7, shuffle=False)
  np.testing.assert_array_equal(np.concatenate(ids), np.arange(12))


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_process_slices_are_disjoint_and_cover_the_global_batch(drop_remainder):
  split, batch_size, count = _split(50), 16, 4
  global_batches = list(epoch_batches(split, batch_size, seed=1, epoch=0,
                                      drop_remainder=drop_remainder))
  per_process = [list(epoch_batches(split, batch_size, seed=1, epoch=0,
                                    drop_remainder=drop_remainder,
                                    process_index=p, process_count=count))
                 for p in range(count)]
  assert all(len(batches) == len(global_batches) for batches in per_process)
  for step, (g_images, g_labels, g_mask) in enumerate(global_batches):
    parts = [per_process[p][step] for p in range(count)]
    for images, labels, mask in parts:
      assert images.shape[0] == labels.shape[0] == mask.shape[0] == batch_size // count
    # Concatenated in process order, the slices are exactly the global batch.
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), g_images)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), g_labels)
    np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), g_mask)
    real = [set(_ids(p[0])[p[2]]) for p in parts]
    assert sum(len(r) for r in real) == len(set().union(*real))


def test_padding_and_mask():
  split = _split(10)
  batches = list(epoch_batches(split, 4, seed=0, epoch=0, drop_remainder=False))
  assert len(batches) == 3
  images, labels, mask = batches[-1]
  np.testing.assert_array_equal(mask, [True, True, False, False])
  assert (images[2:] == 0).all() and (labels[2:] == 0).all()
  seen = np.concatenate([_ids(b[0])[b[2]] for b in batches])
  assert sorted(seen) == list(range(10))
  # Per process, the padding falls in the slices past the end.
  last = [list(epoch_batches(split, 4, seed=0, epoch=0, drop_remainder=False,
                             process_index=p, process_count=2))[-1] for p in range(2)]
  np.testing.assert_array_equal(last[0][2], [True, True])
  np.testing.assert_array_equal(last[1][2], [False, False])


def test_argument_errors():
  split = _split(10)
  with pytest.raises(ValueError, match="divisible"):
    next(epoch_batches(split, 6, seed=0, epoch=0, process_count=4))
  with pytest.raises(ValueError, match="process_index"):
    next(epoch_batches(split, 4, seed=0, epoch=0, process_index=2, process_count=2))
  with pytest.raises(ValueError, match="fewer than batch_size"):
    next(epoch_batches(split, 16, seed=0, epoch=0))
  assert len(list(epoch_batches(split, 16, seed=0, epoch=0, drop_remainder=False))) == 1


def test_prefetch_to_device_default_device():
  split = _split(12)
  host = list(epoch_batches(split, 4, seed=0, epoch=0))
  device = list(prefetch_to_device(iter(host), size=2))
  assert len(device) == len(host)
  for h, d in zip(host, device):
    assert all(isinstance(x, jax.Array) for x in d)
    for hx, dx in zip(h, d):
      np.testing.assert_array_equal(np.asarray(dx), hx)


def test_prefetch_to_device_shards_the_batch_axis():
  devices = np.array(jax.devices()[:8])
  mesh = Mesh(devices, ("batch",))
  sharding = NamedSharding(mesh, PartitionSpec("batch"))
  split = _split(64)
  batches = list(prefetch_to_device(epoch_batches(split, 16, seed=0, epoch=0), sharding=sharding))
  assert len(batches) == 4
  images, labels, mask = batches[0]
  assert images.sharding == sharding and labels.sharding == sharding
  assert len(images.addressable_shards) == len(devices)
  assert images.addressable_shards[0].data.shape[0] == 16 // len(devices)


def test_prefetch_reads_ahead_lazily():
  pulled = []

  def source():
    for i in range(5):
      pulled.append(i)
      yield (np.full((2,), i),)

  iterator = prefetch_to_device(source(), size=2)
  assert pulled == []  # nothing happens before the first next()
  first = next(iterator)
  assert int(first[0][0]) == 0 and pulled == [0, 1, 2]
  assert [int(x[0][0]) for x in iterator] == [1, 2, 3, 4]
