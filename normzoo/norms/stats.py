"""Mean and variance over chosen axes, locally or across devices.

The statistics are computed in float32 (float64 for float64 input) whatever
the input dtype. Where one reduction reads a bf16 input, the up-cast happens
inside it; the checked method's two sibling reductions share one up-cast,
which XLA:CPU materializes as a float32 copy (as it does for flax.linen's
layers), so undifferentiated bf16 forwards use the fused one-pass form where
they can (see ``normalize._fuses_in_one_pass``).

Precision. ``E[x^2] - E[x]^2`` loses every significant digit once
``|mean| >> std`` (1e4 + N(0, 1) in float32 gives garbage). Four accurate
methods (the backend policy picks which of the first three
``use_fast_variance=True`` means, :mod:`normzoo.norms.policy`):

* ``"two_pass"``: ``mean`` first, then ``sum((x - mean)^2)``; exact to
  float32 rounding for any mean. ``use_fast_variance=False`` forces it.
* ``"shifted"`` (GPU/TPU): reduce ``d = x - k`` where ``k`` is one sample of
  each statistic's slice: ``|mean - k|`` is of the order of the standard
  deviation, and ``var = E[d^2] - E[d]^2`` keeps full precision in a single
  pass (sibling reductions fuse into one kernel there).
* ``"checked"`` (CPU): the plain sums of ``x`` and ``x^2`` in one fused pass,
  kept only where they are safe: the rounding error of ``E[x^2] - E[x]^2``
  is that of a two-pass variance times ``E[x^2] / var``, so where every
  statistic has ``var >= E[x^2] / 4`` (``|mean| <= sqrt(3) std``: normalized
  activations, ReLU outputs, images) the result stays within a factor 4 of
  float32 rounding; otherwise (large means, overflow) the corrected
  deviations from that pass's mean are summed in a second pass, chosen by
  ``lax.cond`` so it runs only when needed. It is needed more often than
  one might think: a convolution of ReLU outputs has channels with
  ``|mean| > sqrt(3) std`` (9 of 64 in mnist_cnn's second block at init).
* ``"fused_two_pass"``: the two-pass form without the correction term, for
  the one place where it is faster: an undifferentiated per-example
  forward on CPU, which XLA fuses with the output into one pass over each
  example (see ``normalize._fuses_in_one_pass``). Its mean carries the
  rounding of one float32 sum, a few ulps of ``|mean|``.

Across devices. Each device reduces its shard to a count ``n``, a mean ``m``
and a centred sum of squares ``M2``; one ``all_gather`` of those three small
arrays lets every device combine them exactly (Chan et al.'s pairwise
update): ``mean = sum(n m) / N``, ``M2 = sum(M2_d + n_d (m_d - mean)^2)``.
That is **one collective**, it is count-weighted (devices holding different
numbers of valid, unmasked examples give exactly the statistics of the
concatenated valid examples), and it keeps the precision of the local
computation. The gather is a ``psum`` of one-hot rows, whose payload is
``devices x 3 x features`` floats: negligible next to the activations for
the device counts of data parallelism. ``pmean`` of per-device means and
second moments, as flax.linen does, has neither property.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from normzoo.norms import _checks
from normzoo.norms.policy import current_policy

Array = jax.Array


class Moments(NamedTuple):
  """Batch statistics: mean, biased variance, and the number of valid elements behind each."""
  mean: Array
  var: Array
  count: Array


class CentredSums(NamedTuple):
  """One device's ``count``, ``mean`` and centred sum of squares ``m2``: what merges exactly."""
  count: Array
  mean: Array
  m2: Array


def stat_dtype(dtype: Any) -> jnp.dtype:
  """float64 for float64 input, float32 otherwise (bf16/fp16/float32)."""
  return jnp.dtype(jnp.float64) if jnp.dtype(dtype) == jnp.float64 else jnp.dtype(jnp.float32)


def _first_sample(x: Array, axes: tuple[int, ...]) -> Array:
  """Element 0 along each reduced axis, kept as size-1 axes (the shift ``k``)."""
  index = tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))
  return x[index]


