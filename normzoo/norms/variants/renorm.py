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

import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms import _checks, functional
from normzoo.norms._checks import (broadcast_param, check_not_single_value, hashable_groups,
                                   output_dtype)
from normzoo.norms.normalize import StatSpec, normalize_with_batch_stats
from normzoo.norms.stats import moments_keepdims, stat_dtype
from normzoo.norms.variants._common import per_channel_layout, update_running

Array = jax.Array

__all__ = ["batch_renorm", "renorm_limits"]


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


def check_limits(r_max: Any, d_max: Any) -> None:
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
  check_limits(r_max, d_max)
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
  y, (batch_mean, batch_var, _) = normalize_with_batch_stats(x, a, b, mask,
                                                           spec._replace(out_dtype=out_dtype))
  new_mean = update_running(mean, jnp.squeeze(batch_mean, reduction_axes), momentum)
  new_var = update_running(var, jnp.squeeze(batch_var, reduction_axes), momentum)
  return y, new_mean, new_var
