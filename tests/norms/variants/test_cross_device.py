"""Variants with batch statistics under shard_map on 8 host CPU devices vs one device."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

import normzoo

D = 8
C = 4
RNG = np.random.default_rng(17)


@pytest.fixture(scope="module", autouse=True)
def _needs_eight_devices():
  if jax.device_count() < D:
    pytest.fail(f"expected {D} host devices from tests/conftest.py, got {jax.device_count()}")


def _data(shape, loc=0.0, spread=1.0):
  return (loc + spread * RNG.standard_normal(shape)).astype(np.float32)


SCALE, BIAS, V1 = _data((C,), 1.0, 0.3), _data((C,), 0.0, 0.3), _data((C,), 1.0, 0.3)
MEAN = np.array([2.0, 9.0, -9.0, 2.5], np.float32)   # some channels clip d in renorm
VAR = np.array([4.0, 4.0, 400.0, 0.01], np.float32)  # ... and r
MW, VW = np.array([0.3, -0.5, 1.0], np.float32), np.array([-0.2, 0.8, 0.1], np.float32)

# f(x, params, axis_name, mask) -> (y, *running statistics); params is a tuple of arrays.
CASES = {
    "batch_renorm": (lambda x, p, a, m: normzoo.batch_renorm(
        x, p[0], p[1], MEAN, VAR, r_max=1.5, d_max=1.0, momentum=0.5, axis_name=a),
        (SCALE, BIAS)),
    "batch_renorm_masked": (lambda x, p, a, m: normzoo.batch_renorm(
        x, p[0], p[1], MEAN, VAR, r_max=1.5, d_max=1.0, momentum=0.5, axis_name=a, mask=m),
        (SCALE, BIAS)),
    "ghost_batch": (lambda x, p, a, m: normzoo.ghost_batch_norm(
        x, p[0], p[1], MEAN, VAR, virtual_batch_size=2, momentum=0.5, axis_name=a),
        (SCALE, BIAS)),
    "switchable_masked": (lambda x, p, a, m: normzoo.switchable_norm(
        x, p[0], p[1], p[2], p[3], MEAN, VAR, momentum=0.5, axis_name=a, mask=m),
        (SCALE, BIAS, MW, VW)),
    "evonorm_b0": (lambda x, p, a, m: normzoo.evonorm_b0(
        x, p[0], p[1], p[2], VAR, momentum=0.5, axis_name=a), (SCALE, BIAS, V1)),
}
# Unequal numbers of valid examples per device (one device has none): count-weighted statistics.
MASK = np.concatenate([np.arange(4) < c for c in (1, 4, 2, 3, 4, 0, 2, 1)])[:, None, None, None]


@pytest.mark.parametrize("name", sorted(CASES))
def test_shard_map_matches_single_device(name):
  f, params = CASES[name]
  x, w = _data((D * 4, 3, 2, C), 2.0, 3.0), _data((D * 4, 3, 2, C))

  def outputs_and_grads(x, w, params, mask, axis_name):
    def loss(x, params):
      y, *stats = f(x, params, axis_name, mask)
      return jnp.sum(jnp.where(mask, y * w, 0.0)), (y, stats)
    (_, (y, stats)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, params)
    return y, stats, grads

  mesh = Mesh(np.array(jax.devices()[:D]), ("i",))
  sharded = jax.jit(jax.shard_map(functools.partial(outputs_and_grads, axis_name="i"), mesh=mesh,
                                  in_specs=(P("i"), P("i"), P(), P("i")),
                                  out_specs=(P("i"), P(), (P("i"), P()))))
  y, stats, (gx, gp) = sharded(x, w, params, MASK)
  y_ref, stats_ref, (gx_ref, gp_ref) = jax.jit(
      functools.partial(outputs_and_grads, axis_name=None))(x, w, params, MASK)
  valid = np.broadcast_to(MASK, x.shape) if name.endswith("masked") else np.ones(x.shape, bool)
  np.testing.assert_allclose(y[valid], y_ref[valid], atol=3e-5, rtol=1e-5)
  for s, s_ref in zip(stats, stats_ref):
    np.testing.assert_allclose(s, s_ref, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(np.where(MASK, gx, 0), np.where(MASK, gx_ref, 0), atol=1e-4,
                             rtol=1e-4)
  for g, g_ref in zip(gp, gp_ref):
    np.testing.assert_allclose(g, g_ref, atol=2e-4, rtol=1e-4)
  if name == "batch_renorm_masked":  # masked = the valid examples alone
    rows = MASK[:, 0, 0, 0]
    y_valid, *stats_valid = f(x[rows], params, None, None)
    np.testing.assert_allclose(y[rows], y_valid, atol=3e-5, rtol=1e-5)
    for s, s_valid in zip(stats, stats_valid):
      np.testing.assert_allclose(s, s_valid, atol=1e-5, rtol=1e-5)
  if name == "batch_renorm":  # the clipping must actually be exercised
    x64 = np.asarray(x, np.float64)
    d = (x64.mean((0, 1, 2)) - MEAN) / np.sqrt(VAR + 1e-5)
    r = np.sqrt(x64.var((0, 1, 2)) + 1e-5) / np.sqrt(VAR + 1e-5)
    assert np.any(np.abs(d) > 1.0) and np.any((r > 1.5) | (r < 1 / 1.5))


def test_ghost_module_with_axis_name_uses_per_device_virtual_batches():
  x = _data((D * 4, C), 1.0, 2.0)
  gbn = normzoo.GhostBatchNorm(virtual_batch_size=4, axis_name="i", momentum=0.5)
  variables = gbn.init(jax.random.PRNGKey(0), x, use_running_average=False)
  mesh = Mesh(np.array(jax.devices()[:D]), ("i",))
  step = jax.jit(jax.shard_map(
      lambda v, x: gbn.apply(v, x, use_running_average=False, mutable=["batch_stats"]),
      mesh=mesh, in_specs=(P(), P("i")), out_specs=(P("i"), P())))
  y, upd = step(variables, x)
  y_ref, upd_ref = normzoo.GhostBatchNorm(virtual_batch_size=4, momentum=0.5).apply(
      variables, x, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_allclose(y, y_ref, atol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), upd, upd_ref)


def test_evonorm_b0_pmap_gradients_match_single_device():
  """Untyped pmap: the hand-written backward sums the batch-variance terms over devices,
  including the cotangent of the returned running variance."""
  x, w = _data((D * 2, 3, 2, C), 1.0, 2.0), _data((D * 2, 3, 2, C))
  wv = _data((C,))

  def loss(x, w, s, b, v1, axis_name, devices):
    y, new_var = normzoo.evonorm_b0(x, s, b, v1, VAR, momentum=0.5, axis_name=axis_name)
    return jnp.sum(y * w) + jnp.sum(new_var * wv) / devices  # new_var is replicated

  def local_grads(x, w):
    gx, *gp = jax.grad(loss, argnums=(0, 2, 3, 4))(x, w, SCALE, BIAS, V1, "i", D)
    return gx, [jax.lax.psum(g, "i") for g in gp]

  shape = (D, 2) + x.shape[1:]
  gx, gp = jax.pmap(local_grads, axis_name="i")(x.reshape(shape), w.reshape(shape))
  ref = jax.grad(loss, argnums=(0, 2, 3, 4))(x, w, SCALE, BIAS, V1, None, 1)
  np.testing.assert_allclose(np.asarray(gx).reshape(x.shape), ref[0], atol=1e-4, rtol=1e-4)
  for got, want in zip(gp, ref[1:]):
    np.testing.assert_allclose(got[0], want, atol=2e-4, rtol=1e-4)