def group_sum(s: Array, channel_groups: int | None, method: str | None = None) -> Array:
  """Sums the last axis within ``channel_groups`` groups, broadcast back per channel.

  Group statistics are kept per channel (equal within a group) so that they
  broadcast against ``x`` without reshaping it; reducing the spatial axes
  first and the few channels of a group second is also faster on CPU than
  one reduction over a (..., groups, group_size) view. How the small second
  sum is written matters on XLA:CPU, which otherwise fuses it into the
  full-size reduction before it and slows that pass down: ``method`` (default:
  the backend policy's, :class:`normzoo.norms.policy.BackendPolicy`) is
  ``"reshape"``, ``"block_matmul"`` or ``"grouped_matmul"``.
  """
  if channel_groups is None:
    return s
  c = s.shape[-1]
  size = c // channel_groups
  if size == 1:
    return s
  method = method or group_sum_method(c)
  grouped = s.reshape(s.shape[:-1] + (channel_groups, size))
  if method == "reshape":
    summed = jnp.sum(grouped, axis=-1, keepdims=True)
    return jnp.broadcast_to(summed, grouped.shape).reshape(s.shape)
  highest = lax.Precision.HIGHEST  # exact float32 sums (no TF32/bf16 passes on GPU/TPU)
  within = jnp.einsum("...gi,ij->...gj", grouped, jnp.ones((size, size), s.dtype),
                      precision=highest).reshape(s.shape)
  if method == "grouped_matmul":
    return within
  # "block_matmul": one (C, C) block-diagonal product. Its zeros would turn an
  # inf in one group into NaN in every other (0 * inf); where that happens
  # the within-group product gives the exact per-group value instead.
  ids = np.arange(c) // size
  block = jnp.asarray(ids[:, None] == ids[None, :], s.dtype)
  dense = jnp.matmul(s, block, precision=highest)
  return jnp.where(jnp.isfinite(dense), dense, within)


def group_sum_method(channels: int) -> str:
  """The active backend policy's group-sum form for ``channels`` channels."""
  return current_policy().group_sum_method(channels)


def kept_axes(ndim: int, axes: tuple[int, ...]) -> tuple[int, ...]:
  """The axes of an ``ndim`` array that a reduction over ``axes`` keeps."""
  return tuple(a for a in range(ndim) if a not in axes)


def expand(v: Array, shape: Sequence[int], axes: tuple[int, ...]) -> Array:
  """Broadcasts a statistic reduced over ``axes`` back to the full ``shape``.

  Statistics are kept in their reduced shape (no size-1 axes) for all the
  small arithmetic on them and expanded only where they meet full-size
  arrays. On XLA:CPU this matters: size-1 axes let layout assignment give
  the small arrays non-descending layouts, which YNNPACK's fusions refuse,
  so a reduction and its elementwise consumers stop fusing into one pass.
  """
  return lax.broadcast_in_dim(v, tuple(shape), kept_axes(len(shape), axes))


def _sum(v: Array, axes: tuple[int, ...], channel_groups: int | None,
         group_method: str | None) -> Array:
  return group_sum(jnp.sum(v, axis=axes), channel_groups, group_method)


def variance_method(use_fast_variance: bool = True) -> str:
  """``"two_pass"``, or the backend policy's fast method (see the module docstring).

  On CPU, XLA fuses the plain sums with everything that follows them into
  one pass over ``x``, while a shift ``k`` taken from ``x`` makes it write
  ``x - k`` out; on GPU/TPU sibling reductions of ``x - k`` fuse into one
  kernel and the shifted single pass wins.
  """
  if not use_fast_variance:
    return "two_pass"
  return current_policy().variance


# The checked single pass is kept where var >= E[x^2] / SAFE_RATIO.
SAFE_RATIO = 4.0


def _mask_count(mask: Array, shape: Sequence[int], axes: tuple[int, ...],
                channel_groups: int | None, dtype, group_method: str | None = None) -> Array:
  """Valid elements per statistic (reduced shape), summed at the mask's own (often tiny) shape."""
  m = jnp.asarray(mask)
  m = m.reshape((1,) * (len(shape) - m.ndim) + m.shape)
  count = jnp.sum(m.astype(dtype), axis=axes, keepdims=True)
  count = count * math.prod(shape[a] for a in axes if m.shape[a] == 1)
  out_shape = tuple(d for a, d in enumerate(shape) if a not in axes)
  count = jnp.broadcast_to(jnp.squeeze(count, axes), out_shape)
  if channel_groups is not None:
    count = group_sum(count, channel_groups, group_method)
  return count


