"""What every normzoo.nnx module shares: parameter creation and the train/eval switch.

The math and the argument checks live in :mod:`normzoo.norms`; this file
only turns constructor arguments into ``nnx.Param`` / ``nnx.BatchStat``
variables the way ``flax.nnx`` names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes

Array = jax.Array

__all__ = ["BatchStatsMode", "check_promote_dtype", "feature_param", "keep_arguments",
           "running_stat", "value_of", "write_running"]


def feature_param(enabled: bool, init: Any, rngs: nnx.Rngs | None, shape: tuple[int, ...],
                  param_dtype: Any, metadata: Mapping[str, Any] | None = None) -> Any:
  """``nnx.Param(init(key, shape, param_dtype))`` or ``nnx.data(None)`` when disabled.

  One key is drawn from ``rngs.params()`` per enabled parameter, in the order
  the module creates them, as flax.nnx does, so the same ``Rngs`` seed gives
  the same initial values as the flax.nnx module (for random initializers).
  """
  if not enabled:
    return nnx.data(None)
  if rngs is None:
    raise ValueError("rngs is required to initialize parameters: pass rngs=nnx.Rngs(0)")
  return nnx.Param(init(rngs.params(), shape, param_dtype), **dict(metadata or {}))


def keep_arguments(module: nnx.Module, arguments: Mapping[str, Any], *names: str) -> None:
  """Stores constructor arguments (``locals()``) as attributes of the same names, as flax.nnx does."""
  for name in names:
    setattr(module, name, arguments[name])


def value_of(variable: Any) -> Array | None:
  """The array behind an ``nnx.Variable``, or None for a disabled parameter."""
  return None if variable is None else variable[...]


def check_promote_dtype(promote_dtype: Any, module: str) -> None:
  """Accepts flax.nnx's ``promote_dtype`` argument only at its default.

  normzoo fixes the dtypes itself (float32 statistics for half-precision
  input, output in ``dtype`` or the input/parameter promotion); silently
  ignoring a custom promotion would give results the caller did not ask for.
  """
  if promote_dtype is not dtypes.promote_dtype:
    raise ValueError(
        f"{module}: promote_dtype={promote_dtype!r} is not supported; normzoo computes statistics "
        f"in float32 and returns `dtype` (or the promotion of input and parameters). Leave "
        f"promote_dtype at its default and set dtype=... instead")


class BatchStatsMode:
  """``use_running_average`` handling shared by the batch-statistics modules.

  ``module.train()`` / ``module.eval()`` and ``nnx.view(module,
  use_running_average=...)`` set the attribute; a call argument wins over it,
  as in flax.nnx.
  """
  use_running_average: bool | None

  def set_view(self, use_running_average: bool | None = None) -> None:
    """Hook of ``nnx.view``."""
    if use_running_average is not None:
      self.use_running_average = use_running_average

  def _use_running_average(self, call_value: bool | None) -> bool:
    value = self.use_running_average if call_value is None else call_value
    if value is None:
      raise ValueError(
          f"{type(self).__name__}: use_running_average is None; pass it to the constructor, to "
          f"the call (layer(x, use_running_average=False)), or switch the model with "
          f"model.train() / model.eval()")
    return bool(value)

  def _write_batch_stats(self, **values: Array) -> None:
    """Writes updated running statistics (``mean=..., var=...``); advances ``step`` if kept."""
    for name, value in values.items():
      write_running(getattr(self, name), value)
    step = getattr(self, "step", None)
    if step is not None:
      step[...] = step[...] + 1.0


def running_stat(shape: tuple[int, ...], fill: float) -> nnx.BatchStat:
  """A float32 ``nnx.BatchStat`` (running statistics are float32 whatever ``param_dtype``)."""
  return nnx.BatchStat(jnp.full(shape, fill, jnp.float32))


def write_running(variable: nnx.BatchStat, value: Array) -> None:
  # The batch statistics depend on x; the running copy must not carry
  # gradients into a later step that differentiates through the state.
  variable[...] = jax.lax.stop_gradient(value)
