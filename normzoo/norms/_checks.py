"""Argument preparation shared by the functional normalizers: checks, canonical axes,
the output dtype, parameter broadcasting.

Every check runs at trace time on static shapes, so a bad argument fails with
a message that names it before XLA sees anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array


def canonical_axes(axes: int | Iterable[int], ndim: int, name: str,
                   shape: Sequence[int] | None = None) -> tuple[int, ...]:
  """Sorted, deduplicated non-negative axes; ValueError naming ``name`` if out of range."""
  if _is_int(axes):
    axes = (int(axes),)
  elif not isinstance(axes, Iterable) or isinstance(axes, (str, bytes)):
    # None, 1.0, "x": today these would fail as a TypeError deep inside jnp.
    raise ValueError(f"{name}={axes!r} must be an int or a sequence of ints (axes of an input of "
                     f"rank {ndim})")
  result = []
  for axis in axes:
    if not _is_int(axis):
      raise ValueError(f"{name} must contain ints; got {name}={axis!r} in {axes!r}")
    if not -ndim <= axis < ndim:
      where = f"shape {tuple(shape)}" if shape is not None else f"rank {ndim}"
      raise ValueError(
          f"{name}={axis!r} is out of range for an input of {where} "
          f"(valid axes are {-ndim}..{ndim - 1})")
    result.append(int(axis) % ndim)
  return tuple(sorted(set(result)))


def _is_int(value: Any) -> bool:
  """Python or NumPy integer, but not bool (True is an int in Python, never a meant axis/count)."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_floating(name: str, x: Any) -> None:
  """ValueError unless ``x`` is a real floating array (ints would be normalized into ints)."""
  dtype = getattr(x, "dtype", None)
  if dtype is None:
    raise ValueError(f"{name} must be an array (jax or numpy); got {type(x).__name__}")
  if not jnp.issubdtype(dtype, jnp.floating):  # jnp: knows bfloat16
    raise ValueError(f"{name} must have a floating dtype (float16/bfloat16/float32/float64); got "
                     f"{name}.dtype={np.dtype(dtype).name}. Cast it first, e.g. "
                     f"{name}.astype(jnp.float32)")


def check_positive_int(name: str, value: Any) -> None:
  """ValueError unless ``value`` is an integer >= 1 (a float 4.0 would reach jnp.reshape)."""
  if not _is_int(value) or value < 1:
    raise ValueError(f"{name} must be a positive int; got {name}={value!r}")


def check_nonempty_reduction(name: str, shape: Sequence[int], stat_axes: Sequence[int]) -> None:
  """Refuses statistics over zero elements (mean 0/0 = NaN), e.g. a (0, C) training batch.

  Unlike a count of one this is known statically whatever ``axis_name`` and
  ``mask``: every device of a pmap/shard_map sees the same local shape.
  """
  if stat_axes and math.prod(shape[a] for a in stat_axes) == 0:
    raise ValueError(
        f"{name} computes statistics over axes {tuple(stat_axes)} of an input of shape "
        f"{tuple(shape)}, which hold no elements (the mean would be 0/0 = NaN)")


def check_nonnegative_if_concrete(name: str, value: Any) -> None:
  """ValueError if a concrete (non-traced) ``value`` has a negative or NaN entry.

  Under jit the values are unknown at trace time, so traced inputs pass.
  """
  if value is None or isinstance(value, jax.core.Tracer):
    return
  v = np.asarray(value, dtype=np.float64)
  bad = ~(v >= 0)
  if bad.any():
    first = v[bad].flat[0]
    raise ValueError(f"{name} must be >= 0 (a variance); got {int(bad.sum())} negative or NaN "
                     f"entries, e.g. {name}={float(first)!r} at index "
                     f"{tuple(int(i) for i in np.argwhere(bad)[0])}")


def check_epsilon(epsilon: float) -> None:
  if not epsilon > 0:
    raise ValueError(f"epsilon must be > 0 so that 1/sqrt(var + epsilon) is finite; got epsilon={epsilon!r}")


def check_momentum(momentum: float) -> None:
  if not 0.0 <= momentum <= 1.0:
    raise ValueError(f"momentum must be in [0, 1] (flax convention: running = momentum * running + "
                     f"(1 - momentum) * batch); got momentum={momentum!r}")


def check_mask(mask: Any, shape: Sequence[int]) -> None:
  if mask is None:
    return
  try:
    broadcast = np.broadcast_shapes(np.shape(mask), tuple(shape))
  except ValueError:
    broadcast = None
  if broadcast != tuple(shape):
    raise ValueError(f"mask of shape {np.shape(mask)} does not broadcast to the input shape {tuple(shape)}")


def check_axis_name(axis_name: Any) -> None:
  """Fails early, and readably, when ``axis_name`` is not bound by pmap/shard_map/vmap."""
  if axis_name is None:
    return
  try:
    lax.axis_size(axis_name)
  except NameError:
    raise ValueError(
        f"axis_name={axis_name!r} is not bound: cross-device statistics need the call to run "
        f"inside jax.pmap / jax.shard_map / jax.vmap with axis_name={axis_name!r}. Outside of "
        f"them pass axis_name=None (Module.init skips the collective automatically); under "
        f"jax.jit with sharded inputs no axis_name is needed.") from None


def check_feature_params(name: str, param: Any, expected: Sequence[int]) -> None:
  if param is not None and tuple(np.shape(param)) != tuple(expected):
    raise ValueError(f"{name} has shape {tuple(np.shape(param))} but the input's feature axes have "
                     f"shape {tuple(expected)}")


def check_not_single_value(name: str, shape: Sequence[int], stat_axes: Sequence[int],
                           axis_name: Any, mask: Any,
                           hint: str = "Use a larger batch or use_running_average=True") -> None:
  """Refuses training-mode statistics of one value each (variance 0: the output is the bias).

  With ``axis_name`` or a ``mask`` the count is only known at run time, so
  those cases are let through.
  """
  if axis_name is None and mask is None and math.prod(shape[a] for a in stat_axes) == 1:
    raise ValueError(
        f"{name} in training mode on an input of shape {tuple(shape)} computes each statistic "
        f"from a single value (variance 0, output = bias). {hint}")


def hashable_groups(axis_index_groups: Any) -> Any:
  if axis_index_groups is None:
    return None
  return tuple(tuple(int(i) for i in group) for group in axis_index_groups)


def output_dtype(dtype: Any, *arrays: Array | None) -> jnp.dtype:
  """flax.linen's rule: ``dtype`` if given, else the promoted type of the inputs and params."""
  if dtype is not None:
    return jnp.dtype(dtype)
  return jnp.result_type(*[a for a in arrays if a is not None])


def broadcast_param(param: Array | None, ndim: int, feature_axes: tuple[int, ...]) -> Array | None:
  """Reshapes a parameter of the feature shape to broadcast against ``x``."""
  if param is None:
    return None
  shape = [1] * ndim
  for axis, size in zip(feature_axes, jnp.shape(param)):
    shape[axis] = size
  return jnp.reshape(param, shape)
