"""FRN + TLU and EvoNorm-B0/S0 against float64 NumPy oracles of the papers' formulas."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from tests.norms import oracle
from tests.norms.variants import np_ref

RNG = np.random.default_rng(12)
KEY = jax.random.PRNGKey(0)
C = 8


def _data(shape, loc=0.0, spread=1.0):
  return jnp.asarray((loc + spread * RNG.standard_normal(shape)).astype(np.float32))


SCALE, BIAS, TAU = _data((C,), 1.0, 0.3), _data((C,), 0.0, 0.3), _data((C,), -0.2, 0.3)
V1 = _data((C,), 1.0, 0.5)


def _check_grads(ours, naive, *args, tol=1e-4):
  """Gradients of ``sum(f(*args) * w)`` vs float64 autodiff of the naive formula."""
  w = _data(args[0].shape)
  got = jax.jit(jax.grad(lambda *a: jnp.sum(ours(*a) * w), argnums=tuple(range(len(args)))))(*args)
  want = oracle.naive_grads(jax.jit(lambda *a: jnp.sum(naive(*a) * jnp.asarray(w, a[0].dtype))),
                            *args)
  for g, want_g in zip(got, want):
    np.testing.assert_allclose(g, want_g, rtol=tol, atol=tol)


def test_frn_matches_oracle_and_gradients():
  x = _data((3, 4, 5, C), 0.5, 2.0)
  y = jax.jit(normzoo.filter_response_norm)(x, SCALE, BIAS, TAU)
  np.testing.assert_allclose(y, np_ref.frn(x, SCALE, BIAS, TAU, 1e-6), atol=2e-5)
  # Learned epsilon: eps = eps0 + |eps_l| (negative eps_l tests the absolute value).
  frn = normzoo.FilterResponseNorm(learned_epsilon=True)
  v = frn.init(KEY, x)
  assert set(v["params"]) == {"scale", "bias", "tau", "eps"}
  v = {"params": {"scale": SCALE, "bias": BIAS, "tau": TAU, "eps": jnp.float32(-0.3)}}
  np.testing.assert_allclose(frn.apply(v, x), np_ref.frn(x, SCALE, BIAS, TAU, 1e-6 + 0.3),
                             atol=2e-5)

  def naive(x, s, b, t, e):
    nu2 = jnp.mean(x * x, axis=(1, 2), keepdims=True)
    return jnp.maximum(s * x / jnp.sqrt(nu2 + 1e-6 + jnp.abs(e)) + b, t)
  ours = lambda x, s, b, t, e: normzoo.filter_response_norm(x, s, b, t, learned_epsilon=e)
  _check_grads(ours, naive, x, SCALE, BIAS, TAU, jnp.float32(0.01))
  # Fixed epsilon (the RMSNorm kernel with its hand-written backward).
  fixed = lambda x, s, b, t: normzoo.filter_response_norm(x, s, b, t, epsilon=1e-3)
  naive_fixed = lambda x, s, b, t: naive(x, s, b, t, 1e-3 - 1e-6)
  _check_grads(fixed, naive_fixed, x, SCALE, BIAS, TAU)


def test_frn_on_features_needs_a_learned_epsilon_and_large_inputs_do_not_overflow():
  x = _data((4, C))
  with pytest.raises(ValueError, match="learned_epsilon=True"):
    normzoo.FilterResponseNorm().init(KEY, x)
  frn = normzoo.FilterResponseNorm(learned_epsilon=True, use_tlu=False)
  v = frn.init(KEY, x)
  assert "tau" not in v["params"]
  np.testing.assert_allclose(frn.apply(v, x), np_ref.frn(x, 1.0, 0.0, None, 1e-6 + 1e-4),
                             atol=2e-5)
  big = _data((2, 3, 3, C)) * 1e25
  y = normzoo.filter_response_norm(big, SCALE, BIAS, None)
  assert np.all(np.isfinite(y))
  np.testing.assert_allclose(y, np_ref.frn(big, SCALE, BIAS, None, 1e-6), atol=2e-5)


def test_evonorm_b0_training_eval_and_running_variance():
  x = _data((4, 3, 3, C), 1.0, 2.0)
  var = jnp.abs(_data((C,), 1.0, 0.5)) + 0.1
  y, new_var = jax.jit(functools.partial(normzoo.evonorm_b0, momentum=0.8))(x, SCALE, BIAS, V1,
                                                                            var)
  np.testing.assert_allclose(y, np_ref.evonorm_b0(x, SCALE, BIAS, V1, 1e-5), atol=3e-5)
  x64 = np.asarray(x, np.float64)
  np.testing.assert_allclose(new_var, 0.8 * np.asarray(var) + 0.2 * x64.var((0, 1, 2)), rtol=1e-5)
  y_eval, same = normzoo.evonorm_b0(x, SCALE, BIAS, V1, var, use_running_average=True)
  np.testing.assert_allclose(y_eval, np_ref.evonorm_b0(x, SCALE, BIAS, V1, 1e-5, var), atol=3e-5)
  assert same is var

  def naive(x, s, b, v1):
    bvar = jnp.var(x, axis=(0, 1, 2))
    ivar = jnp.var(x, axis=(1, 2), keepdims=True)
    return x / jnp.maximum(jnp.sqrt(bvar + 1e-5), v1 * x + jnp.sqrt(ivar + 1e-5)) * s + b
  _check_grads(lambda x, s, b, v1: normzoo.evonorm_b0(x, s, b, v1, var)[0], naive,
               x, SCALE, BIAS, V1)


def test_evonorm_b0_module_variables_and_features_error():
  x = _data((4, 2, 2, C))
  b0 = normzoo.EvoNormB0()
  v = b0.init(KEY, x, use_running_average=False)
  assert set(v["params"]) == {"scale", "bias", "v1"} and set(v["batch_stats"]) == {"var"}
  _, upd = b0.apply(v, x, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_allclose(upd["batch_stats"]["var"],
                             0.99 + 0.01 * np.asarray(x, np.float64).var((0, 1, 2)), rtol=1e-6)
  with pytest.raises(ValueError, match="no 'batch_stats'"):
    b0.apply({"params": v["params"]}, x, use_running_average=True)
  with pytest.raises(ValueError, match="needs spatial axes"):
    b0.init(KEY, _data((4, C)), use_running_average=False)


@pytest.mark.parametrize("shape,kwargs,groups", [
    ((2, 3, 4, C), dict(num_groups=4), 4),
    ((3, C), dict(num_groups=None, group_size=4), 2),
])
def test_evonorm_s0_matches_oracle(shape, kwargs, groups):
  x = _data(shape, 0.5, 2.0)
  s0 = normzoo.EvoNormS0(**kwargs)
  v = s0.init(KEY, x)
  v = {"params": {"scale": SCALE, "bias": BIAS, "v1": V1}}
  np.testing.assert_allclose(s0.apply(v, x),
                             np_ref.evonorm_s0(x, SCALE, BIAS, V1, groups, 1e-5), atol=3e-5)


def test_evonorm_s0_gradients_and_errors():
  x = _data((2, 3, 3, C), 0.5, 2.0)

  def naive(x, s, b, v1):
    xg = x.reshape(2, 3, 3, 2, 4)
    var = jnp.broadcast_to(jnp.var(xg, axis=(1, 2, 4), keepdims=True), xg.shape).reshape(x.shape)
    return x * jax.nn.sigmoid(v1 * x) / jnp.sqrt(var + 1e-5) * s + b
  _check_grads(lambda x, s, b, v1: normzoo.evonorm_s0(x, s, b, v1, num_groups=2), naive,
               x, SCALE, BIAS, V1)
  # The masked path (plain autodiff) agrees with the hand-written one on an all-True mask,
  # and absent scale/bias mean the identity.
  everything = jnp.ones(x.shape, bool)
  masked = lambda x, s, b, v1: normzoo.evonorm_s0(x, s, b, v1, num_groups=2, mask=everything)
  _check_grads(masked, naive, x, SCALE, BIAS, V1)
  np.testing.assert_allclose(normzoo.evonorm_s0(x, None, None, V1, num_groups=2),
                             naive(x, 1.0, 0.0, V1), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="num_groups=3 does not divide"):
    normzoo.EvoNormS0(num_groups=3).init(KEY, x)
  with pytest.raises(ValueError, match="single value"):
    normzoo.evonorm_s0(_data((4, C)), None, None, V1, num_groups=C)
