"""Linen modules against flax.linen's own layers, and the registry."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.norms import registry

RNG = np.random.default_rng(2)
KEY = jax.random.PRNGKey(0)


def _data(shape, loc=0.5, spread=1.5):
  return jnp.asarray((loc + spread * RNG.standard_normal(shape)).astype(np.float32))


def _randomize(variables):
  """Non-trivial parameters and running statistics, so the comparison means something."""
  leaves, tree = jax.tree.flatten(variables)
  leaves = [jnp.abs(l + _data(l.shape, 0.0, 0.3)) for l in leaves]
  return jax.tree.unflatten(tree, leaves)


PAIRS = [
    (normzoo.BatchNorm, nn.BatchNorm, dict(momentum=0.9), (8, 5, 5, 6)),
    (normzoo.BatchNorm, nn.BatchNorm, dict(axis=1, use_bias=False, epsilon=1e-3), (6, 4, 5)),
    (normzoo.BatchNorm, nn.BatchNorm, dict(use_scale=False), (16, 7)),
    (normzoo.LayerNorm, nn.LayerNorm, dict(), (4, 5, 6)),
    (normzoo.LayerNorm, nn.LayerNorm, dict(reduction_axes=(1, 2, 3), feature_axes=(2, 3)),
     (3, 4, 5, 6)),
    (normzoo.GroupNorm, nn.GroupNorm, dict(num_groups=3), (2, 4, 4, 12)),
    (normzoo.GroupNorm, nn.GroupNorm, dict(num_groups=None, group_size=2, use_bias=False),
     (3, 5, 8)),
    (normzoo.InstanceNorm, nn.InstanceNorm, dict(), (3, 4, 4, 5)),
    (normzoo.InstanceNorm, nn.InstanceNorm, dict(feature_axes=(2, 3)), (3, 6, 4, 5)),
]


@pytest.mark.parametrize("ours,theirs,kwargs,shape", PAIRS)
def test_flax_variables_load_and_give_the_same_outputs_and_gradients(ours, theirs, kwargs, shape):
  x = _data(shape)
  is_bn = ours is normzoo.BatchNorm
  call = dict(use_running_average=False) if is_bn else {}
  flax_vars = _randomize(theirs(**kwargs).init(KEY, x, **call))
  our_vars = ours(**kwargs).init(KEY, x, **call)
  assert jax.tree.structure(our_vars) == jax.tree.structure(flax_vars)
  jax.tree.map(lambda a, b: (a.shape, a.dtype) == (b.shape, b.dtype) or pytest.fail("tree"),
               our_vars, flax_vars)

  modes = [dict(use_running_average=False), dict(use_running_average=True)] if is_bn else [{}]
  for mode in modes:
    mutable = ["batch_stats"] if is_bn and not mode["use_running_average"] else False

    def run(module, params, x):
      out = module.apply({**flax_vars, "params": params}, x, **mode, mutable=mutable)
      return out if mutable else (out, {})

    def loss(module, params, x):
      y, state = run(module, params, x)
      return jnp.sum(jnp.sin(y) * x), (y, state)

    (_, (y_o, st_o)), g_o = jax.value_and_grad(functools.partial(loss, ours(**kwargs)),
                                               argnums=(0, 1), has_aux=True)(flax_vars["params"], x)
    (_, (y_t, st_t)), g_t = jax.value_and_grad(functools.partial(loss, theirs(**kwargs)),
                                               argnums=(0, 1), has_aux=True)(flax_vars["params"], x)
    np.testing.assert_allclose(y_o, y_t, atol=2e-5, rtol=2e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5), st_o, st_t)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4), g_o, g_t)


def test_defaults_match_flax():
  import dataclasses
  for ours, theirs in [(normzoo.BatchNorm, nn.BatchNorm), (normzoo.LayerNorm, nn.LayerNorm),
                       (normzoo.GroupNorm, nn.GroupNorm), (normzoo.InstanceNorm, nn.InstanceNorm)]:
    flax_fields = {f.name: f.default for f in dataclasses.fields(theirs) if f.name not in
                   ("parent", "name")}
    our_fields = {f.name: f.default for f in dataclasses.fields(ours)}
    for name, default in flax_fields.items():
      assert name in our_fields, f"{ours.__name__} lacks flax argument {name}"
      assert our_fields[name] == default, f"{ours.__name__}.{name} default differs"


def test_bf16_module_keeps_float32_statistics_and_params():
  x = _data((8, 4, 4, 6), 2.0).astype(jnp.bfloat16)
  bn = normzoo.BatchNorm(use_running_average=False, dtype=jnp.bfloat16)
  v = bn.init(KEY, x)
  y, upd = bn.apply(v, x, mutable=["batch_stats"])
  assert y.dtype == jnp.bfloat16
  assert v["params"]["scale"].dtype == jnp.float32
  assert upd["batch_stats"]["mean"].dtype == jnp.float32
  x64 = np.asarray(x, np.float64)
  np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.01 * x64.mean((0, 1, 2)), rtol=1e-4)


def test_training_without_mutable_batch_stats_says_what_to_do():
  bn = normzoo.BatchNorm(use_running_average=False)
  v = bn.init(KEY, _data((4, 3)))
  with pytest.raises(ValueError, match=r"mutable=\['batch_stats'\]"):
    bn.apply(v, _data((4, 3)))


def test_missing_batch_stats_says_what_to_do():
  bn = normzoo.BatchNorm(use_running_average=True)
  v = bn.init(KEY, _data((4, 3)))
  with pytest.raises(ValueError, match="no 'batch_stats'"):
    bn.apply({"params": v["params"]}, _data((4, 3)))


def test_identity_accepts_norm_call_arguments():
  x = _data((4, 3))
  ident = normzoo.Identity()
  v = ident.init(KEY, x, use_running_average=False)
  assert v == {}
  np.testing.assert_array_equal(ident.apply(v, x, use_running_average=True, mask=None), x)


def test_registry_builds_partials_and_lists_names_on_error():
  assert set(normzoo.available_norms()) >= {"batch", "layer", "group", "instance", "none"}
  ctor = normzoo.get_norm("group", num_groups=4)
  assert isinstance(ctor(), normzoo.GroupNorm) and ctor().num_groups == 4
  assert registry.uses_batch_statistics(normzoo.get_norm("batch"))
  assert not registry.uses_batch_statistics(normzoo.get_norm("layer"))
  assert not registry.uses_batch_statistics(normzoo.get_norm("none"))
  with pytest.raises(ValueError, match="unknown norm 'batchnorm'.*batch, group, instance"):
    normzoo.get_norm("batchnorm")
  with pytest.raises(ValueError, match="does not accept argument.*'groups'"):
    normzoo.get_norm("group", groups=4)
  with pytest.raises(ValueError, match="already registered"):
    normzoo.register_norm("batch", normzoo.LayerNorm)
