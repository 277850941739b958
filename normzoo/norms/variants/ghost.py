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

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from normzoo.norms import _checks, functional
from normzoo.norms._checks import (broadcast_param, check_not_single_value, hashable_groups,
                                   output_dtype)
from normzoo.norms.normalize import StatSpec, normalize_with_batch_stats
from normzoo.norms.variants._common import per_channel_layout, update_running

Array = jax.Array

__all__ = ["ghost_batch_norm"]


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
  yg, (g_mean, g_var, g_count) = normalize_with_batch_stats(
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
