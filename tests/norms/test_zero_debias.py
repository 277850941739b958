"""Zero-debiased running averages of BatchNorm (Adam-style bias correction)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo

RNG = np.random.default_rng(15)
KEY = jax.random.PRNGKey(0)


def _data(shape, loc=0.0, spread=1.0):
  return jnp.asarray((loc + spread * RNG.standard_normal(shape)).astype(np.float32))


def test_first_update_gives_the_batch_statistics_exactly():
  x = _data((8, 3, 3, 4), 5.0, 2.0)
  _, batch_mean, batch_var = normzoo.batch_norm(x)
  bn = normzoo.BatchNorm(zero_debias=True, momentum=0.99)
  v = bn.init(KEY, x, use_running_average=False)
  assert float(v["batch_stats"]["step"]) == 0.0 and v["batch_stats"]["step"].dtype == jnp.float32
  _, upd = bn.apply(v, x, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_array_equal(upd["batch_stats"]["mean"], batch_mean)
  np.testing.assert_array_equal(upd["batch_stats"]["var"], batch_var)
  assert float(upd["batch_stats"]["step"]) == 1.0
  # Evaluation reads mean/var as they are.
  np.testing.assert_allclose(
      bn.apply({**v, **upd}, x, use_running_average=True),
      normzoo.BatchNorm().apply({"params": v["params"], "batch_stats": {
          "mean": batch_mean, "var": batch_var}}, x, use_running_average=True))


def test_t_updates_equal_the_debiased_exponential_average():
  m, steps = 0.9, 6
  bn = normzoo.BatchNorm(zero_debias=True, momentum=m)
  xs = [_data((16, 3), float(t), 1.0 + t) for t in range(steps)]
  v = bn.init(KEY, xs[0], use_running_average=False)
  apply = jax.jit(lambda v, x: bn.apply(v, x, use_running_average=False, mutable=["batch_stats"]))
  acc_mean, acc_var = 0.0, 0.0
  for t, x in enumerate(xs, start=1):
    _, upd = apply(v, x)
    v = {**v, **upd}
    x64 = np.asarray(x, np.float64)
    acc_mean = m * acc_mean + (1 - m) * x64.mean(0)
    acc_var = m * acc_var + (1 - m) * x64.var(0)
    np.testing.assert_allclose(v["batch_stats"]["mean"], acc_mean / (1 - m ** t), rtol=2e-6,
                               atol=1e-6)
    np.testing.assert_allclose(v["batch_stats"]["var"], acc_var / (1 - m ** t), rtol=2e-6)
  assert float(v["batch_stats"]["step"]) == steps


def test_default_variable_tree_unchanged_and_functional_needs_step():
  x = _data((4, 3))
  assert set(normzoo.BatchNorm().init(KEY, x, use_running_average=False)["batch_stats"]) == {
      "mean", "var"}
  with pytest.raises(ValueError, match="zero_debias=True needs step="):
    normzoo.batch_norm(x, mean=jnp.zeros(3), var=jnp.ones(3), zero_debias=True)
  _, mean, _ = normzoo.batch_norm(x, mean=jnp.full(3, 7.0), var=jnp.ones(3), zero_debias=True,
                                  step=0, momentum=0.5)
  np.testing.assert_allclose(mean, np.asarray(x).mean(0), rtol=1e-6)
