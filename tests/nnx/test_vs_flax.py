"""normzoo.nnx modules against flax.nnx's own: state loads, same outputs, gradients, statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import normzoo.nnx as znnx
from tests.nnx.helpers import (assert_trees_close, data, nnx_param_grads, nnx_stats,
                               randomize_state)

RNG = np.random.default_rng(11)

CASES = [
    (znnx.BatchNorm, nnx.BatchNorm, dict(momentum=0.9), (8, 5, 5, 6)),
    (znnx.BatchNorm, nnx.BatchNorm, dict(axis=1, use_bias=False, epsilon=1e-3), (6, 4, 5)),
    (znnx.BatchNorm, nnx.BatchNorm, dict(use_scale=False), (16, 7)),
    (znnx.LayerNorm, nnx.LayerNorm, dict(), (4, 5, 6)),
    (znnx.LayerNorm, nnx.LayerNorm, dict(use_bias=False, epsilon=1e-5), (3, 8)),
    (znnx.GroupNorm, nnx.GroupNorm, dict(num_groups=3), (2, 4, 4, 12)),
    (znnx.GroupNorm, nnx.GroupNorm, dict(num_groups=None, group_size=2), (3, 5, 8)),
    (znnx.InstanceNorm, nnx.InstanceNorm, dict(), (3, 4, 4, 5)),
    (znnx.RMSNorm, nnx.RMSNorm, dict(), (4, 3, 10)),
    (znnx.RMSNorm, nnx.RMSNorm, dict(use_scale=False, epsilon=1e-5), (6, 9)),
]


def _features(cls, kwargs, shape):
  axis = kwargs.get("axis", -1)
  return shape[axis]


def _pair(ours, theirs, kwargs, shape, **flax_only):
  n = _features(ours, kwargs, shape)
  flax_module = theirs(n, **kwargs, **flax_only, rngs=nnx.Rngs(0))
  randomize_state(flax_module, RNG)
  our_module = ours(n, **kwargs, rngs=nnx.Rngs(0))
  nnx.update(our_module, nnx.state(flax_module))
  return our_module, flax_module


@pytest.mark.parametrize("ours,theirs,kwargs,shape", CASES)
def test_same_variables_as_flax(ours, theirs, kwargs, shape):
  n = _features(ours, kwargs, shape)
  a = nnx.state(ours(n, **kwargs, rngs=nnx.Rngs(0)))
  b = nnx.state(theirs(n, **kwargs, rngs=nnx.Rngs(0)))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  # Same initial values too, and the same variable types (Param / BatchStat).
  assert_trees_close(a, b, 0, 0)
  assert ([type(v) for v in jax.tree.leaves(a, is_leaf=lambda v: isinstance(v, nnx.Variable))]
          == [type(v) for v in jax.tree.leaves(b, is_leaf=lambda v: isinstance(v, nnx.Variable))])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("ours,theirs,kwargs,shape", CASES)
def test_outputs_gradients_and_statistics_match_flax(ours, theirs, kwargs, shape, dtype):
  our_module, flax_module = _pair(ours, theirs, kwargs, shape)
  x = data(RNG, shape, dtype=dtype)
  tol = dict(rtol=2e-5, atol=2e-5) if dtype == jnp.float32 else dict(rtol=2e-2, atol=3e-2)
  modes = ([dict(use_running_average=False), dict(use_running_average=True)]
           if ours is znnx.BatchNorm else [{}])
  for mode in modes:
    y_ours, g_ours = nnx_param_grads(nnx.clone(our_module), x, **mode)
    y_flax, g_flax = nnx_param_grads(nnx.clone(flax_module), x, **mode)
    assert y_ours.dtype == y_flax.dtype
    assert_trees_close(g_ours, g_flax, what=f"grads {mode}", **tol)
    assert_trees_close(our_module(x, **mode), flax_module(x, **mode), what=f"y {mode}", **tol)
    assert_trees_close(nnx_stats(our_module), nnx_stats(flax_module), what="stats", **tol)


@pytest.mark.parametrize("ours,theirs,kwargs,shape", CASES)
def test_masked_outputs_and_statistics_match_flax(ours, theirs, kwargs, shape):
  # flax's fast variance, E[x^2] - E[x]^2, loses digits on rows with few valid
  # elements (1 % off on 2 of 6); its two-pass form is the accurate reference.
  fast = {} if theirs is nnx.RMSNorm else dict(use_fast_variance=False)
  our_module, flax_module = _pair(ours, theirs, kwargs, shape, **fast)
  x = data(RNG, shape)
  # Whole examples masked out for batch norm, single elements for the per-example norms
  # (flax.nnx's GroupNorm takes only a mask of the input's full shape).
  mask_shape = (shape[0],) + (1,) * (len(shape) - 1) if ours is znnx.BatchNorm else shape
  mask = jnp.asarray(RNG.random(mask_shape) < 0.6)
  mask = mask.at[(0,) * len(mask_shape)].set(True)
  call = dict(use_running_average=False) if ours is znnx.BatchNorm else {}
  y_ours, y_flax = our_module(x, mask=mask, **call), flax_module(x, mask=mask, **call)
  valid = jnp.broadcast_to(mask, shape)
  assert_trees_close(jnp.where(valid, y_ours, 0), jnp.where(valid, y_flax, 0), 2e-5, 2e-5)
  assert_trees_close(nnx_stats(our_module), nnx_stats(flax_module), 2e-5, 2e-5)


def test_train_eval_and_view_switch_batch_statistics_as_flax():
  class Net(nnx.Module):
    def __init__(self, norm_cls, rngs):
      self.linear = nnx.Linear(4, 6, rngs=rngs)
      self.norm = norm_cls(6, rngs=rngs)
      self.dropout = nnx.Dropout(0.0, rngs=rngs)

    def __call__(self, x):
      return self.dropout(self.norm(self.linear(x)))

  x = data(RNG, (10, 4))
  ours, theirs = Net(znnx.BatchNorm, nnx.Rngs(1)), Net(nnx.BatchNorm, nnx.Rngs(1))
  for mode in ("train", "eval", "train"):
    getattr(ours, mode)()
    getattr(theirs, mode)()
    assert ours.norm.use_running_average == theirs.norm.use_running_average == (mode == "eval")
    assert_trees_close(ours(x), theirs(x), 2e-5, 2e-5, what=mode)
    assert_trees_close(nnx_stats(ours.norm), nnx_stats(theirs.norm), 2e-5, 2e-5, what=mode)
  before = nnx_stats(ours.norm)
  evaluated = nnx.view(ours, use_running_average=True)
  evaluated(x)
  assert_trees_close(nnx_stats(ours.norm), before, 0, 0, what="view leaves statistics alone")


def test_nnx_jit_of_a_module_matches_eager():
  module = znnx.BatchNorm(6, momentum=0.9, rngs=nnx.Rngs(0))
  twin = nnx.clone(module)
  x = data(RNG, (9, 6))

  @nnx.jit
  def step(m, x):
    return m(x)

  assert_trees_close(step(module, x), twin(x), 1e-6, 1e-6)
  assert_trees_close(nnx_stats(module), nnx_stats(twin), 1e-6, 1e-6)
