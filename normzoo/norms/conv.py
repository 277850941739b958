"""Weight-standardized convolution (Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training
with Batch-Channel Normalization and Weight Standardization", arXiv 2019) and
the name -> convolution registry used by ``config.conv``.

The kernel ``W`` of shape (*window, C_in / groups, C_out) is standardized per
output channel over all other axes before every convolution::

    W_hat[..., o] = (W[..., o] - mean(W[..., o])) / sqrt(var(W[..., o]) + epsilon)

(biased variance, statistics in float32). The stored parameter stays ``W``
(so optimizers and weight decay see the raw weights, as in the paper); the
convolution uses ``W_hat``. Usually paired with group norm.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms import registry
from normzoo.norms.stats import stat_dtype

Array = jax.Array

__all__ = ["CONVS", "WeightStandardizedConv", "available_convs", "get_conv",
           "standardize_kernel", "weight_standardized_conv"]


def standardize_kernel(kernel: Array, epsilon: float = 1e-5) -> Array:
  """Zero mean, unit (biased) variance per output channel (last axis); same shape and dtype."""
  if kernel.ndim < 2:
    raise ValueError(f"standardize_kernel needs a kernel (..., C_out) of rank >= 2; got shape "
                     f"{tuple(kernel.shape)}")
  w = kernel.astype(stat_dtype(kernel.dtype))
  axes = tuple(range(kernel.ndim - 1))
  mean = jnp.mean(w, axis=axes, keepdims=True)
  var = jnp.mean(jnp.square(w - mean), axis=axes, keepdims=True)
  return ((w - mean) * lax.rsqrt(var + epsilon)).astype(kernel.dtype)


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


weight_standardized_conv = WeightStandardizedConv

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
