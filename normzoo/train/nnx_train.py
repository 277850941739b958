"""A minimal flax.nnx training loop: ``nnx.Optimizer`` + optax, jitted with ``nnx.jit``.

For users whose models are nnx modules (e.g. :class:`normzoo.models.nnx_cnn.MnistCNN`);
the experiment CLI trains linen models (:mod:`normzoo.train.loop`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

Array = jax.Array

__all__ = ["accuracy", "cross_entropy", "fit", "make_optimizer", "train_step"]


def make_optimizer(model: nnx.Module, tx: optax.GradientTransformation | None = None,
                   learning_rate: float = 1e-3) -> nnx.Optimizer:
  """``nnx.Optimizer`` over the model's ``nnx.Param``s (Adam by default)."""
  return nnx.Optimizer(model, tx if tx is not None else optax.adam(learning_rate), wrt=nnx.Param)


def cross_entropy(logits: Array, labels: Array) -> Array:
  """Mean softmax cross-entropy; ``logits`` (N, K), integer ``labels`` (N,)."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@nnx.jit
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, images: Array,
               labels: Array) -> Array:
  """One optimizer step; updates params and batch statistics in place, returns the loss."""

  def loss_fn(m: nnx.Module) -> Array:
    return cross_entropy(m(images), labels)

  loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, nnx.Param))(model)
  optimizer.update(model, grads)
  return loss


@nnx.jit
def accuracy(model: nnx.Module, images: Array, labels: Array) -> Array:
  """Fraction of ``images`` classified as ``labels`` in the model's current mode."""
  return jnp.mean(jnp.argmax(model(images), axis=-1) == labels)


def fit(model: nnx.Module, optimizer: nnx.Optimizer,
        batches: Iterable[tuple[Any, Any]]) -> list[float]:
  """Trains on ``(images, labels)`` batches in training mode; returns the loss per step.

  Raises:
    FloatingPointError: a step's loss is not finite (the step it happened at
      is named), rather than training on NaN parameters.
  """
  model.train()
  losses = []
  for step, (images, labels) in enumerate(batches):
    loss = float(train_step(model, optimizer, jnp.asarray(images), jnp.asarray(labels)))
    if not jnp.isfinite(loss):
      raise FloatingPointError(f"training diverged: loss {loss} at step {step}")
    losses.append(loss)
  return losses
