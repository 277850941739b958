"""Folding an evaluation-mode batch norm into the linear layer before it.

For a dense or conv layer ``z = x * W + b`` (kernel's last axis = output
features) followed by batch norm with running statistics, per output
feature ``o``::

    BN(z)_o = (z_o - mean_o) * a_o + beta_o,   a_o = scale_o / sqrt(var_o + epsilon)
            = x * (W[..., o] a_o) + ((b_o - mean_o) a_o + beta_o)

so the pair is one layer with ``W' = W * a`` and ``b' = (b - mean) * a + beta``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms import _checks
from normzoo.norms.stats import stat_dtype

Array = jax.Array

__all__ = ["fold_batch_norm"]


def fold_batch_norm(kernel: Array, bias: Array | None, scale: Array | None,
                    bn_bias: Array | None, mean: Array, var: Array, epsilon: float = 1e-5
                    ) -> tuple[Array, Array]:
  """``(kernel', bias')`` of the layer ``(kernel, bias)`` followed by eval-mode batch norm.

  Args:
    kernel: (..., C_out), e.g. Dense (C_in, C_out) or Conv (kh, kw, C_in/groups, C_out).
    bias: (C_out,) or None (a layer without bias).
    scale, bn_bias: the norm's ``params`` (C_out,) or None (``use_scale`` /
      ``use_bias`` False).
    mean, var: the norm's ``batch_stats`` (C_out,).
    epsilon: the norm's epsilon.

  Returns:
    The folded kernel (shape and dtype of ``kernel``) and bias (C_out,), computed
    in float32 (float64 for float64 input). Use them in a layer with a bias.
  """
  if jnp.ndim(kernel) < 2:
    raise ValueError(f"fold_batch_norm: kernel must have shape (..., C_out); got "
                     f"{tuple(jnp.shape(kernel))}")
  _checks.check_epsilon(epsilon)
  c = (kernel.shape[-1],)
  for name, value in (("bias", bias), ("scale", scale), ("bn_bias", bn_bias), ("mean", mean),
                      ("var", var)):
    if value is not None and tuple(jnp.shape(value)) != c:
      raise ValueError(f"fold_batch_norm: {name} has shape {tuple(jnp.shape(value))} but the "
                       f"kernel has {c[0]} output features (its last axis)")
  # A negative variance gives NaN kernels through rsqrt; caught here when concrete.
  _checks.check_nonnegative_if_concrete("var", var)
  dtype = stat_dtype(kernel.dtype)
  a = lax.rsqrt(jnp.asarray(var, dtype) + epsilon)
  if scale is not None:
    a = a * jnp.asarray(scale, dtype)
  b = jnp.zeros(c, dtype) if bias is None else jnp.asarray(bias, dtype)
  new_bias = (b - jnp.asarray(mean, dtype)) * a
  if bn_bias is not None:
    new_bias = new_bias + jnp.asarray(bn_bias, dtype)
  new_kernel = (kernel.astype(dtype) * a).astype(kernel.dtype)
  out_dtype = kernel.dtype if bias is None else jnp.result_type(bias)
  return new_kernel, new_bias.astype(out_dtype)
