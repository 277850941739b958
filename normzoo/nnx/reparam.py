"""flax.nnx wrappers ``SpectralNorm`` and ``WeightNorm`` around any nnx layer.

Constructor arguments, defaults, ``rngs``, variable types and state paths as
``flax.nnx.SpectralNorm`` / ``flax.nnx.WeightNorm`` (``batch_stats`` dict of
``nnx.BatchStat`` keyed ``param_path + ('u',)`` / ``('sigma',)``; ``scales``
dict keyed by param path), so ``nnx.update(ours, nnx.state(theirs))`` loads
flax's state. The math is ``normzoo.norms.reparam``, shared with linen.

Where we differ from flax.nnx (google/flax#5576, #5577; tested in
``tests/nnx/test_reparam.py``), following linen and the papers:

* the wrapped layer keeps its raw weights (``v``, ``W``): each call runs the
  layer with the normalized weights and restores the raw ones, so gradients
  and optimizer updates act on the raw parameters. flax.nnx writes the
  normalized weights back into the layer on every call (even with
  ``update_stats=False``), so a second call normalizes an already normalized
  kernel and stores ``sigma ~ 1`` instead of the kernel's spectral norm;
* ``WeightNorm``'s ``g`` are ``nnx.Param`` (trainable, in
  ``nnx.state(model, nnx.Param)``) made in ``param_dtype``; flax.nnx stores
  plain arrays that no optimizer sees;
* float32 math for half-precision weights, and ValueErrors for bad arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, Callable

import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes as nnx_dtypes

from normzoo.norms import reparam
from normzoo.norms.reparam_registry import lookup_reparam

__all__ = ["REPARAMS", "SpectralNorm", "WeightNorm", "get_reparam"]


@contextlib.contextmanager
def _substituted(values: dict[tuple, tuple[nnx.Variable, Any]]) -> Iterator[None]:
  """Temporarily gives each Variable a new value; restores the raw ones on exit."""
  raw = {path: var.get_value() for path, (var, _) in values.items()}
  try:
    for var, new in values.values():
      var.set_value(new)
    yield
  finally:
    for path, (var, _) in values.items():
      var.set_value(raw[path])


def _params(module: nnx.Module) -> list[tuple[tuple, nnx.Variable]]:
  """(path, Variable) for every nnx.Param of ``module``, the Variables themselves."""
  return list(nnx.to_flat_state(nnx.state(module, nnx.Param)))


class SpectralNorm(nnx.Module):
  """Divides every kernel (ndim >= 2) of ``layer_instance`` by its largest singular value.

  Power-iteration state: ``self.batch_stats[path + ('u',)]`` (1, C_out) and
  ``[path + ('sigma',)]`` () as ``nnx.BatchStat``. ``update_stats`` (call
  argument, else the constructor's; ``model.train()`` sets it True and
  ``model.eval()`` False through ``use_running_average``, as flax.nnx) decides
  whether a call stores the new ``u`` and ``sigma``.

  Args:
    layer_instance: the wrapped nnx module.
    n_steps: power-iteration steps per call (int >= 1).
    epsilon: inside the square root of each l2 normalization (> 0).
    dtype: dtype of the normalized weights (None: ``result_type(kernel, u)``).
    param_dtype: dtype of ``u`` and ``sigma``.
    error_on_non_matrix: refuse kernels of ndim > 2 instead of flattening them.
    update_stats: default for the call argument.
    rngs: ``rngs.params()`` draws the initial ``u`` (normal).
  """

  def __init__(self, layer_instance: nnx.Module, *, n_steps: int = 1, epsilon: float = 1e-12,
               dtype: Any = None, param_dtype: Any = jnp.float32,
               error_on_non_matrix: bool = False, update_stats: bool = True,
               rngs: nnx.Rngs):
    reparam.check_n_steps(n_steps)
    reparam.check_reparam_epsilon(epsilon)
    self.layer_instance = layer_instance
    self.n_steps = n_steps
    self.epsilon = epsilon
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.error_on_non_matrix = error_on_non_matrix
    # train()/eval() flip use_running_average; update_stats is its negation.
    self.use_running_average = not update_stats
    batch_stats: dict[tuple, nnx.BatchStat] = {}
    for path, param in _params(layer_instance):
      if param.ndim <= 1:
        continue
      matrix = reparam.as_matrix(param.get_value(), error_on_non_matrix=error_on_non_matrix,
                                 name=f"parameter {'/'.join(map(str, path))}")
      # One key for u and sigma, as flax.nnx (sigma's ones ignore it).
      key = rngs.params()
      batch_stats[path + ("u",)] = nnx.BatchStat(
          nnx.initializers.normal()(key, (1, matrix.shape[-1]), param_dtype))
      batch_stats[path + ("sigma",)] = nnx.BatchStat(jnp.ones((), param_dtype))
    self.batch_stats = nnx.data(batch_stats)

  def __call__(self, x, update_stats: bool | None = None):
    """The wrapped layer's output on ``x``, computed with spectrally normalized kernels."""
    if update_stats is None:
      update_stats = not self.use_running_average
    normalized = {}
    for path, param in _params(self.layer_instance):
      if param.ndim <= 1:
        continue
      u_path, sigma_path = path + ("u",), path + ("sigma",)
      if u_path not in self.batch_stats or sigma_path not in self.batch_stats:
        raise ValueError(f"SpectralNorm has no u/sigma for the parameter {path} of "
                         f"layer_instance: its parameters changed after construction")
      w_bar, u, sigma = reparam.spectral_normalize(
          param.get_value(), self.batch_stats[u_path].get_value(), n_steps=self.n_steps,
          epsilon=self.epsilon, error_on_non_matrix=self.error_on_non_matrix, dtype=self.dtype)
      if update_stats:
        self.batch_stats[u_path].set_value(u)
        self.batch_stats[sigma_path].set_value(sigma)
      normalized[path] = (param, w_bar)
    with _substituted(normalized):
      return self.layer_instance(x)


