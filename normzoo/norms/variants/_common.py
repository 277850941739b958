"""Small helpers shared by the research variants."""

from __future__ import annotations

from typing import Any

import jax

from normzoo.norms import _checks

Array = jax.Array

__all__ = ["per_channel_layout", "spatial_axes", "update_running"]


def per_channel_layout(x: Array, axis: Any) -> tuple[tuple[int, ...], tuple[int, ...],
                                                     tuple[int, ...]]:
  """``(feature_axes, reduction_axes, feature_shape)`` of batch-norm-like statistics."""
  feature_axes = _checks.canonical_axes(axis, x.ndim, "axis", x.shape)
  reduction_axes = tuple(a for a in range(x.ndim) if a not in feature_axes)
  return feature_axes, reduction_axes, tuple(x.shape[a] for a in feature_axes)


def spatial_axes(x: Array, name: str) -> tuple[int, ...]:
  """Axes 1..ndim-2 of an (N, ..., C) input; ValueError for (N, C), which has none."""
  if x.ndim < 3:
    raise ValueError(
        f"{name} needs spatial axes: an input of shape (N, ..., C) with at least one axis between "
        f"the batch and channel axes; got shape {tuple(x.shape)}. Its per-example statistics "
        f"would come from single values on (N, C) features; use a norm defined there "
        f"(e.g. 'batch', 'layer', 'rms') for dense layers")
  return tuple(range(1, x.ndim - 1))


def update_running(running: Array, batch: Array, momentum: float) -> Array:
  """flax's convention: ``momentum * running + (1 - momentum) * batch``, in ``running``'s dtype."""
  return (momentum * running + (1.0 - momentum) * batch).astype(running.dtype)
