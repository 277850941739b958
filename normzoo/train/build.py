"""Config -> normalizer constructor and model."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from normzoo.models import get_model
from normzoo.norms.conv import get_conv
from normzoo.norms.registry import get_norm, uses_batch_statistics
from normzoo.train.distributed import AXIS


def _as_dict(value: Any) -> dict[str, Any]:
  if not value:
    return {}
  return dict(value.to_dict() if hasattr(value, "to_dict") else value)


def norm_kwargs(config: Any, norm: str | None = None) -> dict[str, Any]:
  """Keyword arguments for normalizer ``norm`` (default ``config.norm``).

  ``config.per_norm_kwargs[norm]`` (recipe defaults per normalizer, e.g. batch
  norm momentum) updated by ``config.norm_kwargs`` (the user's overrides for
  the chosen norm).
  """
  norm = str(config.norm) if norm is None else norm
  per_norm = _as_dict(config.get("per_norm_kwargs", None))
  return {**_as_dict(per_norm.get(norm)), **_as_dict(config.get("norm_kwargs", None))}


def make_norm(config: Any) -> functools.partial:
  """The normalizer constructor: ``get_norm(config.norm, **norm_kwargs(config))``.

  Batch-statistics normalizers get ``axis_name='batch'`` (the train step's
  mesh axis) when ``config.sync_batch_stats`` is true, so they normalize with
  the statistics of the global batch; otherwise each device uses its own.

  Raises:
    ValueError: unknown norm name or an argument the norm does not take.
  """
  kwargs = norm_kwargs(config)
  ctor = get_norm(str(config.norm), **kwargs)
  if uses_batch_statistics(ctor) and config.get("sync_batch_stats", True):
    ctor = get_norm(str(config.norm), **{**kwargs, "axis_name": AXIS})
  return ctor


def compute_dtype(config: Any) -> Any:
  """bfloat16 for ``half_precision`` (params and norm statistics stay float32)."""
  return jnp.bfloat16 if config.get("half_precision", False) else jnp.float32


def make_model(config: Any, num_classes: int) -> nn.Module:
  """``get_model(config.model, **config.model_kwargs, ...)`` with the configured normalizer.

  Raises:
    ValueError: unknown model, norm or norm_position, or a model argument the
      model does not take (from the registries).
  """
  return get_model(str(config.model), **_as_dict(config.get("model_kwargs", None)),
                   num_classes=num_classes, norm=make_norm(config),
                   conv=get_conv(str(config.get("conv", "standard"))),
                   norm_position=str(config.norm_position), dtype=compute_dtype(config),
                   kernel_init_scale=float(config.get("kernel_init_scale", 1.0)),
                   **_dropout(config))


def _dropout(config: Any) -> dict[str, float]:
  # Passed only when set, so a user model without the field keeps working.
  rate = float(config.get("dropout_rate", 0.0) or 0.0)
  return {"dropout_rate": rate} if rate else {}
