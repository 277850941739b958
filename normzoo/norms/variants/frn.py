"""Filter response normalization with a thresholded linear unit (Singh & Krishnan,
"Filter Response Normalization Layer: Eliminating Batch Dependence in the
Training of Deep Neural Networks", CVPR 2020; arXiv 2019).

Per example ``n`` and channel ``c`` of ``x`` (N, ..., C), with the mean
over the spatial axes (no centring)::

    nu2[n, c] = mean_hw x[n, ..., c]^2
    y = max(scale * x / sqrt(nu2 + eps) + bias, tau)          (TLU)
    eps = epsilon + |eps_learned|   (learned_epsilon; else eps = epsilon)

``scale``, ``bias``, ``tau`` are (C,). The paper replaces BN + ReLU with
FRN + TLU; normzoo models still apply their activation after the norm,
``relu(max(y, tau)) = max(y, max(tau, 0))``; ``use_tlu=False`` gives plain FRN.

(N, C) input: the spatial mean is over a single value, ``nu2 = x^2``, and
with a fixed tiny epsilon ``y`` is ``scale * sign(x) + bias``. The paper
makes epsilon learnable for exactly this case, so (N, C) input requires
``learned_epsilon=True``.

The mean of squares is computed without overflow for any input magnitude
(see :mod:`normzoo.norms.variants.rms`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from normzoo.norms import _checks
from normzoo.norms._checks import output_dtype
from normzoo.norms.stats import stat_dtype
from normzoo.norms.variants.rms import rms_norm, scaled_inverse_rms

Array = jax.Array

__all__ = ["filter_response_norm"]


def filter_response_norm(x: Array, scale: Array | None = None, bias: Array | None = None,
                         tau: Array | None = None, *, epsilon: float = 1e-6,
                         learned_epsilon: Array | None = None, dtype: Any = None) -> Array:
  """FRN (+ TLU if ``tau`` is given) of ``x`` (N, ..., C); parameters (C,), ``learned_epsilon`` ().

  Returns an array of the shape of ``x``.
  """
  if x.ndim < 2:
    raise ValueError(f"filter_response_norm needs an input of shape (N, ..., C); got shape "
                     f"{tuple(x.shape)}")
  _checks.check_epsilon(epsilon)
  channels = (x.shape[-1],)
  for name, value in (("scale", scale), ("bias", bias), ("tau", tau)):
    _checks.check_feature_params(name, value, channels)
  axes = tuple(range(1, x.ndim - 1))
  if learned_epsilon is None:
    # A fixed epsilon: RMSNorm's kernel (hand-written backward, overflow
    # check instead of a scaling pass) with the mean over the spatial axes.
    y = rms_norm(x, scale, reduction_axes=axes, feature_axes=-1, epsilon=epsilon,
                 dtype=stat_dtype(x.dtype))
  else:
    # Epsilon is a parameter here, so its gradient needs plain autodiff.
    s, inv = scaled_inverse_rms(x, axes, epsilon + jnp.abs(learned_epsilon))
    y = (x.astype(inv.dtype) * s) * inv
    if scale is not None:
      y = y * scale.astype(y.dtype)
  if bias is not None:
    y = y + bias.astype(y.dtype)
  if tau is not None:
    # where() rather than maximum(): same values, and its gradient (no 0.5
    # split at ties) fuses into far fewer full-size passes on XLA:CPU.
    tau_y = tau.astype(y.dtype)
    y = jnp.where(y > tau_y, y, tau_y)
  return y.astype(output_dtype(dtype, x, scale, bias, tau))
