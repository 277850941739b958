"""Every registry name: the nnx module against normzoo's linen module on the same variables.

Both call the same functional core, so outputs, gradients and updated
statistics agree to rounding, in float32 and bfloat16, with and without a mask.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import normzoo
import normzoo.nnx as znnx
from normzoo.norms import registry as linen_registry
from tests.nnx.helpers import (assert_trees_close, data, load_linen, nnx_param_grads, nnx_stats)

RNG = np.random.default_rng(12)
SHAPE = (8, 4, 4, 8)
KWARGS = {"group": dict(num_groups=4), "evonorm_s0": dict(num_groups=4),
          "ghost_batch": dict(virtual_batch_size=4), "batch_renorm": dict(warmup_steps=3),
          "batch": dict(momentum=0.9)}


def test_the_nnx_registry_has_every_linen_name():
  assert znnx.available_norms() == normzoo.available_norms()
  for name in normzoo.available_norms():
    linen = linen_registry.uses_batch_statistics(normzoo.NORMS[name])
    assert znnx.uses_batch_statistics(znnx.NORMS[name]) == linen, name


def _randomized(variables):
  leaves, tree = jax.tree.flatten(variables)
  leaves = [jnp.abs(l + 0.3 * jnp.asarray(RNG.standard_normal(l.shape), l.dtype))
            if l.ndim else l for l in leaves]
  return jax.tree.unflatten(tree, leaves)


def _accepts_mask(module_cls) -> bool:
  return "mask" in inspect.signature(module_cls.__call__).parameters


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", sorted(normzoo.NORMS))
def test_nnx_matches_linen(name, dtype, masked):
  kwargs = KWARGS.get(name, {})
  linen = normzoo.get_norm(name, **kwargs)()
  module = znnx.get_norm(name, SHAPE[-1], rngs=nnx.Rngs(0), **kwargs)
  if masked and not _accepts_mask(type(module)):
    pytest.skip(f"{name} takes no mask")
  x = data(RNG, SHAPE, dtype=dtype)
  call = dict(mask=jnp.asarray(RNG.random(SHAPE[:-1] + (1,)) < 0.7)) if masked else {}
  batch_stats = linen_registry.uses_batch_statistics(normzoo.NORMS[name])
  modes = [False, True] if batch_stats else [None]
  variables = _randomized(linen.init(jax.random.key(0), x, **(
      dict(use_running_average=False) if batch_stats else {})))
  load_linen(module, variables)
  assert set(nnx.state(module, nnx.Param).keys()) == set(variables.get("params", {}))
  assert set(nnx_stats(module)) == set(variables.get("batch_stats", {}))
  tol = dict(rtol=1e-5, atol=1e-5) if dtype == jnp.float32 else dict(rtol=1e-2, atol=1e-2)
  for use_running_average in modes:
    mode = {} if use_running_average is None else dict(use_running_average=use_running_average)
    w = jax.random.normal(jax.random.key(7), x.shape, jnp.float32)

    def linen_loss(params):
      y, updates = linen.apply({**variables, "params": params}, x, **mode, **call,
                               mutable=["batch_stats"])
      return jnp.sum(y.astype(jnp.float32) * w), (y, updates)

    linen_grads, (y_linen, updates) = jax.grad(linen_loss, has_aux=True)(variables.get("params", {}))
    y_nnx, nnx_grads = nnx_param_grads(module, x, **mode, **call)
    assert y_nnx.dtype == y_linen.dtype
    assert_trees_close(y_nnx, y_linen, what=f"{name} y {mode}", **tol)
    assert_trees_close(nnx_grads, linen_grads, what=f"{name} grads {mode}", **tol)
    # nnx_param_grads ran the module once: its statistics are now the updated ones.
    assert_trees_close(nnx_stats(module), dict(updates.get("batch_stats", {})),
                       what=f"{name} stats {mode}", **tol)
    variables = {**variables, **updates}


def test_nnx_registry_derives_each_entry_from_the_linen_one():
  import flax.linen as nn
  from normzoo.nnx import registry as nnx_registry
  layer = nnx_registry.NORMS["layer"]
  assert layer.func is znnx.LayerNorm and layer.keywords == {"reduction_axes": None}
  with pytest.raises(ValueError, match="Dense has no flax.nnx form in normzoo.nnx"):
    nnx_registry.nnx_counterpart(nn.Dense)
