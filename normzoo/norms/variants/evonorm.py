"""EvoNorm-B0 and EvoNorm-S0 (Liu, Brock, Simonyan & Le, "Evolving Normalization-Activation
Layers", NeurIPS 2020): normalization and activation in one layer.

For ``x`` (N, ..., C) and per-channel ``scale`` (gamma), ``bias`` (beta)
and ``v1``, all (C,)::

    B0: y = x / max(sqrt(var_batch(x) + eps), v1 * x + sqrt(var_instance(x) + eps)) * gamma + beta
    S0: y = x * sigmoid(v1 * x) / sqrt(var_group(x) + eps) * gamma + beta

``var_batch``: per channel over (N, spatial) (and devices with
``axis_name``); in evaluation the running ``batch_stats['var']``, updated as
``var = momentum * var + (1 - momentum) * var_batch``. ``var_instance``: per
example and channel over the spatial axes. ``var_group``: per example over
the spatial axes and the channels of each of ``num_groups`` groups, as in
group norm. All variances are biased. Like the paper's layers, these
replace norm + activation; normzoo models still apply their activation.

B0 needs spatial axes (its instance variance is over them) and refuses
(N, C) input; S0 works on (N, C) with groups of more than one channel.

Both have hand-written backward passes (``jax.custom_vjp``, closed forms in
``_b0_backward`` / ``_s0_backward``) in training mode without a mask; B0
takes both of its variances from one reduction pass. Evaluation-mode B0 and
masked calls use plain autodiff of the formulas above.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms import _checks
from normzoo.norms._checks import check_not_single_value, hashable_groups, output_dtype
from normzoo.norms.functional import resolve_num_groups
from normzoo.norms.normalize import StatSpec, cast_params_to_varying, varying_axes
from normzoo.norms.policy import current_policy
from normzoo.norms.stats import (combine_across_devices, group_sum, local_moments,
                                 moments_keepdims, stat_dtype, variance_method)
from normzoo.norms.variants._common import spatial_axes, update_running

Array = jax.Array

__all__ = ["evonorm_b0", "evonorm_s0"]


def evonorm_b0(x: Array, scale: Array | None, bias: Array | None, v1: Array, var: Array, *,
               use_running_average: bool = False, momentum: float = 0.99, epsilon: float = 1e-5,
               axis_name: Any = None, axis_index_groups: Any = None, mask: Array | None = None,
               use_fast_variance: bool = True, dtype: Any = None) -> tuple[Array, Array]:
  """EvoNorm-B0 of ``x`` (N, ..., C); returns ``(y, new_var)`` (``var`` unchanged in eval)."""
  axes = spatial_axes(x, "EvoNorm-B0")
  c = (x.shape[-1],)
  _checks.check_epsilon(epsilon)
  _checks.check_momentum(momentum)
  _checks.check_mask(mask, x.shape)
  for name, value in (("scale", scale), ("bias", bias), ("v1", v1), ("var", var)):
    _checks.check_feature_params(name, value, c)
  dtype_s = stat_dtype(x.dtype)
  groups = hashable_groups(axis_index_groups)
  out_dtype = output_dtype(dtype, x, scale, bias)
  if not use_running_average:
    _checks.check_axis_name(axis_name)
    check_not_single_value("EvoNorm-B0", x.shape, (0,) + axes, axis_name, mask)
  # Absent parameters are the identity (exact), so one output formula serves every call.
  scale = jnp.ones(c, dtype_s) if scale is None else scale
  bias = jnp.zeros(c, dtype_s) if bias is None else bias
  if not use_running_average and mask is None:
    scale, bias, v1 = cast_params_to_varying(x, scale, bias, v1)
    spec = StatSpec(axes, float(epsilon), axis_name, groups, bool(use_fast_variance), out_dtype,
                    typed=bool(varying_axes(x)))
    y, var_b = _evonorm_b0(x, scale, bias, v1, spec)
    return y, update_running(var, var_b.reshape(c), momentum)
  # Running variance (evaluation) or masked statistics: plain autodiff.
  if use_running_average:
    var_b, new_var = var.astype(dtype_s), var
  else:
    _, var_b, _ = moments_keepdims(x, (0,) + axes, axis_name=axis_name, axis_index_groups=groups,
                                   mask=mask, use_fast_variance=use_fast_variance)
    new_var = update_running(var, var_b.reshape(c), momentum)
  _, var_i, _ = moments_keepdims(x, axes, mask=mask, use_fast_variance=use_fast_variance)
  y = _b0_output(x, jnp.sqrt(var_b + epsilon), jnp.sqrt(var_i + epsilon), scale, bias, v1,
                 out_dtype)
  return y, new_var


def _b0_output(x: Array, sb: Array, si: Array, scale: Array, bias: Array, v1: Array,
               out_dtype: Any) -> Array:
  """``x / max(sb, v1 x + si) * scale + bias`` in ``sb``'s dtype, cast to ``out_dtype``."""
  xf = x.astype(sb.dtype)
  g, b, v = scale.astype(sb.dtype), bias.astype(sb.dtype), v1.astype(sb.dtype)
  return (xf / jnp.maximum(sb, v * xf + si) * g + b).astype(out_dtype)


