"""Weight standardization (Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training with
Batch-Channel Normalization and Weight Standardization", arXiv 2019).

The kernel ``W`` of shape (*window, C_in / groups, C_out) is standardized per
output channel over all other axes before every convolution::

    W_hat[..., o] = (W[..., o] - mean(W[..., o])) / sqrt(var(W[..., o]) + epsilon)

(biased variance, statistics in float32). The stored parameter stays ``W``
(so optimizers and weight decay see the raw weights, as in the paper); the
convolution uses ``W_hat``. Usually paired with group norm. The linen and
nnx convolutions that apply it: :mod:`normzoo.norms.conv`,
:mod:`normzoo.nnx.conv`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms.stats import stat_dtype

Array = jax.Array

__all__ = ["standardize_kernel"]


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
