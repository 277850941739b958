"""Frozen batch normalization: batch norm that always uses its running statistics.

``y = (x - mean) / sqrt(var + epsilon) * scale + bias`` with the
``batch_stats`` ``mean``/``var`` (C,) in training and evaluation alike, and
never updates them: an affine per-channel map, the usual way to fine-tune a
pretrained network with small batches (e.g. detection backbones, Detectron's
``FrozenBatchNorm2d``). ``freeze_params=True`` also stops the gradients of
``scale`` and ``bias`` (they receive zero gradient), so the layer is fully
fixed.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms import functional
from normzoo.norms.modules import BatchNorm
from normzoo.norms.linen_support import feature_params, require_batch_stats
from normzoo.norms.variants._common import per_channel_layout

Array = jax.Array

__all__ = ["FrozenBatchNorm"]


class FrozenBatchNorm(BatchNorm):
  """Batch norm frozen at its running statistics; fields and variables of :class:`BatchNorm`.

  Drop-in for a trained ``BatchNorm`` (same ``params`` and ``batch_stats``).
  ``use_running_average`` is accepted and ignored, as are the fields that
  only concern batch statistics (``momentum``, ``axis_name``, ``mask``, ...),
  so configs and models can switch between the two by name.

  Attributes:
    freeze_params: ``stop_gradient`` on ``scale`` and ``bias``.
  """
  freeze_params: bool = False

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    del use_running_average, mask  # always the running statistics
    _, _, feature_shape = per_channel_layout(x, self.axis)
    require_batch_stats(self, train=False)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, feature_shape, jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, feature_shape, jnp.float32)
    scale, bias = feature_params(self, feature_shape)
    if self.freeze_params:
      scale, bias = jax.tree.map(lax.stop_gradient, (scale, bias))
    y, _, _ = functional.batch_norm(x, scale, bias, ra_mean.value, ra_var.value,
                                    use_running_average=True, axis=self.axis,
                                    epsilon=self.epsilon, dtype=self.dtype)
    return y
