"""flax.nnx forms of the research variants (:mod:`normzoo.norms.variants`).

Same math (the variants' pure functions), parameter and statistic names as
the linen modules, constructor arguments in flax.nnx's style
(``num_features`` first, ``rngs`` keyword-only).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import initializers
from jax import lax

from normzoo.norms import _checks, functional
from normzoo.norms.variants import (batch_renorm, evonorm_b0, evonorm_s0, filter_response_norm,
                                    ghost_batch_norm, renorm_limits, switchable_norm)
from normzoo.norms.variants.renorm import check_limits
from normzoo.nnx._base import (BatchStatsMode, feature_param, keep_arguments, running_stat,
                               value_of)
from normzoo.nnx.modules import BatchNorm

Array = jax.Array

__all__ = ["BatchRenorm", "EvoNormB0", "EvoNormS0", "FilterResponseNorm", "FrozenBatchNorm",
           "GhostBatchNorm", "SwitchableNorm"]

_ZEROS = initializers.zeros_init()
_ONES = initializers.ones_init()


_BATCH_ATTRIBUTES = ("num_features", "use_running_average", "momentum", "epsilon", "dtype",
                     "param_dtype", "use_bias", "use_scale", "axis_name", "axis_index_groups",
                     "use_fast_variance")


class BatchRenorm(BatchStatsMode, nnx.Module):
  """Batch renormalization (Ioffe, 2017); arguments of :class:`BatchNorm` plus the limits.

  ``r_max``/``d_max`` are the clipping limits; ``warmup_steps`` /
  ``warmup_delay`` > 0 schedule them (:func:`normzoo.renorm_limits`) and add
  a float32 ``step`` BatchStat.
  """

  def __init__(self, num_features: int, *, use_running_average: bool | None = False,
               axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-5,
               dtype: Any = None, param_dtype: Any = jnp.float32, use_bias: bool = True,
               use_scale: bool = True, bias_init: Any = _ZEROS, scale_init: Any = _ONES,
               axis_name: str | None = None, axis_index_groups: Any = None,
               use_fast_variance: bool = True, r_max: float = 3.0, d_max: float = 5.0,
               warmup_steps: int = 0, warmup_delay: int = 0, rngs: nnx.Rngs | None = None):
    _checks.check_momentum(momentum)
    _checks.check_epsilon(epsilon)
    check_limits(r_max, d_max)
    shape = (num_features,)
    self.mean = running_stat(shape, 0.0)
    self.var = running_stat(shape, 1.0)
    scheduled = warmup_steps > 0 or warmup_delay > 0
    self.step = running_stat((), 0.0) if scheduled else nnx.data(None)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype)
    keep_arguments(self, locals(), *_BATCH_ATTRIBUTES, "axis", "r_max", "d_max", "warmup_steps",
          "warmup_delay")

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = self._use_running_average(use_running_average)
    r_max, d_max = self.r_max, self.d_max
    if self.step is not None:
      r_max, d_max = renorm_limits(self.step[...], self.r_max, self.d_max, self.warmup_steps,
                                   self.warmup_delay)
    y, mean, var = batch_renorm(
        x, value_of(self.scale), value_of(self.bias), self.mean[...], self.var[...],
        r_max=r_max, d_max=d_max, use_running_average=use_running_average, axis=self.axis,
        momentum=self.momentum, epsilon=self.epsilon, axis_name=self.axis_name,
        axis_index_groups=self.axis_index_groups, mask=mask,
        use_fast_variance=self.use_fast_variance, dtype=self.dtype)
    if not use_running_average:
      self._write_batch_stats(mean=mean, var=var)
    return y


class GhostBatchNorm(BatchStatsMode, nnx.Module):
  """Ghost batch norm (Hoffer et al., 2017): statistics per virtual batch of ``virtual_batch_size``."""

  def __init__(self, num_features: int, virtual_batch_size: int = 32, *,
               use_running_average: bool | None = False, axis: int = -1,
               momentum: float = 0.99, epsilon: float = 1e-5, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Any = _ZEROS, scale_init: Any = _ONES, axis_name: str | None = None,
               axis_index_groups: Any = None, use_fast_variance: bool = True,
               rngs: nnx.Rngs | None = None):
    _checks.check_momentum(momentum)
    _checks.check_epsilon(epsilon)
    shape = (num_features,)
    self.mean = running_stat(shape, 0.0)
    self.var = running_stat(shape, 1.0)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype)
    keep_arguments(self, locals(), *_BATCH_ATTRIBUTES, "axis", "virtual_batch_size")

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = self._use_running_average(use_running_average)
    y, mean, var = ghost_batch_norm(
        x, value_of(self.scale), value_of(self.bias), self.mean[...], self.var[...],
        virtual_batch_size=self.virtual_batch_size, use_running_average=use_running_average,
        axis=self.axis, momentum=self.momentum, epsilon=self.epsilon, axis_name=self.axis_name,
        axis_index_groups=self.axis_index_groups, mask=mask,
        use_fast_variance=self.use_fast_variance, dtype=self.dtype)
    if not use_running_average:
      self._write_batch_stats(mean=mean, var=var)
    return y


class FilterResponseNorm(nnx.Module):
  """FRN + TLU (Singh & Krishnan, 2019); params ``scale``, ``bias``, ``tau`` (C,), ``eps`` ()."""

  def __init__(self, num_features: int, *, epsilon: float = 1e-6, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               use_tlu: bool = True, learned_epsilon: bool = False,
               learned_epsilon_init: float = 1e-4, bias_init: Any = _ZEROS,
               scale_init: Any = _ONES, tau_init: Any = _ZEROS, rngs: nnx.Rngs | None = None):
    _checks.check_epsilon(epsilon)
    shape = (num_features,)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype)
    self.tau = feature_param(use_tlu, tau_init, rngs, shape, param_dtype)
    self.eps = feature_param(learned_epsilon, initializers.constant(learned_epsilon_init), rngs,
                             (), param_dtype)
    keep_arguments(self, locals(), "num_features", "epsilon", "dtype", "param_dtype", "use_bias",
          "use_scale", "use_tlu", "learned_epsilon", "learned_epsilon_init")

  def __call__(self, x: Array) -> Array:
    return filter_response_norm(x, value_of(self.scale), value_of(self.bias), value_of(self.tau),
                                epsilon=self.epsilon, learned_epsilon=value_of(self.eps),
                                dtype=self.dtype)


class EvoNormB0(BatchStatsMode, nnx.Module):
  """EvoNorm-B0 (Liu et al., 2020): batch-dependent; ``var`` BatchStat, params ``scale``, ``bias``, ``v1``."""

  def __init__(self, num_features: int, *, use_running_average: bool | None = False,
               momentum: float = 0.99, epsilon: float = 1e-5, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Any = _ZEROS, scale_init: Any = _ONES, v1_init: Any = _ONES,
               axis_name: str | None = None, axis_index_groups: Any = None,
               use_fast_variance: bool = True, rngs: nnx.Rngs | None = None):
    _checks.check_momentum(momentum)
    _checks.check_epsilon(epsilon)
    shape = (num_features,)
    self.var = running_stat(shape, 1.0)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype)
    self.v1 = feature_param(True, v1_init, rngs, shape, param_dtype)
    keep_arguments(self, locals(), *_BATCH_ATTRIBUTES)

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = self._use_running_average(use_running_average)
    y, var = evonorm_b0(x, value_of(self.scale), value_of(self.bias), self.v1[...],
                        self.var[...], use_running_average=use_running_average,
                        momentum=self.momentum, epsilon=self.epsilon, axis_name=self.axis_name,
                        axis_index_groups=self.axis_index_groups, mask=mask,
                        use_fast_variance=self.use_fast_variance, dtype=self.dtype)
    if not use_running_average:
      self._write_batch_stats(var=var)
    return y


class EvoNormS0(nnx.Module):
  """EvoNorm-S0 (Liu et al., 2020): per-example group variance (32 groups by default)."""

  def __init__(self, num_features: int, num_groups: int | None = 32,
               group_size: int | None = None, *, epsilon: float = 1e-5, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Any = _ZEROS, scale_init: Any = _ONES, v1_init: Any = _ONES,
               use_fast_variance: bool = True, rngs: nnx.Rngs | None = None):
    _checks.check_epsilon(epsilon)
    functional.resolve_num_groups(num_features, num_groups, group_size)
    shape = (num_features,)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype)
    self.v1 = feature_param(True, v1_init, rngs, shape, param_dtype)
    keep_arguments(self, locals(), "num_features", "num_groups", "group_size", "epsilon", "dtype",
          "param_dtype", "use_bias", "use_scale", "use_fast_variance")

  def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
    return evonorm_s0(x, value_of(self.scale), value_of(self.bias), self.v1[...],
                      num_groups=self.num_groups, group_size=self.group_size,
                      epsilon=self.epsilon, mask=mask, use_fast_variance=self.use_fast_variance,
                      dtype=self.dtype)


class SwitchableNorm(BatchStatsMode, nnx.Module):
  """Switchable normalization (Luo et al., 2019): learned mix of IN, LN and BN statistics."""

  def __init__(self, num_features: int, *, use_running_average: bool | None = False,
               momentum: float = 0.99, epsilon: float = 1e-5, dtype: Any = None,
               param_dtype: Any = jnp.float32, use_bias: bool = True, use_scale: bool = True,
               bias_init: Any = _ZEROS, scale_init: Any = _ONES, weight_init: Any = _ONES,
               axis_name: str | None = None, axis_index_groups: Any = None,
               use_fast_variance: bool = True, rngs: nnx.Rngs | None = None):
    _checks.check_momentum(momentum)
    _checks.check_epsilon(epsilon)
    shape = (num_features,)
    self.mean = running_stat(shape, 0.0)
    self.var = running_stat(shape, 1.0)
    self.scale = feature_param(use_scale, scale_init, rngs, shape, param_dtype)
    self.bias = feature_param(use_bias, bias_init, rngs, shape, param_dtype)
    self.mean_weight = feature_param(True, weight_init, rngs, (3,), param_dtype)
    self.var_weight = feature_param(True, weight_init, rngs, (3,), param_dtype)
    keep_arguments(self, locals(), *_BATCH_ATTRIBUTES)

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    use_running_average = self._use_running_average(use_running_average)
    y, mean, var = switchable_norm(
        x, value_of(self.scale), value_of(self.bias), self.mean_weight[...],
        self.var_weight[...], self.mean[...], self.var[...],
        use_running_average=use_running_average, momentum=self.momentum, epsilon=self.epsilon,
        axis_name=self.axis_name, axis_index_groups=self.axis_index_groups, mask=mask,
        use_fast_variance=self.use_fast_variance, dtype=self.dtype)
    if not use_running_average:
      self._write_batch_stats(mean=mean, var=var)
    return y


class FrozenBatchNorm(BatchNorm):
  """Batch norm frozen at its running statistics (never updated, also in training).

  Arguments of :class:`BatchNorm` plus ``freeze_params`` (``stop_gradient``
  on ``scale`` and ``bias``); ``use_running_average`` is accepted and ignored.
  """

  def __init__(self, num_features: int, *, freeze_params: bool = False, **kwargs: Any):
    super().__init__(num_features, **kwargs)
    self.freeze_params = freeze_params

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    del use_running_average, mask  # always the running statistics
    scale, bias = value_of(self.scale), value_of(self.bias)
    if self.freeze_params:
      scale, bias = jax.tree.map(lax.stop_gradient, (scale, bias))
    y, _, _ = functional.batch_norm(x, scale, bias, self.mean[...], self.var[...],
                                    use_running_average=True, axis=self.axis,
                                    epsilon=self.epsilon, dtype=self.dtype)
    return y
