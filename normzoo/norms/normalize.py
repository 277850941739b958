"""The shared kernel of every normalizer: standardize, then scale and shift.

``y = (x - mean) * scale / sqrt(var + epsilon) + bias`` where ``mean`` and
``var`` are either computed from ``x`` itself (batch statistics, with a
hand-written backward) or given (running statistics, plain autodiff).

All arrays here are already laid out for broadcasting: ``scale`` and ``bias``
have ``x.ndim`` dimensions, 1 where they do not vary. The public functions in
:mod:`normzoo.norms.functional` do that reshaping.

Backward of the batch-statistics path, with ``x_hat = (x - mean) * inv``,
``g = dL/dx_hat = dL/dy * scale``, ``m`` the mask and ``N`` the valid count
(global across devices), sums running over every element of the statistic's
slice on every device::

    dL/dx = inv * (g - m * sum(g) / N - m * x_hat * sum(g * x_hat) / N)
            + m * (dL/dmean + 2 * dL/dvar * (x - mean)) / N

It needs one pass to reduce ``sum(g)`` and ``sum(g * x_hat)`` (for batch
norm these are exactly the bias and scale gradients times ``scale``), one
``psum`` of those per-channel sums when ``axis_name`` is set, and one
elementwise pass; only ``x``, ``mean`` and ``1/std`` are saved from the
forward.

Inside the batch-statistics path the statistics stay in their reduced shape
(``x.shape`` without the reduced axes) and are broadcast only where they
meet full-size arrays (:func:`normzoo.norms.stats.expand`). With the size-1
axes kept instead, XLA:CPU may lay the small arrays out in an order its
YNNPACK fusions refuse, and the reductions stop fusing with their consumers.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms import stats
from normzoo.norms.policy import BackendPolicy, current_policy

Array = jax.Array


class StatSpec(NamedTuple):
  """Static (hashable) description of one batch-statistics normalization."""
  axes: tuple[int, ...]
  epsilon: float
  axis_name: Any
  axis_index_groups: Any
  use_fast_variance: bool
  out_dtype: Any
  channel_groups: int | None = None  # group norm: also pool channels within groups
  typed: bool = False  # inside shard_map with varying/invariant typing (check_vma)
  # The backend policy when the forward was traced (normalize_with_batch_stats
  # fills it in), so that the backward, traced later, makes the same choices.
  policy: BackendPolicy | None = None


class Normalized(NamedTuple):
  """A normalizer's output ``y`` and the batch :class:`~normzoo.norms.stats.Moments` it used."""
  y: Array
  batch: stats.Moments


def _affine(xf: Array, mean: Array, inv: Array, scale: Array | None, bias: Array | None,
            out_dtype: Any) -> Array:
  """``(x - mean) * inv * scale + bias`` as one multiply-add per element.

  Folding everything into ``x * a + b`` keeps the full-size work to two
  flops and, on CPU, keeps ``x - mean`` out of the output's fusion, so the
  variance reduction is the only reader of that expression and XLA fuses it
  rather than writing it out. For ``|mean| >> std`` the rounding of ``x * a``
  adds an error of order ``eps * |mean| / std``, the same order as the
  quantization already present in a float32 ``x`` of that magnitude.
  """
  a = inv if scale is None else inv * scale.astype(inv.dtype)
  b = -mean * a
  if bias is not None:
    b = b + bias.astype(inv.dtype)
  return (xf * a + b).astype(out_dtype)


def normalize_with_stats(x: Array, mean: Array, var: Array, scale: Array | None,
                         bias: Array | None, epsilon: float, out_dtype: Any) -> Array:
  """Normalizes with given (e.g. running) statistics; differentiable in all inputs."""
  dtype = stats.stat_dtype(x.dtype)
  inv = lax.rsqrt(var.astype(dtype) + epsilon)
  return _affine(x.astype(dtype), mean.astype(dtype), inv, scale, bias, out_dtype)


def varying_axes(x: Array) -> frozenset:
  """Mesh axes along which ``x`` differs per device (shard_map's ``check_vma`` typing)."""
  aval = jax.typeof(x)
  mat = getattr(aval, "mat", None)  # jax >= 0.9 spells it aval.mat.varying
  if mat is not None:
    return frozenset(getattr(mat, "varying", ()))
  return frozenset(getattr(aval, "vma", ()))


