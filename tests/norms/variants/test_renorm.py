"""Batch renormalization against batch norm (r_max=1, d_max=0) and a float64 NumPy oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.norms.variants import renorm
from tests.norms import oracle
from tests.norms.variants import np_ref

RNG = np.random.default_rng(10)
KEY = jax.random.PRNGKey(0)
C = 6


def _data(shape, loc=0.0, spread=1.0):
  return jnp.asarray((loc + spread * RNG.standard_normal(shape)).astype(np.float32))


def _variables(module, x):
  """init, then non-trivial params and running statistics."""
  v = module.init(KEY, x, use_running_average=False)
  v["params"] = {"scale": _data((C,), 1.0, 0.3), "bias": _data((C,), 0.0, 0.3)}
  v["batch_stats"] = {**v["batch_stats"], "mean": _data((C,), 0.5, 1.0),
                      "var": jnp.abs(_data((C,), 1.0, 0.8)) + 0.1}
  return v


def _train(module, v, x, w):
  def loss(params, x):
    y, upd = module.apply({**v, "params": params}, x, use_running_average=False,
                          mutable=["batch_stats"])
    return jnp.sum(y * w), (y, upd["batch_stats"])
  grad_fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
  (_, (y, stats)), grads = grad_fn(v["params"], x)
  return y, stats, grads


@pytest.mark.parametrize("shape", [(4, 3, 5, C)])
def test_unit_limits_equal_batch_norm(shape):
  x, w = _data(shape, 2.0, 3.0), _data(shape)
  ren = normzoo.BatchRenorm(r_max=1.0, d_max=0.0, momentum=0.8)
  v = _variables(ren, x)
  y_r, st_r, g_r = _train(ren, v, x, w)
  y_b, st_b, g_b = _train(normzoo.BatchNorm(momentum=0.8), v, x, w)
  np.testing.assert_allclose(y_r, y_b, atol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), st_r, st_b)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), g_r, g_b)
  # ... and the float64 oracle.
  y_np, mean_np, var_np = np_ref.renorm_train(x, v["params"]["scale"], v["params"]["bias"],
                                              v["batch_stats"]["mean"], v["batch_stats"]["var"],
                                              1.0, 0.0, 1e-5, 0.8)
  np.testing.assert_allclose(y_r, y_np, atol=2e-5)
  np.testing.assert_allclose(st_r["mean"], mean_np, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(st_r["var"], var_np, rtol=1e-5)


def test_clipped_r_and_d_match_oracle_with_stop_gradient():
  # Running statistics far from the batch's in some channels: r and d clip there.
  x, w = _data((8, 3, 3, C), 1.0, 2.0), _data((8, 3, 3, C))
  scale, bias = _data((C,), 1.0, 0.3), _data((C,), 0.0, 0.3)
  mean = jnp.asarray([1.0, 30.0, -30.0, 1.2, 0.0, 2.0], jnp.float32)
  var = jnp.asarray([4.0, 4.0, 4.0, 400.0, 0.01, 3.0], jnp.float32)
  y, new_mean, new_var = normzoo.batch_renorm(x, scale, bias, mean, var, r_max=2.0, d_max=1.5,
                                              momentum=0.9)
  y_np, mean_np, var_np = np_ref.renorm_train(x, scale, bias, mean, var, 2.0, 1.5, 1e-5, 0.9)
  np.testing.assert_allclose(y, y_np, atol=3e-5, rtol=1e-5)
  np.testing.assert_allclose(new_mean, mean_np, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(new_var, var_np, rtol=1e-5)

  def naive(x, scale, bias):  # float64 autodiff with r, d held constant
    axes = (0, 1, 2)
    mu_b, var_b = jnp.mean(x, axes), jnp.var(x, axes)
    sigma = jnp.sqrt(jnp.asarray(var, x.dtype) + 1e-5)
    r = jax.lax.stop_gradient(jnp.clip(jnp.sqrt(var_b + 1e-5) / sigma, 0.5, 2.0))
    d = jax.lax.stop_gradient(jnp.clip((mu_b - jnp.asarray(mean, x.dtype)) / sigma, -1.5, 1.5))
    y = ((x - mu_b) / jnp.sqrt(var_b + 1e-5) * r + d) * scale + bias
    return jnp.sum(y * jnp.asarray(w, x.dtype))

  want = oracle.naive_grads(jax.jit(naive), x, scale, bias)
  got = jax.jit(jax.grad(lambda x, s, b: jnp.sum(normzoo.batch_renorm(x, s, b, mean, var, r_max=2.0,
                                                              d_max=1.5)[0] * w),
                 argnums=(0, 1, 2)))(x, scale, bias)
  for g, want_g in zip(got, want):
    np.testing.assert_allclose(g, want_g, rtol=1e-4, atol=1e-4)


def test_evaluation_is_batch_norm_with_running_statistics():
  x = _data((4, 2, 2, C), 1.0, 2.0)
  ren = normzoo.BatchRenorm()
  v = _variables(ren, x)
  y = ren.apply(v, x, use_running_average=True)
  y_bn = normzoo.BatchNorm().apply(v, x, use_running_average=True)
  np.testing.assert_allclose(y, y_bn, atol=1e-6)


def test_schedule_ramps_linearly_from_batch_norm_to_the_targets():
  r, d = renorm.renorm_limits(jnp.asarray([0.0, 5.0, 10.0, 15.0, 20.0, 99.0]), 3.0, 5.0,
                              warmup_steps=10, warmup_delay=5)
  np.testing.assert_allclose(r, [1.0, 1.0, 2.0, 3.0, 3.0, 3.0])
  np.testing.assert_allclose(d, [0.0, 0.0, 2.5, 5.0, 5.0, 5.0])
  r, d = renorm.renorm_limits(3.0, 3.0, 5.0, warmup_delay=3)
  assert (float(r), float(d)) == (3.0, 5.0)

  # In the module: a step counter in batch_stats, and at step 0 (r=1, d=0) batch norm.
  x = _data((8, C), 3.0, 2.0)
  ren = normzoo.BatchRenorm(warmup_steps=4, momentum=0.5)
  v = _variables(ren, x)
  assert float(v["batch_stats"]["step"]) == 0.0
  y, upd = ren.apply(v, x, use_running_average=False, mutable=["batch_stats"])
  y_bn, _ = normzoo.BatchNorm(momentum=0.5).apply(v, x, use_running_average=False,
                                                  mutable=["batch_stats"])
  np.testing.assert_allclose(y, y_bn, atol=2e-5)
  for step in range(1, 3):
    assert float(upd["batch_stats"]["step"]) == step
    v = {**v, "batch_stats": upd["batch_stats"]}
    y, upd = ren.apply(v, x, use_running_average=False, mutable=["batch_stats"])
  # After 2 updates r_max = 2, d_max = 2.5 on the schedule.
  bs = v["batch_stats"]
  y_np, _, _ = np_ref.renorm_train(x, v["params"]["scale"], v["params"]["bias"], bs["mean"],
                                   bs["var"], 2.0, 2.5, 1e-5, 0.5)
  np.testing.assert_allclose(y, y_np, atol=3e-5)
  assert "step" not in normzoo.BatchRenorm().init(KEY, x, use_running_average=False)["batch_stats"]


def test_bad_limits_are_clear_errors():
  x = _data((4, C))
  with pytest.raises(ValueError, match="r_max must be >= 1"):
    normzoo.batch_renorm(x, None, None, jnp.zeros(C), jnp.ones(C), r_max=0.5)
  with pytest.raises(ValueError, match="d_max must be >= 0"):
    normzoo.batch_renorm(x, None, None, jnp.zeros(C), jnp.ones(C), d_max=-1.0)
  with pytest.raises(ValueError, match="warmup_steps"):
    renorm.renorm_limits(0, 3.0, 5.0, warmup_steps=-1)
