"""Small helpers shared by the research variants."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax

from normzoo.norms import _checks
from normzoo.norms.functional import _broadcast_param

Array = jax.Array

__all__ = ["broadcast_param", "channel_param", "check_not_single_value", "per_channel_layout",
           "spatial_axes", "update_running"]

broadcast_param = _broadcast_param


def per_channel_layout(x: Array, axis: Any) -> tuple[tuple[int, ...], tuple[int, ...],
                                                     tuple[int, ...]]:
  """``(feature_axes, reduction_axes, feature_shape)`` of batch-norm-like statistics."""
  feature_axes = _checks.canonical_axes(axis, x.ndim, "axis", x.shape)
  reduction_axes = tuple(a for a in range(x.ndim) if a not in feature_axes)
  return feature_axes, reduction_axes, tuple(x.shape[a] for a in feature_axes)


def check_not_single_value(name: str, shape: tuple[int, ...], stat_axes: tuple[int, ...],
                           axis_name: Any, mask: Array | None) -> None:
  """Refuses statistics of one value each (variance 0: the output would be the bias)."""
  if axis_name is None and mask is None and math.prod(shape[a] for a in stat_axes) == 1:
    raise ValueError(
        f"{name} in training mode on an input of shape {tuple(shape)} computes each statistic "
        f"from a single value (variance 0). Use a larger batch or use_running_average=True")


def spatial_axes(x: Array, name: str) -> tuple[int, ...]:
  """Axes 1..ndim-2 of an (N, ..., C) input; ValueError for (N, C), which has none."""
  if x.ndim < 3:
    raise ValueError(
        f"{name} needs spatial axes: an input of shape (N, ..., C) with at least one axis between "
        f"the batch and channel axes; got shape {tuple(x.shape)}. Its per-example statistics "
        f"would come from single values on (N, C) features; use a norm defined there "
        f"(e.g. 'batch', 'layer', 'rms') for dense layers")
  return tuple(range(1, x.ndim - 1))


def channel_param(module: nn.Module, name: str, init: Any, channels: int) -> Array:
  return module.param(name, init, (channels,), module.param_dtype)


def update_running(running: Array, batch: Array, momentum: float) -> Array:
  """flax's convention: ``momentum * running + (1 - momentum) * batch``, in ``running``'s dtype."""
  return (momentum * running + (1.0 - momentum) * batch).astype(running.dtype)
