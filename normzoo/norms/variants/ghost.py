"""Ghost batch normalization (Hoffer, Hubara & Soudry, "Train longer, generalize better:
closing the generalization gap in large batch training of neural networks", NeurIPS 2017).

Training: the batch (N, ...) is split into ``G = N / v`` consecutive virtual
batches of ``v = virtual_batch_size`` examples, viewed as (G, v, ...), and
each is batch-normalized with its own statistics (over its ``v`` examples and
all axes but the feature axis)::

    y[g] = (x[g] - mean_g) / sqrt(var_g + eps) * scale + bias

``v = N`` is batch norm. The running statistics are updated with the
AVERAGE of the virtual-batch statistics (count-weighted, which is the plain
average without a mask): ``mean_B = avg_g mean_g``, ``var_B = avg_g var_g``,
then ``running = momentum * running + (1 - momentum) * batch``. ``var_B`` is
thus the average within-virtual-batch variance, the variance the network is
actually normalized with, not the variance of the whole batch
(:func:`normzoo.precise_batch_stats` measures the latter).

Across devices (``axis_name``): virtual batches never straddle devices;
each device splits its own slice, so results do not depend on the number of
devices as long as ``v`` divides the per-device batch. ``axis_name`` makes
the running-statistics update average all virtual batches of all devices
(one ``psum`` of per-channel sums).

Evaluation: batch norm with the running statistics.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen import initializers
from jax import lax

from normzoo.norms import _checks, functional
from normzoo.norms.modules import _axis_name_unless_init, _feature_params, _require_batch_stats
from normzoo.norms.normalize import (StatSpec, hashable_groups, normalize_with_batch_stats,
                                     output_dtype)
from normzoo.norms.precise import record_batch_moments
from normzoo.norms.variants._common import (broadcast_param, check_not_single_value,
                                            per_channel_layout, update_running)

Array = jax.Array

__all__ = ["GhostBatchNorm", "ghost_batch_norm"]


def _check_virtual_batch(virtual_batch_size: int, batch: int, axis_name: Any) -> None:
  if (not isinstance(virtual_batch_size, (int, np.integer)) or virtual_batch_size <= 0
      or batch % virtual_batch_size):
    where = " per device (axis_name is set: virtual batches are per-device)" if axis_name else ""
    raise ValueError(
        f"virtual_batch_size={virtual_batch_size!r} must be a positive divisor of the batch size "
        f"{batch}{where}; pick a batch size that is a multiple of it")


def ghost_batch_norm(x: Array, scale: Array | None = None, bias: Array | None = None,
                     mean: Array | None = None, var: Array | None = None, *,
                     virtual_batch_size: int, use_running_average: bool = False, axis: Any = -1,
                     momentum: float = 0.99, epsilon: float = 1e-5, axis_name: Any = None,
                     axis_index_groups: Any = None, mask: Array | None = None,
                     use_fast_variance: bool = True, dtype: Any = None
                     ) -> tuple[Array, Array | None, Array | None]:
  """Ghost batch norm with explicit running statistics (see the module docstring).

  Args:
    x: (N, ...) with the batch axis 0; ``N`` a multiple of
      ``virtual_batch_size``. ``axis`` (the feature axes) must not include 0.
    scale, bias, mean, var: per-feature arrays of shape ``x.shape[axis]``.
      If ``mean``/``var`` are None the averaged batch statistics are returned.

  Returns:
    ``(y, new_mean, new_var)``; ``y`` has the shape of ``x``.
  """
  if use_running_average:
    return functional.batch_norm(x, scale, bias, mean, var, use_running_average=True, axis=axis,
                                 epsilon=epsilon, dtype=dtype)
  feature_axes, reduction_axes, feature_shape = per_channel_layout(x, axis)
  if 0 in feature_axes:
    raise ValueError(f"ghost_batch_norm: axis={axis!r} includes axis 0, the batch axis that "
                     f"virtual batches split")
  _checks.check_floating("x", x)
  _checks.check_nonempty_reduction("ghost_batch_norm (training mode)", x.shape, reduction_axes)
  _check_virtual_batch(virtual_batch_size, x.shape[0], axis_name)
  _checks.check_epsilon(epsilon)
  _checks.check_momentum(momentum)
  _checks.check_mask(mask, x.shape)
  _checks.check_axis_name(axis_name)
  for name, value in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var)):
    _checks.check_feature_params(name, value, feature_shape)

  v = virtual_batch_size
  ghost_shape = (x.shape[0] // v, v) + x.shape[1:]
  xg = x.reshape(ghost_shape)
  # In the (G, v, ...) view axis a of x is axis a + 1; statistics keep axis 0.
  stat_axes = tuple(a + 1 for a in reduction_axes)
  check_not_single_value("ghost_batch_norm", ghost_shape, stat_axes, None, mask)
  maskg = None if mask is None else jnp.broadcast_to(jnp.asarray(mask, bool), x.shape).reshape(
      ghost_shape)
  ghost_features = tuple(a + 1 for a in feature_axes)
  spec = StatSpec(stat_axes, float(epsilon), None, None, bool(use_fast_variance),
                  output_dtype(dtype, x, scale, bias))
  yg, g_mean, g_var, g_count = normalize_with_batch_stats(
      xg, broadcast_param(scale, xg.ndim, ghost_features),
      broadcast_param(bias, xg.ndim, ghost_features), maskg, spec)
  y = yg.reshape(x.shape)

  # Count-weighted average over virtual batches (and devices): one psum.
  sums = jnp.stack([jnp.sum(g_count, axis=0), jnp.sum(g_count * g_mean, axis=0),
                    jnp.sum(g_count * g_var, axis=0)])
  if axis_name is not None:
    sums = lax.psum(sums, axis_name, axis_index_groups=hashable_groups(axis_index_groups))
  total = jnp.maximum(sums[0], 1.0)
  batch_mean = jnp.squeeze(sums[1] / total, reduction_axes)
  batch_var = jnp.squeeze(sums[2] / total, reduction_axes)
  if mean is None or var is None:
    return y, batch_mean, batch_var
  return y, update_running(mean, batch_mean, momentum), update_running(var, batch_var, momentum)


class GhostBatchNorm(nn.Module):
  """Ghost batch norm (Hoffer et al., 2017); fields and variables of :class:`normzoo.BatchNorm`.

  Attributes (besides BatchNorm's):
    virtual_batch_size: examples per virtual batch; must divide the
      (per-device) training batch. Evaluation has no such constraint.

  Shapes: ``x`` (N, ..., C) -> same shape; ``scale``/``bias``/``mean``/``var`` (C,).
  """
  virtual_batch_size: int = 32
  use_running_average: bool | None = None
  axis: int = -1
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Any = initializers.zeros
  scale_init: Any = initializers.ones
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    _, reduction_axes, feature_shape = per_channel_layout(x, self.axis)
    _require_batch_stats(self, train=not use_running_average)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, feature_shape, jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, feature_shape, jnp.float32)
    scale, bias = _feature_params(self, feature_shape)
    axis_name = _axis_name_unless_init(self)
    y, mean, var = ghost_batch_norm(
        x, scale, bias, ra_mean.value, ra_var.value, virtual_batch_size=self.virtual_batch_size,
        use_running_average=use_running_average, axis=self.axis, momentum=self.momentum,
        epsilon=self.epsilon, axis_name=axis_name, axis_index_groups=self.axis_index_groups,
        mask=mask, use_fast_variance=self.use_fast_variance, dtype=self.dtype)
    if not use_running_average and not self.is_initializing():
      ra_mean.value, ra_var.value = mean, var
      record_batch_moments(self, x, reduction_axes, axis_name=axis_name,
                           axis_index_groups=self.axis_index_groups, mask=mask)
    return y
