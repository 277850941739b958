"""Weight-standardized convolution for flax.nnx (Qiao et al., 2019)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx
from jax import lax

from normzoo.norms import registry
from normzoo.norms.weight_std import standardize_kernel

Array = jax.Array

__all__ = ["CONVS", "WeightStandardizedConv", "available_convs", "get_conv"]


@dataclasses.dataclass(frozen=True)
class _StandardizedConv:
  """``lax.conv_general_dilated`` on the standardized kernel.

  A frozen dataclass (compared by value) rather than a closure, so two
  modules with the same epsilon have equal graph definitions and share
  ``nnx.jit`` traces.
  """
  epsilon: float

  def __call__(self, lhs: Array, rhs: Array, *args: Any, **kwargs: Any) -> Array:
    return lax.conv_general_dilated(lhs, standardize_kernel(rhs, self.epsilon), *args, **kwargs)


class WeightStandardizedConv(nnx.Conv):
  """``flax.nnx.Conv`` (same arguments, ``kernel``/``bias`` Params) with a standardized kernel.

  The kernel is standardized per output channel (zero mean, unit variance
  over the other axes) at every call, in float32, as
  :class:`normzoo.WeightStandardizedConv` does; ``epsilon`` is added to the
  kernel variance. Conv's ``mask`` is refused: nnx.Conv applies it before
  the kernel reaches the convolution, which would standardize the masked
  kernel instead of masking the standardized one (the linen module's order).
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int | tuple[int, ...],
               strides: Any = 1, *, epsilon: float = 1e-5, mask: Array | None = None,
               rngs: nnx.Rngs, **kwargs: Any):
    if mask is not None:
      raise ValueError("WeightStandardizedConv (nnx) does not support mask=...: the mask would "
                       "be applied before standardization; use the linen module for masked "
                       "kernels")
    if "conv_general_dilated" in kwargs:
      raise ValueError("WeightStandardizedConv supplies its own conv_general_dilated")
    super().__init__(in_features, out_features, kernel_size, strides, rngs=rngs,
                     conv_general_dilated=_StandardizedConv(float(epsilon)), **kwargs)
    self.epsilon = epsilon


CONVS: dict[str, Callable[..., nnx.Module]] = {
    "standard": nnx.Conv,
    "ws": WeightStandardizedConv,
}


def available_convs() -> list[str]:
  """Sorted names accepted by :func:`get_conv`."""
  return sorted(CONVS)


def get_conv(name: str, **overrides: Any) -> Callable[..., nnx.Module]:
  """The nnx convolution class ``name`` (``'standard'``, ``'ws'``), with ``overrides`` bound."""
  constructor = registry.lookup(CONVS, name, kind="conv")
  return functools.partial(constructor, **overrides) if overrides else constructor
