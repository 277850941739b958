"""flax.linen modules of the research variants: declare variables, call the variants' functions.

Each module takes the fields of the flax.linen layer it stands in for
(:class:`normzoo.BatchNorm`'s for the batch-statistics variants) and keeps
its parameters in ``params`` and running statistics in ``batch_stats``; the
math is in the pure functions of :mod:`normzoo.norms.variants`
(:func:`batch_renorm`, :func:`ghost_batch_norm`, ...), shared with the
flax.nnx modules of :mod:`normzoo.nnx`.

``FrozenBatchNorm`` is batch norm that always uses its running statistics
and never updates them: ``y = (x - mean) / sqrt(var + epsilon) * scale +
bias`` in training and evaluation alike, an affine per-channel map, the
usual way to fine-tune a pretrained network with small batches (e.g.
detection backbones, Detectron's ``FrozenBatchNorm2d``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen import initializers
from jax import lax

from normzoo.norms import _checks, functional, pallas_rows
from normzoo.norms.linen_support import (axis_name_unless_init, channel_param, feature_params,
                                         record_batch_moments, require_batch_stats)
from normzoo.norms.modules import BatchNorm
from normzoo.norms.variants._common import per_channel_layout, spatial_axes
from normzoo.norms.variants.evonorm import evonorm_b0, evonorm_s0
from normzoo.norms.variants.frn import filter_response_norm
from normzoo.norms.variants.ghost import ghost_batch_norm
from normzoo.norms.variants.renorm import batch_renorm, check_limits, renorm_limits
from normzoo.norms.variants.rms import rms_norm
from normzoo.norms.variants.switchable import switchable_norm

Array = jax.Array

__all__ = ["BatchRenorm", "EvoNormB0", "EvoNormS0", "FilterResponseNorm", "FrozenBatchNorm",
           "GhostBatchNorm", "RMSNorm", "SwitchableNorm"]


class BatchRenorm(nn.Module):
  """Batch renormalization (Ioffe, 2017); fields and variables of :class:`normzoo.BatchNorm`.

  Attributes (besides BatchNorm's):
    r_max, d_max: target clipping limits (paper: 3 and 5).
    warmup_steps, warmup_delay: linear schedule of the limits from 1 / 0
      (:func:`renorm_limits`); if either is > 0 a float32 training-step
      counter ``batch_stats['step']`` is kept.

  Shapes: ``x`` (N, ..., C) (any ``axis``) -> same shape; ``params``
  ``scale``/``bias`` and ``batch_stats`` ``mean``/``var`` of shape (C,).
  """
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
  r_max: float = 3.0
  d_max: float = 5.0
  warmup_steps: int = 0
  warmup_delay: int = 0

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    check_limits(self.r_max, self.d_max)
    feature_axes, reduction_axes, feature_shape = per_channel_layout(x, self.axis)
    require_batch_stats(self, train=not use_running_average)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, feature_shape, jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, feature_shape, jnp.float32)
    scheduled = self.warmup_steps > 0 or self.warmup_delay > 0
    # float32: the trainer pmeans every batch_stats leaf (exact up to 2^24 steps).
    step = self.variable("batch_stats", "step", jnp.zeros, (), jnp.float32) if scheduled else None
    r_max, d_max = self.r_max, self.d_max
    if step is not None:
      r_max, d_max = renorm_limits(step.value, self.r_max, self.d_max, self.warmup_steps,
                                   self.warmup_delay)
    scale, bias = feature_params(self, feature_shape)
    axis_name = axis_name_unless_init(self)
    y, mean, var = batch_renorm(
        x, scale, bias, ra_mean.value, ra_var.value, r_max=r_max, d_max=d_max,
        use_running_average=use_running_average, axis=self.axis, momentum=self.momentum,
        epsilon=self.epsilon, axis_name=axis_name, axis_index_groups=self.axis_index_groups,
        mask=mask, use_fast_variance=self.use_fast_variance, dtype=self.dtype)
    if not use_running_average and not self.is_initializing():
      ra_mean.value, ra_var.value = mean, var
      if step is not None:
        step.value = step.value + 1.0
      record_batch_moments(self, x, reduction_axes, axis_name=axis_name,
                           axis_index_groups=self.axis_index_groups, mask=mask)
    return y


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
    require_batch_stats(self, train=not use_running_average)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, feature_shape, jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, feature_shape, jnp.float32)
    scale, bias = feature_params(self, feature_shape)
    axis_name = axis_name_unless_init(self)
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


class FilterResponseNorm(nn.Module):
  """FRN + TLU (Singh & Krishnan, 2019); per-example, no batch statistics.

  Attributes:
    epsilon: the fixed part of epsilon (paper: 1e-6).
    use_tlu: apply the thresholded linear unit ``max(y, tau)`` (param ``tau``).
    learned_epsilon: add ``|eps|`` with a learned scalar param ``eps``
      (initialized to ``learned_epsilon_init``); required for (N, C) input.

  Shapes: ``x`` (N, ..., C) -> same shape; ``scale``, ``bias``, ``tau`` (C,).
  """
  epsilon: float = 1e-6
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  use_tlu: bool = True
  learned_epsilon: bool = False
  learned_epsilon_init: float = 1e-4
  bias_init: Any = initializers.zeros
  scale_init: Any = initializers.ones
  tau_init: Any = initializers.zeros

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim == 2 and not self.learned_epsilon:
      raise ValueError(
          f"FilterResponseNorm on (N, C) input (shape {tuple(x.shape)}) normalizes each value by "
          f"itself (output ~ scale * sign(x) + bias); the paper's remedy is a learned epsilon: "
          f"pass learned_epsilon=True (get_norm('frn', learned_epsilon=True)), or use another "
          f"norm for dense layers")
    c = x.shape[-1]
    scale = channel_param(self, "scale", self.scale_init, c) if self.use_scale else None
    bias = channel_param(self, "bias", self.bias_init, c) if self.use_bias else None
    tau = channel_param(self, "tau", self.tau_init, c) if self.use_tlu else None
    eps = (self.param("eps", initializers.constant(self.learned_epsilon_init), (),
                      self.param_dtype) if self.learned_epsilon else None)
    return filter_response_norm(x, scale, bias, tau, epsilon=self.epsilon, learned_epsilon=eps,
                                dtype=self.dtype)


class EvoNormB0(nn.Module):
  """EvoNorm-B0 (Liu et al., 2020): batch-dependent; running ``batch_stats['var']`` (C,).

  Params ``scale``, ``bias``, ``v1`` (C,); ``x`` (N, ..., C) with at least
  one spatial axis -> same shape.
  """
  use_running_average: bool | None = None
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Any = initializers.zeros
  scale_init: Any = initializers.ones
  v1_init: Any = initializers.ones
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    axes = spatial_axes(x, "EvoNormB0")
    c = x.shape[-1]
    require_batch_stats(self, train=not use_running_average, variable="var")
    ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
    scale = channel_param(self, "scale", self.scale_init, c) if self.use_scale else None
    bias = channel_param(self, "bias", self.bias_init, c) if self.use_bias else None
    v1 = channel_param(self, "v1", self.v1_init, c)
    axis_name = axis_name_unless_init(self)
    y, var = evonorm_b0(x, scale, bias, v1, ra_var.value, use_running_average=use_running_average,
                        momentum=self.momentum, epsilon=self.epsilon, axis_name=axis_name,
                        axis_index_groups=self.axis_index_groups, mask=mask,
                        use_fast_variance=self.use_fast_variance, dtype=self.dtype)
    if not use_running_average and not self.is_initializing():
      ra_var.value = var
      record_batch_moments(self, x, (0,) + axes, axis_name=axis_name,
                           axis_index_groups=self.axis_index_groups, mask=mask)
    return y


class EvoNormS0(nn.Module):
  """EvoNorm-S0 (Liu et al., 2020): per-example, group variance (32 groups by default).

  Params ``scale``, ``bias``, ``v1`` (C,); ``x`` (N, ..., C) -> same shape.
  Exactly one of ``num_groups`` / ``group_size`` (as in GroupNorm).
  """
  num_groups: int | None = 32
  group_size: int | None = None
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Any = initializers.zeros
  scale_init: Any = initializers.ones
  v1_init: Any = initializers.ones
  use_fast_variance: bool = True

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    c = x.shape[-1]
    scale = channel_param(self, "scale", self.scale_init, c) if self.use_scale else None
    bias = channel_param(self, "bias", self.bias_init, c) if self.use_bias else None
    v1 = channel_param(self, "v1", self.v1_init, c)
    return evonorm_s0(x, scale, bias, v1, num_groups=self.num_groups, group_size=self.group_size,
                      epsilon=self.epsilon, mask=mask, use_fast_variance=self.use_fast_variance,
                      dtype=self.dtype)


class RMSNorm(nn.Module):
  """RMS normalization; drop-in for ``flax.linen.RMSNorm`` (Zhang & Sennrich, 2019).

  ``reduction_axes=-1`` (the default, flax's) normalizes each position over
  its channels. ``use_fast_variance`` and ``force_float32_reductions`` are
  accepted for compatibility (the mean of squares needs no variance formula
  and is always float32 or wider).
  """
  epsilon: float = 1e-6
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_scale: bool = True
  scale_init: Any = initializers.ones
  reduction_axes: Any = -1
  feature_axes: Any = -1
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True
  force_float32_reductions: bool = True
  # Ours: "pallas" runs normzoo.pallas_rms_norm, one Triton kernel each way
  # (GPU; last axis only, no axis_name or mask).
  implementation: str = "xla"

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    features = _checks.canonical_axes(self.feature_axes, x.ndim, "feature_axes", x.shape)
    scale = (self.param("scale", self.scale_init, tuple(x.shape[a] for a in features),
                        self.param_dtype) if self.use_scale else None)
    if pallas_rows.uses_pallas(self.implementation, x, self.reduction_axes,
                               self.feature_axes, self.axis_name, mask, "RMSNorm"):
      return pallas_rows.pallas_rms_norm(x, scale, epsilon=self.epsilon, dtype=self.dtype)
    return rms_norm(x, scale, reduction_axes=self.reduction_axes,
                    feature_axes=self.feature_axes, epsilon=self.epsilon,
                    axis_name=axis_name_unless_init(self),
                    axis_index_groups=self.axis_index_groups, mask=mask, dtype=self.dtype)


class SwitchableNorm(nn.Module):
  """Switchable normalization (Luo et al., 2019): learned mix of IN, LN and BN statistics.

  ``x`` (N, ..., C) with at least one spatial axis -> same shape. Params
  ``scale``, ``bias`` (C,), ``mean_weight``, ``var_weight`` (3,);
  ``batch_stats`` ``mean``, ``var`` (C,) for the BN part.
  """
  use_running_average: bool | None = None
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Any = initializers.zeros
  scale_init: Any = initializers.ones
  weight_init: Any = initializers.ones
  axis_name: str | None = None
  axis_index_groups: Any = None
  use_fast_variance: bool = True

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = nn.merge_param("use_running_average", self.use_running_average,
                                         use_running_average)
    axes = spatial_axes(x, "SwitchableNorm")
    c = x.shape[-1]
    require_batch_stats(self, train=not use_running_average)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
    scale, bias = feature_params(self, (c,))
    mean_weight = self.param("mean_weight", self.weight_init, (3,), self.param_dtype)
    var_weight = self.param("var_weight", self.weight_init, (3,), self.param_dtype)
    axis_name = axis_name_unless_init(self)
    y, mean, var = switchable_norm(
        x, scale, bias, mean_weight, var_weight, ra_mean.value, ra_var.value,
        use_running_average=use_running_average, momentum=self.momentum, epsilon=self.epsilon,
        axis_name=axis_name, axis_index_groups=self.axis_index_groups, mask=mask,
        use_fast_variance=self.use_fast_variance, dtype=self.dtype)
    if not use_running_average and not self.is_initializing():
      ra_mean.value, ra_var.value = mean, var
      record_batch_moments(self, x, (0,) + axes, axis_name=axis_name,
                           axis_index_groups=self.axis_index_groups, mask=mask)
    return y


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