def normalize_with_batch_stats(x: Array, scale: Array | None, bias: Array | None,
                               mask: Array | None, spec: StatSpec) -> Normalized:
  """Normalizes ``x`` with its own statistics over ``spec.axes``.

  Returns:
    ``Normalized(y, batch)``; the batch moments keep the reduced axes as
    size 1, and ``batch.count`` is the number of valid elements behind each.
  """
  scale, bias = cast_params_to_varying(x, scale, bias)
  spec = spec._replace(typed=bool(varying_axes(x)), policy=spec.policy or current_policy())
  y, mean, var, count = _normalize_with_batch_stats(x, scale, bias, mask, spec)
  return Normalized(y, stats.Moments(mean, var, count))


def cast_params_to_varying(x: Array, *params: Array | None) -> tuple[Array | None, ...]:
  """``params`` cast to vary over the mesh axes ``x`` varies over (shard_map's ``check_vma``).

  Under shard_map, parameters replicated across devices meet per-device
  activations in a custom VJP, whose backward must return cotangents typed
  like its inputs. Casting the parameters to varying first lets JAX's own
  transpose of that cast sum their gradients over devices, exactly as it
  does for any other replicated parameter. Outside shard_map: unchanged.
  """
  varying = varying_axes(x)
  if not varying:
    return params

  def to_varying(p):
    missing = tuple(varying - varying_axes(p)) if p is not None else ()
    return lax.pcast(p, missing, to="varying") if missing else p
  return tuple(to_varying(p) for p in params)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _normalize_with_batch_stats(x, scale, bias, mask, spec: StatSpec):
  # Called only when nothing differentiates it, so no residuals are kept:
  # the forward may then pick the form that fuses best on its own.
  out, _ = _forward(x, scale, bias, mask, spec, primal_only=True)
  return out


def _in_stat_space(params, axes) -> bool:
  """True if no parameter varies along a reduced axis (batch, instance, group norm)."""
  return all(p is None or all(p.shape[a] == 1 for a in axes) for p in params)


def _reduced_param(p: Array | None, axes: tuple[int, ...], dtype) -> Array | None:
  """A parameter constant over ``axes`` in the statistics' reduced shape."""
  return None if p is None else jnp.squeeze(p, axes).astype(dtype)


# Where the one-pass forward pays on XLA:CPU: each statistic's slice fits a
# core's L2 cache, there are enough statistics for YNNPACK to take their
# arithmetic into the fusion, and the array is large enough to amortize the
# fusion's fixed cost; narrower inputs (bf16, fp16) at any size, since the
# checked form's two reductions share one up-cast that XLA materializes.
# The thresholds and their measurements: benchmarks/RESULTS.md.
_ONE_PASS_MAX_SLICE_BYTES = 512 * 1024
_ONE_PASS_MIN_STATISTICS = 4096
_ONE_PASS_MIN_BYTES = 16 * 1024 * 1024


def _fuses_in_one_pass(x, mask, spec: StatSpec) -> bool:
  """Whether to compute an undifferentiated forward as one fused pass over ``x``.

  Per-example statistics (instance norm, layer norm): the mean, the centred
  sum of squares and the output can become a single fusion that reads each
  statistic's data from memory once, exact for any mean and without the
  checked pass's conditional. Only without residuals: when the backward
  also needs ``x - mean``, that fusion breaks. Allowed by the backend
  policy's ``one_pass_forward``.
  """
  policy = spec.policy or current_policy()
  if not (policy.one_pass_forward and spec.use_fast_variance and mask is None
          and spec.axis_name is None and spec.channel_groups is None and 0 not in spec.axes):
    return False
  itemsize = 4
  statistics = math.prod(d for a, d in enumerate(x.shape) if a not in spec.axes)
  narrow = jnp.dtype(x.dtype).itemsize < itemsize
  return (math.prod(x.shape[min(spec.axes):]) * itemsize <= _ONE_PASS_MAX_SLICE_BYTES
          and statistics >= _ONE_PASS_MIN_STATISTICS
          and (narrow or x.size * itemsize >= _ONE_PASS_MIN_BYTES))


