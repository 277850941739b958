"""Independent references: float64 NumPy forward passes and naive float64 JAX
implementations (differentiated by plain autodiff) for gradient checks.

Nothing here imports normzoo: these are the oracles normzoo is checked against.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np


def np_normalize(x, axes, scale=None, bias=None, eps=1e-5, mask=None, param_axes=None):
  """Two-pass float64 normalization over ``axes``; params broadcast along ``param_axes``.

  Returns (y, mean, var) with mean/var keeping the reduced axes.
  """
  x = np.asarray(x, np.float64)
  if mask is None:
    valid = np.ones(x.shape, bool)
  else:
    valid = np.broadcast_to(np.asarray(mask, bool), x.shape)
  count = valid.sum(axis=axes, keepdims=True)
  mean = np.where(valid, x, 0).sum(axis=axes, keepdims=True) / count
  var = np.where(valid, (x - mean) ** 2, 0).sum(axis=axes, keepdims=True) / count
  y = (x - mean) / np.sqrt(var + eps)
  if param_axes is not None:
    shape = [1] * x.ndim
    for a in param_axes:
      shape[a] = x.shape[a]
    if scale is not None:
      y = y * np.asarray(scale, np.float64).reshape(shape)
    if bias is not None:
      y = y + np.asarray(bias, np.float64).reshape(shape)
  return y, mean, var


def np_group_norm(x, groups, scale, bias, eps):
  n, *spatial, c = x.shape
  xg = np.asarray(x, np.float64).reshape(n, *spatial, groups, c // groups)
  axes = tuple(range(1, xg.ndim - 2)) + (xg.ndim - 1,)
  y, _, _ = np_normalize(xg, axes, eps=eps)
  y = y.reshape(x.shape)
  return y * np.asarray(scale, np.float64) + np.asarray(bias, np.float64)


def np_rms_norm(x, eps, scale=None):
  """Float64 RMS normalization over the last axis: ``x / sqrt(mean(x^2) + eps) * scale``."""
  x = np.asarray(x, np.float64)
  y = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps)
  return y if scale is None else y * np.asarray(scale, np.float64)


@contextlib.contextmanager
def float64():
  """Enables float64 in JAX for the naive references, restoring the flag afterwards."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", previous)


def naive_normalize(x, axes, scale, bias, eps, mask=None):
  """Textbook normalization in whatever precision x has; autodiff gives the gradients."""
  if mask is None:
    valid = jnp.ones(x.shape, x.dtype)
  else:
    valid = jnp.broadcast_to(jnp.asarray(mask, x.dtype), x.shape)
  count = valid.sum(axis=axes, keepdims=True)
  mean = (x * valid).sum(axis=axes, keepdims=True) / count
  var = (((x - mean) ** 2) * valid).sum(axis=axes, keepdims=True) / count
  return (x - mean) / jnp.sqrt(var + eps) * scale + bias


def naive_rms_norm(x, axes, scale, eps, mask=None):
  """Textbook RMS normalization over the valid elements; autodiff gives the gradients."""
  valid = jnp.ones(x.shape, x.dtype) if mask is None else jnp.broadcast_to(
      jnp.asarray(mask, x.dtype), x.shape)
  ms = (x * x * valid).sum(axis=axes, keepdims=True) / valid.sum(axis=axes, keepdims=True)
  return x / jnp.sqrt(ms + eps) * scale


def naive_grads(loss_of_inputs, *args):
  """Gradients of ``loss_of_inputs`` at ``args`` in float64."""
  with float64():
    args64 = [jnp.asarray(np.asarray(a, np.float64)) for a in args]
    grads = jax.grad(loss_of_inputs, argnums=tuple(range(len(args))))(*args64)
    return [np.asarray(g) for g in grads]
