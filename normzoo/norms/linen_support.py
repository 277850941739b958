"""What the flax.linen modules share: parameter declaration and batch_stats handling.

The math and the argument checks are in the functional core; these helpers
only concern linen's variable scopes (``self.param``, ``self.variable``,
``is_initializing``, mutable collections).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from normzoo.norms import stats

Array = jax.Array

# Where training-mode batch moments go for normzoo.precise_batch_stats.
RAW_COLLECTION = "batch_stats_raw"

__all__ = ["RAW_COLLECTION", "axis_name_unless_init", "channel_param", "feature_params",
           "record_batch_moments", "require_batch_stats"]


def feature_params(module: nn.Module, shape: tuple[int, ...]) -> tuple[Array | None, Array | None]:
  scale = (module.param("scale", module.scale_init, shape, module.param_dtype)
           if module.use_scale else None)
  bias = (module.param("bias", module.bias_init, shape, module.param_dtype)
          if getattr(module, "use_bias", False) else None)
  return scale, bias


def axis_name_unless_init(module: nn.Module) -> Any:
  # Module.init usually runs outside pmap/shard_map, where the axis is unbound;
  # statistics during init are thrown away anyway.
  return None if module.is_initializing() else module.axis_name


def require_batch_stats(module: nn.Module, train: bool, variable: str = "mean") -> None:
  """Turns flax's scope errors about ``batch_stats`` into instructions.

  ``variable`` is one running statistic the module always has.
  """
  if module.is_initializing():
    return
  name = type(module).__name__
  if not module.has_variable("batch_stats", variable):
    raise ValueError(
        f"{name} {module.name!r} has no 'batch_stats': pass the full variables returned by "
        f"init (variables={{'params': ..., 'batch_stats': ...}}) to apply()")
  if train and not module.is_mutable_collection("batch_stats"):
    raise ValueError(
        f"{name} {module.name!r} in training mode updates its running statistics: call "
        f"apply(..., mutable=['batch_stats']) and keep the returned 'batch_stats', or pass "
        f"use_running_average=True to evaluate with the running statistics")


def channel_param(module: nn.Module, name: str, init: Any, channels: int) -> Array:
  return module.param(name, init, (channels,), module.param_dtype)


def record_batch_moments(module: nn.Module, x: Array, reduction_axes: tuple[int, ...], *,
                         axis_name: Any = None, axis_index_groups: Any = None,
                         mask: Array | None = None) -> None:
  """Stores the batch ``mean``/``var`` of ``x`` over ``reduction_axes`` in ``'batch_stats_raw'``.

  A no-op unless that collection is mutable and the module is not
  initializing (so ``init`` variable trees stay flax-identical). The
  statistics are recomputed here rather than taken from the normalizer's
  forward pass, which keeps this free when unused; XLA usually merges the
  two identical reductions anyway.
  """
  if module.is_initializing() or not module.is_mutable_collection(RAW_COLLECTION):
    return
  mean, var = stats.moments(x, reduction_axes, axis_name=axis_name,
                            axis_index_groups=axis_index_groups, mask=mask)
  module.put_variable(RAW_COLLECTION, "mean", mean)
  module.put_variable(RAW_COLLECTION, "var", var)