def _forward(x, scale, bias, mask, spec: StatSpec, primal_only: bool = False):
  axes = spec.axes
  policy = spec.policy or current_policy()
  one_pass = primal_only and _fuses_in_one_pass(x, mask, spec)
  method = ("fused_two_pass" if one_pass else
            policy.variance if spec.use_fast_variance else "two_pass")
  mean, var, count = stats.reduced_moments_across(
      x, axes, axis_name=spec.axis_name, axis_index_groups=spec.axis_index_groups,
      mask=mask, use_fast_variance=spec.use_fast_variance, channel_groups=spec.channel_groups,
      method=method, group_method=policy.group_sum_method(x.shape[-1]))
  inv = lax.rsqrt(var + spec.epsilon)
  xf = x.astype(mean.dtype)
  full = lambda v: stats.expand(v, x.shape, axes)
  if one_pass and _in_stat_space((scale, bias), axes):
    # The centred form, so that the output reads x through the variance
    # pass's own expression and joins its fusion.
    a = inv if scale is None else inv * _reduced_param(scale, axes, inv.dtype)
    y = (xf - full(mean)) * full(a)
    if bias is not None:
      y = y + bias.astype(inv.dtype)
  elif _in_stat_space((scale, bias), axes):
    # One multiply-add per element, with everything per statistic folded in
    # (see _affine).
    a = inv if scale is None else inv * _reduced_param(scale, axes, inv.dtype)
    b = -mean * a
    if bias is not None:
      b = b + _reduced_param(bias, axes, inv.dtype)
    y = xf * full(a) + full(b)
  else:
    # Parameters that vary along a reduced axis (layer norm) are full-size
    # factors anyway; centring first keeps the variance pass and this one
    # reading x through the same expression.
    y = (xf - full(mean)) * full(inv)
    if scale is not None:
      y = y * scale.astype(inv.dtype)
    if bias is not None:
      y = y + bias.astype(inv.dtype)
  keep = tuple(1 if a in axes else d for a, d in enumerate(x.shape))
  out = (y.astype(spec.out_dtype), mean.reshape(keep), var.reshape(keep), count.reshape(keep))
  return out, (x, scale, bias, mask, mean, inv, count)


def param_axes(param: Array, x: Array) -> tuple[int, ...]:
  """Axes along which ``param`` (broadcast to ``x.ndim``) is constant and ``x`` is not."""
  return tuple(a for a in range(x.ndim) if param.shape[a] == 1 and x.shape[a] != 1)


def fusion_barrier(values, enabled: bool):
  """``lax.optimization_barrier(values)`` if ``enabled`` (the backend policy's choice).

  On XLA:CPU the barriers keep passes fused that CSE would otherwise merge
  into shared, written-out arrays; on XLA:GPU they cost a pass, since there
  the forward's output and the backward's reductions, which both read
  ``x``, fuse into one kernel only without them.
  """
  return lax.optimization_barrier(values) if enabled else values


