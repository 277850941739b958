"""Jitted data-parallel train and eval steps.

Each step is ``jax.jit`` of a function whose model part runs under
``jax.shard_map`` over the 1-D mesh axis ``'batch'`` (all devices): every
device applies the model to its slice of the global batch. Collectives:

* the loss is ``psum(sum of per-example losses) / psum(count)``, the mean
  over the GLOBAL batch, so its gradient is the global-batch gradient;
* gradients are taken OUTSIDE the shard_map (``value_and_grad`` of the
  sharded loss). JAX transposes the replicated parameter input into a
  ``psum`` of the per-device gradient contributions, which is exactly the
  ``pmean`` of per-device gradients of per-device mean losses in the usual
  pmap recipe, but also correct when a normalizer shares statistics across
  devices (its backward pass needs the cross-device terms, which the
  normalizer's own ``psum`` supplies);
* running statistics are ``pmean``-ed after the step so every device (and
  process) keeps identical, replicated ``batch_stats``.

With ``sync_batch_stats`` the model's batch-statistics normalizers carry
``axis_name='batch'`` (see :mod:`normzoo.train.build`), so batch statistics
are those of the global batch; otherwise each device normalizes with its own
slice's statistics (ghost batches of ``batch_size / num_devices``).

Data augmentation runs on the global batch before the shard_map, so its
result does not depend on the number of devices.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from normzoo.data import augment_batch
from normzoo.train.distributed import AXIS
from normzoo.train.state import TrainState

Metrics = dict[str, jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """Per-example softmax cross-entropy in float32, with optional label smoothing."""
  targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def _variables(params: Any, batch_stats: Any) -> dict[str, Any]:
  return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def _apply(model: nn.Module, params: Any, batch_stats: Any, images: jax.Array, train: bool,
           rng: jax.Array) -> tuple[jax.Array, Any]:
  """Logits and (for ``train`` with batch_stats) the updated running statistics."""
  # Each device draws its own dropout noise (unused by models without dropout).
  rngs = {"dropout": jax.random.fold_in(rng, lax.axis_index(AXIS))}
  variables = _variables(params, batch_stats)
  if train and batch_stats:
    logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"],
                                  rngs=rngs)
    return logits, updates["batch_stats"]
  return model.apply(variables, images, train=train, rngs=rngs), batch_stats


def _masked_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array,
                 label_smoothing: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Global (psum-ed) sums of loss and correct predictions, and the example count."""
  weight = mask.astype(jnp.float32)
  loss = cross_entropy(logits, labels, label_smoothing)
  # Padded examples may give any value, NaN included: select, don't multiply.
  loss_sum = jnp.sum(jnp.where(mask, loss, 0.0))
  correct = jnp.sum(jnp.where(mask, jnp.argmax(logits, -1) == labels, False), dtype=jnp.float32)
  return (lax.psum(loss_sum, AXIS), lax.psum(correct, AXIS), lax.psum(jnp.sum(weight), AXIS))


def make_train_step(model: nn.Module, mesh: Mesh, *, augment: str = "none",
                    label_smoothing: float = 0.0, seed: int = 0, donate: bool = True
                    ) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array],
                                  tuple[TrainState, Metrics]]:
  """Returns ``step(state, images, labels, mask) -> (state, metrics)``, jitted.

  ``images``/``labels``/``mask`` are the global batch, sharded (or
  shardable) along axis 0 over ``mesh``. ``metrics`` holds global sums
  (``loss_sum``, ``correct``, ``count``) and ``finite`` (the loss was
  finite), all replicated scalars, so the caller can accumulate them on
  device and read them rarely.
  """
  base_rng = jax.random.PRNGKey(seed)

  def device_loss(params, batch_stats, images, labels, mask, rng):
    logits, new_stats = _apply(model, params, batch_stats, images, True, rng)
    loss_sum, correct, count = _masked_sums(logits, labels, mask, label_smoothing)
    new_stats = jax.tree.map(lambda s: lax.pmean(s, AXIS), new_stats)
    return loss_sum / jnp.maximum(count, 1.0), (new_stats, loss_sum, correct, count)

  sharded_loss = jax.shard_map(
      device_loss, mesh=mesh,
      in_specs=(P(), P(), P(AXIS), P(AXIS), P(AXIS), P()),
      out_specs=(P(), (P(), P(), P(), P())))

  def step(state: TrainState, images, labels, mask):
    rng = jax.random.fold_in(base_rng, state.step)
    aug_rng, model_rng = jax.random.split(rng)
    images = augment_batch(aug_rng, images, augment)
    grad_fn = jax.value_and_grad(sharded_loss, has_aux=True)
    (loss, (new_stats, loss_sum, correct, count)), grads = grad_fn(
        state.params, state.batch_stats, images, labels, mask, model_rng)
    state = state.apply_gradients(grads=grads, batch_stats=new_stats)
    metrics = {"loss_sum": loss_sum, "correct": correct, "count": count,
               "finite": jnp.isfinite(loss)}
    return state, metrics

  return jax.jit(step, donate_argnums=(0,) if donate else ())


def make_eval_step(model: nn.Module, mesh: Mesh, *, batch_statistics: bool = False,
                   label_smoothing: float = 0.0
                   ) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], Metrics]:
  """Returns ``eval_step(state, images, labels, mask) -> {loss_sum, correct, count}``.

  ``batch_statistics=False`` evaluates with the running statistics
  (``train=False``). ``True`` runs the model in training mode, so
  batch-statistics normalizers normalize with the statistics of the batch
  (per device, or global with ``sync_batch_stats``); the running statistics
  it would update are discarded. Padded examples (``mask`` False) are not
  counted, but in training mode they would still enter the batch statistics,
  so feed only full batches there.
  """
  rng = jax.random.PRNGKey(0)
  if batch_statistics and getattr(model, "dropout_rate", 0.0):
    # Training mode for the norms' batch statistics only: dropout stays off at eval.
    model = model.clone(dropout_rate=0.0)

  def device_eval(params, batch_stats, images, labels, mask):
    logits, _ = _apply(model, params, batch_stats, images, batch_statistics, rng)
    loss_sum, correct, count = _masked_sums(logits, labels, mask, label_smoothing)
    return {"loss_sum": loss_sum, "correct": correct, "count": count}

  sharded = jax.shard_map(device_eval, mesh=mesh,
                          in_specs=(P(), P(), P(AXIS), P(AXIS), P(AXIS)), out_specs=P())

  def eval_step(state: TrainState, images, labels, mask):
    return sharded(state.params, state.batch_stats, images, labels, mask)

  return jax.jit(eval_step)
