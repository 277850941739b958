"""Cross-device statistics on 8 host CPU devices (see tests/conftest.py).

The reference is always a single device holding the concatenated batch.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import normzoo
from normzoo.norms import functional as F
from tests.norms import oracle

D = 8
RNG = np.random.default_rng(1)


@pytest.fixture(scope="module", autouse=True)
def _needs_eight_devices():
  if jax.device_count() < D:
    pytest.fail(f"expected {D} host devices from tests/conftest.py, got {jax.device_count()}")


def _data(shape, loc=0.0, spread=1.0):
  return (loc + spread * RNG.standard_normal(shape)).astype(np.float32)


def _mesh():
  return Mesh(np.array(jax.devices()[:D]), ("i",))


def _shard_map(f, in_specs, out_specs):
  return jax.jit(jax.shard_map(f, mesh=_mesh(), in_specs=in_specs, out_specs=out_specs))


SCALE, BIAS = _data((4,), 1.0, 0.3), _data((4,), 0.0, 0.3)
MEAN0, VAR0 = np.zeros(4, np.float32), np.ones(4, np.float32)


def _bn(x, axis_name=None, mask=None, groups=None):
  return F.batch_norm(x, SCALE, BIAS, MEAN0, VAR0, momentum=0.5, axis_name=axis_name,
                      axis_index_groups=groups, mask=mask)


def _check_against_single_device(y, mean, var, x):
  y_ref, mean_ref, var_ref = _bn(x)
  np.testing.assert_allclose(np.asarray(y).reshape(x.shape), y_ref, atol=2e-5)
  for m, v in zip(np.asarray(mean).reshape(-1, 4), np.asarray(var).reshape(-1, 4)):
    np.testing.assert_allclose(m, mean_ref, atol=1e-6)
    np.testing.assert_allclose(v, var_ref, atol=1e-5)


def test_pmap_matches_single_device():
  x = _data((D * 2, 3, 3, 4), 5.0, 2.0)
  y, mean, var = jax.pmap(functools.partial(_bn, axis_name="i"), axis_name="i")(
      x.reshape(D, 2, 3, 3, 4))
  _check_against_single_device(y, mean, var, x)


def test_shard_map_matches_single_device():
  x = _data((D * 2, 3, 3, 4), 5.0, 2.0)
  f = _shard_map(lambda x: _bn(x, axis_name="i"), P("i"), (P("i"), P(), P()))
  y, mean, var = f(x)
  _check_against_single_device(y, mean, var, x)


def test_one_example_per_device_is_fine_with_axis_name():
  x = _data((D, 4), 1.0, 3.0)
  y, mean, var = _shard_map(lambda x: _bn(x, axis_name="i"), P("i"), (P("i"), P(), P()))(x)
  _check_against_single_device(y, mean, var, x)


def test_shard_map_gradients_match_single_device():
  x, w = _data((D * 2, 3, 4), 2.0), _data((D * 2, 3, 4))

  def local_grads(x, w):
    # Replicated parameters under shard_map: JAX sums their gradients over devices.
    loss = lambda x, s, b: jnp.sum(F.batch_norm(x, s, b, axis_name="i")[0] * w)
    return jax.grad(loss, argnums=(0, 1, 2))(x, SCALE, BIAS)

  gx, gs, gb = _shard_map(local_grads, (P("i"), P("i")), (P("i"), P(), P()))(x, w)
  ref = jax.grad(lambda x, s, b: jnp.sum(F.batch_norm(x, s, b)[0] * w), argnums=(0, 1, 2))(
      x, SCALE, BIAS)
  for got, want in zip((gx, gs, gb), ref):
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_pmap_gradients_match_single_device():
  x, w = _data((D * 2, 3, 4), 2.0), _data((D * 2, 3, 4))

  def local_grads(x, w):
    # pmap has no replication typing: parameter gradients are per device, summed by hand.
    loss = lambda x, s, b: jnp.sum(F.batch_norm(x, s, b, axis_name="i")[0] * w)
    gx, gs, gb = jax.grad(loss, argnums=(0, 1, 2))(x, SCALE, BIAS)
    return gx, jax.lax.psum(gs, "i"), jax.lax.psum(gb, "i")

  gx, gs, gb = jax.pmap(local_grads, axis_name="i")(x.reshape(D, 2, 3, 4), w.reshape(D, 2, 3, 4))
  ref = jax.grad(lambda x, s, b: jnp.sum(F.batch_norm(x, s, b)[0] * w), argnums=(0, 1, 2))(
      x, SCALE, BIAS)
  for got, want in zip((np.asarray(gx).reshape(x.shape), gs[0], gb[0]), ref):
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_gradient_through_statistics_across_devices():
  x = _data((D * 2, 3), 1.0, 2.0)
  loss = lambda m, v: jnp.sum(m ** 2) + jnp.sum(v)
  ref = jax.grad(lambda x: loss(*F.batch_norm(x)[1:]))(x)
  pm = jax.pmap(jax.grad(lambda x: loss(*F.batch_norm(x, axis_name="i")[1:]) / D), axis_name="i")
  np.testing.assert_allclose(np.asarray(pm(x.reshape(D, 2, 3))).reshape(x.shape), ref,
                             rtol=1e-4, atol=1e-6)
  sm = _shard_map(lambda x: jax.grad(lambda x: loss(*F.batch_norm(x, axis_name="i")[1:]))(x),
                  P("i"), P("i"))
  np.testing.assert_allclose(sm(x), ref, rtol=1e-4, atol=1e-6)


def test_masked_statistics_are_count_weighted_across_devices():
  per_device = 4
  x = _data((D * per_device, 4), 3.0, 2.0)
  valid_counts = [1, 4, 2, 3, 4, 1, 0, 2]  # unequal, one device with nothing valid
  mask = np.concatenate([np.arange(per_device) < c for c in valid_counts])
  x[~mask] = -1e3  # padding that must not leak into the statistics
  f = _shard_map(lambda x, m: _bn(x, "i", mask=m[:, None]), (P("i"), P("i")), (P("i"), P(), P()))
  y, mean, var = f(x, mask)
  want_y, want_mean, want_var = oracle.np_normalize(x[mask], (0,), SCALE, BIAS, 1e-5,
                                                    param_axes=(1,))
  np.testing.assert_allclose(y[mask], want_y, atol=3e-5)
  np.testing.assert_allclose(mean, 0.5 * MEAN0 + 0.5 * want_mean.ravel(), atol=1e-5)
  np.testing.assert_allclose(var, 0.5 * VAR0 + 0.5 * want_var.ravel(), rtol=1e-5)

  # flax.linen averages per-device means equally, which is wrong here; this is the fix we claim.
  def flax_stats(x, m):
    bn = nn.BatchNorm(use_running_average=False, axis_name="i", momentum=0.0)
    v = {"params": {"scale": jnp.ones(4), "bias": jnp.zeros(4)},
         "batch_stats": {"mean": jnp.zeros(4), "var": jnp.ones(4)}}
    _, upd = bn.apply(v, x, mask=m[:, None], mutable=["batch_stats"])
    return upd["batch_stats"]["mean"]
  # With a device holding no valid example flax even returns NaN; elsewhere it is biased.
  assert np.all(np.isnan(_shard_map(flax_stats, (P("i"), P("i")), P())(x, mask)))
  mask_nonempty = mask.copy()
  mask_nonempty[6 * per_device] = True
  x[6 * per_device] = 3.0
  flax_mean = _shard_map(flax_stats, (P("i"), P("i")), P())(x, mask_nonempty)
  _, want_mean, _ = oracle.np_normalize(x[mask_nonempty], (0,))
  assert np.max(np.abs(flax_mean - want_mean.ravel())) > 1e-2


def test_axis_index_groups_under_pmap():
  x = _data((D * 2, 4), 1.0, 2.0)
  groups = [[0, 1, 2, 3], [4, 5, 6, 7]]
  y, mean, _ = jax.pmap(functools.partial(_bn, axis_name="i", groups=groups), axis_name="i")(
      x.reshape(D, 2, 4))
  for g, half in enumerate((x[:8], x[8:])):
    y_ref, mean_ref, _ = _bn(half)
    np.testing.assert_allclose(np.asarray(y[4 * g:4 * g + 4]).reshape(8, 4), y_ref, atol=2e-5)
    np.testing.assert_allclose(mean[4 * g], mean_ref, atol=1e-6)


def test_large_mean_across_devices():
  offsets = np.repeat(np.arange(D, dtype=np.float32), 64)[:, None]  # each device shifted
  x = (1e4 + offsets * 0.1 + RNG.standard_normal((D * 64, 4))).astype(np.float32)
  y, _, _ = _shard_map(lambda x: _bn(x, axis_name="i"), P("i"), (P("i"), P(), P()))(x)
  y_unit = (np.asarray(y, np.float64) - BIAS) / SCALE
  assert np.all(np.abs(y_unit.var(0) - 1) < 1e-2) and np.all(np.abs(y_unit.mean(0)) < 1e-2)


def test_jit_over_named_sharding_needs_no_axis_name():
  x = _data((D * 4, 5, 4), 2.0, 3.0)
  xs = jax.device_put(x, NamedSharding(_mesh(), P("i")))
  y, mean, var = jax.jit(lambda x: _bn(x))(xs)
  assert len(xs.sharding.device_set) == D
  _check_against_single_device(y, mean, var, x)


def test_module_init_outside_and_apply_inside_shard_map():
  bn = normzoo.BatchNorm(use_running_average=False, axis_name="i", momentum=0.5)
  x = _data((D * 2, 4), 2.0, 3.0)
  variables = bn.init(jax.random.PRNGKey(0), x)  # no mesh, no bound axis: must not fail

  def step(v, x):
    return bn.apply(v, x, mutable=["batch_stats"])

  y, upd = _shard_map(step, (P(), P("i")), (P("i"), P()))(variables, x)
  y_ref, upd_ref = nn.BatchNorm(use_running_average=False, momentum=0.5).apply(
      variables, x, mutable=["batch_stats"])
  np.testing.assert_allclose(y, y_ref, atol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), upd, upd_ref)


def test_unbound_axis_name_is_a_clear_error():
  with pytest.raises(ValueError, match="axis_name='batch' is not bound"):
    F.batch_norm(_data((4, 3)), axis_name="batch")
  bn = normzoo.BatchNorm(use_running_average=False, axis_name="batch")
  v = bn.init(jax.random.PRNGKey(0), _data((4, 3)))
  with pytest.raises(ValueError, match="axis_name='batch'"):
    bn.apply(v, _data((4, 3)), mutable=["batch_stats"])