def _b0_moments(x: Array, spec: StatSpec):
  """Instance and batch moments from one reduction pass over ``x``.

  The batch moments are the instance moments merged over the batch axis
  (and devices) with the exact pairwise update of
  :func:`normzoo.norms.stats.combine_across_devices`. Returns ``(mean_i,
  var_i, mean_b, var_b, count_b)``; ``_i`` are (N, 1.., C), ``_b`` (1, 1.., C).
  """
  count_i, mean_i, m2_i = local_moments(x, spec.axes, None, variance_method(spec.use_fast_variance))
  mean_b = jnp.mean(mean_i, axis=0, keepdims=True)
  m2_b = jnp.sum(m2_i + count_i * jnp.square(mean_i - mean_b), axis=0, keepdims=True)
  count_b = jnp.sum(count_i, axis=0, keepdims=True)
  if spec.axis_name is not None:
    count_b, mean_b, m2_b = combine_across_devices(count_b, mean_b, m2_b, spec.axis_name,
                                                   spec.axis_index_groups)
  return mean_i, m2_i / count_i, mean_b, m2_b / count_b, count_b


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _evonorm_b0(x: Array, scale: Array, bias: Array, v1: Array, spec: StatSpec):
  return _b0_forward(x, scale, bias, v1, spec)[0]


def _b0_forward(x, scale, bias, v1, spec: StatSpec):
  mean_i, var_i, mean_b, var_b, count_b = _b0_moments(x, spec)
  sb, si = jnp.sqrt(var_b + spec.epsilon), jnp.sqrt(var_i + spec.epsilon)
  y = _b0_output(x, sb, si, scale, bias, v1, spec.out_dtype)
  return (y, var_b), (x, scale, bias, v1, mean_i, si, mean_b, sb, count_b)


def _b0_backward(spec: StatSpec, residuals, cotangents):
  """Closed form of y = x / max(sb, v x + si) * g + b.

  With den = max(sb, v x + si), t = -dy g x / den^2 (the cotangent of den)
  split between the two sides as ``jnp.maximum`` does (all to the larger,
  half each on a tie), and n_i, n_b the elements behind each variance::

      dx = dy g / den + v t_i + (x - mean_i) A_i / n_i + (x - mean_b) A_b / n_b
      A_i = sum_spatial(t_i) / si,  A_b = sum_(batch, spatial, devices)(t_b) / sb + 2 dL/dvar_b
  """
  x, scale, bias, v1, mean_i, si, mean_b, sb, count_b = residuals
  dy, ct_var_b = cotangents
  dtype = sb.dtype
  xf, dyf = x.astype(dtype), dy.astype(dtype)
  g, v = scale.astype(dtype), v1.astype(dtype)
  u = v * xf + si
  den = jnp.maximum(sb, u)
  to_b = jnp.where(sb > u, 1.0, jnp.where(sb == u, 0.5, 0.0))
  t = -dyf * g * xf / jnp.square(den)
  t_i, t_b = t * (1.0 - to_b), t * to_b
  # Per (example, channel) sums first (one layout for every reduction), then over the batch.
  a_i = jnp.sum(t_i, axis=spec.axes, keepdims=True) / si
  a_b = jnp.sum(jnp.sum(t_b, axis=spec.axes, keepdims=True), axis=0, keepdims=True) / sb
  if spec.axis_name is not None:
    # The batch variance pools every device's examples; its cotangent is summed
    # over devices too (see normalize._backward for the typed case).
    parts = [a_b] + ([] if spec.typed else [ct_var_b])
    summed = lax.psum(jnp.stack(parts), spec.axis_name, axis_index_groups=spec.axis_index_groups)
    a_b = summed[0]
    if not spec.typed:
      ct_var_b = summed[1]
  a_b = a_b + 2.0 * ct_var_b
  n_i = math.prod(x.shape[a] for a in spec.axes)
  dx = (dyf * g / den + v * t_i + (xf - mean_i) * (a_i / n_i)
        + (xf - mean_b) * (a_b / count_b))
  batch_axes = (0,) + spec.axes
  dscale = jnp.sum(dyf * xf / den, axis=batch_axes)
  dbias = jnp.sum(dyf, axis=batch_axes)
  dv1 = jnp.sum(t_i * xf, axis=batch_axes)
  return (dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(bias.dtype),
          dv1.astype(v1.dtype))


_evonorm_b0.defvjp(_b0_forward, _b0_backward)


