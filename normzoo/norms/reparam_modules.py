"""linen wrappers ``SpectralNorm`` and ``WeightNorm`` around any layer.

Same fields, defaults, variable names, collections and tree paths as
``flax.linen.SpectralNorm`` / ``flax.linen.WeightNorm``, so variables made by
flax's load into these and give the same outputs. The math is in
``normzoo.norms.reparam``; the modules only declare variables.

Differences from flax (each tested in ``tests/norms/test_reparam.py``):

* power iteration and the weight norm run in float32 for bf16/fp16 weights
  (flax's WeightNorm sums squares in the weights' dtype, and its SpectralNorm
  iterates in half precision when its ``param_dtype`` is half);
* bad arguments fail with a ValueError naming them: ``n_steps < 1`` (flax
  silently skips the normalization), ``epsilon <= 0``, feature axes out of range;
* only the ``params`` collection is reparametrized: a wrapped layer's own
  ``batch_stats`` (a BatchNorm inside the wrapped block) are left as they are,
  where flax would spectrally normalize any 2D statistic too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from normzoo.norms import reparam

__all__ = ["SpectralNorm", "WeightNorm"]


def _key_name(key: Any) -> str:
  """A tree path entry as flax names it (``DictKey.key``)."""
  return str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))))


class SpectralNorm(nn.Module):
  """Divides every kernel (ndim >= 2) of ``layer_instance`` by its largest singular value.

  Variables: ``<collection_name>/<layer name>/<path>/u`` (1, C_out) and
  ``.../sigma`` () in this module's scope, next to the wrapped layer's params,
  exactly as flax.linen.SpectralNorm. Call with ``update_stats=True`` and
  ``mutable=[collection_name]`` in training; ``update_stats=False`` leaves u
  and sigma as they are (deterministic evaluation). Scalars and vectors
  (biases) are passed through unchanged.

  Attributes:
    layer_instance: the wrapped module.
    n_steps: power-iteration steps per call (int >= 1).
    epsilon: inside the square root of each l2 normalization (> 0).
    dtype: dtype of the normalized weights (None: ``result_type(kernel, u)``).
    param_dtype: dtype of ``u`` and ``sigma``.
    error_on_non_matrix: refuse kernels of ndim > 2 instead of flattening them
      to ``(-1, shape[-1])``.
    collection_name: collection of ``u`` and ``sigma``.
  """

  layer_instance: nn.Module
  n_steps: int = 1
  epsilon: float = 1e-12
  dtype: Any = None
  param_dtype: Any = jnp.float32
  error_on_non_matrix: bool = False
  collection_name: str = "batch_stats"

  @nn.compact
  def __call__(self, *args, update_stats: bool, **kwargs):
    """The wrapped layer's output, computed with spectrally normalized params."""
    reparam.check_n_steps(self.n_steps)
    reparam.check_reparam_epsilon(self.epsilon)

    def normalize(path, value):
      return self._normalize_one(path, value, update_stats)

    return nn.map_variables(
        lambda layer: layer(*args, **kwargs),
        mapped_collections="params",
        trans_in_fn=lambda vs: jax.tree_util.tree_map_with_path(normalize, vs),
        init=self.is_initializing(),
        mutable=True,
    )(self.layer_instance)

  def _normalize_one(self, path, value, update_stats: bool):
    value = jnp.asarray(value)
    if value.ndim <= 1:
      return value
    # path[0] is the collection ("params"); flax's names leave it out.
    name = self.layer_instance.name + "/" + "/".join(_key_name(k) for k in path[1:])
    matrix_shape = reparam.as_matrix(value, error_on_non_matrix=self.error_on_non_matrix,
                                     name=f"parameter {name}").shape
    u_name, sigma_name = name + "/u", name + "/sigma"
    u_var = self.variable(
        self.collection_name, u_name, jax.random.normal,
        self.make_rng("params") if not self.has_variable(self.collection_name, u_name) else None,
        (1, matrix_shape[-1]), self.param_dtype)
    sigma_var = self.variable(self.collection_name, sigma_name, jnp.ones, (), self.param_dtype)
    w_bar, u, sigma = reparam.spectral_normalize(
        value, u_var.value, n_steps=self.n_steps, epsilon=self.epsilon,
        error_on_non_matrix=self.error_on_non_matrix, dtype=self.dtype)
    if update_stats:
      u_var.value = u
      sigma_var.value = sigma
    return w_bar


class WeightNorm(nn.Module):
  """``w = g * v / ||v||`` for the params of ``layer_instance`` that ``variable_filter`` selects.

  Variables: ``params/<layer name>/<path>/scale`` (the feature shape) in this
  module's scope when ``use_scale``, as flax.linen.WeightNorm; the wrapped
  layer keeps ``v``.

  Attributes:
    layer_instance: the wrapped module.
    epsilon: inside the square root of the l2 norm (> 0).
    dtype: dtype of the normalized weights (None: ``result_type(v, g)``).
    param_dtype: dtype of ``g``.
    use_scale: learn ``g`` (else ``w = v / ||v||``).
    scale_init: initializer of ``g``.
    feature_axes: axes with one norm and one ``g`` each (default the last;
      None: one norm over the whole array and a scalar ``g``).
    variable_filter: normalize a param when one of these strings is a
      substring of its path ``<layer name>/<path>`` (None or empty: all params).
  """

  layer_instance: nn.Module
  epsilon: float = 1e-12
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_scale: bool = True
  scale_init: Callable[..., Any] = nn.initializers.ones
  feature_axes: int | Iterable[int] | None = -1
  variable_filter: Iterable[str] | None = dataclasses.field(default_factory=lambda: {"kernel"})

  @nn.compact
  def __call__(self, *args, **kwargs):
    """The wrapped layer's output, computed with weight-normalized params."""
    reparam.check_reparam_epsilon(self.epsilon)
    return nn.map_variables(
        lambda layer: layer(*args, **kwargs),
        mapped_collections="params",
        trans_in_fn=lambda vs: jax.tree_util.tree_map_with_path(self._normalize_one, vs),
        init=self.is_initializing(),
    )(self.layer_instance)

  def _normalize_one(self, path, value):
    value = jnp.asarray(value)
    name = self.layer_instance.name + "/" + "/".join(_key_name(k) for k in path[1:])
    if self.variable_filter and not any(f in name for f in self.variable_filter):
      return value
    axes = reparam.weight_feature_axes(value.ndim, self.feature_axes, value.shape)
    scale = None
    if self.use_scale:
      scale = self.param(name + "/scale", self.scale_init,
                         tuple(value.shape[a] for a in axes), self.param_dtype)
    return reparam.weight_normalize(value, scale, feature_axes=axes, epsilon=self.epsilon,
                                    dtype=self.dtype)
