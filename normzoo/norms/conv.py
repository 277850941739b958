"""The weight-standardized flax.linen convolution and the name -> convolution registry.

``config.conv`` picks a constructor from :data:`CONVS`; the standardization
itself is :func:`normzoo.norms.weight_std.standardize_kernel`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax

from normzoo.norms import registry
from normzoo.norms.weight_std import standardize_kernel

Array = jax.Array

__all__ = ["CONVS", "WeightStandardizedConv", "available_convs", "get_conv"]


class WeightStandardizedConv(nn.Conv):
  """``flax.linen.Conv`` (same fields, variables ``kernel``/``bias``) with a standardized kernel.

  Attributes (besides Conv's):
    epsilon: added to the kernel variance (the raw kernel's variance is
      about ``2 / fan_in`` under He init, so 1e-5 is negligible).

  With Conv's ``mask`` field, the kernel is standardized first and masked
  after (the statistics include the masked-out entries).
  """
  epsilon: float = 1e-5

  # Conv's __call__ reads its kernel through ``self.param('kernel', ...)``;
  # intercepting that read keeps every other behaviour of Conv (padding,
  # grouping, masks, dtype promotion) without copying it. ``nowrap``: this
  # is a helper, not a submodule method for flax's naming machinery.
  @nn.nowrap
  def param(self, name: str, init_fn: Callable[..., Any], *init_args: Any, unbox: bool = True,
            **init_kwargs: Any) -> Any:
    value = super().param(name, init_fn, *init_args, unbox=unbox, **init_kwargs)
    return standardize_kernel(value, self.epsilon) if name == "kernel" else value


CONVS: dict[str, Callable[..., nn.Module]] = {
    "standard": nn.Conv,
    "ws": WeightStandardizedConv,
}


def available_convs() -> list[str]:
  """Sorted names accepted by :func:`get_conv`."""
  return sorted(CONVS)


def get_conv(name: str, **overrides: Any) -> Callable[..., nn.Module]:
  """The convolution constructor ``name`` (``'standard'``, ``'ws'``), with ``overrides`` bound.

  Raises:
    ValueError: unknown ``name``; the message lists the valid names.
  """
  constructor = registry.lookup(CONVS, name, kind="conv")
  return functools.partial(constructor, **overrides) if overrides else constructor
