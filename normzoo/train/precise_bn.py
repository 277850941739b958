"""PreciseBN in the trainer: ``config.precise_bn_batches`` > 0 recomputes running statistics.

Before every evaluation, each batch-statistics normalizer's running
``mean``/``var`` are replaced by the population statistics of its input over
the first ``precise_bn_batches`` training batches (no augmentation), measured
with the current weights (:func:`normzoo.precise_batch_stats`; Wu & Johnson
2021). The replaced statistics are what evaluation uses and what the next
checkpoint stores.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from normzoo.data import Dataset, epoch_batches, prefetch_to_device
from normzoo.norms.precise import precise_batch_stats
from normzoo.train.state import TrainState
from normzoo.train.distributed import AXIS


def make_precise_bn(config: Any, model: Any, mesh: Mesh, dataset: Dataset,
                    sharding: NamedSharding) -> Callable[[TrainState], TrainState] | None:
  """A ``state -> state`` function recomputing ``batch_stats``, or None when disabled."""
  num = int(config.get("precise_bn_batches", 0))
  if num <= 0:
    return None
  batch_size, seed = int(config.batch_size), int(config.seed)

  def apply_fn(variables, images, mutable):
    # Training-mode forward on each device's slice; with sync_batch_stats the
    # recorded moments are those of the global batch, hence replicated.
    local = lambda v, x: model.apply(v, x, train=True, mutable=mutable)
    return jax.shard_map(local, mesh=mesh, in_specs=(P(), P(AXIS)),
                         out_specs=(P(AXIS), P()))(variables, images)

  def recompute(state: TrainState) -> TrainState:
    if not jax.tree.leaves(state.batch_stats):
      return state
    batches = ((images,) for images, _, _ in epoch_batches(
        dataset.train, batch_size, seed=seed, epoch=0, process_index=jax.process_index(),
        process_count=jax.process_count()))
    images = (b[0] for b in prefetch_to_device(batches, size=2, sharding=sharding))
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    new = precise_batch_stats(apply_fn, variables, images, num_batches=num)
    return state.replace(batch_stats=new["batch_stats"])

  return recompute
