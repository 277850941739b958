"""Pure functional normalizers: arrays in, arrays out, no Flax.

Each function normalizes ``x`` with ``y = (x - mean) / sqrt(var + epsilon)
* scale + bias``; they differ only in the axes the statistics run over:

============== ================================== ==========================
function       statistics over                    scale / bias shape
============== ================================== ==========================
batch_norm     every axis except ``axis``          ``x.shape[axis]``
layer_norm     ``reduction_axes`` (per example)    ``x.shape[feature_axes]``
group_norm     channel groups + spatial axes       ``(C,)``
instance_norm  spatial axes, per example/channel   ``x.shape[feature_axes]``
============== ================================== ==========================

Statistics are float32 (float64 for float64 input) for any input dtype; the
output dtype is ``dtype`` if given, else the promotion of input and params
(flax.linen's rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from normzoo.norms import _checks
from normzoo.norms._checks import broadcast_param, hashable_groups, output_dtype
from normzoo.norms.normalize import StatSpec, normalize_with_batch_stats, normalize_with_stats

Array = jax.Array
Axes = int | Sequence[int]


def _spec(axes, epsilon, axis_name, axis_index_groups, use_fast_variance, out_dtype) -> StatSpec:
  return StatSpec(tuple(axes), float(epsilon), axis_name, hashable_groups(axis_index_groups),
                  bool(use_fast_variance), jnp.dtype(out_dtype))


def _per_example_norm(x, scale, bias, stat_axes, feature_axes, *, epsilon, axis_name,
                      axis_index_groups, mask, use_fast_variance, dtype) -> Array:
  """Shared body of layer and instance norm: statistics over ``stat_axes``."""
  _checks.check_epsilon(epsilon)
  _checks.check_nonempty_reduction("the per-example norm", x.shape, stat_axes)
  _checks.check_mask(mask, x.shape)
  _checks.check_axis_name(axis_name)
  feature_shape = tuple(x.shape[a] for a in feature_axes)
  _checks.check_feature_params("scale", scale, feature_shape)
  _checks.check_feature_params("bias", bias, feature_shape)
  spec = _spec(stat_axes, epsilon, axis_name, axis_index_groups, use_fast_variance,
               output_dtype(dtype, x, scale, bias))
  y, _ = normalize_with_batch_stats(
      x, broadcast_param(scale, x.ndim, feature_axes),
      broadcast_param(bias, x.ndim, feature_axes), mask, spec)
  return y


def batch_norm(x: Array, scale: Array | None = None, bias: Array | None = None,
               mean: Array | None = None, var: Array | None = None, *,
               use_running_average: bool = False, axis: Axes = -1, momentum: float = 0.99,
               epsilon: float = 1e-5, axis_name: Any = None, axis_index_groups: Any = None,
               mask: Array | None = None, use_fast_variance: bool = True,
               unbiased_running_var: bool = False, dtype: Any = None, zero_debias: bool = False,
               step: Array | int | None = None
               ) -> tuple[Array, Array | None, Array | None]:
  """Batch normalization (Ioffe & Szegedy, 2015) with explicit running statistics.

  Training (``use_running_average=False``): normalizes with the mean and
  biased variance over every axis but ``axis`` (and over devices with
  ``axis_name``), and returns the running statistics updated as
  ``running = momentum * running + (1 - momentum) * batch``. With
  ``unbiased_running_var`` the variance folded into ``var`` is the
  ``n / (n - 1)`` corrected one, as PyTorch stores it. If ``mean``/``var``
  are None, the batch statistics themselves are returned.

  Evaluation (``use_running_average=True``): normalizes with ``mean`` and
  ``var`` and returns them unchanged.

  ``zero_debias`` (Adam-style bias correction of the moving average): the
  running statistics are ``acc_t / (1 - momentum^t)`` where ``acc_t =
  momentum * acc_{t-1} + (1 - momentum) * batch_t``, ``acc_0 = 0``, so the
  first update gives the batch statistics exactly instead of 1% of them.
  ``mean``/``var`` hold that debiased value (what evaluation uses; ``acc_t``
  itself is never stored), and ``step`` is the number ``t - 1`` of updates
  they already hold; the update is ``(1 - w) running + w batch`` with
  ``w = (1 - momentum) / (1 - momentum^t)``. The caller increments ``step``.

  Args:
    x: input, e.g. (N, C), (N, L, C), (N, H, W, C) or (N, D, H, W, C).
    scale, bias: per-feature parameters of shape ``x.shape[axis]`` or None.
    mean, var: running statistics of that shape (float32).

  Returns:
    ``(y, new_mean, new_var)``; ``y`` has the shape of ``x``.
  """
  _checks.check_floating("x", x)
  feature_axes = _checks.canonical_axes(axis, x.ndim, "axis", x.shape)
  reduction_axes = tuple(a for a in range(x.ndim) if a not in feature_axes)
  feature_shape = tuple(x.shape[a] for a in feature_axes)
  _checks.check_epsilon(epsilon)
  _checks.check_momentum(momentum)
  _checks.check_mask(mask, x.shape)
  for name, value in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var)):
    _checks.check_feature_params(name, value, feature_shape)
  out_dtype = output_dtype(dtype, x, scale, bias)
  scale_b = broadcast_param(scale, x.ndim, feature_axes)
  bias_b = broadcast_param(bias, x.ndim, feature_axes)

  if use_running_average:
    if mean is None or var is None:
      raise ValueError(
          "batch_norm with use_running_average=True needs the running statistics: pass mean= and "
          "var= (in a linen Module: include the 'batch_stats' collection in the variables)")
    y = normalize_with_stats(x, broadcast_param(mean, x.ndim, feature_axes),
                             broadcast_param(var, x.ndim, feature_axes), scale_b, bias_b,
                             epsilon, out_dtype)
    return y, mean, var

  _checks.check_axis_name(axis_name)
  _checks.check_nonempty_reduction("batch_norm (training mode)", x.shape, reduction_axes)
  _checks.check_not_single_value(
      "batch_norm", x.shape, reduction_axes, axis_name, mask,
      hint="Use a batch of more than one example, use_running_average=True, or a per-example "
           "norm (layer/group)")
  spec = _spec(reduction_axes, epsilon, axis_name, axis_index_groups, use_fast_variance, out_dtype)
  y, (batch_mean, batch_var, count) = normalize_with_batch_stats(x, scale_b, bias_b, mask, spec)
  batch_mean = jnp.squeeze(batch_mean, reduction_axes)
  batch_var = jnp.squeeze(batch_var, reduction_axes)
  if mean is None or var is None:
    return y, batch_mean, batch_var
  if unbiased_running_var:
    count = jnp.squeeze(count, reduction_axes)
    batch_var = batch_var * count / jnp.maximum(count - 1.0, 1.0)
  if zero_debias:
    if step is None or momentum == 1.0:
      raise ValueError(f"batch_norm with zero_debias=True needs step= (the number of updates the "
                       f"running statistics already hold) and momentum < 1; got step={step!r}, "
                       f"momentum={momentum!r}")
    t = jnp.asarray(step, jnp.float32) + 1.0
    m = jnp.float32(momentum)
    # Exactly 1 on the first update whatever the rounding of pow.
    w = jnp.where(t > 1.0, (1.0 - m) / (1.0 - m ** t), 1.0)
    new_mean = (1.0 - w) * mean + w * batch_mean
    new_var = (1.0 - w) * var + w * batch_var
  else:
    new_mean = momentum * mean + (1.0 - momentum) * batch_mean
    new_var = momentum * var + (1.0 - momentum) * batch_var
  return y, new_mean.astype(mean.dtype), new_var.astype(var.dtype)


def layer_norm(x: Array, scale: Array | None = None, bias: Array | None = None, *,
               reduction_axes: Axes | None = -1, feature_axes: Axes = -1, epsilon: float = 1e-6,
               axis_name: Any = None, axis_index_groups: Any = None, mask: Array | None = None,
               use_fast_variance: bool = True, dtype: Any = None) -> Array:
  """Layer normalization (Ba et al., 2016): statistics per example over ``reduction_axes``.

  ``reduction_axes=-1`` (flax.linen's default) normalizes each position over
  its channels; ``None`` means every axis except the leading batch axis, the
  "LN" of convolutional nets (Group Norm with one group). ``scale``/``bias``
  have the shape of ``x`` along ``feature_axes``.
  """
  _checks.check_floating("x", x)
  if reduction_axes is None:
    reduction_axes = tuple(range(1, x.ndim))
  stat_axes = _checks.canonical_axes(reduction_axes, x.ndim, "reduction_axes", x.shape)
  feature_axes = _checks.canonical_axes(feature_axes, x.ndim, "feature_axes", x.shape)
  return _per_example_norm(x, scale, bias, stat_axes, feature_axes, epsilon=epsilon,
                           axis_name=axis_name, axis_index_groups=axis_index_groups, mask=mask,
                           use_fast_variance=use_fast_variance, dtype=dtype)


def instance_norm(x: Array, scale: Array | None = None, bias: Array | None = None, *,
                  feature_axes: Axes = -1, epsilon: float = 1e-6, axis_name: Any = None,
                  axis_index_groups: Any = None, mask: Array | None = None,
                  use_fast_variance: bool = True, dtype: Any = None) -> Array:
  """Instance normalization (Ulyanov et al., 2016): per example and channel, over the spatial axes.

  ``x`` is (N, ..., C); the statistics run over every axis except the batch
  axis 0 and ``feature_axes``.
  """
  _checks.check_floating("x", x)
  feature_axes = _checks.canonical_axes(feature_axes, x.ndim, "feature_axes", x.shape)
  if 0 in feature_axes:
    raise ValueError(f"instance_norm: feature_axes={feature_axes} includes axis 0, which is the "
                     f"batch axis")
  stat_axes = tuple(a for a in range(1, x.ndim) if a not in feature_axes)
  if not stat_axes:
    raise ValueError(
        f"instance_norm needs at least one spatial axis besides the batch axis and feature_axes="
        f"{feature_axes}; an input of shape {tuple(x.shape)} has none (each statistic would come "
        f"from a single value). Use layer or group norm for (N, C) inputs")
  return _per_example_norm(x, scale, bias, stat_axes, feature_axes, epsilon=epsilon,
                           axis_name=axis_name, axis_index_groups=axis_index_groups, mask=mask,
                           use_fast_variance=use_fast_variance, dtype=dtype)


def resolve_num_groups(channels: int, num_groups: int | None, group_size: int | None) -> int:
  """Number of groups from exactly one of ``num_groups`` / ``group_size``, validated."""
  if (num_groups is None) == (group_size is None):
    raise ValueError(
        f"group norm needs exactly one of num_groups / group_size; got num_groups={num_groups!r}, "
        f"group_size={group_size!r} (to give group_size, also pass num_groups=None)")
  if group_size is not None:
    _checks.check_positive_int("group_size", group_size)
    if group_size <= 0 or channels % group_size:
      raise ValueError(f"group_size={group_size} does not divide the number of channels "
                       f"({channels})")
    return channels // group_size
  _checks.check_positive_int("num_groups", num_groups)
  if num_groups <= 0 or channels % num_groups:
    raise ValueError(f"num_groups={num_groups} does not divide the number of channels "
                     f"({channels})")
  return num_groups


def group_norm(x: Array, scale: Array | None = None, bias: Array | None = None, *,
               num_groups: int | None = 32, group_size: int | None = None,
               reduction_axes: Axes | None = None, epsilon: float = 1e-6, axis_name: Any = None,
               axis_index_groups: Any = None, mask: Array | None = None,
               use_fast_variance: bool = True, dtype: Any = None) -> Array:
  """Group normalization (Wu & He, 2018).

  ``x`` is (N, ..., C); the C channels are split into ``num_groups`` groups
  of ``C / num_groups`` and the statistics of each example and group run over
  the group's channels and ``reduction_axes`` (default: every axis but the
  batch axis). One group is layer norm, C groups is instance norm.
  ``scale``/``bias`` have shape (C,).
  """
  _checks.check_floating("x", x)
  if x.ndim < 2:
    raise ValueError(f"group_norm needs an input of shape (N, ..., C); got shape {tuple(x.shape)}")
  if reduction_axes is None:
    reduction_axes = tuple(range(1, x.ndim))
  axes = _checks.canonical_axes(reduction_axes, x.ndim, "reduction_axes", x.shape)
  if axes[-1] != x.ndim - 1:
    raise ValueError(f"group_norm: reduction_axes={reduction_axes!r} must include the last "
                     f"(channel) axis of the input of shape {tuple(x.shape)}")
  channels = x.shape[-1]
  groups = resolve_num_groups(channels, num_groups, group_size)
  _checks.check_epsilon(epsilon)
  _checks.check_nonempty_reduction("group_norm", x.shape, axes)
  _checks.check_mask(mask, x.shape)
  _checks.check_axis_name(axis_name)
  _checks.check_feature_params("scale", scale, (channels,))
  _checks.check_feature_params("bias", bias, (channels,))

  spec = _spec(axes[:-1], epsilon, axis_name, axis_index_groups, use_fast_variance,
               output_dtype(dtype, x, scale, bias))._replace(channel_groups=groups)
  y, _ = normalize_with_batch_stats(x, broadcast_param(scale, x.ndim, (x.ndim - 1,)),
                                          broadcast_param(bias, x.ndim, (x.ndim - 1,)), mask, spec)
  return y
