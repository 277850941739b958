"""Weight reparametrizations: spectral normalization and weight normalization.

Pure functions of arrays (no flax), shared by the linen modules
(``normzoo.norms.reparam_modules``) and the nnx modules (``normzoo.nnx.reparam``).

* Spectral normalization (Miyato, Kataoka, Koyama & Yoshida, "Spectral
  Normalization for Generative Adversarial Networks", ICLR 2018): the kernel,
  viewed as the matrix ``W = kernel.reshape(-1, kernel.shape[-1])`` (flax's
  reshape: every leading axis flattened into rows, the output features as
  columns), is divided by an estimate of its largest singular value. Power
  iteration carries a row vector ``u`` of shape ``(1, C_out)`` from call to
  call::

      v = l2n(u @ W.T);  u = l2n(v @ W)     (n_steps times)
      sigma = v @ W @ u.T;  W_bar = W / sigma

  ``u`` and ``v`` are constants for the gradient (``stop_gradient``), as in
  the paper and in flax.

* Weight normalization (Salimans & Kingma, "Weight Normalization: A Simple
  Reparameterization to Accelerate Training of Deep Neural Networks", NeurIPS
  2016): ``w = g * v / ||v||`` with the norm taken over every axis that is not
  a feature axis (flax's ``feature_axes``: one norm and one ``g`` per feature).

``l2n(x) = x * rsqrt(sum(x**2) + epsilon)``, with epsilon inside the square
root exactly as flax does, so outputs match flax's. All arithmetic is float32
(float64 for float64 weights) whatever the weight dtype, so bf16/fp16 kernels
do not lose the norm to a half-precision sum of squares.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from normzoo.norms import _checks
from normzoo.norms.stats import stat_dtype

Array = jax.Array

__all__ = ["l2_normalize", "power_iteration", "spectral_normalize", "weight_feature_axes",
           "weight_normalize"]


def check_reparam_epsilon(epsilon: float) -> None:
  """epsilon > 0 keeps ``rsqrt(sum(x**2) + epsilon)`` finite for an all-zero vector."""
  if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon > 0:
    raise ValueError(f"epsilon must be a number > 0 so that rsqrt(sum(x**2) + epsilon) is finite "
                     f"for a zero vector; got epsilon={epsilon!r}")


def check_n_steps(n_steps: Any) -> None:
  """Power iteration needs a whole number of steps, at least one."""
  if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
    raise ValueError(f"n_steps must be an int >= 1 (power-iteration steps per call); "
                     f"got n_steps={n_steps!r}")


def l2_normalize(x: Array, axis: int | tuple[int, ...] | None = None,
                 epsilon: float = 1e-12) -> Array:
  """``x * rsqrt(sum(x**2, axis) + epsilon)``, the sum kept over ``axis`` (None: all axes).

  Same dtype as ``x``: callers pass float32/float64 arrays.
  """
  return x * lax.rsqrt(jnp.sum(x * x, axis=axis, keepdims=True) + epsilon)


def as_matrix(kernel: Array, *, error_on_non_matrix: bool = False,
              name: str = "kernel") -> Array:
  """The kernel viewed as flax does: ``(prod(shape[:-1]), shape[-1])``.

  Raises:
    ValueError: ndim < 2, or ndim > 2 with ``error_on_non_matrix``.
  """
  shape = tuple(jnp.shape(kernel))
  if len(shape) < 2:
    raise ValueError(f"spectral normalization needs a {name} of ndim >= 2 (a matrix, or a tensor "
                     f"flattened to (-1, shape[-1])); got {name} of shape {shape}")
  if len(shape) > 2:
    if error_on_non_matrix:
      raise ValueError(f"{name} of shape {shape} is {len(shape)}D but error_on_non_matrix=True "
                       f"(pass error_on_non_matrix=False to flatten it to (-1, {shape[-1]}))")
    kernel = jnp.reshape(kernel, (-1, shape[-1]))
  return kernel


def power_iteration(matrix: Array, u: Array, *, n_steps: int = 1,
                    epsilon: float = 1e-12) -> tuple[Array, Array, Array]:
  """``n_steps`` of power iteration on ``matrix`` (M, N) from ``u`` (1, N).

  Returns ``(u, v, sigma)`` in the compute dtype (float32, or float64 for
  float64 input): ``u`` (1, N), ``v`` (1, M) with ``u`` and ``v`` gradient
  constants, and ``sigma = v @ matrix @ u.T``, the largest singular value's
  estimate, differentiable through ``matrix`` only.
  """
  check_n_steps(n_steps)
  check_reparam_epsilon(epsilon)
  if matrix.ndim != 2:
    raise ValueError(f"power_iteration needs a 2D matrix; got shape {tuple(matrix.shape)}")
  if tuple(jnp.shape(u)) != (1, matrix.shape[-1]):
    raise ValueError(f"u has shape {tuple(jnp.shape(u))} but the kernel viewed as a matrix has "
                     f"shape {tuple(matrix.shape)}, so u must have shape (1, {matrix.shape[-1]})")
  compute = stat_dtype(jnp.result_type(matrix.dtype, jnp.asarray(u).dtype))
  w = matrix.astype(compute)
  u = jnp.asarray(u).astype(compute)
  v = None
  for _ in range(int(n_steps)):
    v = l2_normalize(u @ w.T, epsilon=epsilon)
    u = l2_normalize(v @ w, epsilon=epsilon)
  u = lax.stop_gradient(u)
  v = lax.stop_gradient(v)
  sigma = (v @ w @ u.T)[0, 0]
  return u, v, sigma


def spectral_normalize(kernel: Array, u: Array, *, n_steps: int = 1, epsilon: float = 1e-12,
                       error_on_non_matrix: bool = False,
                       dtype: Any = None) -> tuple[Array, Array, Array]:
  """Spectrally normalized kernel, with the updated power-iteration state.

  Args:
    kernel: weights of ndim >= 2, viewed as ``(-1, kernel.shape[-1])``.
    u: ``(1, kernel.shape[-1])`` power-iteration vector from the last call.
    n_steps: power-iteration steps (int >= 1).
    epsilon: inside the square root of each l2 normalization (> 0).
    error_on_non_matrix: refuse kernels of ndim > 2 instead of flattening.
    dtype: dtype of the returned kernel; None gives ``result_type(kernel, u)``
      (flax's rule).

  Returns:
    ``(kernel / sigma, u_new, sigma)``: the kernel in its original shape
    (unchanged where ``sigma == 0``), ``u_new`` in ``u``'s dtype and
    ``sigma`` (a scalar) in ``u``'s dtype.
  """
  check_n_steps(n_steps)
  check_reparam_epsilon(epsilon)
  kernel = jnp.asarray(kernel)
  u = jnp.asarray(u)
  matrix = as_matrix(kernel, error_on_non_matrix=error_on_non_matrix)
  u_new, _, sigma = power_iteration(matrix, u, n_steps=n_steps, epsilon=epsilon)
  w = kernel.astype(u_new.dtype)
  w_bar = w / jnp.where(sigma != 0, sigma, 1)
  out_dtype = jnp.result_type(kernel.dtype, u.dtype) if dtype is None else dtype
  return w_bar.astype(out_dtype), u_new.astype(u.dtype), sigma.astype(u.dtype)


def weight_feature_axes(ndim: int, feature_axes: int | Iterable[int] | None,
                        shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
  """Sorted non-negative feature axes; None means none (one norm over the whole array)."""
  if feature_axes is None:
    return ()
  if isinstance(feature_axes, bool) or not isinstance(feature_axes, (int, Iterable)):
    raise ValueError(f"feature_axes must be an int, a sequence of ints or None; "
                     f"got feature_axes={feature_axes!r}")
  return _checks.canonical_axes(feature_axes, ndim, "feature_axes", shape)


def weight_normalize(v: Array, scale: Array | None = None, *,
                     feature_axes: int | Iterable[int] | None = -1, epsilon: float = 1e-12,
                     dtype: Any = None) -> Array:
  """``scale * v / ||v||``, one norm per feature (the norm over all other axes).

  Args:
    v: weights of any rank.
    scale: ``g`` of shape ``tuple(v.shape[a] for a in feature_axes)`` (sorted
      axes), or None for ``v / ||v||``.
    feature_axes: axes that index features (flax's meaning: default the last;
      None or () gives one Frobenius norm and a scalar ``g``).
    epsilon: inside the square root (> 0).
    dtype: dtype of the result; None gives ``result_type(v, scale)`` (flax's rule).

  Returns:
    An array of ``v``'s shape.
  """
  check_reparam_epsilon(epsilon)
  v = jnp.asarray(v)
  axes = weight_feature_axes(v.ndim, feature_axes, v.shape)
  reduction = tuple(a for a in range(v.ndim) if a not in axes)
  feature_shape = tuple(v.shape[a] for a in axes)
  compute = stat_dtype(v.dtype if scale is None else jnp.result_type(v.dtype, scale.dtype))
  w = l2_normalize(v.astype(compute), axis=reduction, epsilon=epsilon)
  if scale is not None:
    scale = jnp.asarray(scale)
    if tuple(scale.shape) != feature_shape:
      raise ValueError(f"scale has shape {tuple(scale.shape)} but v of shape {tuple(v.shape)} with "
                       f"feature_axes={feature_axes!r} needs shape {feature_shape}")
    broadcast = [1] * v.ndim
    for a in axes:
      broadcast[a] = v.shape[a]
    w = w * scale.astype(compute).reshape(broadcast)
  if dtype is None:
    dtype = v.dtype if scale is None else jnp.result_type(v.dtype, scale.dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
      dtype = jnp.promote_types(jnp.float32, dtype)
  return w.astype(dtype)
