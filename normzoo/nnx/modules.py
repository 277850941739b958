"""flax.nnx modules over the functional normalizers.

Each class takes the constructor arguments, defaults and attribute names of
the ``flax.nnx`` class of the same name (``num_features`` first, ``rngs``
keyword-only; ``scale``/``bias`` as ``nnx.Param``, ``mean``/``var`` as
``nnx.BatchStat``), so ``nnx.state`` of a flax.nnx module loads into ours
with ``nnx.update``. The math is :mod:`normzoo.norms.functional`'s, the same
the linen modules call, with the same fixes over flax (accurate variance at a
large mean, count-weighted masked cross-device statistics, float32
statistics for half precision, errors that say what to change).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes
from flax.nnx.nn import initializers

from normzoo.norms import _checks, functional, pallas_rows
from normzoo.norms.variants import rms_norm
from normzoo.nnx._base import (BatchStatsMode, check_promote_dtype, feature_param,
                               keep_arguments, running_stat, value_of)

Array = jax.Array
Axes = Any
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})

__all__ = ["BatchNorm", "GroupNorm", "Identity", "InstanceNorm", "LayerNorm", "RMSNorm"]


class BatchNorm(BatchStatsMode, nnx.Module):
  """Batch normalization; drop-in for ``flax.nnx.BatchNorm``.

  ``x`` (N, ..., C) -> same shape; ``scale``, ``bias``, ``mean``, ``var``
  (num_features,). Extra arguments as :class:`normzoo.BatchNorm`:
  ``unbiased_running_var`` (PyTorch's running variance) and ``zero_debias``
  (Adam-style bias correction; adds a float32 ``step`` BatchStat).
  """

  def __init__(self, num_features: int, *, use_running_average: bool | None = False,
               axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-5,
               dtype: Any = None, param_dtype: Any = jnp.float32, use_bias: bool = True,
               use_scale: bool = True, bias_init: Any = initializers.zeros_init(),
               scale_init: Any = initializers.ones_init(), axis_name: str | None = None,
               axis_index_groups: Any = None, use_fast_variance: bool = True,
               promote_dtype: Any = dtypes.promote_dtype, rngs: nnx.Rngs | None = None,
               bias_metadata: Mapping[str, Any] = _NO_METADATA,
               scale_metadata: Mapping[str, Any] = _NO_METADATA,
               unbiased_running_var: bool = False, zero_debias: bool = False):
    check_promote_dtype(promote_dtype, type(self).__name__)
    _checks.check_momentum(momentum)
    _checks.check_epsilon(epsilon)
    shape = (num_features,)
    self.mean = running_stat(shape, 0.0)
    self.var = running_stat(shape, 1.0)
    # float32, like the linen module's counter (exact up to 2^24 steps).
    self.step = running_stat((), 0.0) if zero_debias else nnx.data(None)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype, scale_metadata)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype, bias_metadata)
    keep_arguments(self, locals(), "num_features", "use_running_average", "axis", "momentum",
                   "epsilon", "dtype", "param_dtype", "use_bias", "use_scale", "axis_name",
                   "axis_index_groups", "use_fast_variance", "promote_dtype",
                   "unbiased_running_var", "zero_debias")

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = self._use_running_average(use_running_average)
    y, mean, var = functional.batch_norm(
        x, value_of(self.scale), value_of(self.bias), self.mean[...], self.var[...],
        use_running_average=use_running_average, axis=self.axis, momentum=self.momentum,
        epsilon=self.epsilon, axis_name=self.axis_name,
        axis_index_groups=self.axis_index_groups, mask=mask,
        use_fast_variance=self.use_fast_variance,
        unbiased_running_var=self.unbiased_running_var, dtype=self.dtype,
        zero_debias=self.zero_debias, step=value_of(self.step))
    if not use_running_average:
      self._write_batch_stats(mean=mean, var=var)
    return y


class LayerNorm(nnx.Module):
  """Layer normalization; drop-in for ``flax.nnx.LayerNorm``.

  ``reduction_axes=None`` (ours, as in :class:`normzoo.LayerNorm`) reduces
  over every axis except the leading batch axis; ``implementation='pallas'``
  runs the fused Triton kernel (GPU, last axis only).
  """

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Any = initializers.zeros_init(),
               scale_init: Any = initializers.ones_init(), reduction_axes: Axes = -1,
               feature_axes: Axes = -1, axis_name: str | None = None,
               axis_index_groups: Any = None, use_fast_variance: bool = True,
               promote_dtype: Any = dtypes.promote_dtype, rngs: nnx.Rngs | None = None,
               bias_metadata: Mapping[str, Any] = _NO_METADATA,
               scale_metadata: Mapping[str, Any] = _NO_METADATA, implementation: str = "xla"):
    check_promote_dtype(promote_dtype, type(self).__name__)
    _checks.check_epsilon(epsilon)
    shape = (num_features,)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype, scale_metadata)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype, bias_metadata)
    keep_arguments(self, locals(), "num_features", "epsilon", "dtype", "param_dtype", "use_bias",
                   "use_scale", "reduction_axes", "feature_axes", "axis_name", "axis_index_groups",
                   "use_fast_variance", "promote_dtype", "implementation")

  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    scale, bias = value_of(self.scale), value_of(self.bias)
    if pallas_rows.uses_pallas(self.implementation, x, self.reduction_axes,
                               self.feature_axes, self.axis_name, mask, "LayerNorm"):
      return pallas_rows.pallas_layer_norm(x, scale, bias, epsilon=self.epsilon, dtype=self.dtype)
    return functional.layer_norm(
        x, scale, bias, reduction_axes=self.reduction_axes, feature_axes=self.feature_axes,
        epsilon=self.epsilon, axis_name=self.axis_name, axis_index_groups=self.axis_index_groups,
        mask=mask, use_fast_variance=self.use_fast_variance, dtype=self.dtype)


class GroupNorm(nnx.Module):
  """Group normalization; drop-in for ``flax.nnx.GroupNorm`` (32 groups by default).

  As in flax.nnx, both ``num_groups`` and ``group_size`` hold the resolved
  values after construction.
  """

  def __init__(self, num_features: int, num_groups: int | None = 32,
               group_size: int | None = None, *, epsilon: float = 1e-6, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Any = initializers.zeros_init(),
               scale_init: Any = initializers.ones_init(), reduction_axes: Axes | None = None,
               axis_name: str | None = None, axis_index_groups: Any = None,
               use_fast_variance: bool = True, promote_dtype: Any = dtypes.promote_dtype,
               rngs: nnx.Rngs | None = None, bias_metadata: Mapping[str, Any] = _NO_METADATA,
               scale_metadata: Mapping[str, Any] = _NO_METADATA):
    check_promote_dtype(promote_dtype, type(self).__name__)
    _checks.check_epsilon(epsilon)
    self.num_groups = functional.resolve_num_groups(num_features, num_groups, group_size)
    self.group_size = num_features // self.num_groups
    self.feature_axis = -1
    shape = (num_features,)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype, scale_metadata)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype, bias_metadata)
    keep_arguments(self, locals(), "num_features", "epsilon", "dtype", "param_dtype", "use_bias",
                   "use_scale", "reduction_axes", "axis_name", "axis_index_groups",
                   "use_fast_variance", "promote_dtype")

  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    return functional.group_norm(
        x, value_of(self.scale), value_of(self.bias), num_groups=self.num_groups,
        reduction_axes=self.reduction_axes, epsilon=self.epsilon, axis_name=self.axis_name,
        axis_index_groups=self.axis_index_groups, mask=mask,
        use_fast_variance=self.use_fast_variance, dtype=self.dtype)


class InstanceNorm(nnx.Module):
  """Instance normalization; drop-in for ``flax.nnx.InstanceNorm``."""

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Any = initializers.zeros, scale_init: Any = initializers.ones,
               feature_axes: Axes = -1, axis_name: str | None = None,
               axis_index_groups: Any = None, use_fast_variance: bool = True,
               promote_dtype: Any = dtypes.promote_dtype, rngs: nnx.Rngs | None = None,
               bias_metadata: Mapping[str, Any] = _NO_METADATA,
               scale_metadata: Mapping[str, Any] = _NO_METADATA):
    check_promote_dtype(promote_dtype, type(self).__name__)
    _checks.check_epsilon(epsilon)
    shape = (num_features,)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype, scale_metadata)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype, bias_metadata)
    keep_arguments(self, locals(), "num_features", "epsilon", "dtype", "param_dtype", "use_bias",
                   "use_scale", "feature_axes", "axis_name", "axis_index_groups",
                   "use_fast_variance", "promote_dtype")

  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    return functional.instance_norm(
        x, value_of(self.scale), value_of(self.bias), feature_axes=self.feature_axes,
        epsilon=self.epsilon, axis_name=self.axis_name, axis_index_groups=self.axis_index_groups,
        mask=mask, use_fast_variance=self.use_fast_variance, dtype=self.dtype)


class RMSNorm(nnx.Module):
  """RMS normalization; drop-in for ``flax.nnx.RMSNorm`` (Zhang & Sennrich, 2019)."""

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_scale: bool = True,
               scale_init: Any = initializers.ones, reduction_axes: Axes = -1,
               feature_axes: Axes = -1, axis_name: str | None = None,
               axis_index_groups: Any = None, use_fast_variance: bool = True,
               promote_dtype: Any = dtypes.promote_dtype, rngs: nnx.Rngs | None = None,
               scale_metadata: Mapping[str, Any] = _NO_METADATA, implementation: str = "xla"):
    check_promote_dtype(promote_dtype, type(self).__name__)
    _checks.check_epsilon(epsilon)
    self.scale = feature_param(use_scale, scale_init, rngs, (num_features,), param_dtype,
                               scale_metadata)
    keep_arguments(self, locals(), "num_features", "epsilon", "dtype", "param_dtype", "use_scale",
                   "reduction_axes", "feature_axes", "axis_name", "axis_index_groups",
                   "use_fast_variance", "promote_dtype", "implementation")

  def __call__(self, x: Array, mask: Array | None = None) -> Array:
    scale = value_of(self.scale)
    if pallas_rows.uses_pallas(self.implementation, x, self.reduction_axes,
                               self.feature_axes, self.axis_name, mask, "RMSNorm"):
      return pallas_rows.pallas_rms_norm(x, scale, epsilon=self.epsilon, dtype=self.dtype)
    return rms_norm(x, scale, reduction_axes=self.reduction_axes, feature_axes=self.feature_axes,
                    epsilon=self.epsilon, axis_name=self.axis_name,
                    axis_index_groups=self.axis_index_groups, mask=mask, dtype=self.dtype)


class Identity(nnx.Module):
  """No normalization (registry name ``none``); accepts the other modules' arguments."""

  def __init__(self, num_features: int | None = None, *, dtype: Any = None,
               rngs: nnx.Rngs | None = None):
    del rngs
    self.num_features = num_features
    self.dtype = dtype

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    del use_running_average, mask
    return x if self.dtype is None else x.astype(self.dtype)
