"""Ghost batch norm against batch norm (one virtual batch) and a float64 NumPy oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from tests.norms import oracle
from tests.norms.variants import np_ref

RNG = np.random.default_rng(11)
KEY = jax.random.PRNGKey(0)
C = 5


def _data(shape, loc=0.0, spread=1.0):
  return jnp.asarray((loc + spread * RNG.standard_normal(shape)).astype(np.float32))


SCALE, BIAS = _data((C,), 1.0, 0.3), _data((C,), 0.0, 0.3)
MEAN, VAR = _data((C,), 0.0, 0.5), jnp.abs(_data((C,), 1.0, 0.5)) + 0.1


def test_one_virtual_batch_is_batch_norm():
  x, w = _data((8, 3, 3, C), 1.0, 2.0), _data((8, 3, 3, C))

  def run(module):
    v = {"params": {"scale": SCALE, "bias": BIAS}, "batch_stats": {"mean": MEAN, "var": VAR}}
    def loss(params, x):
      y, upd = module.apply({**v, "params": params}, x, use_running_average=False,
                            mutable=["batch_stats"])
      return jnp.sum(y * w), (y, upd)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(v["params"], x)

  (_, (y_g, st_g)), g_g = run(normzoo.GhostBatchNorm(virtual_batch_size=8, momentum=0.7))
  (_, (y_b, st_b)), g_b = run(normzoo.BatchNorm(momentum=0.7))
  np.testing.assert_allclose(y_g, y_b, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), st_g, st_b)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), g_g, g_b)


@pytest.mark.parametrize("shape,v", [((12, C), 3), ((8, 2, 3, C), 2)])
def test_virtual_batches_match_oracle(shape, v):
  x = _data(shape, 2.0, 3.0)
  y, new_mean, new_var = normzoo.ghost_batch_norm(x, SCALE, BIAS, MEAN, VAR,
                                                  virtual_batch_size=v, momentum=0.6)
  y_np, means, variances = np_ref.ghost_train(x, SCALE, BIAS, v, 1e-5)
  np.testing.assert_allclose(y, y_np, atol=3e-5)
  # Running statistics: the average of the virtual-batch statistics.
  np.testing.assert_allclose(new_mean, 0.6 * np.asarray(MEAN) + 0.4 * means.mean(0), atol=1e-5)
  np.testing.assert_allclose(new_var, 0.6 * np.asarray(VAR) + 0.4 * variances.mean(0), rtol=1e-5)


def test_gradients_match_naive_float64():
  x, w = _data((6, 2, C), 1.0, 2.0), _data((6, 2, C))

  def naive(x, s, b):
    xg = x.reshape(3, 2, 2, C)
    y = oracle.naive_normalize(xg, (1, 2), s, b, 1e-5).reshape(x.shape)
    return jnp.sum(y * jnp.asarray(w, x.dtype))

  want = oracle.naive_grads(jax.jit(naive), x, SCALE, BIAS)
  got = jax.jit(jax.grad(lambda x, s, b: jnp.sum(
      normzoo.ghost_batch_norm(x, s, b, virtual_batch_size=2)[0] * w), argnums=(0, 1, 2)))(
          x, SCALE, BIAS)
  for g, want_g in zip(got, want):
    np.testing.assert_allclose(g, want_g, rtol=1e-4, atol=1e-4)


def test_masked_statistics_are_count_weighted():
  x = _data((8, C), 1.0, 2.0)
  mask = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)  # virtual batches of 4: 3 and 1 valid
  x = jnp.where(mask[:, None], x, 1e3)
  y, m, v = normzoo.ghost_batch_norm(x, None, None, virtual_batch_size=4, mask=mask[:, None])
  xv = np.asarray(x, np.float64)[mask]
  np.testing.assert_allclose(m, xv.mean(0), rtol=1e-5)
  first = xv[:3]
  np.testing.assert_allclose(v, 3 / 4 * first.var(0), rtol=1e-5)  # the single one has var 0
  np.testing.assert_allclose(y[:3], (first - first.mean(0)) / np.sqrt(first.var(0) + 1e-5),
                             atol=2e-5)


def test_batch_not_divisible_is_a_clear_error_and_eval_has_no_constraint():
  gbn = normzoo.GhostBatchNorm(virtual_batch_size=4)
  x = _data((6, C))
  v = gbn.init(KEY, x, use_running_average=True)
  with pytest.raises(ValueError, match=r"virtual_batch_size=4 must be a positive divisor of the "
                                       r"batch size 6"):
    gbn.apply(v, x, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_allclose(gbn.apply(v, x, use_running_average=True),
                             normzoo.BatchNorm().apply(v, x, use_running_average=True))
  with pytest.raises(ValueError, match="batch axis"):
    normzoo.ghost_batch_norm(x, virtual_batch_size=2, axis=0)