# Jitted for eager callers (an un-jitted model.init, a debugging session):
# run op by op, the checked method's lax.cond traces new branch functions on
# every call and XLA compiled it anew each time (0.1-0.2 s per layer call).
# Inside an outer jit the call is inlined; the compiled program is the same.
@functools.partial(jax.jit, static_argnames=("axes", "method", "channel_groups", "group_method"))
def reduced_moments(x: Array, axes: tuple[int, ...], mask: Array | None, method: str,
                    channel_groups: int | None = None, group_method: str | None = None
                    ) -> CentredSums:
  """Per-device ``(count, mean, M2)`` in the reduced shape (``x.shape`` without ``axes``).

  ``M2`` is the centred sum of squares ``sum((x - mean)^2)`` over valid
  elements. With ``channel_groups`` the statistics also pool the channels
  (last axis, not in ``axes``) within each group, and are repeated per
  channel.
  """
  dtype = stat_dtype(x.dtype)
  gm = group_method or (None if channel_groups is None else group_sum_method(x.shape[-1]))
  xf = x.astype(dtype)
  out_shape = tuple(d for a, d in enumerate(x.shape) if a not in axes)
  full = lambda v: expand(v, x.shape, axes)
  if mask is None:
    n = math.prod(x.shape[a] for a in axes)
    n *= 1 if channel_groups is None else x.shape[-1] // channel_groups

    def two_pass():
      mean = _sum(xf, axes, channel_groups, gm) / n
      return mean, _sum(jnp.square(xf - full(mean)), axes, channel_groups, gm)

    def corrected_two_pass(mean=None):
      # Chan, Golub & LeVeque: the rounding error of the first mean would add
      # n * error^2 to M2; the sum of the deviations measures that error and
      # takes it out again. The checked pass hands over its mean (the same
      # sum), saving a pass, and its up-cast x: a branch taking the bf16 x
      # instead was slower (XLA copies a reshaped bf16 operand). The two sums read x
      # through separate broadcasts of the mean (the barrier keeps XLA from
      # merging them): sharing one, XLA:CPU writes x - mean out and reads it
      # back twice.
      if mean is None:
        mean = _sum(xf, axes, channel_groups, gm) / n
      d = _sum(xf - full(mean), axes, channel_groups, gm)
      m2 = _sum(jnp.square(xf - full(lax.optimization_barrier(mean))), axes, channel_groups, gm)
      m2 = m2 - jnp.square(d) / n
      return mean + d / n, jnp.maximum(m2, 0.0)

    if method == "two_pass":
      mean, m2 = corrected_two_pass()
    elif method == "fused_two_pass":
      mean, m2 = two_pass()
    elif method == "checked":
      s1 = _sum(xf, axes, channel_groups, gm)
      s2 = _sum(jnp.square(xf), axes, channel_groups, gm)
      mean = s1 / n
      m2 = s2 - s1 * mean
      # Written so that NaN (overflowed squares) also takes the two-pass branch.
      safe = jnp.all(m2 * SAFE_RATIO >= s2)
      mean, m2 = lax.cond(safe, lambda: (mean, jnp.maximum(m2, 0.0)),
                          lambda: corrected_two_pass(mean))
    else:
      shift = _first_sample(xf, axes).reshape(out_shape)
      if channel_groups is not None:
        shift = group_sum(shift, channel_groups, gm) / (x.shape[-1] // channel_groups)
      d = xf - full(shift)
      s1 = _sum(d, axes, channel_groups, gm)
      s2 = _sum(jnp.square(d), axes, channel_groups, gm)
      mean = shift + s1 / n
      m2 = jnp.maximum(s2 - jnp.square(s1) / n, 0.0)
    return CentredSums(jnp.full(out_shape, n, dtype), mean, m2)
  # Masked statistics are always two-pass: a shift drawn from a masked-out
  # (padding) element could be arbitrarily far from the valid data.
  valid = jnp.asarray(mask, bool)
  count = _mask_count(mask, x.shape, axes, channel_groups, dtype, gm)
  mean = _sum(jnp.where(valid, xf, 0.0), axes, channel_groups, gm) / jnp.maximum(count, 1.0)
  m2 = _sum(jnp.where(valid, jnp.square(xf - full(mean)), 0.0), axes, channel_groups, gm)
  return CentredSums(count, mean, m2)


def local_moments(x: Array, axes: tuple[int, ...], mask: Array | None, method: str,
                  channel_groups: int | None = None, group_method: str | None = None
                  ) -> CentredSums:
  """:func:`reduced_moments` with the reduced axes kept as size 1 (shape ``x.shape`` there)."""
  out_shape = tuple(1 if a in axes else d for a, d in enumerate(x.shape))
  sums = reduced_moments(x, axes, mask, method, channel_groups, group_method)
  return CentredSums(*(v.reshape(out_shape) for v in sums))


def _gather_by_psum(value: Array, axis_name: Any, axis_index_groups: Any) -> Array:
  """Every device's ``value`` stacked along a new leading axis, via one psum.

  Each device writes its value into its own row of a zero array and the rows
  are summed: adding zeros is exact, so this is an all-gather whose result
  is typed as replicated (shard_map's ``check_vma`` accepts ``P()`` outputs),
  and it supports ``axis_index_groups``, which ``all_gather`` under
  shard_map does not.
  """
  index = lax.axis_index(axis_name)
  if axis_index_groups is None:
    size = lax.axis_size(axis_name)
  else:
    size = len(axis_index_groups[0])
    rank = np.zeros(lax.axis_size(axis_name), np.int32)
    for group in axis_index_groups:
      if len(group) != size:
        raise ValueError(f"axis_index_groups must all have the same size; got {axis_index_groups}")
      rank[list(group)] = np.arange(size)
    index = jnp.asarray(rank)[index]
  rows = jnp.zeros((size,) + value.shape, value.dtype)
  rows = lax.dynamic_update_index_in_dim(rows, value, index, axis=0)
  return lax.psum(rows, axis_name, axis_index_groups=axis_index_groups)


def combine_across_devices(count: Array, mean: Array, m2: Array, axis_name: Any,
                           axis_index_groups: Any = None) -> CentredSums:
  """Exact count-weighted merge of per-device moments with a single collective."""
  stacked = _gather_by_psum(jnp.stack([count, mean, m2]), axis_name, axis_index_groups)
  counts, means, m2s = stacked[:, 0], stacked[:, 1], stacked[:, 2]
  total = jnp.sum(counts, axis=0)
  safe = jnp.maximum(total, 1.0)
  mean = jnp.sum(counts * means, axis=0) / safe
  # Devices without valid elements carry count 0 and a finite mean, so they
  # drop out of both sums.
  m2 = jnp.sum(m2s + counts * jnp.square(means - mean), axis=0)
  return CentredSums(total, mean, m2)


def reduced_moments_across(x: Array, axes: tuple[int, ...], *, axis_name: Any = None,
                          axis_index_groups: Any = None, mask: Array | None = None,
                          use_fast_variance: bool = True, channel_groups: int | None = None,
                          method: str | None = None, group_method: str | None = None
                          ) -> Moments:
  """:class:`Moments` in the reduced shape, over ``axes`` and the mapped ``axis_name``."""
  method = method or variance_method(use_fast_variance)
  count, mean, m2 = reduced_moments(x, axes, mask, method, channel_groups, group_method)
  if axis_name is not None:
    count, mean, m2 = combine_across_devices(count, mean, m2, axis_name, axis_index_groups)
  return Moments(mean, m2 / jnp.maximum(count, 1.0), count)


def moments_keepdims(x: Array, axes: tuple[int, ...], *, axis_name: Any = None,
                     axis_index_groups: Any = None, mask: Array | None = None,
                     use_fast_variance: bool = True, channel_groups: int | None = None,
                     group_method: str | None = None) -> Moments:
  """:class:`Moments` with the reduced axes kept; ``axes`` must be canonical."""
  out_shape = tuple(1 if a in axes else d for a, d in enumerate(x.shape))
  stats = reduced_moments_across(x, axes, axis_name=axis_name,
                                 axis_index_groups=axis_index_groups, mask=mask,
                                 use_fast_variance=use_fast_variance,
                                 channel_groups=channel_groups, group_method=group_method)
  return Moments(*(v.reshape(out_shape) for v in stats))


def moments(x: Array, reduction_axes: int | Sequence[int], *, axis_name: Any = None,
            axis_index_groups: Any = None, mask: Array | None = None,
            use_fast_variance: bool = True) -> tuple[Array, Array]:
  """Mean and (biased) variance of ``x`` over ``reduction_axes``.

  Args:
    x: input of any shape and floating dtype.
    reduction_axes: axes to reduce; the statistics have the remaining shape.
    axis_name: also reduce over this mapped axis (pmap / shard_map / vmap),
      with one collective gathering per-device ``(count, mean, M2)``.
    axis_index_groups: statistics within these groups of device indices.
    mask: bool array broadcastable to ``x``; only True elements count, and
      across devices the result is weighted by each device's valid count.
    use_fast_variance: True picks the faster accurate method for the
      backend (:func:`variance_method`); False always uses the two-pass
      one. All are accurate for ``|mean| >> std``.

  Returns:
    ``(mean, var)`` in float32 (float64 for float64 input), shape of ``x``
    without ``reduction_axes``.
  """
  _checks.check_floating("x", x)
  axes = _checks.canonical_axes(reduction_axes, x.ndim, "reduction_axes", x.shape)
  _checks.check_nonempty_reduction("moments", x.shape, axes)
  _checks.check_mask(mask, x.shape)
  _checks.check_axis_name(axis_name)
  mean, var, _ = reduced_moments_across(x, axes, axis_name=axis_name,
                                        axis_index_groups=axis_index_groups, mask=mask,
                                        use_fast_variance=use_fast_variance)
  return mean, var

