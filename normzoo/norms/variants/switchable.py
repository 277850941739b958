"""Switchable normalization (Luo, Ren, Peng, Zhang & Li, "Differentiable Learning-to-Normalize
via Switchable Normalization", ICLR 2019).

For ``x`` (N, ..., C) the statistics of instance, layer and batch norm,
``k in {IN, LN, BN}``, are mixed with learned softmax weights::

    mu    = sum_k softmax(mean_weight)_k mu_k
    sigma2 = sum_k softmax(var_weight)_k sigma2_k
    y = (x - mu) / sqrt(sigma2 + eps) * scale + bias

IN: per example and channel over the spatial axes, (N, 1.., C). LN: per
example over spatial axes and channels, (N, 1.., 1). BN: per channel over
examples and spatial axes (and devices with ``axis_name``), (C,); in
evaluation the running ``batch_stats`` ``mean``/``var``, updated with
``momentum`` as in batch norm. Variances are biased. As in the paper, LN and
BN statistics are derived from the IN ones (one pass over ``x``), here with
Chan et al.'s exact merge of ``(count, mean, M2)``, which is also how the BN
part combines devices (one collective). (N, C) input has no instance
statistics and is refused.

Params: ``scale``, ``bias`` (C,); ``mean_weight``, ``var_weight`` (3,),
ordered (IN, LN, BN), initialized to ones (equal importance).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from normzoo.norms import _checks
from normzoo.norms._checks import broadcast_param, hashable_groups, output_dtype
from normzoo.norms.normalize import normalize_with_stats
from normzoo.norms.stats import combine_across_devices, local_moments, variance_method
from normzoo.norms.variants._common import spatial_axes, update_running

Array = jax.Array

__all__ = ["switchable_norm"]


def _merge(count: Array, mean: Array, m2: Array, axes: tuple[int, ...]
           ) -> tuple[Array, Array, Array]:
  """Exact merge of per-slice ``(count, mean, M2)`` over ``axes`` (kept as size 1)."""
  total = jnp.sum(count, axis=axes, keepdims=True)
  merged = jnp.sum(count * mean, axis=axes, keepdims=True) / jnp.maximum(total, 1.0)
  m2 = jnp.sum(m2 + count * jnp.square(mean - merged), axis=axes, keepdims=True)
  return total, merged, m2


def switchable_norm(x: Array, scale: Array | None, bias: Array | None, mean_weight: Array,
                    var_weight: Array, mean: Array, var: Array, *,
                    use_running_average: bool = False, momentum: float = 0.99,
                    epsilon: float = 1e-5, axis_name: Any = None, axis_index_groups: Any = None,
                    mask: Array | None = None, use_fast_variance: bool = True, dtype: Any = None
                    ) -> tuple[Array, Array, Array]:
  """Switchable norm of ``x`` (N, ..., C); returns ``(y, new_mean, new_var)``."""
  axes = spatial_axes(x, "SwitchableNorm")
  c = (x.shape[-1],)
  _checks.check_epsilon(epsilon)
  _checks.check_momentum(momentum)
  _checks.check_mask(mask, x.shape)
  for name, value in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var)):
    _checks.check_feature_params(name, value, c)
  for name, value in (("mean_weight", mean_weight), ("var_weight", var_weight)):
    _checks.check_feature_params(name, value, (3,))
  n_in, mu_in, m2_in = local_moments(x, axes, mask, variance_method(use_fast_variance))
  n_ln, mu_ln, m2_ln = _merge(n_in, mu_in, m2_in, (x.ndim - 1,))
  if use_running_average:
    mu_bn, var_bn = broadcast_param(mean, x.ndim, (x.ndim - 1,)), broadcast_param(
        var, x.ndim, (x.ndim - 1,))
    new_mean, new_var = mean, var
  else:
    _checks.check_axis_name(axis_name)
    n_bn, mu_bn, m2_bn = _merge(n_in, mu_in, m2_in, (0,))
    if axis_name is not None:
      n_bn, mu_bn, m2_bn = combine_across_devices(n_bn, mu_bn, m2_bn, axis_name,
                                                  hashable_groups(axis_index_groups))
    var_bn = m2_bn / jnp.maximum(n_bn, 1.0)
    new_mean = update_running(mean, mu_bn.reshape(c), momentum)
    new_var = update_running(var, var_bn.reshape(c), momentum)
  var_in = m2_in / jnp.maximum(n_in, 1.0)
  var_ln = m2_ln / jnp.maximum(n_ln, 1.0)
  wm = jax.nn.softmax(mean_weight.astype(mu_in.dtype))
  wv = jax.nn.softmax(var_weight.astype(mu_in.dtype))
  mu = wm[0] * mu_in + wm[1] * mu_ln + wm[2] * mu_bn.astype(mu_in.dtype)
  sigma2 = wv[0] * var_in + wv[1] * var_ln + wv[2] * var_bn.astype(mu_in.dtype)
  y = normalize_with_stats(x, mu, sigma2, broadcast_param(scale, x.ndim, (x.ndim - 1,)),
                           broadcast_param(bias, x.ndim, (x.ndim - 1,)), epsilon,
                           output_dtype(dtype, x, scale, bias))
  return y, new_mean, new_var
