"""Batch renormalization (Ioffe, "Batch Renormalization: Towards Reducing Minibatch
Dependence in Batch-Normalized Models", NeurIPS 2017).

Training, per channel, with batch statistics ``mu_B, sigma_B = sqrt(var_B +
eps)`` and running ones ``mu, sigma = sqrt(var + eps)``::

    r = stop_gradient(clip(sigma_B / sigma, 1 / r_max, r_max))
    d = stop_gradient(clip((mu_B - mu) / sigma, -d_max, d_max))
    y = ((x - mu_B) / sigma_B * r + d) * scale + bias

Unclipped, ``y = (x - mu) / sigma * scale + bias``: the training output is
that of inference, while gradients still flow through ``mu_B, sigma_B``.
``r_max = 1, d_max = 0`` is batch norm. The running statistics are updated
as in batch norm (``running = momentum * running + (1 - momentum) * batch``;
we keep ``var``, not ``sigma``, so checkpoints stay batch-norm compatible).

Evaluation: ``y = (x - mu) / sigma * scale + bias``.

Schedule (the paper starts at plain batch norm and relaxes the limits:
``r_max`` 1 -> 3, ``d_max`` 0 -> 5): with ``warmup_steps > 0`` the limits
ramp linearly from 1 / 0 to ``r_max`` / ``d_max`` over ``warmup_steps``
training steps after ``warmup_delay`` steps, counted in
``batch_stats['step']``. E.g. the paper's ``r_max`` schedule is roughly
``warmup_delay=5000, warmup_steps=35000``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen import initializers
from jax import lax

from normzoo.norms import _checks, functional
from normzoo.norms.modules import _axis_name_unless_init, _feature_params, _require_batch_stats
from normzoo.norms.normalize import (StatSpec, hashable_groups, normalize_with_batch_stats,
                                     output_dtype)
from normzoo.norms.precise import record_batch_moments
from normzoo.norms.stats import moments_keepdims, stat_dtype
from normzoo.norms.variants._common import (broadcast_param, check_not_single_value,
                                            per_channel_layout, update_running)

Array = jax.Array

__all__ = ["BatchRenorm", "batch_renorm", "renorm_limits"]


def renorm_limits(step: Array | float, r_max: float, d_max: float, warmup_steps: int = 0,
                  warmup_delay: int = 0) -> tuple[Array, Array]:
  """``(r_max_t, d_max_t)`` after ``step`` training updates, on the linear schedule.

  1 / 0 up to ``step = warmup_delay``, then linear in ``step``, reaching
  ``r_max`` / ``d_max`` at ``warmup_delay + warmup_steps`` and staying there.
  ``warmup_steps=0`` jumps to the targets at ``warmup_delay``.
  """
  if warmup_steps < 0 or warmup_delay < 0:
    raise ValueError(f"warmup_steps and warmup_delay must be >= 0; got warmup_steps="
                     f"{warmup_steps!r}, warmup_delay={warmup_delay!r}")
  elapsed = jnp.asarray(step, jnp.float32) - warmup_delay
  if warmup_steps:
    frac = jnp.clip(elapsed / warmup_steps, 0.0, 1.0)
  else:
    frac = (elapsed >= 0).astype(jnp.float32)
  return 1.0 + (r_max - 1.0) * frac, d_max * frac


def _check_limits(r_max: Any, d_max: Any) -> None:
  if isinstance(r_max, (int, float)) and not r_max >= 1:
    raise ValueError(f"r_max must be >= 1 (r is clipped to [1/r_max, r_max]); got r_max={r_max!r}")
  if isinstance(d_max, (int, float)) and not d_max >= 0:
    raise ValueError(f"d_max must be >= 0 (d is clipped to [-d_max, d_max]); got d_max={d_max!r}")


def batch_renorm(x: Array, scale: Array | None, bias: Array | None, mean: Array, var: Array, *,
                 r_max: float | Array = 3.0, d_max: float | Array = 5.0,
                 use_running_average: bool = False, axis: Any = -1, momentum: float = 0.99,
                 epsilon: float = 1e-5, axis_name: Any = None, axis_index_groups: Any = None,
                 mask: Array | None = None, use_fast_variance: bool = True, dtype: Any = None
                 ) -> tuple[Array, Array, Array]:
  """Batch renormalization with explicit running statistics (see the module docstring).

  Args:
    x: (N, C), (N, H, W, C), ...; statistics over every axis but ``axis``
      (and over devices with ``axis_name``; ``mask`` selects valid elements).
    scale, bias: per-feature parameters of shape ``x.shape[axis]`` or None.
    mean, var: running statistics of that shape (needed in training too).
    r_max, d_max: the clipping limits; may be traced (schedules).

  Returns:
    ``(y, new_mean, new_var)``; in evaluation the statistics are unchanged.
  """
  if use_running_average:
    return functional.batch_norm(x, scale, bias, mean, var, use_running_average=True, axis=axis,
                                 epsilon=epsilon, dtype=dtype)
  feature_axes, reduction_axes, feature_shape = per_channel_layout(x, axis)
  _checks.check_floating("x", x)
  _checks.check_nonempty_reduction("batch_renorm (training mode)", x.shape, reduction_axes)
  _checks.check_epsilon(epsilon)
  _checks.check_momentum(momentum)
  _checks.check_mask(mask, x.shape)
  _checks.check_axis_name(axis_name)
  _check_limits(r_max, d_max)
  for name, value in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var)):
    _checks.check_feature_params(name, value, feature_shape)
  if mean is None or var is None:
    raise ValueError("batch_renorm needs the running statistics mean= and var= in training too")
  check_not_single_value("batch_renorm", x.shape, reduction_axes, axis_name, mask)

  dtype_s = stat_dtype(x.dtype)
  out_dtype = output_dtype(dtype, x, scale, bias)
  spec = StatSpec(reduction_axes, float(epsilon), axis_name, hashable_groups(axis_index_groups),
                  bool(use_fast_variance), dtype_s)
  # r and d are constants for autodiff, so they fold into the scale and bias
  # of the shared kernel: y = x_hat * (r * scale) + (d * scale + bias) is one
  # multiply-add with batch norm's exact backward. They need the batch
  # statistics first; XLA merges this computation of them with the
  # kernel's identical one.
  stat_mean, stat_var, _ = moments_keepdims(
      lax.stop_gradient(x), reduction_axes, axis_name=axis_name,
      axis_index_groups=spec.axis_index_groups, mask=mask, use_fast_variance=use_fast_variance)
  run_mean = broadcast_param(mean, x.ndim, feature_axes).astype(dtype_s)
  run_sigma = jnp.sqrt(broadcast_param(var, x.ndim, feature_axes).astype(dtype_s) + epsilon)
  r_max = jnp.asarray(r_max, dtype_s)
  r = lax.stop_gradient(jnp.clip(jnp.sqrt(stat_var + epsilon) / run_sigma, 1.0 / r_max, r_max))
  d = lax.stop_gradient(jnp.clip((stat_mean - run_mean) / run_sigma, -d_max, d_max))
  scale_b = broadcast_param(scale, x.ndim, feature_axes)
  bias_b = broadcast_param(bias, x.ndim, feature_axes)
  a = r if scale_b is None else r * scale_b.astype(dtype_s)
  b = d if scale_b is None else d * scale_b.astype(dtype_s)
  if bias_b is not None:
    b = b + bias_b.astype(dtype_s)
  y, batch_mean, batch_var, _ = normalize_with_batch_stats(x, a, b, mask,
                                                           spec._replace(out_dtype=out_dtype))
  new_mean = update_running(mean, jnp.squeeze(batch_mean, reduction_axes), momentum)
  new_var = update_running(var, jnp.squeeze(batch_var, reduction_axes), momentum)
  return y, new_mean, new_var


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
    _check_limits(self.r_max, self.d_max)
    feature_axes, reduction_axes, feature_shape = per_channel_layout(x, self.axis)
    _require_batch_stats(self, train=not use_running_average)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, feature_shape, jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, feature_shape, jnp.float32)
    scheduled = self.warmup_steps > 0 or self.warmup_delay > 0
    # float32: the trainer pmeans every batch_stats leaf (exact up to 2^24 steps).
    step = self.variable("batch_stats", "step", jnp.zeros, (), jnp.float32) if scheduled else None
    r_max, d_max = self.r_max, self.d_max
    if step is not None:
      r_max, d_max = renorm_limits(step.value, self.r_max, self.d_max, self.warmup_steps,
                                   self.warmup_delay)
    scale, bias = _feature_params(self, feature_shape)
    axis_name = _axis_name_unless_init(self)
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
