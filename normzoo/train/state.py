"""The train state (params, batch_stats, optimizer state, step) and its creation."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


class TrainState(train_state.TrainState):
  """flax's TrainState plus the normalizers' running statistics.

  ``batch_stats`` is ``{}`` for models without batch-statistics normalizers.
  Every leaf is replicated over the mesh: the train step averages the
  running statistics across devices after each update so they stay equal.
  """
  batch_stats: Any = None


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
                       image_shape: tuple[int, ...], mesh: Mesh) -> TrainState:
  """Initializes the model on one example and returns a replicated state.

  Initialization is jitted with replicated output shardings, so with several
  processes each one computes the same values from the same ``rng`` and the
  result is one global, fully replicated array per leaf.
  """
  replicated = NamedSharding(mesh, P())

  def init() -> TrainState:
    # Batch of 2: a batch-statistics norm rejects a batch of one.
    dummy = jnp.zeros((2, *image_shape), jnp.float32)
    variables = model.init({"params": rng, "dropout": rng}, dummy, train=False)
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables.get("batch_stats", {}), tx=tx)

  return jax.jit(init, out_shardings=replicated)()


def count_params(params: Any) -> int:
  """Number of scalars in a parameter tree."""
  return int(sum(x.size for x in jax.tree.leaves(params)))
