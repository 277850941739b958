"""Offline datasets: loading, batching, augmentation, device prefetch.

Typical use::

  ds = data.load_dataset(config)            # host memory, normalized float32
  for epoch in range(num_epochs):
    batches = data.epoch_batches(ds.train, config.batch_size, seed=config.seed,
                                 epoch=epoch, process_index=jax.process_index(),
                                 process_count=jax.process_count())
    for images, labels, mask in data.prefetch_to_device(batches, sharding=sharding):
      ...  # inside the jitted step: images = data.augment_batch(rng, images, ds.augment)

Source selection and the config fields read are described in
:mod:`normzoo.data.loader`. Nothing here touches the network.
"""

from normzoo.data.augment import augment_batch
from normzoo.data.dataset import DataError, Dataset, Split
from normzoo.data.loader import load_dataset
from normzoo.data.pipeline import epoch_batches, num_batches, prefetch_to_device
from normzoo.data.registry import available_datasets

__all__ = [
    "DataError",
    "Dataset",
    "Split",
    "augment_batch",
    "available_datasets",
    "epoch_batches",
    "load_dataset",
    "num_batches",
    "prefetch_to_device",
]
