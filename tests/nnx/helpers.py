"""Shared pieces of the nnx tests: data, and moving variables between APIs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def data(rng: np.random.Generator, shape, loc=0.5, spread=1.5, dtype=jnp.float32):
  return jnp.asarray((loc + spread * rng.standard_normal(shape)).astype(np.float32)).astype(dtype)


def randomize_state(module: nnx.Module, rng: np.random.Generator) -> None:
  """Non-trivial parameters and statistics (positive, so variances stay valid)."""
  for _, variable in nnx.iter_graph(module):
    if isinstance(variable, (nnx.Param, nnx.BatchStat)) and jnp.ndim(variable[...]) > 0:
      value = variable[...]
      noise = rng.standard_normal(value.shape).astype(np.float32)
      variable[...] = jnp.abs(value + 0.3 * noise).astype(value.dtype)


def load_linen(module: nnx.Module, variables: dict) -> None:
  """Writes linen ``params`` / ``batch_stats`` into the nnx attributes of the same names."""
  for collection in ("params", "batch_stats"):
    for name, value in variables.get(collection, {}).items():
      getattr(module, name)[...] = value


def nnx_stats(module: nnx.Module) -> dict:
  """The module's BatchStat values by attribute name."""
  return {name: v[...] for name, v in vars(module).items() if isinstance(v, nnx.BatchStat)}


def nnx_param_grads(module: nnx.Module, x, **call):
  """``(y, d sum(y * w) / d params)`` for a fixed random weighting ``w`` of the output."""
  w = jax.random.normal(jax.random.key(7), x.shape, jnp.float32)

  def loss(m):
    y = m(x, **call)
    return jnp.sum(y.astype(jnp.float32) * w), y

  grads, y = nnx.grad(loss, argnums=nnx.DiffState(0, nnx.Param), has_aux=True)(module)
  return y, {name: g[...] for name, g in grads.items()}


def assert_trees_close(a, b, rtol, atol, what=""):
  assert jax.tree.structure(a) == jax.tree.structure(b), (what, jax.tree.structure(a),
                                                          jax.tree.structure(b))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float32), np.asarray(y, np.float32), rtol=rtol,
                               atol=atol, err_msg=what)