def evonorm_s0(x: Array, scale: Array | None, bias: Array | None, v1: Array, *,
               num_groups: int | None = 32, group_size: int | None = None, epsilon: float = 1e-5,
               mask: Array | None = None, use_fast_variance: bool = True, dtype: Any = None
               ) -> Array:
  """EvoNorm-S0 of ``x`` (N, ..., C); per-example, parameters (C,)."""
  if x.ndim < 2:
    raise ValueError(f"EvoNorm-S0 needs an input of shape (N, ..., C); got {tuple(x.shape)}")
  c = x.shape[-1]
  groups = resolve_num_groups(c, num_groups, group_size)
  axes = tuple(range(1, x.ndim - 1))
  if not axes and c // groups == 1:
    raise ValueError(f"EvoNorm-S0 on (N, C) input of shape {tuple(x.shape)} with groups of one "
                     f"channel takes each variance over a single value; use fewer groups")
  _checks.check_epsilon(epsilon)
  _checks.check_mask(mask, x.shape)
  for name, value in (("scale", scale), ("bias", bias), ("v1", v1)):
    _checks.check_feature_params(name, value, (c,))
  out_dtype = output_dtype(dtype, x, scale, bias)
  dtype_s = stat_dtype(x.dtype)
  # Absent parameters are the identity (exact), so one formula serves all calls.
  scale = jnp.ones((c,), dtype_s) if scale is None else scale
  bias = jnp.zeros((c,), dtype_s) if bias is None else bias
  spec = _S0Spec(axes, groups, float(epsilon), bool(use_fast_variance), out_dtype,
                 current_policy().group_sum_method(c))
  if mask is None:
    scale, bias, v1 = cast_params_to_varying(x, scale, bias, v1)
    return _evonorm_s0(x, scale, bias, v1, spec)
  # Masked statistics: plain autodiff through them.
  _, var_g, _ = moments_keepdims(x, axes, mask=mask, use_fast_variance=use_fast_variance,
                                 channel_groups=groups)
  return _s0_output(x, lax.rsqrt(var_g + epsilon), scale, bias, v1, out_dtype)


def _s0_output(x: Array, r: Array, scale: Array, bias: Array, v1: Array, out_dtype: Any
               ) -> Array:
  """``x * sigmoid(v1 x) * r * scale + bias`` in ``r``'s dtype, cast to ``out_dtype``."""
  xf = x.astype(r.dtype)
  v, g, b = v1.astype(r.dtype), scale.astype(r.dtype), bias.astype(r.dtype)
  return (xf * jax.nn.sigmoid(v * xf) * (r * g) + b).astype(out_dtype)


class _S0Spec(NamedTuple):
  axes: tuple[int, ...]
  groups: int
  epsilon: float
  use_fast_variance: bool
  out_dtype: Any
  # The backend policy's group-sum form when traced, so the backward (traced
  # later, maybe outside a backend_policy block) sums the way the forward did.
  group_method: str


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _evonorm_s0(x: Array, scale: Array, bias: Array, v1: Array, spec: _S0Spec) -> Array:
  return _s0_forward(x, scale, bias, v1, spec)[0]


def _s0_forward(x, scale, bias, v1, spec: _S0Spec):
  mean, var, _ = moments_keepdims(x, spec.axes, use_fast_variance=spec.use_fast_variance,
                                  channel_groups=spec.groups, group_method=spec.group_method)
  r = lax.rsqrt(var + spec.epsilon)
  return _s0_output(x, r, scale, bias, v1, spec.out_dtype), (x, scale, bias, v1, mean, r)


def _s0_backward(spec: _S0Spec, residuals, dy):
  """Closed form of y = x * sigmoid(v x) * r * scale + bias, r = (var_group + eps)^-1/2.

  With s = sigmoid(v x), gs = dy * scale and A = sum over each group's
  elements of gs * x * s (the cotangent of r, up to r^3 / 2)::

      dx = gs * r * s * (1 + v x (1 - s)) - (x - mean) * r^3 * A / n_group
  """
  x, scale, bias, v1, mean, r = residuals
  dtype = r.dtype
  xf, dyf = x.astype(dtype), dy.astype(dtype)
  v, g = v1.astype(dtype), scale.astype(dtype)
  sig = jax.nn.sigmoid(v * xf)
  batch_axes = (0,) + spec.axes
  # Per-(example, channel) sums, then per group: the same layout as group norm.
  a = group_sum(jnp.sum(dyf * xf * sig, axis=spec.axes, keepdims=True) * g, spec.groups,
                spec.group_method)
  n = math.prod(x.shape[i] for i in spec.axes) * (x.shape[-1] // spec.groups)
  dx = (dyf * g * r * sig * (1.0 + v * xf * (1.0 - sig))
        - (xf - mean) * (jnp.square(r) * r) * a / n)
  dscale = jnp.sum(dyf * xf * sig * r, axis=batch_axes)
  dbias = jnp.sum(dyf, axis=batch_axes)
  dv1 = jnp.sum(dyf * g * r * jnp.square(xf) * sig * (1.0 - sig), axis=batch_axes)
  return (dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(bias.dtype),
          dv1.astype(v1.dtype))


_evonorm_s0.defvjp(_s0_forward, _s0_backward)
