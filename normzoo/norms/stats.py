"""Mean and variance over chosen axes, locally or across devices.

The statistics are computed in float32 (float64 for float64 input) whatever
the input dtype; the up-cast happens inside the reduction, so no float32 copy
of a bf16 input is materialized.

Precision. ``E[x^2] - E[x]^2`` loses every significant digit once
``|mean| >> std`` (1e4 + N(0, 1) in float32 gives garbage). We reduce
``d = x - k`` instead, where ``k`` is one sample of each statistic's slice:
``|mean - k|`` is then of the order of the standard deviation, and
``var = E[d^2] - E[d]^2`` keeps full precision in a single pass.
``use_fast_variance=False`` selects the textbook two-pass form instead; both
are accurate, the shifted one reads the input once.

Across devices. Each device reduces its shard to a count ``n``, a mean ``m``
and a centred sum of squares ``M2``; one ``all_gather`` of those three small
arrays lets every device combine them exactly (Chan et al.'s pairwise
update): ``mean = sum(n m) / N``, ``M2 = sum(M2_d + n_d (m_d - mean)^2)``.
That is **one collective**, it is count-weighted (devices holding different
numbers of valid, unmasked examples give exactly the statistics of the
concatenated valid examples), and it keeps the precision of the local
computation. The gather is a ``psum`` of one-hot rows, whose payload is
``devices x 3 x features`` floats: negligible next to the activations for
the device counts of data parallelism; ``pmean`` of per-device means and second moments, as flax.linen
does, has neither property.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from normzoo.norms import _checks

Array = jax.Array


def stat_dtype(dtype: Any) -> jnp.dtype:
  """float64 for float64 input, float32 otherwise (bf16/fp16/float32)."""
  return jnp.dtype(jnp.float64) if jnp.dtype(dtype) == jnp.float64 else jnp.dtype(jnp.float32)


def _first_sample(x: Array, axes: tuple[int, ...]) -> Array:
  """Element 0 along each reduced axis, kept as size-1 axes (the shift ``k``)."""
  index = tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))
  return x[index]


def _mask_count(mask: Array, shape: Sequence[int], axes: tuple[int, ...], dtype) -> Array:
  """Valid elements per statistic, reduced at the mask's own (often tiny) shape."""
  m = jnp.asarray(mask)
  m = m.reshape((1,) * (len(shape) - m.ndim) + m.shape)
  count = jnp.sum(m.astype(dtype), axis=axes, keepdims=True)
  repeat = math.prod(shape[a] for a in axes if m.shape[a] == 1)
  return count * repeat


def local_moments(x: Array, axes: tuple[int, ...], mask: Array | None,
                  two_pass: bool) -> tuple[Array, Array, Array]:
  """Per-device ``(count, mean, M2)``, each with the reduced axes kept as size 1.

  ``M2`` is the centred sum of squares ``sum((x - mean)^2)`` over valid
  elements. Shapes: ``x`` (...), outputs ``x.shape`` with ``axes`` set to 1.
  """
  dtype = stat_dtype(x.dtype)
  xf = x.astype(dtype)
  if mask is None:
    n = math.prod(x.shape[a] for a in axes)
    if two_pass:
      mean = jnp.sum(xf, axis=axes, keepdims=True) / n
      m2 = jnp.sum(jnp.square(xf - mean), axis=axes, keepdims=True)
    else:
      shift = _first_sample(xf, axes)
      d = xf - shift
      s1 = jnp.sum(d, axis=axes, keepdims=True)
      s2 = jnp.sum(jnp.square(d), axis=axes, keepdims=True)
      mean = shift + s1 / n
      m2 = s2 - jnp.square(s1) / n
    count = jnp.full(mean.shape, n, dtype)
    return count, mean, jnp.maximum(m2, 0.0)
  # Masked statistics are always two-pass: a shift drawn from a masked-out
  # (padding) element could be arbitrarily far from the valid data.
  valid = jnp.broadcast_to(jnp.asarray(mask, bool), x.shape)
  count = _mask_count(mask, x.shape, axes, dtype)
  safe = jnp.maximum(count, 1.0)
  mean = jnp.sum(jnp.where(valid, xf, 0.0), axis=axes, keepdims=True) / safe
  m2 = jnp.sum(jnp.where(valid, jnp.square(xf - mean), 0.0), axis=axes, keepdims=True)
  return jnp.broadcast_to(count, mean.shape), mean, m2


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
                           axis_index_groups: Any = None) -> tuple[Array, Array, Array]:
  """Exact count-weighted merge of per-device moments with a single collective."""
  stacked = _gather_by_psum(jnp.stack([count, mean, m2]), axis_name, axis_index_groups)
  counts, means, m2s = stacked[:, 0], stacked[:, 1], stacked[:, 2]
  total = jnp.sum(counts, axis=0)
  safe = jnp.maximum(total, 1.0)
  mean = jnp.sum(counts * means, axis=0) / safe
  # Devices without valid elements carry count 0 and a finite mean, so they
  # drop out of both sums.
  m2 = jnp.sum(m2s + counts * jnp.square(means - mean), axis=0)
  return total, mean, m2


def moments_keepdims(x: Array, axes: tuple[int, ...], *, axis_name: Any = None,
                     axis_index_groups: Any = None, mask: Array | None = None,
                     use_fast_variance: bool = True) -> tuple[Array, Array, Array]:
  """``(mean, var, count)`` with reduced axes kept; ``axes`` must be canonical."""
  count, mean, m2 = local_moments(x, axes, mask, two_pass=not use_fast_variance)
  if axis_name is not None:
    count, mean, m2 = combine_across_devices(count, mean, m2, axis_name, axis_index_groups)
  var = m2 / jnp.maximum(count, 1.0)
  return mean, var, count


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
    use_fast_variance: True for the single-pass shifted formula, False for
      the two-pass one. Both are accurate for ``|mean| >> std``.

  Returns:
    ``(mean, var)`` in float32 (float64 for float64 input), shape of ``x``
    without ``reduction_axes``.
  """
  axes = _checks.canonical_axes(reduction_axes, x.ndim, "reduction_axes", x.shape)
  _checks.check_mask(mask, x.shape)
  _checks.check_axis_name(axis_name)
  mean, var, _ = moments_keepdims(x, axes, axis_name=axis_name, axis_index_groups=axis_index_groups,
                                  mask=mask, use_fast_variance=use_fast_variance)
  return jnp.squeeze(mean, axes), jnp.squeeze(var, axes)

