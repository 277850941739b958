"""nnx modules: cross-device statistics on 8 devices, independent oracles, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import normzoo
import normzoo.nnx as znnx
from tests.nnx.helpers import assert_trees_close, data, nnx_stats

RNG = np.random.default_rng(13)


def _mesh():
  if jax.device_count() < 8:
    pytest.skip("needs 8 devices (tests/conftest.py sets 8 host CPU devices)")
  return Mesh(np.array(jax.devices()[:8]), ("batch",))


@pytest.mark.parametrize("name,kwargs", [("batch", dict(momentum=0.8)),
                                         ("batch_renorm", dict(momentum=0.8)),
                                         ("switchable", {}), ("evonorm_b0", {})])
def test_shard_map_with_axis_name_gives_full_batch_statistics_with_uneven_masks(name, kwargs):
  mesh = _mesh()
  x = data(RNG, (32, 3, 3, 4), loc=3.0)
  # Devices hold 4 examples each, with 1..4 of them valid: count-weighted
  # statistics must equal the statistics of the valid examples of the full batch.
  valid = np.zeros((32,), bool)
  for d in range(8):
    valid[4 * d: 4 * d + 1 + d % 4] = True
  mask = jnp.asarray(valid)[:, None, None, None]
  reference = znnx.get_norm(name, 4, rngs=nnx.Rngs(0), **kwargs)
  sharded = znnx.get_norm(name, 4, rngs=nnx.Rngs(0), axis_name="batch", **kwargs)
  graphdef, state = nnx.split(sharded)

  def per_device(state, x, mask):
    module = nnx.merge(graphdef, state)
    y = module(x, mask=mask)
    return y, nnx.state(module)

  y, new_state = jax.jit(jax.shard_map(
      per_device, mesh=mesh, in_specs=(P(), P("batch"), P("batch")),
      out_specs=(P("batch"), P())))(state, x, mask)
  nnx.update(sharded, new_state)
  y_ref = reference(x, mask=mask)
  assert_trees_close(jnp.where(mask, y, 0), jnp.where(mask, y_ref, 0), 2e-5, 2e-5)
  assert_trees_close(nnx_stats(sharded), nnx_stats(reference), 2e-5, 2e-5)


def test_nnx_jit_over_a_sharded_batch_needs_no_axis_name():
  mesh = _mesh()
  x = data(RNG, (32, 6), loc=2.0)
  module, reference = (znnx.BatchNorm(6, momentum=0.7, rngs=nnx.Rngs(0)) for _ in range(2))
  xs = jax.device_put(x, NamedSharding(mesh, P("batch")))

  @nnx.jit
  def step(m, x):
    return m(x)

  assert_trees_close(step(module, xs), reference(x), 2e-5, 2e-5)
  assert_trees_close(nnx_stats(module), nnx_stats(reference), 2e-5, 2e-5)


def test_large_mean_variance_against_a_float64_oracle():
  x64 = 1e4 + RNG.standard_normal((64, 3))
  x = jnp.asarray(x64, jnp.float32)
  module = znnx.BatchNorm(3, momentum=0.0, rngs=nnx.Rngs(0))
  y = module(x)
  xr = np.asarray(x, np.float64)  # the float32 values the module saw
  mean, var = xr.mean(0), xr.var(0)
  np.testing.assert_allclose(np.asarray(module.var[...]), var, rtol=1e-3)
  np.testing.assert_allclose(np.asarray(module.mean[...]), mean, rtol=1e-7)
  np.testing.assert_allclose(np.asarray(y), (xr - mean) / np.sqrt(var + 1e-5), atol=2e-3)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_input_gets_float32_statistics(dtype):
  x = data(RNG, (64, 5), loc=4.0, dtype=dtype)
  module = znnx.BatchNorm(5, momentum=0.0, rngs=nnx.Rngs(0))
  y = module(x)
  xr = np.asarray(x.astype(jnp.float32), np.float64)
  assert module.mean[...].dtype == module.var[...].dtype == jnp.float32
  assert y.dtype == jnp.float32  # promotion of the input and the float32 params, as flax
  np.testing.assert_allclose(np.asarray(module.mean[...]), xr.mean(0), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(module.var[...]), xr.var(0), rtol=1e-5)


def test_pytorch_running_variance_parity():
  torch = pytest.importorskip("torch")
  x = data(RNG, (6, 3, 4, 4), loc=1.0)  # NCHW for torch
  module = znnx.BatchNorm(3, axis=1, momentum=0.9, epsilon=1e-5, unbiased_running_var=True,
                          rngs=nnx.Rngs(0))
  ref = torch.nn.BatchNorm2d(3, momentum=0.1, eps=1e-5)
  for step in range(3):
    xs = x * (1 + step)
    y = module(xs)
    y_ref = ref(torch.from_numpy(np.array(xs)))
  np.testing.assert_allclose(np.asarray(y), y_ref.detach().numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(module.var[...]), ref.running_var.numpy(), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(module.mean[...]), ref.running_mean.numpy(), rtol=1e-5,
                             atol=1e-6)


def test_weight_standardized_conv_matches_linen():
  x = data(RNG, (2, 6, 6, 3))
  linen = normzoo.WeightStandardizedConv(5, kernel_size=(3, 3), padding="SAME")
  variables = linen.init(jax.random.key(0), x)
  conv = znnx.get_conv("ws")(3, 5, kernel_size=(3, 3), padding="SAME", rngs=nnx.Rngs(0))
  conv.kernel[...] = variables["params"]["kernel"]
  conv.bias[...] = variables["params"]["bias"] + 0.5
  expected = linen.apply({"params": {**variables["params"],
                                     "bias": variables["params"]["bias"] + 0.5}}, x)
  assert_trees_close(conv(x), expected, 1e-5, 1e-5)
  with pytest.raises(ValueError, match="mask"):
    znnx.WeightStandardizedConv(3, 5, kernel_size=3, mask=jnp.ones((3, 3, 5)), rngs=nnx.Rngs(0))


def _x(shape=(4, 6)):
  return data(RNG, shape)


@pytest.mark.parametrize("make,call,match", [
    (lambda: znnx.BatchNorm(6, axis_name="batch", rngs=nnx.Rngs(0)), _x,
     "axis_name='batch' is not bound"),
    (lambda: znnx.BatchNorm(6, rngs=nnx.Rngs(0)), lambda: _x((1, 6)), "single value"),
    (lambda: znnx.BatchNorm(6, use_running_average=None, rngs=nnx.Rngs(0)), _x,
     "use_running_average is None"),
    (lambda: znnx.BatchNorm(5, rngs=nnx.Rngs(0)), _x, r"shape \(5,\)"),
    (lambda: znnx.GroupNorm(10, num_groups=3, rngs=nnx.Rngs(0)), None,
     "num_groups=3 does not divide the number of channels"),
    (lambda: znnx.BatchNorm(6, momentum=1.5, rngs=nnx.Rngs(0)), None, "momentum=1.5"),
    (lambda: znnx.LayerNorm(6, epsilon=0.0, rngs=nnx.Rngs(0)), None, "epsilon=0.0"),
    (lambda: znnx.LayerNorm(6, promote_dtype=lambda t, dtype=None: t, rngs=nnx.Rngs(0)), None,
     "promote_dtype"),
    (lambda: znnx.BatchNorm(6), None, "rngs is required"),
    (lambda: znnx.get_norm("nrom", 6), None, "unknown norm 'nrom'; valid names are: batch"),
    (lambda: znnx.get_norm("group", 6, nmu_groups=2, rngs=nnx.Rngs(0)), None,
     r"does not accept argument\(s\) \['nmu_groups'\]"),
    (lambda: znnx.BatchRenorm(6, r_max=0.5, rngs=nnx.Rngs(0)), None, "r_max must be >= 1"),
])
def test_bad_input_gets_a_clear_error(make, call, match):
  with pytest.raises(ValueError, match=match):
    module = make()
    module(call())


def test_registry_errors_are_the_linen_ones():
  for bad in (lambda get: get("nrom"), ):
    with pytest.raises(ValueError) as linen_error:
      normzoo.get_norm("nrom")
    with pytest.raises(ValueError) as nnx_error:
      znnx.get_norm("nrom", 4)
    assert str(linen_error.value) == str(nnx_error.value)


@pytest.mark.parametrize("name", sorted(znnx.NORMS))
def test_every_norm_under_nnx_jit_over_an_8_device_batch_matches_one_device(name):
  mesh = _mesh()
  kwargs = {"group": dict(num_groups=4), "evonorm_s0": dict(num_groups=4),
            "ghost_batch": dict(virtual_batch_size=4)}.get(name, {})
  x = data(RNG, (32, 3, 3, 8), loc=1.0)
  module, reference = (znnx.get_norm(name, 8, rngs=nnx.Rngs(0), **kwargs) for _ in range(2))
  xs = jax.device_put(x, NamedSharding(mesh, P("batch")))
  y = nnx.jit(lambda m, x: m(x))(module, xs)
  assert_trees_close(y, reference(x), 2e-5, 2e-5, what=name)
  assert_trees_close(nnx_stats(module), nnx_stats(reference), 2e-5, 2e-5, what=name)


def test_shard_map_batch_norm_matches_flax_nnx_on_8_devices():
  mesh = _mesh()
  x = data(RNG, (32, 5), loc=2.0)
  outputs = []
  for cls in (znnx.BatchNorm, nnx.BatchNorm):
    graphdef, state = nnx.split(cls(5, momentum=0.7, axis_name="batch", rngs=nnx.Rngs(0)))

    def per_device(state, x):
      module = nnx.merge(graphdef, state)
      return module(x), nnx.state(module, nnx.BatchStat)

    outputs.append(jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("batch")),
                                         out_specs=(P("batch"), P())))(state, x))
  assert_trees_close(outputs[0], outputs[1], 2e-5, 2e-5)
