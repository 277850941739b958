"""Root-mean-square layer normalization (Zhang & Sennrich, "Root Mean Square Layer
Normalization", NeurIPS 2019).

``y = x / sqrt(mean(x^2) + epsilon) * scale`` with the mean over
``reduction_axes`` per example (no centring, no bias); a drop-in for
``flax.linen.RMSNorm`` (same fields, defaults and variable ``scale``).

Overflow. ``x^2`` overflows float32 once ``|x| > 1.8e19`` (and bf16 input is
up-cast first, so it would overflow there too). We divide ``x`` by
``2^k >= max|x|`` first (``k >= 0``, so small inputs are untouched) and add
``epsilon * 2^-2k``: the function is identical, the power-of-two scaling is
exact, and the squares stay <= 1 (k stops where 2^-k is the smallest normal
number, 2^-126 in float32 or 2^-1022 in float64, so they stay < 16 beyond
that). That costs a pass over ``x`` for the maximum, so without
``axis_name`` the sum of squares is tried first, and only rows where it is
not finite use scaled statistics, taken one of two ways (the backend
policy's ``rms_overflow_guard``, :mod:`normzoo.norms.policy`): on CPU a
``lax.cond`` computes the maximum and the scaled sum only when needed;
elsewhere a sum of ``(x * c)^2`` (``c`` a fixed power of two, 2^-80 in
float32, for which neither overflow nor underflow can matter) is taken
beside the plain one, and a select picks per row.

Backward (without ``axis_name``), with ``x_hat = x / rms``, ``g = dy * scale``,
``m`` the mask and ``N`` the valid count per row::

    dx = (g - m * x_hat * sum(g * x_hat) / N) / rms,   dscale = sum(dy * x_hat)

written by hand (``jax.custom_vjp``): one reduction and one elementwise pass,
saving only ``x`` and one per-row factor ``t``: ``1 / rms``, or after an
overflow ``8 / rms`` with the 8 taken off in ``scale / 8`` (``1 / rms``
alone is subnormal, and flushes to zero, once the RMS exceeds 2^126).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms import _checks
from normzoo.norms._checks import broadcast_param, hashable_groups, output_dtype
from normzoo.norms.normalize import cast_params_to_varying, fusion_barrier, param_axes
from normzoo.norms.policy import current_policy
from normzoo.norms.stats import stat_dtype

Array = jax.Array

__all__ = ["rms_norm"]


def _sum_of_squares(x: Array, mask: Array | None, axes: tuple[int, ...]) -> Array:
  """``sum(m * x^2)`` over ``axes``, the reduced axes kept as size 1."""
  sq = jnp.square(x) if mask is None else jnp.where(mask, jnp.square(x), 0.0)
  return jnp.sum(sq, axis=axes, keepdims=True)


def scaled_inverse_rms(x: Array, axes: tuple[int, ...], epsilon: float | Array, *,
                       mask: Array | None = None, axis_name: Any = None,
                       axis_index_groups: Any = None) -> tuple[Array, Array]:
  """``(s, inv)`` with ``x * s * inv == x / sqrt(mean(x^2) + epsilon)``, overflow-free.

  ``s`` is an exact power of two in ``[2^-126, 1]`` (``[2^-1022, 1]`` for
  float64: the smallest normal number) with ``max|x * s| <= 1`` (``< 4`` for
  ``max|x| >= 2^126``, resp. ``2^1022``, where a smaller ``s`` would be
  subnormal and flush to zero); both keep
  the reduced axes as size 1 and are float32 (float64 for float64 input).
  With ``axis_name`` the mean also runs over devices (count-weighted: one
  ``pmax`` for the scaling and one ``psum``).
  """
  xf = x.astype(stat_dtype(x.dtype))
  valid = None if mask is None else jnp.broadcast_to(jnp.asarray(mask, bool), x.shape)
  mag = jnp.abs(xf) if valid is None else jnp.where(valid, jnp.abs(xf), 0.0)
  amax = lax.stop_gradient(jnp.max(mag, axis=axes, keepdims=True))
  groups = hashable_groups(axis_index_groups)
  if axis_name is not None:
    amax = lax.pmax(amax, axis_name, axis_index_groups=groups)
  _, exponent = jnp.frexp(amax)  # amax < 2^exponent
  # s is at least the smallest normal number (2^-126 in float32, 2^-1022 in
  # float64): smaller ones are subnormal, flushed to zero on CPU and GPU
  # (NaN output for amax >= 2^126 in float32). |x * s| < 4 then, and the
  # squares still cannot overflow.
  s = jnp.ldexp(jnp.ones_like(amax), -jnp.clip(exponent, 0, -jnp.finfo(xf.dtype).minexp))
  xs = xf * s
  total = _sum_of_squares(xs, valid, axes)
  if valid is None:
    count = jnp.full(total.shape, math.prod(x.shape[a] for a in axes), xf.dtype)
  else:
    count = jnp.sum(valid.astype(xf.dtype), axis=axes, keepdims=True)
  if axis_name is not None:
    total, count = lax.psum(jnp.stack([total, count]), axis_name, axis_index_groups=groups)
  mean_square = total / jnp.maximum(count, 1.0)
  return s, lax.rsqrt(mean_square + epsilon * jnp.square(s))


class _RMSSpec(NamedTuple):
  axes: tuple[int, ...]
  epsilon: float
  out_dtype: Any
  # From the backend policy when rms_norm is traced: "cond" or "select"
  # (module docstring), and the backward's fusion barrier.
  guard: str
  barrier: bool


def _fixed_overflow_scale(dtype: Any) -> float:
  """``c = 2^-k`` with ``k = 5/8 maxexp``: 2^-80 for float32, 2^-640 for float64.

  With ``M = 2^maxexp`` (finite values are below ``M``) and ``n`` elements
  a row, ``n < 2^(maxexp/4)`` (2^32 in float32):

  * no overflow: each ``(x c)^2 < M^(3/4)``, so their sum is below ``M``;
  * no harmful underflow: in a row whose plain sum overflowed, some
    ``x^2 >= M / n``, so the scaled sum is at least ``M^(-1/4) / n``; the
    squares flushed to zero are each below the smallest normal number
    ``~M^-1``, together below ``n / M``, a relative error below
    ``n^2 M^(-3/4)`` (under 2^-30 in float32).
  """
  return 2.0 ** -(jnp.finfo(dtype).maxexp * 5 // 8)


def _valid_count(shape: tuple[int, ...], mask: Array | None, axes: tuple[int, ...],
                 dtype: Any) -> Array | int:
  """Valid elements per row (at least 1): a constant without a mask."""
  if mask is None:
    return math.prod(shape[a] for a in axes)
  return jnp.maximum(jnp.sum(mask.astype(dtype), axis=axes, keepdims=True), 1.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _rms_normalize(x: Array, scale: Array | None, mask: Array | None, spec: _RMSSpec) -> Array:
  return _rms_forward(x, scale, mask, spec)[0]


# The per-row factor applied to x is t = lift * s / rms (s: the power of two
# from scaled_inverse_rms), and lift comes off again in the per-channel
# factor scale / lift. One factor instead of s and 1 / rms separately saves
# two multiplies per element in fusions that XLA:CPU runs compute-bound. Only
# the overflow branch needs lift = 8: there 1 / rms is subnormal, so flushed
# to zero, for rows whose RMS exceeds 2^126, while 8 s / rms >= 2^-125 for
# every finite input. The common branch has s = lift = 1, so its backward
# forms flax.linen's dy * scale. Its forward rounds x / rms before the
# scale: an entry below 2^-126 times its row's RMS comes out as 0 whatever
# the scale (flax.linen's x * (scale / rms) keeps it when |scale| > 1).
_OVERFLOW_LIFT = 8.0


def _rms_forward(x, scale, mask, spec: _RMSSpec):
  xf = x.astype(stat_dtype(x.dtype))
  total = _sum_of_squares(xf, mask, spec.axes)

  def fast():
    mean_square = total / _valid_count(x.shape, mask, spec.axes, xf.dtype)
    return (jnp.ones_like(total), lax.rsqrt(mean_square + spec.epsilon),
            jnp.ones((), xf.dtype))

  def scaled():
    s, inv = scaled_inverse_rms(x, spec.axes, spec.epsilon, mask=mask)
    return s, inv, jnp.asarray(_OVERFLOW_LIFT, xf.dtype)

  if spec.guard == "cond":
    # Only the small per-row factors come out of the conditional: y itself
    # is computed outside it, where XLA fuses it with its consumers.
    s, inv, lift = lax.cond(jnp.all(jnp.isfinite(total)), fast, scaled)
  else:
    s, inv, lift = _selected_factors(xf, total, mask, spec)
  t = (s * lift) * inv
  unlift = 1.0 / lift  # exact: a power of two
  if x.dtype != xf.dtype:
    # A second convert (CSE would merge a plain one): with one convert shared
    # by the sum and the output, XLA:CPU materializes a float32 copy of x;
    # the barrier is gone after CSE.
    xf = lax.optimization_barrier(x).astype(xf.dtype)
  y = ((xf * t) * _scale_over_lift(scale, unlift)).astype(spec.out_dtype)
  return y, (x, scale, mask, t, unlift)


def _selected_factors(xf: Array, total: Array, mask: Array | None, spec: _RMSSpec):
  """``(s, inv, lift)`` as the conditional's branches give them, chosen per row by a select.

  Rows with a finite sum keep ``s = 1``; the others use the fixed power of
  two. ``lift`` is one scalar for the call, as in the conditional form.
  """
  c = _fixed_overflow_scale(xf.dtype)
  scaled_total = _sum_of_squares(xf * c, mask, spec.axes)
  finite = jnp.isfinite(total)
  s = jnp.where(finite, 1.0, c).astype(xf.dtype)
  mean_square = (jnp.where(finite, total, scaled_total)
                 / _valid_count(xf.shape, mask, spec.axes, xf.dtype))
  lift = jnp.where(jnp.all(finite), 1.0, _OVERFLOW_LIFT).astype(xf.dtype)
  return s, lax.rsqrt(mean_square + spec.epsilon * jnp.square(s)), lift


def _scale_over_lift(scale: Array | None, unlift: Array) -> Array:
  """``scale * unlift`` per channel, or ``unlift`` alone without a scale."""
  return unlift if scale is None else scale.astype(unlift.dtype) * unlift


def _rms_backward(spec: _RMSSpec, residuals, gy):
  x, scale, mask, t, unlift = residuals
  # The backward's own copies of the small factors: sharing their broadcasts
  # (and x * t) with the forward's output, XLA:CPU wrote full-size arrays
  # out for this fusion when y and dx were both needed.
  scale, t, unlift = fusion_barrier((scale, t, unlift), spec.barrier)
  xf = x.astype(t.dtype)
  gyf = gy.astype(t.dtype)
  count = _valid_count(x.shape, mask, spec.axes, t.dtype)
  # With x_hat = x / rms, g = dy * scale and L = lift: x_lift = L * x_hat and
  # g_low = g / L, so dx = (g - x_hat * sum(g * x_hat) / N) / rms
  #                      = (g_low - x_lift * sum(g_low * x_lift) / (L^2 N)) * t.
  x_lift = xf * t
  g_low = gyf * _scale_over_lift(scale, unlift)
  c = jnp.sum(g_low * x_lift, axis=spec.axes, keepdims=True) * (unlift * unlift) / count
  correction = x_lift * c if mask is None else jnp.where(mask, x_lift * c, 0.0)
  dx = ((g_low - correction) * t).astype(x.dtype)
  dscale = None
  if scale is not None:
    dscale = (jnp.sum(gyf * x_lift, axis=param_axes(scale, x), keepdims=True)
              * unlift).astype(scale.dtype)
  return dx, dscale, None


_rms_normalize.defvjp(_rms_forward, _rms_backward)
# Eager calls: the custom VJP (with the CPU guard's lax.cond) would be
# traced and compiled anew on every call (0.35 s each); jitted it compiles
# once per shape and guard. Inlined inside an outer jit.
_rms_normalize_jit = jax.jit(_rms_normalize, static_argnums=(3,))


def rms_norm(x: Array, scale: Array | None = None, *, reduction_axes: Any = -1,
             feature_axes: Any = -1, epsilon: float = 1e-6, axis_name: Any = None,
             axis_index_groups: Any = None, mask: Array | None = None, dtype: Any = None) -> Array:
  """RMS normalization of ``x`` over ``reduction_axes``; ``scale`` has the ``feature_axes`` shape.

  ``x`` of any shape -> same shape; output dtype ``dtype`` or the promotion
  of ``x`` and ``scale``.
  """
  _checks.check_floating("x", x)
  axes = _checks.canonical_axes(reduction_axes, x.ndim, "reduction_axes", x.shape)
  features = _checks.canonical_axes(feature_axes, x.ndim, "feature_axes", x.shape)
  _checks.check_epsilon(epsilon)
  _checks.check_mask(mask, x.shape)
  _checks.check_axis_name(axis_name)
  _checks.check_feature_params("scale", scale, tuple(x.shape[a] for a in features))
  scale_b = broadcast_param(scale, x.ndim, features)
  out_dtype = output_dtype(dtype, x, scale)
  if axis_name is None:
    # Per-device statistics only: the guard's lax.cond (CPU) must not split
    # devices between branches that run collectives. With axis_name the
    # scaled statistics (one pmax, one psum) are always taken.
    valid = None if mask is None else jnp.broadcast_to(jnp.asarray(mask, bool), x.shape)
    (scale_b,) = cast_params_to_varying(x, scale_b)
    policy = current_policy()
    spec = _RMSSpec(axes, float(epsilon), out_dtype, policy.rms_overflow_guard,
                    policy.rms_fusion_barrier)
    return _rms_normalize_jit(x, scale_b, valid, spec)
  s, inv = scaled_inverse_rms(x, axes, epsilon, mask=mask, axis_name=axis_name,
                              axis_index_groups=axis_index_groups)
  a = inv if scale_b is None else inv * scale_b.astype(inv.dtype)
  return ((x.astype(inv.dtype) * s) * a).astype(out_dtype)