def _backward(spec: StatSpec, residuals, cotangents):
  x, scale, bias, mask, mean, inv, count = residuals
  gy, ct_mean, ct_var, _ = cotangents
  axes = spec.axes
  dtype = mean.dtype
  reduced = mean.shape
  ct_mean, ct_var = ct_mean.reshape(reduced), ct_var.reshape(reduced)
  # The barrier keeps XLA's CSE from merging this pass's (x - mean), and the
  # broadcasts of inv and scale, with the forward's into shared arrays,
  # which would be written out in full instead of being fused into each
  # pass (it moves no data). Without inv and scale in it, XLA:CPU wrote
  # full-size broadcasts out for the backward's fusion when the output and
  # a cotangent from memory were both live.
  policy = spec.policy or current_policy()
  x, mean, inv, scale = fusion_barrier((x, mean, inv, scale), policy.fusion_barrier)
  full = lambda v: stats.expand(v, x.shape, axes)
  xf = x.astype(dtype)
  gyf = gy.astype(dtype)
  groups = spec.channel_groups
  xc = xf - full(mean)
  dscale = dbias = None
  if _in_stat_space((scale, bias), axes):
    # Two full-size reductions give the statistic sums and, summed further
    # over the kept axes along which a parameter is constant, its gradient.
    sum_gy = jnp.sum(gyf, axis=axes)
    sum_gy_xc = jnp.sum(gyf * xc, axis=axes)
    # Without the barrier XLA rewrites the parameter gradients' second sum
    # as a full-size reduction of its own, another pass over gy.
    sum_gy, sum_gy_xc = fusion_barrier((sum_gy, sum_gy_xc), policy.fusion_barrier)
    kept = stats.kept_axes(x.ndim, axes)
    if scale is not None:
      over = tuple(i for i, a in enumerate(kept) if scale.shape[a] == 1)
      dscale = jnp.sum(sum_gy_xc * inv, axis=over).reshape(scale.shape).astype(scale.dtype)
      scale_r = _reduced_param(scale, axes, dtype)
      sum_g, sum_g_xc, p = sum_gy * scale_r, sum_gy_xc * scale_r, inv * scale_r
    else:
      sum_g, sum_g_xc, p = sum_gy, sum_gy_xc, inv
    if bias is not None:
      over = tuple(i for i, a in enumerate(kept) if bias.shape[a] == 1)
      dbias = jnp.sum(sum_gy, axis=over).reshape(bias.shape).astype(bias.dtype)
    g_inv = gyf * full(p)
  else:
    # Reduce first over the statistic axes along which scale and bias are
    # constant (for a layer norm over (H, W, C) with (C,) parameters: H and
    # W), then finish over the rest.
    constant = tuple(a for a in axes if all(q is None or q.shape[a] == 1 for q in (scale, bias)))
    varying = tuple(a for a in axes if a not in constant)
    part_gy = jnp.sum(gyf, axis=constant, keepdims=True)
    part_gy_xc = jnp.sum(gyf * xc, axis=constant, keepdims=True)
    part_shape = part_gy.shape
    scale_f = None if scale is None else scale.astype(dtype)
    part_g = part_gy if scale is None else part_gy * scale_f
    part_g_xc = part_gy_xc if scale is None else part_gy_xc * scale_f
    sum_g = jnp.sum(part_g, axis=varying).reshape(reduced)
    sum_g_xc = jnp.sum(part_g_xc, axis=varying).reshape(reduced)
    if scale is not None:
      inv_part = stats.expand(inv, part_shape, axes)
      dscale = jnp.sum(part_gy_xc * inv_part, axis=param_axes(scale, part_gy_xc),
                       keepdims=True).astype(scale.dtype)
    if bias is not None:
      dbias = jnp.sum(part_gy, axis=param_axes(bias, part_gy), keepdims=True).astype(bias.dtype)
    g_inv = gyf * full(inv) if scale is None else gyf * scale_f * full(inv)
  group_method = policy.group_sum_method(x.shape[-1])
  sum_g = stats.group_sum(sum_g, groups, group_method)
  sum_g_xhat = stats.group_sum(sum_g_xc, groups, group_method) * inv

  if spec.axis_name is not None:
    # The outputs on every device depend on every device's inputs through the
    # shared statistics: one psum of the per-statistic sums makes this exact.
    # The statistics' own cotangents need the same sum, except under typed
    # shard_map, where they are replicated values whose cotangents JAX has
    # already summed.
    parts = [sum_g, sum_g_xhat] + ([] if spec.typed else [ct_mean, ct_var])
    summed = lax.psum(jnp.stack(parts), spec.axis_name, axis_index_groups=spec.axis_index_groups)
    sum_g, sum_g_xhat = summed[0], summed[1]
    if not spec.typed:
      ct_mean, ct_var = summed[2], summed[3]

  # dx = inv * (g - sum_g / N - x_hat * sum_g_xhat / N)
  #      + (dL/dmean + 2 dL/dvar (x - mean)) / N
  inv_n = 1.0 / jnp.maximum(count, 1.0)
  q = -jnp.square(inv) * sum_g_xhat * inv_n + 2.0 * ct_var * inv_n
  r = -inv * sum_g * inv_n + ct_mean * inv_n
  # Regrouped as g * p + x * q + r' (x, not x - mean): on XLA:CPU the
  # centred form fuses worse with the reductions above.
  dx = g_inv + xf * full(q) + full(r - mean * q)
  if mask is not None:
    dx = jnp.where(jnp.asarray(mask, bool), dx, g_inv)
  return dx.astype(x.dtype), dscale, dbias, None


_normalize_with_batch_stats.defvjp(_forward, _backward)