class WeightNorm(nnx.Module):
  """``w = g * v / ||v||`` for the params of ``layer_instance`` that ``variable_filter`` selects.

  ``g``: ``self.scales[param_path]``, an ``nnx.Param`` of the feature shape
  (when ``use_scale``). The layer keeps ``v``.

  Args:
    layer_instance: the wrapped nnx module.
    feature_axes: axes with one norm and one ``g`` each (default the last;
      None: one norm over the whole array and a scalar ``g``).
    use_scale: learn ``g`` (else ``w = v / ||v||``).
    scale_init: initializer of ``g``, called ``(key, shape, param_dtype)``.
    epsilon: inside the square root (> 0).
    dtype: dtype of the normalized weights (None: ``result_type(v, g)``).
    param_dtype: dtype of ``g``.
    variable_filter: an nnx filter on (path, Param) choosing the params.
    promote_dtype: accepted for flax.nnx compatibility; like flax.nnx's
      WeightNorm, the result dtype follows ``dtype`` and the inputs instead.
    rngs: ``rngs['params']`` is passed to ``scale_init``.
  """

  def __init__(self, layer_instance: nnx.Module, *,
               feature_axes: int | Iterable[int] | None = -1, use_scale: bool = True,
               scale_init: Callable[..., Any] = nnx.initializers.ones, epsilon: float = 1e-12,
               dtype: Any = None, param_dtype: Any = jnp.float32,
               variable_filter: Any = nnx.PathContains("kernel"),
               promote_dtype: Callable[..., Any] = nnx_dtypes.promote_dtype,
               rngs: nnx.Rngs):
    reparam.check_reparam_epsilon(epsilon)
    self.layer_instance = layer_instance
    self.feature_axes = () if feature_axes is None else feature_axes
    self.use_scale = use_scale
    self.scale_init = scale_init
    self.epsilon = epsilon
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.variable_filter = nnx.filterlib.to_predicate(variable_filter)
    self.promote_dtype = promote_dtype
    self.scales: dict | None = None
    selected = [(p, v) for p, v in _params(layer_instance) if self.variable_filter(p, v)]
    # Validates feature_axes against every selected param now, not at the first call.
    axes = {p: reparam.weight_feature_axes(v.ndim, self.feature_axes, v.shape)
            for p, v in selected}
    if use_scale:
      self.scales = nnx.data({
          p: nnx.Param(scale_init(rngs["params"], tuple(v.shape[a] for a in axes[p]), param_dtype))
          for p, v in selected})

  def __call__(self, x, *args, **kwargs):
    """The wrapped layer's output, computed with weight-normalized params."""
    normalized = {}
    for path, param in _params(self.layer_instance):
      if not self.variable_filter(path, param):
        continue
      scale = None
      if self.use_scale:
        if path not in self.scales:
          raise ValueError(f"WeightNorm has no scale for the parameter {path} of "
                           f"layer_instance: its parameters changed after construction")
        scale = self.scales[path].get_value()
      normalized[path] = (param, reparam.weight_normalize(
          param.get_value(), scale, feature_axes=self.feature_axes, epsilon=self.epsilon,
          dtype=self.dtype))
    with _substituted(normalized):
      return self.layer_instance(x, *args, **kwargs)


REPARAMS: dict[str, Callable[..., Any]] = {"spectral": SpectralNorm, "weight": WeightNorm}


def get_reparam(name: str, **overrides: Any) -> Any:
  """``partial(NnxClass, **overrides)``: ``get_reparam("spectral")(layer, rngs=rngs)``.

  Raises:
    ValueError: unknown ``name`` (valid names listed) or argument, as the linen registry.
  """
  return lookup_reparam(REPARAMS, name, overrides)
