"""flax.linen modules over the functional normalizers.

Each class takes the constructor arguments, call signature, defaults and
variable names of the flax.linen class of the same name (``params``:
``scale``, ``bias``; ``batch_stats``: ``mean``, ``var``), so variables made by
flax.linen load into ours. The modules only declare variables and call
:mod:`normzoo.norms.functional`. Where we differ from flax.linen, it is a fix:

* variance is accurate when ``|mean| >> std`` (flax's default one-pass
  ``E[x^2] - E[x]^2`` is not); ``use_fast_variance`` picks between two
  accurate formulas (shifted one-pass / two-pass);
* with ``axis_name`` and ``mask``, statistics are weighted by each device's
  valid count (flax averages per-device means equally);
* statistics are float32 for bf16/fp16 input whatever
  ``force_float32_reductions`` says (the field is accepted for compatibility);
* mistakes (unbound ``axis_name``, missing or immutable ``batch_stats``,
  groups that do not divide the channels, ...) raise a ValueError that says
  what to change.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen import initializers

from normzoo.norms import _checks, functional, pallas_rows
from normzoo.norms.linen_support import (axis_name_unless_init, feature_params,
                                         record_batch_moments, require_batch_stats)

Array = jax.Array
Axes = Any
Dtype = Any
Initializer = Any


class BatchNorm(nn.Module):
  """Batch normalization; drop-in for ``flax.linen.BatchNorm``.

  Extra fields: ``unbiased_running_var`` stores the ``n / (n - 1)`` corrected
  batch variance in the running ``var``, as PyTorch does (with
  ``momentum=0.9, epsilon=1e-5`` this reproduces
  ``torch.nn.BatchNorm2d(momentum=0.1)``). ``zero_debias`` bias-corrects the
  moving averages as Adam does (see :func:`functional.batch_norm`); it adds
  a float32 update counter ``batch_stats['step']`` (only then, so default
  variable trees stay flax's), and ``mean``/``var`` keep holding the values
  evaluation uses. In training mode the batch moments are also written to
  the ``'batch_stats_raw'`` collection when (only when) it is mutable, for
  :func:`normzoo.precise_batch_stats`.
  """
  use_running_average: bool | None = None
  axis: int = -1
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Initializer = initializers.zeros
  scale_init: Initializer = initializers.ones
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True
  unbiased_running_var: bool = False
  zero_debias: bool = False

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    feature_axes = _checks.canonical_axes(self.axis, x.ndim, "axis", x.shape)
    feature_shape = tuple(x.shape[a] for a in feature_axes)
    require_batch_stats(self, train=not use_running_average)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, feature_shape, jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, feature_shape, jnp.float32)
    # float32, not int: the trainer pmeans every batch_stats leaf (exact up to 2^24 steps).
    step = (self.variable("batch_stats", "step", jnp.zeros, (), jnp.float32)
            if self.zero_debias else None)
    scale, bias = feature_params(self, feature_shape)
    axis_name = axis_name_unless_init(self)
    y, mean, var = functional.batch_norm(
        x, scale, bias, ra_mean.value, ra_var.value, use_running_average=use_running_average,
        axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
        axis_name=axis_name, axis_index_groups=self.axis_index_groups,
        mask=mask, use_fast_variance=self.use_fast_variance,
        unbiased_running_var=self.unbiased_running_var, dtype=self.dtype,
        zero_debias=self.zero_debias, step=None if step is None else step.value)
    if not use_running_average and not self.is_initializing():
      ra_mean.value, ra_var.value = mean, var
      if step is not None:
        step.value = step.value + 1.0
      record_batch_moments(self, x, tuple(a for a in range(x.ndim) if a not in feature_axes),
                           axis_name=axis_name, axis_index_groups=self.axis_index_groups,
                           mask=mask)
    return y


class LayerNorm(nn.Module):
  """Layer normalization; drop-in for ``flax.linen.LayerNorm``.

  ``reduction_axes=None`` (our addition) reduces over every axis except the
  leading batch axis, the layer norm of convolutional nets.
  """
  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Initializer = initializers.zeros
  scale_init: Initializer = initializers.ones
  reduction_axes: Axes = -1
  feature_axes: Axes = -1
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True
  # Ours: "pallas" runs normzoo.pallas_layer_norm, one Triton kernel each way
  # (GPU; last axis only, no axis_name or mask).
  implementation: str = "xla"

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    feature_axes = _checks.canonical_axes(self.feature_axes, x.ndim, "feature_axes", x.shape)
    scale, bias = feature_params(self, tuple(x.shape[a] for a in feature_axes))
    if pallas_rows.uses_pallas(self.implementation, x, self.reduction_axes,
                               self.feature_axes, self.axis_name, mask, "LayerNorm"):
      return pallas_rows.pallas_layer_norm(x, scale, bias, epsilon=self.epsilon,
                                           dtype=self.dtype)
    return functional.layer_norm(
        x, scale, bias, reduction_axes=self.reduction_axes, feature_axes=self.feature_axes,
        epsilon=self.epsilon, axis_name=axis_name_unless_init(self),
        axis_index_groups=self.axis_index_groups, mask=mask,
        use_fast_variance=self.use_fast_variance, dtype=self.dtype)


class GroupNorm(nn.Module):
  """Group normalization; drop-in for ``flax.linen.GroupNorm`` (32 groups by default)."""
  num_groups: int | None = 32
  group_size: int | None = None
  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Initializer = initializers.zeros
  scale_init: Initializer = initializers.ones
  reduction_axes: Axes | None = None
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    scale, bias = feature_params(self, (x.shape[-1],))
    return functional.group_norm(
        x, scale, bias, num_groups=self.num_groups, group_size=self.group_size,
        reduction_axes=self.reduction_axes, epsilon=self.epsilon,
        axis_name=axis_name_unless_init(self), axis_index_groups=self.axis_index_groups,
        mask=mask, use_fast_variance=self.use_fast_variance, dtype=self.dtype)


class InstanceNorm(nn.Module):
  """Instance normalization; drop-in for ``flax.linen.InstanceNorm``."""
  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Initializer = initializers.zeros
  scale_init: Initializer = initializers.ones
  feature_axes: Axes = -1
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    feature_axes = _checks.canonical_axes(self.feature_axes, x.ndim, "feature_axes", x.shape)
    scale, bias = feature_params(self, tuple(x.shape[a] for a in feature_axes))
    return functional.instance_norm(
        x, scale, bias, feature_axes=self.feature_axes, epsilon=self.epsilon,
        axis_name=axis_name_unless_init(self), axis_index_groups=self.axis_index_groups,
        mask=mask, use_fast_variance=self.use_fast_variance, dtype=self.dtype)


class Identity(nn.Module):
  """No normalization (registry name ``none``).

  Accepts the call arguments of the other normalizers (and ``dtype``) so a
  model can switch normalization off without changing how it calls layers.
  """
  dtype: Dtype | None = None

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    del use_running_average, mask
    return x if self.dtype is None else x.astype(self.dtype)
